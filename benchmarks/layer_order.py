"""Which order of the dependency groups costs servers the fewest bytes per month.

The classic (overlay2) image store re-pulls every layer above a changed one, so
the order of the dependency layers decides what a bump of one group costs there;
the containerd store pulls only the changed layer, whatever the order.

The model, per dependency group g of deps/layers.toml:
- bumps per month of g: the days in the last 12 months on which any package of g
  published a release the lock would take (same major version as the locked one,
  no pre-release, not yanked), divided by 12. Packages released the same day
  (pydantic and pydantic-core) count once: one lock refresh takes both. It assumes
  the lock follows every release (a bot opening a PR per release), an upper bound.
- bytes of one bump of g, classic store: g's layer, every dependency layer above it
  (the `rest` group included), the app's layers (above the deps image), the config
  and the manifest; containerd store: g's layer, the config and the manifest.
Expected bytes per month = sum over g of bumps(g) x bytes(g). The layer sizes are
measured (the benchmark's first deploy); the release days come from PyPI's JSON
API, fetched once into docs/dependency-releases.json (`--fetch`), so the
computation can be rerun and checked without the network.

    .venv/bin/python -m benchmarks.layer_order --fetch     refresh docs/dependency-releases.json from PyPI
    .venv/bin/python -m benchmarks.layer_order             print every order's expected bytes per month
"""
from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import tomllib
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from packaging.version import InvalidVersion, Version

from delivery.release.pullreport import human_bytes

ROOT = Path(__file__).resolve().parent.parent
RELEASES = ROOT / "docs" / "dependency-releases.json"
WINDOW_DAYS = 365


def groups_of(layers_toml: str) -> dict[str, list[str]]:
    """{group: packages} of deps/layers.toml, bottom to top."""
    return {g["name"]: list(g["packages"]) for g in tomllib.loads(layers_toml)["layer"]}


def release_days(pypi: dict, locked: str, until: datetime, days: int = WINDOW_DAYS) -> list[str]:
    """Pure: the days (YYYY-MM-DD) in the `days` before `until` on which the package published a
    release of the locked version's major line (no pre-release, nothing yanked)."""
    major = Version(locked).major
    since = until - timedelta(days=days)
    found = set()
    for version, files in pypi["releases"].items():
        try:
            parsed = Version(version)
        except InvalidVersion:
            continue
        if parsed.is_prerelease or parsed.is_devrelease or parsed.major != major or not files:
            continue
        if all(f.get("yanked") for f in files):
            continue
        uploaded = min(datetime.fromisoformat(f["upload_time_iso_8601"].replace("Z", "+00:00")) for f in files)
        if since <= uploaded <= until:
            found.add(uploaded.date().isoformat())
    return sorted(found)


def bumps_per_month(days_by_package: dict[str, list[str]], groups: dict[str, list[str]], window_days: int) -> dict[str, float]:
    """Pure: per group, distinct release days of its packages per month."""
    months = window_days / (365 / 12)
    return {g: len({d for p in packages for d in days_by_package.get(p, [])}) / months for g, packages in groups.items()}


def bump_bytes(order: tuple[str, ...], sizes: dict[str, int], above: int, fixed: int) -> dict[str, dict[str, int]]:
    """Pure: bytes one bump of each group costs a server per store, for groups stacked in `order`
    (bottom to top). `above`: the layers above the groups (the `rest` group, the app's layers);
    `fixed`: what every pull of a new image costs (config and manifest)."""
    costs = {}
    for index, group in enumerate(order):
        costs[group] = {"overlay2": sum(sizes[g] for g in order[index:]) + above + fixed,
                        "containerd": sizes[group] + fixed}
    return costs


def expected_monthly(order: tuple[str, ...], sizes: dict[str, int], bumps: dict[str, float], above: int,
                     fixed: int) -> dict[str, float]:
    """Pure: expected bytes per month, per store, of one order."""
    costs = bump_bytes(order, sizes, above, fixed)
    return {store: sum(bumps[g] * costs[g][store] for g in order) for store in ("overlay2", "containerd")}


def orders_table(sizes: dict[str, int], bumps: dict[str, float], above: int, fixed: int,
                 current: tuple[str, ...]) -> list[dict]:
    """Every order of the groups, cheapest on the classic store first."""
    rows = []
    for order in itertools.permutations(current):
        rows.append({"order": list(order), "current": order == current,
                     **{f"{store}_bytes_per_month": round(v) for store, v in expected_monthly(order, sizes, bumps, above, fixed).items()}})
    return sorted(rows, key=lambda r: (r["overlay2_bytes_per_month"], not r["current"]))


def sizes_from(results: dict, groups: list[str]) -> tuple[dict[str, int], int, int]:
    """From a benchmark results document: each group's layer size, the bytes above the groups, and config + manifest."""
    layers = results["ours_layers"]
    # The dependency layers are the COPYs of whole venv trees (`COPY /opt/venv/ /opt/venv/`), in group order.
    venv = [i for i, layer in enumerate(layers) if layer["created_by"].startswith("COPY /opt/venv/ /opt/venv/")]
    index = dict(zip(results.get("layer_order", groups), venv, strict=False))
    top = max(index.values())
    first = next(r for r in results["results"] if r["scenario"] == "first" and r["design"] == "ours")
    # config + manifest (results older than the floor columns: the config alone)
    fixed = first["floor_bytes"] - first["changed_layer_bytes"] if "floor_bytes" in first else first["bytes"] - first["layer_bytes"]
    return {g: layers[i]["bytes"] for g, i in index.items()}, sum(layer["bytes"] for layer in layers[top + 1:]), fixed


def measured_monthly(results: dict, bumps: dict[str, float]) -> dict[str, float]:
    """Pure: expected bytes per month per store from a run's measured bump pulls (ours, one dep-<group>
    scenario per group); a store without every group's bump is left out."""
    monthly = {}
    for store in ("overlay2", "containerd"):
        rows = {r["scenario"].removeprefix("dep-"): r for r in results["results"]
                if r["design"] == "ours" and r["store"] == store and r["scenario"].startswith("dep-")}
        if all(g in rows for g in bumps):
            monthly[store] = sum(bumps[g] * (rows[g]["bytes"] + rows[g].get("manifest_bytes", 0)) for g in bumps)
    return monthly


def markdown(document: dict, results: dict, layers_toml: str, other: dict | None = None) -> str:
    """The model's inputs (groups, sizes, bumps per month) and every order's expected bytes per month:
    predicted from the layer sizes, and measured where a run built that order (`results`, `other`)."""
    groups = groups_of(layers_toml)
    current = tuple(groups)
    bumps = bumps_per_month(document["release_days"], groups, document["window_days"])
    sizes, above, fixed = sizes_from(results, list(groups))
    measured = {tuple(r.get("layer_order", current)): measured_monthly(r, bumps) for r in (results, other) if r}

    lines = ["| group | packages | layer | bumps per month |", "|---|---|---:|---:|"]
    lines += [f"| `{g}` | {', '.join(p)} | {human_bytes(sizes[g])} | {bumps[g]:.1f} |" for g, p in groups.items()]
    lines += ["", "| order, bottom to top | overlay2 (classic) per month | containerd per month |", "|---|---:|---:|"]
    for row in orders_table(sizes, bumps, above, fixed, current):
        order = tuple(row["order"])
        cells = []
        for store in ("overlay2", "containerd"):
            cell = f"{human_bytes(row[f'{store}_bytes_per_month'])} predicted"
            if store in measured.get(order, {}):
                cell += f", {human_bytes(round(measured[order][store]))} measured"
            cells.append(cell)
        name = " → ".join(order) + (" (deps/layers.toml)" if row["current"] else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fetch(lock_text: str, groups: dict[str, list[str]]) -> dict:
    """Release days of every grouped package, from PyPI's JSON API (one request per package)."""
    until = datetime.now(UTC)
    days = {}
    for package in [p for packages in groups.values() for p in packages]:
        locked = re.search(rf"^{re.escape(package)}==([^\s;\\]+)", lock_text, re.MULTILINE | re.IGNORECASE).group(1)
        with urllib.request.urlopen(f"https://pypi.org/pypi/{package}/json", timeout=30) as response:
            days[package] = release_days(json.load(response), locked, until)
    return {"fetched": until.isoformat(timespec="seconds"), "window_days": WINDOW_DAYS,
            "source": "https://pypi.org/pypi/<package>/json", "release_days": days}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.layer_order", description=__doc__.splitlines()[0])
    parser.add_argument("--fetch", action="store_true", help=f"refresh {RELEASES.relative_to(ROOT)} from PyPI first")
    parser.add_argument("--results", type=Path, default=ROOT / "docs" / "benchmark-results.json",
                        help="benchmark results whose first deploy gives the layer sizes")
    args = parser.parse_args(argv)
    layers_toml = (ROOT / "deps" / "layers.toml").read_text()
    if args.fetch:
        document = fetch((ROOT / "requirements.lock").read_text(), groups_of(layers_toml))
        RELEASES.write_text(json.dumps(document, indent=2) + "\n")
    other = ROOT / "docs" / "layer-order-results.json"
    print(markdown(json.loads(RELEASES.read_text()), json.loads(args.results.read_text()), layers_toml,
                   json.loads(other.read_text()) if other.exists() else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
