"""production_control delivery tasks. `invoke --list` shows them; `invoke --help TASK` shows flags.

Configuration: invoke.yaml (section `deploy`), each key overridable by
INVOKE_DEPLOY_<KEY> environment variables. The logic lives in the `delivery` package;
the tasks, one module per area (build, release, ops, dev), stay thin: flags in, a runbook
of delivery/usecases called, its result printed (delivery/ui/).
"""
from __future__ import annotations

import sys
from pathlib import Path

from invoke import Collection

# invoke puts tasks/ on sys.path (for a package of tasks); the delivery package is beside it.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from delivery.config.settings import DEFAULTS, check_config_file  # noqa: E402
from delivery.errors import DeliveryError  # noqa: E402

try:  # invoke reads invoke.yaml after importing this package; a broken one would end in a traceback
    check_config_file(ROOT / "invoke.yaml")
except DeliveryError as exc:
    sys.exit(f"error: {exc}")

from . import build, dev, ops, release  # noqa: E402  (after the check: a broken invoke.yaml stops here, in one line)

# One flat namespace, as before the split: `invoke deploy`, not `invoke release.deploy`.
ns = Collection()
for area in (build, release, ops, dev):
    for task in Collection.from_module(area).tasks.values():
        ns.add_task(task)
ns.configure({"deploy": DEFAULTS})
