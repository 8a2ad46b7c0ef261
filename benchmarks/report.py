"""The benchmark's outputs: the table, the targets (PASS/FAIL), the JSON document and the chart.

Everything but `write_chart` is pure and works on the JSON document's rows, so
a saved results file can be re-rendered without running anything.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from delivery.pullreport import human_bytes

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


def targets(rows: list[dict]) -> list[Target]:
    """The issue's targets, for our design on each store (a target whose scenario did not run is skipped)."""
    result = []
    stores = sorted({r["store"] for r in rows}, key=lambda s: list(STORE_LABEL).index(s))
    for store in stores:
        code = _row(rows, "code", "ours", store)
        if code:
            limit = min(1.2 * code["code_layer_bytes"], 100_000)
            result.append(Target(
                "code-only release <= 1.2 x its code layers and < 100 kB", store,
                code["bytes"] <= 1.2 * code["code_layer_bytes"] and code["bytes"] < 100_000,
                human_bytes(code["bytes"]),
                f"1.2 x {human_bytes(code['code_layer_bytes'])} = {human_bytes(int(limit))}",
            ))
        rebuild = _row(rows, "rebuild", "ours", store)
        if rebuild:
            result.append(Target("same-commit clean rebuild pulls 0 layer bytes", store,
                                 rebuild["layer_bytes"] == 0, human_bytes(rebuild["layer_bytes"]), "0 B"))
        patch = _row(rows, "dep-patch", "ours", store)
        if patch:
            limit = max(2_000_000, 0.05 * patch["image_bytes"])
            result.append(Target("small dependency patch bump <= max(2 MB, 5% of image)", store,
                                 patch["bytes"] <= limit, human_bytes(patch["bytes"]), human_bytes(int(limit))))
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
    lines = [
        "| scenario | design | image store | pulled | layers pulled | pull s | build + push s |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {scenario_titles.get(r['scenario'], r['scenario'])} | {r['design']} | {STORE_LABEL.get(r['store'], r['store'])} "
            f"| {human_bytes(r['bytes'])} | {r['layers']}/{r['total_layers']} | {r['pull_seconds']:.2f} | {r['build_seconds']:.1f} |"
        )
    return "\n".join(lines)


def target_lines(results: list[Target]) -> str:
    return "\n".join(
        f"{'PASS' if t.passed else 'FAIL'}  {t.name} [{STORE_LABEL.get(t.store, t.store)}]: {t.value} (limit {t.limit})"
        for t in results
    )


def mismatches(rows: list[dict]) -> list[str]:
    """Pulls whose measured bytes differ from delivery.pullreport's prediction (worth a look)."""
    return [
        f"{r['scenario']}/{r['design']}/{r['store']}: measured {human_bytes(r['bytes'])}, predicted {human_bytes(r['predicted_bytes'])}"
        for r in rows if r["bytes"] != r["predicted_bytes"]
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
        for bar, label in zip(bars, labels):
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
    if reasons:
        lines.append("")
        lines += [f"({i}) {reason}" for i, reason in enumerate(reasons, 1)]
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
