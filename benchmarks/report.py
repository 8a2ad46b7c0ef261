"""The benchmark's outputs: the table, the targets (PASS/FAIL), the JSON document and the chart.

Everything but `write_chart` is pure and works on the JSON document's rows, so
a saved results file can be re-rendered without running anything.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from delivery.release.pullreport import human_bytes

DESIGNS = ("ours", "baseline")
STORE_LABEL = {"overlay2": "overlay2 (classic)", "containerd": "containerd"}


@dataclass(frozen=True)
class Target:
    name: str
    store: str
    passed: bool
    value: str
    limit: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "store": self.store, "passed": self.passed, "value": self.value, "limit": self.limit}


def _row(rows: Iterable[dict], scenario: str, design: str, store: str) -> dict | None:
    return next((r for r in rows if r["scenario"] == scenario and r["design"] == design and r["store"] == store), None)


# Every target is stated against the physical floor of its pull (benchmarks.measure.floor_bytes):
# the layers the server lacks, the config if it is new, and the manifest.
FLOOR_FACTOR = 1.1
BUMP_SHARE = 0.05  # a dependency bump costs a server at most max(2 MB, 5 % of the image)
BUMP_MINIMUM = 2_000_000


def pulled(row: dict) -> int:
    """What the registry served for the pull: manifest, config and layers."""
    return row["bytes"] + row.get("manifest_bytes", 0)


def floor_ratio(row: dict) -> float | None:
    return pulled(row) / row["floor_bytes"] if row.get("floor_bytes") else None


def _against_floor(name: str, row: dict) -> Target:
    ratio = floor_ratio(row) or 0.0
    return Target(name, row["store"], ratio <= FLOOR_FACTOR,
                  f"{human_bytes(pulled(row))} = {ratio:.2f} x floor",
                  f"{FLOOR_FACTOR} x {human_bytes(row['floor_bytes'])}")


def bump_keys(rows: Iterable[dict]) -> list[str]:
    """The dependency-bump scenarios of a run (dep-<group>, or dep-patch in older results), in run order."""
    return list(dict.fromkeys(r["scenario"] for r in rows if r["scenario"].startswith("dep-")))


def targets(rows: list[dict]) -> list[Target]:
    """The issue's targets, for our design on each store (a target whose scenario did not run is skipped)."""
    result = []
    stores = sorted({r["store"] for r in rows}, key=lambda s: list(STORE_LABEL).index(s))
    for store in stores:
        code = _row(rows, "code", "ours", store)
        if code and "floor_bytes" in code:
            result.append(_against_floor("code-only release <= 1.1 x floor (changed layers + config + manifest)", code))
        rebuild = _row(rows, "rebuild", "ours", store)
        if rebuild:
            result.append(Target("same-commit clean rebuild pulls 0 layer bytes", store,
                                 rebuild["layer_bytes"] == 0, human_bytes(rebuild["layer_bytes"]), "0 B"))
        for key in bump_keys(rows):
            bump = _row(rows, key, "ours", store)
            if bump is None:
                continue
            if "floor_bytes" in bump:
                result.append(_against_floor(f"{key} bump <= 1.1 x floor (changed dependency layers + config + manifest)", bump))
            limit = max(BUMP_MINIMUM, BUMP_SHARE * bump["image_bytes"])
            result.append(Target(f"{key} bump <= max(2 MB, 5 % of image)", store,
                                 pulled(bump) <= limit, human_bytes(pulled(bump)), human_bytes(int(limit))))
        first, baseline_first = _row(rows, "first", "ours", store), _row(rows, "first", "baseline", store)
        if first and baseline_first:
            result.append(Target("first deploy <= baseline image size", store,
                                 first["bytes"] <= baseline_first["image_bytes"], human_bytes(first["bytes"]),
                                 human_bytes(baseline_first["image_bytes"])))
    return result


def table(rows: list[dict], scenario_titles: dict[str, str]) -> str:
    """Scenario x design x store: bytes, layers, pull s, build s (build + push)."""
    header = f"{'scenario':<36} {'design':<9} {'store':<19} {'pulled':>10} {'layers':>7} {'pull s':>7} {'build s':>8}"
    lines = [header, "-" * len(header)]
    last_scenario = None
    for r in rows:
        title = scenario_titles.get(r["scenario"], r["scenario"]) if r["scenario"] != last_scenario else ""
        last_scenario = r["scenario"]
        lines.append(
            f"{title:<36} {r['design']:<9} {STORE_LABEL.get(r['store'], r['store']):<19} {human_bytes(r['bytes']):>10} "
            f"{r['layers']:>3}/{r['total_layers']:<3} {r['pull_seconds']:>7.2f} {r['build_seconds']:>8.1f}"
        )
    return "\n".join(lines)


def markdown_table(rows: list[dict], scenario_titles: dict[str, str]) -> str:
    """Every pull of a run: what the registry served, the floor and the ratio, layers, times."""
    lines = [
        "| scenario | design | image store | pulled | floor | × floor | layers pulled | pull s | build + push s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = floor_ratio(r)
        lines.append(
            f"| {scenario_titles.get(r['scenario'], r['scenario'])} | {r['design']} | {STORE_LABEL.get(r['store'], r['store'])} "
            f"| {human_bytes(pulled(r))} | {human_bytes(r['floor_bytes']) if 'floor_bytes' in r else '-'} "
            f"| {f'{ratio:.2f}' if ratio is not None else '-'} "
            f"| {r['layers']}/{r['total_layers']} | {r['pull_seconds']:.2f} | {r['build_seconds']:.1f} |"
        )
    return "\n".join(lines)


def targets_markdown(checks: list[Target]) -> str:
    """Target x store: PASS/FAIL with the figure and its limit."""
    stores = list(dict.fromkeys(t.store for t in checks))
    names = list(dict.fromkeys(t.name for t in checks))
    by = {(t.name, t.store): t for t in checks}
    lines = ["| target | " + " | ".join(STORE_LABEL.get(s, s) for s in stores) + " |", "|---|" + "---|" * len(stores)]
    for name in names:
        cells = [f"{'PASS' if t.passed else '**FAIL**'}: {t.value} (limit {t.limit})" if (t := by.get((name, s))) else "-"
                 for s in stores]
        lines.append(f"| {name.replace('<=', '≤').replace(' x ', ' × ')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bumps_markdown(document: dict) -> str:
    """One dependency bump per group: what moved, the floor, and each store's pull as a ratio to it."""
    rows = document["results"]
    lines = ["| bumped group: pins moved | changed layer + config + manifest (floor) "
             "| overlay2 (classic) | containerd | limit max(2 MB, 5 %) |", "|---|---:|---:|---:|---:|"]
    for key in bump_keys(rows):
        cells = []
        for store in STORE_LABEL:
            row = _row(rows, key, "ours", store)
            cells.append(f"{human_bytes(pulled(row))} ({floor_ratio(row):.2f} ×)" if row and row.get("floor_bytes") else "-")
        row = next(r for r in rows if r["scenario"] == key and r["design"] == "ours")
        limit = max(BUMP_MINIMUM, BUMP_SHARE * row["image_bytes"])
        lines.append(f"| `{key.removeprefix('dep-')}`: {row['change'].split(' in requirements')[0]} "
                     f"| {human_bytes(row.get('floor_bytes', 0))} | " + " | ".join(cells) + f" | {human_bytes(int(limit))} |")
    return "\n".join(lines)


def layers_markdown(document: dict) -> str:
    """Our image's layers, bottom to top (first deploy of the run), and the config and manifest."""
    lines = ["| layer | bytes |", "|---|---:|"]
    for layer in document["ours_layers"]:
        lines.append(f"| {layer.get('what') or '`' + layer['created_by'][:70] + '`'} | {layer['bytes']:,} |")
    first = _row(document["results"], "first", "ours", "overlay2") or _row(document["results"], "first", "ours", "containerd")
    if first and "config_bytes" in first:
        lines.append(f"| image config (JSON, not compressed) | {first['config_bytes']:,} |")
        lines.append(f"| manifest (JSON) | {first['floor_bytes'] - first['changed_layer_bytes'] - first['config_bytes']:,} |")
    return "\n".join(lines)


def image_config_markdown(document: dict) -> str:
    """What the code-only release's image config holds (the config is part of every floor), and that pull."""
    row = _row(document["results"], "code", "ours", "containerd") or _row(document["results"], "code", "ours", "overlay2")
    if not row or "config_history_bytes" not in row:
        return "(this run did not measure the image config's parts)"
    return "\n".join([
        "| code-only release of the run above | bytes |", "|---|---:|",
        f"| image config | {row['config_bytes']:,} B |",
        f"| of which history | {row['config_history_bytes']:,} B, {row['config_history_entries']} entries |",
        f"| of which labels | {row['config_label_bytes']:,} B |",
        f"| pulled by the {row['store']} server (manifest + config + code layer) "
        f"| {human_bytes(row['manifest_bytes'] + row['bytes'])} |",
    ])


def run_markdown(document: dict) -> str:
    """Which run the tables come from: date, machine, source, duration, load."""
    m, source = document["machine"], document["source"]
    load = m.get("load_average_1min") or document.get("load_average_1min") or []
    text = (f"Run of {document['date'][:16].replace('T', ' ')} UTC: {m['cpus']} vCPUs ({m['cpu']}), {m['memory']}, "
            f"Linux {m['kernel'].split('-')[0]}, {m['engine'].split(',')[0]}. Source: commit `{source['commit'][:7]}`, "
            f"{'uncommitted changes' if source['uncommitted_changes'] else 'clean tree'}. "
            f"The run took {document['duration_seconds']:.0f} s")
    if len(load) == 2:
        text += f"; 1-minute load average {load[0]} at the start, {load[1]} at the end"
    return text + "."


# -- publishing into the docs: generated blocks between markers -------------------------------------
def marker(name: str, end: bool = False) -> str:
    return f"<!-- benchmark:{name} {'end' if end else 'begin'} -->"


def blocks_of(text: str) -> dict[str, str]:
    """{name: content} of every generated block of a document."""
    return {m["name"]: m["body"] for m in re.finditer(
        r"<!-- benchmark:(?P<name>[\w-]+) begin -->\n(?P<body>.*?)<!-- benchmark:(?P=name) end -->", text, re.DOTALL)}


def replace_blocks(text: str, blocks: dict[str, str]) -> str:
    """`text` with the content of each named block replaced; a block the text lacks is an error."""
    for name, body in blocks.items():
        begin, end = marker(name), marker(name, end=True)
        if begin not in text or end not in text:
            raise ValueError(f"no {begin} ... {end} markers in the document")
        head, _, rest = text.partition(begin + "\n")
        _, _, tail = rest.partition(end)
        text = head + begin + "\n" + body.rstrip("\n") + "\n" + end + tail
    return text


def layer_blocks(document: dict) -> dict[str, str]:
    """The generated blocks of docs/performance.md that come from a layer benchmark's results."""
    titles = document["scenarios"]
    return {
        "layers-run": run_markdown(document),
        "layers": markdown_table(document["results"], titles),
        "layers-targets": targets_markdown(targets(document["results"])),
        "layers-bumps": bumps_markdown(document),
        "layers-split": layers_markdown(document),
        "image-config": image_config_markdown(document),
    }


def availability_blocks(document: dict) -> dict[str, str]:
    return {"availability-run": run_markdown(document), "availability": availability_markdown(document)}


def target_lines(results: list[Target]) -> str:
    return "\n".join(
        f"{'PASS' if t.passed else 'FAIL'}  {t.name} [{STORE_LABEL.get(t.store, t.store)}]: {t.value} (limit {t.limit})"
        for t in results
    )


def mismatches(rows: list[dict]) -> list[str]:
    """Pulls whose measured bytes differ from delivery.release.pullreport's prediction, and releases that moved a layer
    below the dependency groups their change does not touch (a stale build cache): worth a look."""
    return [
        f"{r['scenario']}/{r['design']}/{r['store']}: measured {human_bytes(r['bytes'])}, predicted {human_bytes(r['predicted_bytes'])} "
        "(another client pulling the same blobs meanwhile, or a prediction gap)"
        for r in rows if r["bytes"] != r["predicted_bytes"]
    ] + [
        f"{r['scenario']}/{r['design']}/{r['store']}: {', '.join(r['moved_below'])} changed too (a build cache older than "
        "the previous build's Debian archive): these bytes are not the change's alone"
        for r in rows if r.get("moved_below")
    ]


def write_chart(rows: list[dict], scenario_titles: dict[str, str], path: Path, subtitle: str) -> None:
    """Grouped bars: MB pulled per scenario, ours vs baseline on each store (log scale, each bar labelled)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenario_keys = list(dict.fromkeys(r["scenario"] for r in rows))
    series = [(d, s) for d in DESIGNS for s in STORE_LABEL if any(r["design"] == d and r["store"] == s for r in rows)]
    colors = {("ours", "overlay2"): "#1f77b4", ("ours", "containerd"): "#6baed6",
              ("baseline", "overlay2"): "#d62728", ("baseline", "containerd"): "#fc9272"}
    floor = 0.001  # MB: a zero-byte pull is drawn as a stub at 1 kB and labelled "0"
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(8, 1.9 * len(scenario_keys) + 2), 5.5))
    for i, (design, store) in enumerate(series):
        xs, heights, labels = [], [], []
        for j, key in enumerate(scenario_keys):
            row = _row(rows, key, design, store)
            if row is None:
                continue
            xs.append(j + (i - (len(series) - 1) / 2) * width)
            heights.append(max(row["bytes"] / 1e6, floor))
            labels.append("0" if row["bytes"] == 0 else human_bytes(row["bytes"]).replace(" ", "\u2009"))
        bars = ax.bar(xs, heights, width, label=f"{design}, {STORE_LABEL[store]}", color=colors[(design, store)])
        for bar, label in zip(bars, labels, strict=True):
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom", fontsize=6.5, rotation=90)
    ax.set_yscale("log")
    ax.set_ylim(floor / 2, max(r["bytes"] for r in rows) / 1e6 * 300 if rows else 1)  # room for labels and legend
    ax.set_xticks(range(len(scenario_keys)))
    ax.set_xticklabels([scenario_titles.get(k, k).replace(" (", "\n(") for k in scenario_keys], fontsize=8)
    ax.set_ylabel("MB pulled by the server (log scale)")
    ax.set_title(f"Bytes a server downloads per release\n{subtitle}", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", ncol=len(series))
    ax.grid(axis="y", which="major", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- availability during releases (benchmarks/availability.py) -------------------------------------
def availability_cell(row: dict | None) -> str:
    """'failed / requests, unavailable s' of one kind and way; 'not run (n)' points to a footnote."""
    if row is None:
        return "-"
    if not row.get("measured", True):
        return "not run"
    return f"{row['failed']} / {row['requests']}, {row['unavailable_seconds']:.1f} s"


def _availability_grid(document: dict) -> tuple[list[str], list[str], dict[tuple[str, str], dict]]:
    rows = document["results"]
    kinds = [k for k in document["kinds"] if any(r["kind"] == k for r in rows)]
    ways = [w for w in document["ways"] if any(r["way"] == w for r in rows)]
    return kinds, ways, {(r["kind"], r["way"]): r for r in rows}


def availability_markdown(document: dict) -> str:
    """Kind of release x way of deploying: failed requests / requests, unavailable seconds; reasons of rows not run."""
    kinds, ways, by = _availability_grid(document)
    lines = ["| release | " + " | ".join(document["ways"][w] for w in ways) + " |",
             "|---|" + "---:|" * len(ways)]
    reasons: list[str] = []
    for kind in kinds:
        cells = []
        for way in ways:
            row = by.get((kind, way))
            cell = availability_cell(row)
            if row is not None and not row.get("measured", True):
                if row["reason"] not in reasons:
                    reasons.append(row["reason"])
                cell += f" ({reasons.index(row['reason']) + 1})"
            cells.append(cell)
        lines.append(f"| {document['kinds'][kind]} | " + " | ".join(cells) + " |")
    for i, reason in enumerate(reasons, 1):  # a paragraph each
        lines += ["", f"({i}) {reason}"]
    return "\n".join(lines)


def availability_table(document: dict) -> str:
    """The same for a terminal: one line per kind and way, with what the deploy tool said."""
    kinds, ways, by = _availability_grid(document)
    header = f"{'release':<44} {'way':<9} {'failed / requests, unavailable':>32}  outcome"
    lines = [header, "-" * len(header)]
    for kind in kinds:
        for way in ways:
            row = by.get((kind, way))
            if row is None:
                continue
            said = row.get("tool_said", "") if row.get("measured", True) else row["reason"]
            lines.append(f"{document['kinds'][kind]:<44} {way:<9} {availability_cell(row):>32}  {said[:110]}")
    return "\n".join(lines)


def availability_targets(document: dict) -> list[Target]:
    """Issue 8's target: our way fails no request in any kind of release (one per kind that ran)."""
    return [
        Target(f"zero failed requests: {document['kinds'].get(r['kind'], r['kind'])}", "ours", r["failed"] == 0,
               f"{r['failed']} / {r['requests']}", "0")
        for r in document["results"] if r["way"] == "ours" and r.get("measured", True)
    ]


# -- availability figures of the zero-downtime tests (tests/integration/support/results.py) --------------------------
def titled_results(document: dict, apart: str) -> Iterable[tuple[str, str, dict]]:
    """(key, title, figures) of a test results file, in its titles' order: the keys it has, but `apart`
    (shown on its own)."""
    for key, title in document["titles"].items():
        if key != apart and key in document["results"]:
            yield key, title, document["results"][key]


def zero_downtime_blocks(document: dict) -> dict[str, str]:
    """docs/operations.md's blocks: failed requests per kind of release, and the one-off layout move."""
    results = document["results"]
    lines = ["| release | failed requests | unavailable |", "| --- | --- | --- |"]
    for _, name, row in titled_results(document, apart="legacy-move"):
        if row.get("health_timeout_seconds"):
            name += f" (`health_timeout` {row['health_timeout_seconds']} s)"
        lines.append(f"| {name} | {row['failed']} of {row['requests']} | {row['unavailable_seconds']:g} s |")
    rates = sorted({r["rate_per_second"] for r in results.values()})
    run = (f"Run of {_runs(results.values())}, on the test bed at {'/'.join(str(r) for r in rates)} GET/s; "
           "the requests differ with how long each deploy took:")
    blocks = {"zero-downtime-run": run, "zero-downtime": "\n".join(lines)}
    move = results.get("legacy-move")
    if move:
        blocks["zero-downtime-legacy"] = (
            f"{move['unavailable_seconds']:g} s unavailable, {move['failed']} of {move['requests']} requests failed "
            f"at {move['rate_per_second']} requests/s (run of {move['date'][:10]}, commit `{move['commit'][:7]}`).")
    return blocks


# -- figures the integration tests save (tests/integration/support/results.py), published into the docs -------------
RESULTS_DOCS = {"zero-downtime": "operations.md", "retention": "operations.md", "builders": "performance.md",
                "swarm": "cluster.md"}


def results_blocks(document: dict, benchmark: dict) -> dict[str, str]:
    """The generated blocks of a test results file (its `kind` says which); the builders table also shows the
    layer benchmark's run (`benchmark`, its published JSON) for the containerd-store builder."""
    kind = document.get("kind")
    if kind == "builders":
        return builders_blocks(document, benchmark)
    if kind == "retention":
        return retention_blocks(document)
    if kind == "swarm":
        return swarm_blocks(document)
    if kind == "zero-downtime":
        return zero_downtime_blocks(document)
    raise ValueError(f"unknown kind of test results {kind!r}: expected one of {', '.join(RESULTS_DOCS)}")


def _runs(results: Iterable[dict]) -> str:
    """'2026-11-29, commit `abc1234`' for the results of one or more runs."""
    results = list(results)
    dates = sorted({r["date"][:10] for r in results})
    commits = sorted({r["commit"][:7] + (" with uncommitted changes" if r["uncommitted_changes"] else "") for r in results})
    return f"{' to '.join(dict.fromkeys([dates[0], dates[-1]]))}, commit{'s' if len(commits) > 1 else ''} " + \
        ", ".join(f"`{c}`" for c in commits)


def _pull_cell(layers: int, pulled_bytes: int, total_layers: int, same_digest: bool = False) -> str:
    return f"{human_bytes(pulled_bytes)}, {layers}/{total_layers} layers" + (" (same digest)" if same_digest else "")


def builders_blocks(document: dict, benchmark: dict) -> dict[str, str]:
    """docs/performance.md's builders table: what an overlay2 server downloads per builder kind and scenario.
    The containerd-store row comes from the layer benchmark (its builder engine), the classic-store row from
    tests/integration/test_classic_builder.py. Bytes are blobs (config + layers), without the manifest."""
    results = document["results"]
    # The benchmark's `rebuild` rebuilds the commit of its `code` release, without cache.
    code, rebuild = (_row(benchmark["results"], key, "ours", "overlay2") for key in ("code", "rebuild"))
    layout = [
        _pull_cell(code["layers"], code["bytes"], code["total_layers"]) if code else "-",
        "not run on its own",
        _pull_cell(rebuild["layers"], rebuild["bytes"], rebuild["total_layers"],
                   bool(code) and rebuild["digest"] == code["digest"]) if rebuild else "-",
    ]
    engine = [_pull_cell(r["layers"], r["bytes"], r["total_layers"]) if r else "-"
              for r in (results.get(key) for key in ("code", "rebuild-app", "rebuild-clean"))]
    lines = [
        "| builder kind (build path) | code-only release | same commit, app rebuilt without cache (CI rerun) "
        "| same commit, deps + app rebuilt without cache (clean builder) |",
        "|---|---:|---:|---:|",
        "| containerd-store engine, `docker` driver (layout) | " + " | ".join(layout) + " |",
        "| classic overlay2 engine, `docker` driver (engine) | " + " | ".join(engine) + " |",
    ]
    run = (f"The first row is the layer benchmark above (run of {benchmark['date'][:10]}, commit "
           f"`{benchmark['source']['commit'][:7]}`); the second is `tests/integration/test_classic_builder.py` "
           f"(run of {_runs(results.values())}).")
    return {"builders-run": run, "builders": "\n".join(lines)}


def retention_blocks(document: dict) -> dict[str, str]:
    """docs/operations.md's retention table: a host's image disk after each deploy, and a prune by hand
    (tests/integration/test_operations.py)."""
    deploys, prune = document["results"]["deploys"], document["results"].get("prune")
    count = len(deploys["disk_bytes"])
    heads = [str(n + 1) + (" (deps change)" if n == deploys["deps_change_at"] else "") for n in range(count)]
    lines = [
        "| after deploy | " + " | ".join(heads) + " |",
        "| --- | " + " | ".join("---:" for _ in heads) + " |",
        "| image disk (`docker system df`) | " + " | ".join(human_bytes(b) for b in deploys["disk_bytes"]) + " |",
        "| releases pruned | " + " | ".join(str(n) for n in deploys["pruned"]) + " |",
        "| freed (the deploy's report) | " + " | ".join(human_bytes(b) if b else "-" for b in deploys["freed_bytes"]) + " |",
    ]
    text = (f"Run of {_runs(document['results'].values())}: {count} deploys with `keep_releases: {deploys['keep_releases']}`, "
            f"each release a code layer of {human_bytes(deploys['code_layer_bytes'])} over a dependency layer of "
            f"{human_bytes(deploys['deps_layer_bytes'])} that changes at release "
            f"{deploys['deps_change_at'] + 1}; release 1 stays, run by a second compose project on the engine.")
    blocks = {"retention-run": text, "retention": "\n".join(lines)}
    if prune:
        blocks["retention-prune"] = (
            f"`invoke prune --keep 1` afterwards pruned {prune['pruned']} releases: `docker system df` measured "
            f"{human_bytes(prune['measured_freed_bytes'])} freed; the task reported {human_bytes(prune['reported_freed_bytes'])} "
            f"and had predicted {human_bytes(prune['predicted_freed_bytes'])}.")
    return blocks


def _span(values: list[float], unit: str = " s") -> str:
    """'16.2 s' or '16.2–17.0 s'."""
    low, high = min(values), max(values)
    return f"{low:g}{unit}" if low == high else f"{low:g}–{high:g}{unit}"


def _downloads(row: dict) -> str:
    """What each node downloaded, per the report (checked against the registry log by the test)."""
    nodes = row.get("nodes", [])
    unmeasured = [n["node"] for n in nodes if n.get("measured") is False]
    pulled = [n for n in nodes if n.get("measured") is not False and n.get("measured_layers")]
    parts = []
    if pulled:
        sizes = sorted({n["measured_bytes"] for n in pulled})
        layers = sorted({n["measured_layers"] for n in pulled})
        size = human_bytes(sizes[0]) if len(sizes) == 1 else f"{human_bytes(sizes[0])}–{human_bytes(sizes[-1])}"
        text = f"{'/'.join(map(str, layers))} layer{'s' if layers[-1] > 1 else ''} + config, {size}, on {len(pulled)} of {len(nodes)} nodes"
        pulls = [n["pull_seconds"] for n in pulled if n.get("pull_seconds")]
        if pulls:
            text += f" (pulled in {_span(pulls)} per node)"
        parts.append(text)
    elif "downloaded_bytes" in row:
        parts.append("nothing" if row["downloaded_bytes"] == 0 else human_bytes(row["downloaded_bytes"]))
    elif nodes:
        parts.append("nothing")
    if unmeasured:
        parts.append(f"{', '.join(unmeasured)}: nothing measured (engine down)")
    return "; ".join(parts)


def _update(key: str, row: dict) -> str:
    if key == "crash":
        return f"{row['update_state']} by Swarm; exit {row['exit']}; cron: {row['cron_state']}"
    if key == "node-killed":
        return f"{row['update_state']}; exit {row['exit']}; nodes down: {', '.join(row['nodes_down']) or 'none'}"
    if key == "proxy-update":
        return (f"proxy {row['proxy_state']} (whole deploy {row['seconds']:g} s); each node unavailable "
                f"{_span(row['unavailable_seconds'])}, measured at its own port")
    text = f"{row['update_seconds']:g} s"
    if key in ("layer", "layer-pre-pull"):
        text += f" (whole deploy {row['seconds']:g} s"
        text += f"; pre-pull {row['pre_pull_seconds']:g} s, before the update)" if row.get("pre_pull_seconds") else ")"
    return text


def swarm_blocks(document: dict) -> dict[str, str]:
    """docs/cluster.md's tables (tests/integration/test_swarm.py): each kind of release on the 3-node swarm, and a
    code-only release there beside compose host by host on the same engines."""
    results = document["results"]
    lines = ["| release | per node downloaded (report = registry log) | update | failed requests |", "| --- | --- | --- | --- |"]
    for key, title, row in titled_results(document, apart="compose"):
        lines.append(f"| {title} | {_downloads(row)} | {_update(key, row)} | {row['load']['failed']} of {row['load']['requests']} |")
    blocks = {"swarm-run": f"Run of {_runs(results.values())}, figures saved by `tests/integration/test_swarm.py`.",
              "swarm": "\n".join(lines)}
    swarm, compose = results.get("code"), results.get("compose")
    if swarm and compose:
        blocks["swarm-compose"] = "\n".join([
            "| code-only release | downloaded per node | time | failed requests |", "| --- | --- | --- | --- |",
            f"| swarm, {sum(n['tasks'] for n in swarm['nodes'])} web tasks through one stack | {_downloads(swarm)} "
            f"| update {swarm['update_seconds']:g} s | {swarm['load']['failed']} of {swarm['load']['requests']} |",
            f"| compose, {len(compose['nodes'])} hosts one after the other | {_downloads(compose)} "
            f"| {' + '.join(f'{s:g}' for s in compose['deploy_seconds'])} s (the deploy: {compose['seconds']:g} s) "
            f"| {compose['load']['failed']} of {compose['load']['requests']} |",
        ])
    return blocks
