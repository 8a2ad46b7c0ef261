"""The text of the reports that test_tasks_wiring.py does not print: the swarm's, rollback's, the deps freshness."""

from delivery.deploy.compose.report import DeployReport
from delivery.deploy.reports import HostStatus, SwarmStatus
from delivery.deploy.swarm.measure import NodeReport, SwarmReport
from delivery.ui import text

SWARM = SwarmReport(manager="deploy@manager", stack="pc", image="r/pc:1.0.1-aaaaaaaaaaaa", version="1.0.1-aaaaaaaaaaaa",
                    digest="sha256:1", previous="1.0.0-bbbbbbbbbbbb", update_state="completed", update_seconds=12.34,
                    cron_state="completed", healthy=True,
                    nodes=[NodeReport("n1", "10.0.0.1", "ready", True, 2, 2_000_000, 2, 1_900_000, 1.5, 2),
                           NodeReport("n2", "10.0.0.2", "down", note="engine not listed")],
                    failed_tasks=[{"service": "web", "node": "n2", "state": "failed", "error": "exit 3"}], nodes_down=["n2"])


def test_the_swarm_report_by_its_type() -> None:
    assert text.format_report(SWARM).splitlines() == [
        "swarm           deploy@manager (stack pc)",
        "image           r/pc:1.0.1-aaaaaaaaaaaa",
        "previous        1.0.0-bbbbbbbbbbbb",
        "  node           state      predicted     measured  pull s tasks",
        "  n1             ready         2.0 MB       1.9 MB    1.50 2",
        "  n2             down               -            -       - 0  (engine not listed)",
        "update          completed in 12.3s",
        "cron            completed",
        "proxy           left as it is",
        "failed task     web on n2: failed (exit 3)",
        "nodes down      n2",
    ]


def test_rollback_names_the_host_or_the_manager() -> None:
    compose = DeployReport(host="plant-a", image="r/pc:1.0.0-bbbbbbbbbbbb", version="1.0.0-bbbbbbbbbbbb", digest="sha256:2")
    assert text.format_rollback(compose) == "plant-a: now running 1.0.0-bbbbbbbbbbbb"
    assert text.format_rollback(SWARM) == "deploy@manager: now running 1.0.1-aaaaaaaaaaaa"


def test_the_swarm_status_by_its_type() -> None:
    entry = {"mode": "swarm", "host": "deploy@manager", "stack": "pc",
             "nodes": {"n1": {"state": "ready", "availability": "active", "address": "10.0.0.1"}},
             "services": {"web": {"image": "r/pc", "tag": "1.0.1-aaaaaaaaaaaa", "replicas": 2, "update_state": "completed",
                                  "update_message": None, "per_node": {"n1": {"running": 2, "healthy": 2}},
                                  "tasks": [{"node": "n1", "state": "running", "health": "healthy", "tag": "1.0.1-aaaaaaaaaaaa",
                                             "digest": "sha256:" + "a" * 64}] * 2}}}
    assert text.format_status(SwarmStatus(entry)).splitlines() == [
        "swarm deploy@manager  stack pc  nodes: n1 ready",
        "  web    1.0.1-aaaaaaaaaaaa  replicas 2  update completed",
        "    n1             2 running, 2 healthy  sha256:aaaaaaaaaaaa",
    ]
    assert text.format_status(SwarmStatus({**entry, "services": {}})).splitlines()[-1] == "  nothing deployed (first deploy: `invoke deploy`)"


def test_the_deps_freshness_lines_of_a_host() -> None:
    fresh = {"base_name": "python:3.12-slim", "base_digest": "sha256:b", "age_days": 3.5, "built_at": "2026-11-30T00:00:00+00:00",
             "newer": "deps-1.0.1-abc"}
    entry = {"host": "local", "engine": "28", "image_store": "overlay2", "running": None, "lock": None, "history": [], "deps": fresh}
    assert text.format_status(HostStatus(entry)).splitlines()[4:7] == [
        "  base      python:3.12-slim@sha256:b",
        "  deps age  3.5 days (built 2026-11-30T00:00:00+00:00)",
        "  newer deps image  yes: deps-1.0.1-abc (rebuild the app: `invoke build-app`)",
    ]
    assert text.format_freshness({"deps_tag": None, "base_digest": None, "age_days": None, "newer": None}) == (
        "  base      unknown (built before digest tracking)\n  deps age  unknown (no SBOM)\n  newer deps image  no")


def test_the_audit_line() -> None:
    assert text.format_audit({"audited": 42, "ignored": [{"id": "PYSEC-1"}]}) == (
        "audit ok: 42 packages, 1 known vulnerabilities ignored until their dates")


def report(**changes) -> SwarmReport:
    base = SwarmReport(manager="m", stack="pc", image="r/app", version="1.0.1-b", digest="sha256:x", previous="1.0.0-a")
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def test_the_report_says_what_happened_to_the_proxy() -> None:
    from delivery.ui.text import format_report

    done = report(update_state="completed", cron_state="completed", proxy_state="completed", proxy_change="port 8000 -> 8080")
    assert "proxy           completed (replaced: port 8000 -> 8080)" in format_report(done).splitlines()
    dry = report(update_state="dry run")
    assert "proxy           left as it is (predicted)" in format_report(dry).splitlines()
