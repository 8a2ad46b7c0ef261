"""The Debian packages the test bed installs: pinned to the versions it was verified with.

`verified-packages.txt` (beside this module) lists them, one `SUITE NAME VERSION` a line. Debian
serves only the newest version of a package in a suite (an older one is gone from the archive
the day an update lands), so a pin cannot always hold:
- `specs` asks apt which versions it can install now and gives `name=version` for each verified
  version still served; for one that is gone it gives the bare name (apt's candidate) and one
  line saying which version replaced the verified one;
- `report` compares what is installed with the verified versions: the versions in one line,
  and one more line naming each package that differs.
A Debian update then shows in `scripts/testbed up` the day it arrives, instead of changing the
project's behaviour without a commit. After verifying new versions (a green `bash .ci/run`),
`python3 -m dockerbed packages record` writes the installed ones into the file.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dockerbed import BedError

VERIFIED_FILE = Path(__file__).with_name("verified-packages.txt")


@dataclass(frozen=True)
class Pin:
    suite: str  # the Debian suite it comes from: bookworm (this machine's), trixie (the engine), or image:NAME
    name: str
    version: str


def parse(text: str) -> list[Pin]:
    """The pins of a verified-packages file; `#` starts a comment."""
    pins = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 3:
            raise BedError(f"{VERIFIED_FILE.name} line {number}: expected SUITE NAME VERSION, got {raw.strip()!r}")
        pins.append(Pin(*fields))
    return pins


def verified(suite: str | None = None, path: Path = VERIFIED_FILE) -> list[Pin]:
    pins = parse(path.read_text())
    return [pin for pin in pins if suite is None or pin.suite == suite]


def choose(pins: Iterable[Pin], available: Mapping[str, Sequence[str]]) -> tuple[list[str], list[str]]:
    """(install specs, notes): `name=version` when apt serves the verified version, else `name` and a note.

    `available` maps a package name to the versions apt can install now, newest first.
    """
    specs, notes = [], []
    for pin in pins:
        versions = available.get(pin.name, ())
        if pin.version in versions:
            specs.append(f"{pin.name}={pin.version}")
            continue
        specs.append(pin.name)
        instead = versions[0] if versions else "nothing (not served at all)"
        notes.append(f"{pin.name} {pin.version} (verified) is no longer served by Debian {pin.suite}: "
                     f"installing {instead} instead")  # fmt: skip
    return specs, notes


def report(pins: Iterable[Pin], installed: Mapping[str, str | None]) -> tuple[str, str | None]:
    """(the installed versions in one line, one line naming those that differ from the verified ones or None)."""
    pins = list(pins)
    versions = ", ".join(f"{pin.name} {installed.get(pin.name) or 'missing'}" for pin in pins)
    differ = [f"{pin.name} {installed.get(pin.name) or 'missing'} (verified: {pin.version})"
              for pin in pins if installed.get(pin.name) != pin.version]  # fmt: skip
    if not differ:
        return f"versions (as verified): {versions}", None
    return (f"versions: {versions}",
            f"this machine has other versions than the test bed was verified with: {'; '.join(differ)} "
            f"(after a green `bash .ci/run`, record them: python3 -m dockerbed packages record)")  # fmt: skip


def record(installed: Mapping[str, str | None], path: Path = VERIFIED_FILE) -> list[str]:
    """Rewrite the file's versions with the installed ones (comments and order kept); the lines changed."""
    changed, out = [], []
    for raw in path.read_text().splitlines():
        fields = raw.split("#", 1)[0].split()
        if len(fields) == 3 and installed.get(fields[1]) and installed[fields[1]] != fields[2]:
            suite, name, old = fields
            raw = f"{suite} {name} {installed[name]}"
            changed.append(f"{name} {old} -> {installed[name]}")
        out.append(raw)
    path.write_text("\n".join(out) + "\n")
    return changed


# -- apt and dpkg (the impure part) ------------------------------------------------------------------------
Run = Callable[[Sequence[str]], str]


def run(argv: Sequence[str]) -> str:
    """stdout of `argv`; dpkg-query exits 1 when a name is not installed, yet prints the others: not an error."""
    result = subprocess.run(list(argv), capture_output=True, text=True)
    if result.returncode != 0 and not result.stdout:
        raise BedError(f"`{' '.join(argv)}` failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    return result.stdout


def madison(text: str) -> dict[str, list[str]]:
    """`apt-cache madison` output as {name: [versions, newest first]}."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        parts = [part.strip() for part in line.split("|")]
        if len(parts) >= 3 and parts[0] and parts[1] not in found.get(parts[0], []):
            found.setdefault(parts[0], []).append(parts[1])
    return found


def available(names: Sequence[str], apt_options: Sequence[str] = (), runner: Run = run) -> dict[str, list[str]]:
    return madison(runner(["apt-cache", *apt_options, "madison", *names])) if names else {}


def dpkg_versions(text: str, names: Iterable[str]) -> dict[str, str | None]:
    """`dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n'` output: installed versions (None: not installed)."""
    versions: dict[str, str | None] = dict.fromkeys(names)
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0] in versions and fields[2].startswith("ii"):
            versions[fields[0]] = fields[1]
    return versions


DPKG_QUERY = ["dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n"]


def installed(names: Sequence[str], prefix: Sequence[str] = (), runner: Run = run) -> dict[str, str | None]:
    """Installed versions on this machine, or inside an image with `prefix` (docker run --rm IMAGE)."""
    return dpkg_versions(runner([*prefix, *DPKG_QUERY, *names]), names)
