"""Unit tests of the benchmark's pure parts (no Docker): `.venv/bin/pytest benchmarks -q`."""
from __future__ import annotations

import json
import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from benchmarks import availability, designs, layer_order, report, scenarios, servers
from benchmarks.measure import ImageFacts, config_parts, floor_bytes, layers_moved_below, served, served_manifests
from delivery.registry.client import Blob, Manifest
from tests.integration.support.loadgen import LoadResult, Outcome

BY_KEY = {s.key: s for s in scenarios.SCENARIOS}
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "key, expected",
    [
        ("first", [["build-deps", "--no-cache", "--force", "--json"], ["build-app", "--no-cache", "--json"]]),
        ("code", [["build-deps", "--json"], ["build-app", "--json"]]),
        ("rebuild", [["build-deps", "--no-cache", "--force", "--json"], ["build-app", "--no-cache", "--json"]]),
        ("dep-foundation", [["build-deps", "--force", "--json"], ["build-app", "--json"]]),
        ("base", [["build-deps", "--force", "--json"], ["build-app", "--json"]]),
    ],
)
def test_ours_steps(key, expected):
    assert scenarios.ours_steps(BY_KEY[key]) == expected


def test_select_keeps_chain_order_starts_from_first_and_rejects_unknown():
    assert [s.key for s in scenarios.select(("code", "first"))] == ["first", "code"]
    assert [s.key for s in scenarios.select(("base", "code"))] == ["first", "code", "base"]
    with pytest.raises(ValueError, match="unknown scenario nope"):
        scenarios.select(("nope",))


@pytest.mark.parametrize("version, expected", [("3.0.4", "3.0.3"), ("0.16.1", "0.16.0")])
def test_previous_patch(version, expected):
    assert scenarios.previous_patch(version) == expected


@pytest.mark.parametrize("version", ["3.0.0", "3.20", "1.0.0rc1"])
def test_previous_patch_refuses(version):
    with pytest.raises(ValueError):
        scenarios.previous_patch(version)


def test_locked_version():
    lock = "jinja2==3.1.6 \\\n    --hash=sha256:aa\nmarkupsafe==3.0.4 \\\n    --hash=sha256:bb\n"
    assert scenarios.locked_version(lock, "markupsafe") == "3.0.4"
    with pytest.raises(ValueError):
        scenarios.locked_version(lock, "idna")


def test_add_dependency_appends_to_the_list():
    text = '[project]\nname = "x"\ndependencies = [\n    "fastapi",\n    "jinja2",\n]\n\n[tool.x]\n'
    assert scenarios.add_dependency(text, "itsdangerous") == (
        '[project]\nname = "x"\ndependencies = [\n    "fastapi",\n    "jinja2",\n    "itsdangerous",\n]\n\n[tool.x]\n'
    )


@pytest.mark.parametrize("key, cache", [("first", False), ("code", True), ("rebuild", False), ("dep-server", True)])
def test_baseline_plan(key, cache):
    settings = designs.Settings("127.0.0.1:5000", "base:1", "/ca.pem", Path("/venv/bin/invoke"), Path("/tmp/logs"))
    plan = designs.baseline_plan(Path("/tmp/clone"), "0123456789abcdef", BY_KEY[key], "standin:1", settings)
    assert plan == {
        "context_path": Path("/tmp/clone"),
        "file": designs.BASELINE_DIR / "Dockerfile",
        "build_args": {"PYTHON_IMAGE": "standin:1"},
        "secrets": ["id=ca_bundle,src=/ca.pem"],
        "tags": ["127.0.0.1:5000/production-control-baseline:0123456789ab"],
        "cache": cache,
        "load": True,
        "provenance": False,
    }


def test_scratch_engines_never_disable_the_bridge():
    # dockerd --bridge none deletes the host's docker0, which the builder engine uses.
    argv = servers.scratch_engine(Path("/tmp/pcb-x/overlay2"), "overlay2").engine.argv()
    assert argv[argv.index("--bridge") + 1] == "pcb-overlay2"
    assert "--iptables=false" in argv and "--ip-forward=false" in argv
    # The availability run's servers run a proxy that finds the web slots by name: iptables on.
    with_containers = servers.scratch_engine(Path("/tmp/pcb-x/containerd"), "containerd", iptables=True).engine.argv()
    assert with_containers[with_containers.index("--bridge") + 1] == "pcb-containerd"
    assert "--iptables=false" not in with_containers and "--ip-forward=false" in with_containers


def _image() -> ImageFacts:
    manifest = Manifest("sha256:m", 100, Blob("sha256:cfg", 10), (Blob("sha256:l1", 1000), Blob("sha256:l2", 20)))
    return ImageFacts("r/app:1", "app", "1", manifest, ("sha256:d1", "sha256:d2"), ())


def _line(method: str, path: str, status: int, size: int) -> str:
    return f'127.0.0.1 - - [27/Nov/2026:18:09:05 +0000] "{method} {path} HTTP/1.1" {status} {size} "" "docker/26.1.5"'


def test_served_counts_only_this_images_blobs_once():
    log = "\n".join([
        _line("GET", "/v2/app/blobs/sha256:cfg", 200, 10),
        _line("GET", "/v2/app/blobs/sha256:l2", 200, 20),
        _line("GET", "/v2/app/blobs/sha256:l2", 200, 20),  # someone else, same blob: counted once
        _line("GET", "/v2/app/blobs/sha256:other", 200, 5000),  # another image's blob
        _line("HEAD", "/v2/app/blobs/sha256:l1", 200, 1000),  # not a download
        _line("GET", "/v2/app/blobs/sha256:l1", 404, 0),
        _line("GET", "/v2/other/blobs/sha256:l1", 200, 1000),  # another repository
        'time="2026-11-27T18:09:05Z" level=info msg="response completed"',
    ])
    assert served(log, _image()) == {"sha256:cfg": 10, "sha256:l2": 20}


def test_one_bump_scenario_per_dependency_group_in_layer_order():
    groups = [g["name"] for g in tomllib.loads((ROOT / "deps" / "layers.toml").read_text())["layer"]]
    bumps = [s for s in scenarios.SCENARIOS if s.change == "dep-patch"]
    assert sorted(s.group for s in bumps) == sorted(groups)
    lock = (ROOT / "requirements.lock").read_text()
    for bump in bumps:  # each package is in its group and can move back one patch release
        assert bump.package in next(g["packages"] for g in tomllib.loads((ROOT / "deps" / "layers.toml").read_text())["layer"]
                                    if g["name"] == bump.group)
        scenarios.previous_patch(scenarios.locked_version(lock, bump.package), bump.package)


def test_moved_pins_names_every_changed_pin():
    before = "pydantic==2.14.4 \\\n    --hash=sha256:a\npydantic-core==2.50.5 \\\n    --hash=sha256:b\nidna==3.20\n"
    after = "pydantic==2.14.3 \\\n    --hash=sha256:c\npydantic-core==2.50.4 \\\n    --hash=sha256:d\nidna==3.20\nzipp==1.0\n"
    assert scenarios.moved_pins(before, after) == ["pydantic 2.14.4 -> 2.14.3", "pydantic-core 2.50.5 -> 2.50.4",
                                                   "zipp (none) -> 1.0"]


def _facts(tag: str, config: tuple[str, int], layers: list[tuple[str, int]], manifest_size: int = 500) -> ImageFacts:
    manifest = Manifest(f"sha256:m-{tag}", manifest_size, Blob(*config), tuple(Blob(*layer) for layer in layers))
    return ImageFacts(f"r/app:{tag}", "app", tag, manifest, (), ())


def test_floor_counts_new_layers_a_new_config_and_the_manifest():
    first = _facts("1", ("sha256:c1", 5000), [("sha256:base", 80_000), ("sha256:code1", 5300)])
    code = _facts("2", ("sha256:c2", 5100), [("sha256:base", 80_000), ("sha256:code2", 5400)])
    assert floor_bytes(first, None) == {"changed_layer_bytes": 85_300, "config_bytes": 5000, "floor_bytes": 90_800}
    assert floor_bytes(code, first) == {"changed_layer_bytes": 5400, "config_bytes": 5100, "floor_bytes": 11_000}
    # The same image again (a reproducible rebuild): only its manifest.
    assert floor_bytes(code, code)["floor_bytes"] == 500


def test_served_manifests_counts_this_images_manifest_downloads():
    image = _facts("1.0.0-abc", ("sha256:c", 10), [])
    log = "\n".join([
        _line("GET", "/v2/app/manifests/1.0.0-abc", 200, 900),
        _line("HEAD", "/v2/app/manifests/1.0.0-abc", 200, 900),
        _line("GET", "/v2/app/manifests/sha256:m-1.0.0-abc", 200, 900),
        _line("GET", "/v2/app/manifests/1.0.0-other", 200, 900),
        _line("GET", "/v2/other/manifests/1.0.0-abc", 200, 900),
    ])
    assert served_manifests(log, image) == 1800


def _rows(by_key: dict) -> list[dict]:
    rows = []
    for (scenario, design, store), values in by_key.items():
        rows.append({"scenario": scenario, "design": design, "store": store, "layers": 1, "total_layers": 12,
                     "pull_seconds": 0.1, "build_seconds": 1.0, "predicted_bytes": values["bytes"],
                     "manifest_bytes": 0, "change": "x", **values})
    return rows


def test_targets_are_ratios_to_the_floor_and_pass_and_fail():
    rows = _rows({
        ("first", "ours", "overlay2"): {"bytes": 90_000_000, "layer_bytes": 89_990_000, "image_bytes": 90_000_000},
        ("first", "baseline", "overlay2"): {"bytes": 180_000_000, "layer_bytes": 1, "image_bytes": 180_000_000},
        # 10.9 kB against a floor of 10 kB passes (1.09); a 6 MB foundation bump against 3.6 MB does not.
        ("code", "ours", "overlay2"): {"bytes": 10_900, "layer_bytes": 5_000, "image_bytes": 1, "floor_bytes": 10_000},
        ("rebuild", "ours", "overlay2"): {"bytes": 0, "layer_bytes": 0, "image_bytes": 1},
        ("dep-foundation", "ours", "overlay2"): {"bytes": 6_000_000, "layer_bytes": 1, "image_bytes": 100_000_000,
                                                 "floor_bytes": 3_600_000},
        ("dep-libraries", "ours", "overlay2"): {"bytes": 1_100_000, "layer_bytes": 1, "image_bytes": 10_000_000,
                                                "floor_bytes": 1_050_000},
    })
    results = {t.name: t.passed for t in report.targets(rows)}
    assert results == {
        "code-only release <= 1.1 x floor (changed layers + config + manifest)": True,
        "same-commit clean rebuild pulls 0 layer bytes": True,
        "dep-foundation bump <= 1.1 x floor (changed dependency layers + config + manifest)": False,
        "dep-foundation bump <= max(2 MB, 5 % of image)": False,  # 6 MB > 5 MB
        "dep-libraries bump <= 1.1 x floor (changed dependency layers + config + manifest)": True,
        "dep-libraries bump <= max(2 MB, 5 % of image)": True,  # 1.1 MB <= 2 MB
        "first deploy <= baseline image size": True,
    }
    code = next(t for t in report.targets(rows) if t.name.startswith("code"))
    assert (code.value, code.limit) == ("10.9 kB = 1.09 x floor", "1.1 x 10.0 kB")


def test_table_and_markdown_list_every_row():
    rows = _rows({("first", "ours", "overlay2"): {"bytes": 1_500_000, "layer_bytes": 0, "image_bytes": 1}})
    assert "1.5 MB" in report.table(rows, {"first": "first deploy"})
    rows[0]["floor_bytes"] = 1_000_000
    assert "| first deploy | ours | overlay2 (classic) | 1.5 MB | 1.0 MB | 1.50 | 1/12 | 0.10 | 1.0 |" in report.markdown_table(
        rows, {"first": "first deploy"}
    )


# -- availability during releases -----------------------------------------------------------------


@pytest.mark.parametrize(
    "keys, expected",
    [
        (None, (None, True)),  # a full run: every layer scenario and availability
        (("availability",), ((), True)),  # availability alone: no layer scenario
        (("code", "availability"), (("code",), True)),
        (("code",), (("code",), False)),
    ],
)
def test_split_selection(keys, expected):
    assert availability.split_selection(keys) == expected


def test_summarize_counts_failures_and_times_them_from_the_release_start():
    ok, refused, error_500 = 200, None, 503
    outcomes = [Outcome(0.0, 0.01, ok), Outcome(2.0, 0.02, refused, "ConnectionRefusedError"),
                Outcome(2.5, 0.5, error_500), Outcome(3.0, 0.01, ok), Outcome(4.0, 1.2, ok)]
    summary = availability.summarize(LoadResult(outcomes), release_start=1.5, release_end=3.5)
    assert summary["requests"] == 5 and summary["failed"] == 2
    assert summary["unavailable_seconds"] == 1.0  # 2.0 .. 3.0 (the 503 came back at 3.0)
    assert summary["failures_from"] == 0.5 and summary["failures_to"] == 1.5
    assert summary["answers"] == {"200": 3, "ConnectionRefusedError": 1, "503": 1}
    assert summary["release_seconds"] == 2.0 and summary["slowest_seconds"] == 1.2


def test_summarize_without_failures():
    summary = availability.summarize(LoadResult([Outcome(0.0, 0.01, 200)]), 0.5, 1.0)
    assert (summary["failed"], summary["unavailable_seconds"], summary["failures_from"]) == (0, 0.0, None)


def test_seed_rows_report_the_kinds_not_run_with_their_reason():
    code = {"kind": "code", "way": "seed", "measured": True, "requests": 400, "failed": 400, "unavailable_seconds": 8.0}
    rows = availability.seed_rows(code, {"serves": False, "why": "its container is exited, exit code 1"})
    assert [r["kind"] for r in rows] == [k.key for k in availability.KINDS]
    assert all(not r["measured"] for r in rows[1:])
    crash = next(r for r in rows if r["kind"] == "crash")
    assert "exit code 1" in crash["reason"] and "cannot be told from a good one" in crash["reason"]
    assert "no rollback" in next(r for r in rows if r["kind"] == "rollback")["reason"]


def test_commit_release_names_the_release_healthz_reports():
    built = {"good": availability.Built("good", "1.0.0-aaaaaaaaaaaa", "a" * 40),
             "second": availability.Built("second", "1.0.0-bbbbbbbbbbbb", "b" * 40)}
    assert availability.commit_release("b" * 12, built) == "second"
    assert availability.commit_release("c" * 40, built) == "other"
    assert availability.commit_release(None, built) is None


def test_availability_markdown_is_kinds_by_ways_with_footnotes():
    document = {
        "kinds": {"code": "code-only release", "crash": "release crashes at import"},
        "ways": {"ours": "ours", "seed": "seed"},
        "results": [
            {"kind": "code", "way": "ours", "measured": True, "requests": 600, "failed": 0, "unavailable_seconds": 0.0},
            {"kind": "code", "way": "seed", "measured": True, "requests": 400, "failed": 400, "unavailable_seconds": 8.04},
            {"kind": "crash", "way": "ours", "measured": True, "requests": 300, "failed": 2, "unavailable_seconds": 0.31},
            {"kind": "crash", "way": "seed", "measured": False, "reason": "it never serves"},
        ],
    }
    assert report.availability_markdown(document).splitlines() == [
        "| release | ours | seed |",
        "|---|---:|---:|",
        "| code-only release | 0 / 600, 0.0 s | 400 / 400, 8.0 s |",
        "| release crashes at import | 2 / 300, 0.3 s | not run (1) |",
        "",
        "(1) it never serves",
    ]


def test_availability_targets_fail_on_any_failed_request_of_ours():
    document = {"kinds": {"code": "code-only release", "crash": "release crashes at import"}, "results": [
        {"kind": "code", "way": "ours", "measured": True, "requests": 600, "failed": 0},
        {"kind": "crash", "way": "ours", "measured": True, "requests": 300, "failed": 2},
        {"kind": "crash", "way": "recreate", "measured": True, "requests": 300, "failed": 90},
    ]}
    checks = report.availability_targets(document)
    assert [(t.name, t.passed, t.value) for t in checks] == [
        ("zero failed requests: code-only release", True, "0 / 600"),
        ("zero failed requests: release crashes at import", False, "2 / 300"),
    ]


# -- the docs against the published results -----------------------------------------------------------
DOCS = ROOT / "docs"


def test_replace_blocks_rewrites_only_between_markers_and_refuses_a_missing_one():
    text = "intro\n<!-- benchmark:t begin -->\nold\n<!-- benchmark:t end -->\nprose\n"
    assert report.replace_blocks(text, {"t": "| a |\n"}) == "intro\n<!-- benchmark:t begin -->\n| a |\n<!-- benchmark:t end -->\nprose\n"
    assert report.blocks_of(report.replace_blocks(text, {"t": "new"})) == {"t": "new\n"}
    with pytest.raises(ValueError, match="benchmark:other begin"):
        report.replace_blocks(text, {"other": "x"})


def _published(doc: str, blocks: dict[str, str]) -> None:
    """Every block generated from the published JSON is in the doc, as generated (publishing is idempotent)."""
    text = (DOCS / doc).read_text()
    shown = report.blocks_of(text)
    for name, body in blocks.items():
        assert shown.get(name) == body.rstrip("\n") + "\n", f"docs/{doc}'s {name} block differs from the published results: " \
            "publish again (`.venv/bin/python -m benchmarks.run --render <results>.json --publish`)"
    assert report.replace_blocks(text, blocks) == text


def test_performance_md_shows_the_published_layer_results():
    _published("performance.md", report.layer_blocks(json.loads((DOCS / "benchmark-results.json").read_text())))


def test_performance_md_shows_the_published_layer_order_model():
    results = json.loads((DOCS / "benchmark-results.json").read_text())
    releases = json.loads((DOCS / "dependency-releases.json").read_text())
    other = DOCS / "layer-order-results.json"
    _published("performance.md", {"layer-order": layer_order.markdown(
        releases, results, (ROOT / "deps" / "layers.toml").read_text(), json.loads(other.read_text()) if other.exists() else None)})


def test_performance_md_shows_the_published_availability_results():
    _published("performance.md", report.availability_blocks(json.loads((DOCS / "availability-results.json").read_text())))


@pytest.mark.parametrize("kind", sorted(report.RESULTS_DOCS))
def test_docs_show_the_published_test_results(kind):
    document = json.loads((DOCS / f"{kind}-results.json").read_text())
    assert document["kind"] == kind
    benchmark = json.loads((DOCS / "benchmark-results.json").read_text())
    _published(report.RESULTS_DOCS[kind], report.results_blocks(document, benchmark))


def test_every_table_of_performance_md_is_generated():
    """A table written by hand would not follow a new run: each one sits between generated-block markers."""
    outside, inside = [], False
    for number, line in enumerate((DOCS / "performance.md").read_text().splitlines(), 1):
        if re.fullmatch(r"<!-- benchmark:[\w-]+ (begin|end) -->", line):
            inside = line.endswith("begin -->")
        elif line.startswith("|") and not inside:
            outside.append(number)
    assert not outside, f"docs/performance.md has table lines outside generated blocks: lines {outside}"


def _result(**figures: object) -> dict:
    return {**figures, "date": "2026-11-29T08:00:00+00:00", "commit": "b" * 40, "uncommitted_changes": False}


def test_builders_blocks_show_both_builder_kinds_with_layers_and_same_digest():
    def row(scenario: str, layers: int, pulled: int, digest: str) -> dict:
        return {"scenario": scenario, "design": "ours", "store": "overlay2", "layers": layers, "bytes": pulled,
                "total_layers": 12, "digest": digest}

    benchmark = {"date": "2026-11-29T08:50:45+00:00", "source": {"commit": "c" * 40},
                 "results": [row("first", 12, 91_000_000, "sha256:a"), row("code", 1, 9862, "sha256:b"),
                             row("rebuild", 0, 0, "sha256:b")]}
    document = {"kind": "builders", "results": {
        "code": _result(layers=1, bytes=9900, total_layers=12), "rebuild-app": _result(layers=4, bytes=13_700, total_layers=12),
        "rebuild-clean": _result(layers=11, bytes=8_400_000, total_layers=12)}}
    blocks = report.results_blocks(document, benchmark)
    rows = blocks["builders"].splitlines()
    assert rows[2] == "| containerd-store engine, `docker` driver (layout) | 9.9 kB, 1/12 layers | not run on its own " \
                      "| 0 B, 0/12 layers (same digest) |"
    assert rows[3] == "| classic overlay2 engine, `docker` driver (engine) | 9.9 kB, 1/12 layers | 13.7 kB, 4/12 layers " \
                      "| 8.4 MB, 11/12 layers |"
    assert "commit `ccccccc`" in blocks["builders-run"] and "commit `bbbbbbb`" in blocks["builders-run"]
    benchmark["results"][2]["digest"] = "sha256:other"
    assert "same digest" not in report.builders_blocks(document, benchmark)["builders"]


def test_retention_blocks_mark_the_deps_change_and_the_prune():
    document = {"kind": "retention", "results": {
        "deploys": _result(keep_releases=3, code_layer_bytes=1 << 20, deps_layer_bytes=8 << 20, deps_change_at=2,
                           disk_bytes=[100_000_000, 101_000_000, 110_000_000, 102_000_000], pruned=[0, 0, 0, 1],
                           freed_bytes=[0, 0, 0, 1_050_000]),
        "prune": _result(pruned=2, predicted_freed_bytes=2_100_000, reported_freed_bytes=2_097_152, measured_freed_bytes=2_097_152)}}
    blocks = report.results_blocks(document, {})
    table = blocks["retention"].splitlines()
    assert table[0] == "| after deploy | 1 | 2 | 3 (deps change) | 4 |"
    assert table[2] == "| image disk (`docker system df`) | 100.0 MB | 101.0 MB | 110.0 MB | 102.0 MB |"
    assert table[4] == "| freed (the deploy's report) | - | - | - | 1.1 MB |"
    assert "4 deploys with `keep_releases: 3`" in blocks["retention-run"] and "changes at release 3" in blocks["retention-run"]
    assert "pruned 2 releases" in blocks["retention-prune"] and "2.1 MB freed" in blocks["retention-prune"]


def test_results_blocks_refuse_an_unknown_kind():
    with pytest.raises(ValueError, match="unknown kind of test results 'other'"):
        report.results_blocks({"kind": "other", "results": {}}, {})


def test_config_parts_measure_history_and_labels_as_compact_json():
    config = {"config": {"Labels": {"a": "1"}}, "history": [{"created_by": "RUN x"}, {"empty_layer": True}]}
    assert config_parts(config) == {"config_history_bytes": len('[{"created_by":"RUN x"},{"empty_layer":true}]'),
                                    "config_history_entries": 2, "config_label_bytes": len('{"a":"1"}')}
    assert config_parts({})["config_label_bytes"] == 2  # {}


# -- the layer-order model -------------------------------------------------------------------------------
def test_release_days_counts_the_locked_major_line_in_the_window_without_prereleases_or_yanked():
    def files(day: str, yanked: bool = False) -> list[dict]:
        return [{"upload_time_iso_8601": f"{day}T10:00:00.000000Z", "yanked": yanked}]

    pypi = {"releases": {"2.14.3": files("2026-11-01"), "2.14.4": files("2026-11-01"), "2.15.0b1": files("2026-11-10"),
                         "1.10.27": files("2026-10-01"), "2.13.0": files("2025-06-01"), "2.14.2": files("2026-10-02", True),
                         "2.14.1": []}}
    until = datetime(2026, 11, 29, tzinfo=UTC)
    assert layer_order.release_days(pypi, "2.14.4", until) == ["2026-11-01"]  # two releases, one day


def test_bumps_per_month_counts_a_groups_release_days_once():
    days = {"pydantic": ["2026-11-05", "2026-11-19"], "pydantic-core": ["2026-11-05", "2026-11-04"], "idna": []}
    bumps = layer_order.bumps_per_month(days, {"foundation": ["pydantic", "pydantic-core"], "server": ["idna"]}, 365)
    assert bumps == {"foundation": 3 / 12, "server": 0.0}


def test_a_bump_costs_the_classic_store_every_layer_above_and_containerd_its_own():
    sizes = {"f": 3000, "s": 1000, "l": 500}
    costs = layer_order.bump_bytes(("f", "s", "l"), sizes, above=10, fixed=1)
    assert costs == {"f": {"overlay2": 4511, "containerd": 3001}, "s": {"overlay2": 1511, "containerd": 1001},
                     "l": {"overlay2": 511, "containerd": 501}}
    # Rarely bumped and large at the bottom is cheapest on the classic store; containerd does not care.
    rows = layer_order.orders_table(sizes, {"f": 1.0, "s": 4.0, "l": 7.0}, 10, 1, ("f", "s", "l"))
    assert rows[0]["order"] == ["f", "s", "l"] and rows[0]["current"]
    assert len({r["containerd_bytes_per_month"] for r in rows}) == 1


def test_reorder_layers_keeps_groups_and_packages():
    text = (ROOT / "deps" / "layers.toml").read_text()
    reordered = tomllib.loads(scenarios.reorder_layers(text, ("server", "libraries", "foundation")))["layer"]
    original = {g["name"]: g["packages"] for g in tomllib.loads(text)["layer"]}
    assert [g["name"] for g in reordered] == ["server", "libraries", "foundation"]
    assert {g["name"]: g["packages"] for g in reordered} == original
    with pytest.raises(ValueError, match="each group"):
        scenarios.reorder_layers(text, ("server", "foundation"))


def test_zero_downtime_blocks_name_each_kind_and_the_runs_they_come_from():
    def row(failed: int, requests: int, unavailable: float, **extra: object) -> dict:
        return {"failed": failed, "requests": requests, "unavailable_seconds": unavailable, "rate_per_second": 50,
                "date": "2026-11-29T08:00:00+00:00", "commit": "a" * 40, "uncommitted_changes": False, **extra}

    document = {"kind": "zero-downtime", "titles": {"code": "code-only release", "hang": "hangs at start",
                                                      "legacy-move": "the move"},
                "results": {"hang": row(0, 690, 0.0, health_timeout_seconds=10), "code": row(0, 497, 0.0),
                            "legacy-move": row(19, 378, 0.34)}}
    blocks = report.zero_downtime_blocks(document)
    assert blocks["zero-downtime"].splitlines()[2:] == ["| code-only release | 0 of 497 | 0 s |",
                                                         "| hangs at start (`health_timeout` 10 s) | 0 of 690 | 0 s |"]
    assert blocks["zero-downtime-legacy"].startswith("0.34 s unavailable, 19 of 378 requests failed at 50 requests/s")
    assert "commit `aaaaaaa`" in blocks["zero-downtime-run"]


def test_swarm_blocks_show_each_release_and_compose_beside_swarm():
    def node(number: int, layers: int, size: int, tasks: int = 1, measured: bool = True, pull: float | None = None) -> dict:
        return {"node": f"swarm-node{number}", "tasks": tasks, "measured": measured, "measured_layers": layers,
                "measured_bytes": size, "pull_seconds": pull}

    load = {"requests": 900, "failed": 0}
    document = {"kind": "swarm", "titles": {"code": "code-only", "rollback": "rollback", "layer-pre-pull": "pre-pull",
                                            "node-killed": "node killed", "proxy-update": "proxy update", "compose": "compose"},
                "results": {
                    "code": _result(load=load, update_seconds=16.4, seconds=20.0,
                                    nodes=[node(1, 1, 10_500), node(2, 1, 10_500), node(3, 0, 0, tasks=1)]),
                    "rollback": _result(load=load, update_seconds=10.9, seconds=12.0, downloaded_bytes=0),
                    "layer-pre-pull": _result(load=load, update_seconds=16.0, seconds=35.0, pre_pull_seconds=0.7,
                                              nodes=[node(n, 1, 25_000_000, pull=0.3) for n in (1, 2, 3)]),
                    "node-killed": _result(load={"requests": 1400, "failed": 2}, update_state="completed", exit=0,
                                           nodes_down=["swarm-node3"], seconds=40.0,
                                           nodes=[node(1, 1, 10_500), node(2, 0, 0), node(3, 0, 0, measured=False)]),
                    "compose": _result(load={"requests": 855, "failed": 0}, deploy_seconds=[10.4, 10.8], seconds=22.0,
                                       nodes=[node(1, 1, 10_500), node(2, 1, 10_500)]),
                    "proxy-update": _result(load={"requests": 600, "failed": 41}, proxy_state="completed", seconds=31.5,
                                            unavailable_seconds=[1.4, 1.9, 1.6], nodes=[node(n, 0, 0, tasks=1) for n in (1, 2, 3)]),
                }}
    blocks = report.results_blocks(document, {})
    rows = blocks["swarm"].splitlines()[2:]
    assert rows[0] == "| code-only | 1 layer + config, 10.5 kB, on 2 of 3 nodes | 16.4 s | 0 of 900 |"
    assert rows[1] == "| rollback | nothing | 10.9 s | 0 of 900 |"
    assert rows[2] == ("| pre-pull | 1 layer + config, 25.0 MB, on 3 of 3 nodes (pulled in 0.3 s per node) "
                       "| 16 s (whole deploy 35 s; pre-pull 0.7 s, before the update) | 0 of 900 |")
    assert rows[3] == ("| node killed | 1 layer + config, 10.5 kB, on 1 of 3 nodes; swarm-node3: nothing measured (engine down) "
                       "| completed; exit 0; nodes down: swarm-node3 | 2 of 1400 |")
    assert rows[4] == ("| proxy update | nothing | proxy completed (whole deploy 31.5 s); each node unavailable 1.4–1.9 s, "
                       "measured at its own port | 41 of 600 |")
    assert len(rows) == 5, "compose has a table of its own"
    compose = blocks["swarm-compose"].splitlines()[3]
    assert (
        compose
        == "| compose, 2 hosts one after the other | 1 layer + config, 10.5 kB, on 2 of 2 nodes | 10.4 + 10.8 s (the deploy: 22 s) | 0 of 855 |"
    )


def test_layers_moved_below_the_dependency_groups_are_named_and_noted():
    def image(*digests: str) -> ImageFacts:
        manifest = Manifest("sha256:m", 100, Blob("sha256:c", 10), tuple(Blob(d, 1) for d in digests))
        return ImageFacts("r/app:1", "app", "1", manifest, (), ())

    before = image("sha256:base", "sha256:os", "sha256:venv", "sha256:dep", "sha256:code")
    assert layers_moved_below(image("sha256:base", "sha256:os", "sha256:venv", "sha256:dep2", "sha256:code"), before, 3) == []
    assert layers_moved_below(image("sha256:base", "sha256:os2", "sha256:venv", "sha256:dep2", "sha256:code"), before, 3) == [1]
    assert layers_moved_below(before, None, 3) == []
    row = {"scenario": "dep-libraries", "design": "ours", "store": "overlay2", "bytes": 5, "predicted_bytes": 5,
           "moved_below": ["OS packages and the `app` user"]}
    assert report.mismatches([row]) == ["dep-libraries/ours/overlay2: OS packages and the `app` user changed too (a build "
                                        "cache older than the previous build's Debian archive): these bytes are not the change's alone"]
