"""Run the layer-economics benchmark on the Docker test bed.

    .venv/bin/python -m benchmarks.run             full run: 8 scenarios x 2 designs x 2 image stores
    .venv/bin/python -m benchmarks.run --quick     smoke run: first deploy + code-only, overlay2 store
    .venv/bin/python -m benchmarks.run --publish   full run, then copy the JSON and chart into docs/ and
                                                   write the tables of docs/performance.md (between markers)
    .venv/bin/python -m benchmarks.run --scenarios availability   only the availability run (~5 min)
    .venv/bin/python -m benchmarks.run --render benchmarks/results/latest.json   redraw a saved run
    .venv/bin/python -m benchmarks.run --render FILE.json --publish   publish a saved run: layer or availability
        results into docs/performance.md; or what an integration test saved (benchmarks/results/tests/KIND.json,
        tests/integration/support/results.py): zero-downtime and retention into docs/operations.md, builders into
        docs/performance.md

Besides the layer scenarios, a full run measures availability during releases
(benchmarks/availability.py): failed requests under a steady load for each kind of
release, deployed our way and the two baseline ways.

Needs the test bed (`sudo scripts/testbed up`) and root (it starts throwaway
server engines). Reads TESTBED_* and INVOKE_DEPLOY_* from the environment, or
from `scripts/testbed env` when they are unset. Writes benchmarks/results/.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from benchmarks import availability, designs, layer_order, report, scenarios, servers
from benchmarks.measure import added_layers, floor_bytes, image_facts, layers_moved_below, measured_pull
from benchmarks.workspace import BenchmarkError, Clone, git
from delivery.errors import DeliveryError
from delivery.registry.client import Registry
from delivery.release.pullreport import human_bytes

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: first deploy and code-only release, overlay2 store only")
    parser.add_argument("--scenarios", help=f"comma-separated subset of {','.join(s.key for s in scenarios.SCENARIOS)} "
                        "(run as one chain in that order, always after the first deploy) and "
                        f"{availability.SELECTOR} (availability during releases; alone, no layer scenario runs)")
    parser.add_argument("--stores", help="comma-separated subset of overlay2,containerd")
    parser.add_argument("--designs", help="comma-separated subset of ours,baseline (default both)")
    parser.add_argument("--layer-order", help="build ours with the dependency groups stacked in this order, bottom to top "
                        "(e.g. server,libraries,foundation; default: deps/layers.toml's). With --publish, the run goes to "
                        "docs/layer-order-results.json, which the layer-order table reads, not to benchmark-results.json")
    parser.add_argument("--servers", choices=("scratch", "testbed"), default="scratch",
                        help="scratch: throwaway engines per chain (default); testbed: the test bed's servers, emptied first")
    parser.add_argument(
        "--publish", action="store_true", help="also copy the JSON (and chart) to docs/ and write its tables into the docs, between their markers"
    )
    parser.add_argument("--render", metavar="JSON", type=Path,
                        help="run nothing: print the table and targets of a saved results file and redraw its chart")
    return parser.parse_args(argv)


def testbed_environment() -> dict[str, str]:
    """TESTBED_* and INVOKE_DEPLOY_* from the environment, completed from `scripts/testbed env`."""
    env = dict(os.environ)
    if "TESTBED_REGISTRY_LOG" not in env:
        output = subprocess.run([str(ROOT / "scripts" / "testbed"), "env"], capture_output=True, text=True).stdout
        for line in output.splitlines():
            if line.startswith("export ") and "=" in line:
                key, _, value = line[len("export "):].partition("=")
                env.setdefault(key, value)
    missing = [k for k in ("TESTBED_REGISTRY", "TESTBED_REGISTRY_LOG", "TESTBED_PYTHON_IMAGE") if not env.get(k)]
    if missing:
        raise BenchmarkError(f"{', '.join(missing)} not set: `eval \"$(scripts/testbed env)\"`")
    return env


def machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), "0")
    engine = subprocess.run(["dockerd", "--version"], capture_output=True, text=True).stdout.strip()
    return {"cpus": str(os.cpu_count()), "cpu": cpu, "memory": f"{int(memory) / 1024 / 1024:.0f} GiB",
            "kernel": platform.release(), "engine": engine}


def measure(args: argparse.Namespace) -> tuple[dict | None, dict | None, Path]:
    """Run the scenario chains and the availability run as chosen; return the layer results document
    (None when no layer scenario ran), the availability document (None when it did not run) and the run's directory."""
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    env = testbed_environment()
    if args.quick:
        keys, with_availability = scenarios.QUICK, False
    else:
        keys, with_availability = availability.split_selection(tuple(args.scenarios.split(",")) if args.scenarios else None)
    chosen = scenarios.select(keys) if keys != () else ()
    stores = ("overlay2",) if args.quick else (tuple(args.stores.split(",")) if args.stores else servers.STORES)
    if any(s not in servers.STORES for s in stores):
        raise BenchmarkError(f"unknown store in {stores}: use {', '.join(servers.STORES)}")
    stamp = datetime.now(UTC)
    run_id = stamp.strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / run_id
    out.mkdir(parents=True, exist_ok=True)
    settings = designs.Settings(
        registry=env["TESTBED_REGISTRY"],
        python_image=env.get("INVOKE_DEPLOY_PYTHON_IMAGE") or env["TESTBED_PYTHON_IMAGE"],
        ca_bundle=env.get("INVOKE_DEPLOY_CA_BUNDLE") or None,
        invoke=ROOT / ".venv" / "bin" / "invoke",
        log_dir=out,
    )
    bench = Bench(
        run_id=run_id, settings=settings, registry=Registry(settings.registry), builder=DockerClient(),
        registry_log=Path(env["TESTBED_REGISTRY_LOG"]), servers=args.servers, stores=stores,
        designs=tuple(args.designs.split(",")) if args.designs else report.DESIGNS,
        layer_order=tuple(args.layer_order.split(",")) if args.layer_order else None,
        testbed_hosts={"overlay2": env.get("TESTBED_SERVER_HOST", ""),
                       "containerd": env.get("TESTBED_SERVER_CONTAINERD_HOST", "")},
    )
    bench.registry.ping()
    if not chosen:
        return None, availability_document(bench, env, stamp), out

    say(f"benchmark {run_id}: {len(chosen)} scenario(s) x {len(report.DESIGNS)} designs x {len(stores)} store(s), "
        f"{args.servers} servers; logs in {out}")
    changed_base = any(s.change == "base" for s in chosen)
    say("preparing base images: the python:3.12 stand-in" + (", the changed base of this run" if changed_base else ""))
    with designs.prepared_bases(bench.builder, settings, run_id, changed_base) as bases:
        rows, layers_of_ours = run_chains(bench, chosen, bases)
    rows.sort(key=lambda r: ([s.key for s in scenarios.SCENARIOS].index(r["scenario"]),
                             report.DESIGNS.index(r["design"]), servers.STORES.index(r["store"])))
    document = {
        "date": stamp.isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "servers": args.servers,
        "source": {"commit": git(ROOT, "rev-parse", "HEAD").strip(),
                   "uncommitted_changes": bool(git(ROOT, "status", "--porcelain", "--untracked-files=no").strip())},
        # Build and pull seconds depend on what else the machine does: the load average says how busy it was.
        "machine": {**machine(), "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]},
        "duration_seconds": round(time.monotonic() - started, 1),
        "scenarios": {s.key: s.title for s in chosen},
        "changes": {"bumps": scenarios.BUMPS, "new_package": scenarios.NEW_PACKAGE,
                    "base_extra_package": scenarios.BASE_EXTRA_PACKAGE},
        "layer_order": list(bench.layer_order or layer_order.groups_of((ROOT / "deps" / "layers.toml").read_text())),
        "ours_layers": layers_of_ours,
        "results": rows,
        "targets": [t.as_dict() for t in report.targets(rows)],
    }
    return document, availability_document(bench, env, stamp) if with_availability else None, out


def availability_document(bench: Bench, env: dict[str, str], stamp: datetime) -> dict:
    started = time.monotonic()
    if bench.servers != "scratch":
        raise BenchmarkError("the availability run needs throwaway servers: use --servers scratch (the default)")
    document = availability.run(bench.settings, env, bench.builder, bench.run_id)
    return {
        "date": stamp.isoformat(timespec="seconds"),
        "source": {"commit": git(ROOT, "rev-parse", "HEAD").strip(),
                   "uncommitted_changes": bool(git(ROOT, "status", "--porcelain", "--untracked-files=no").strip())},
        "machine": machine(),
        "duration_seconds": round(time.monotonic() - started, 1),
        **document,
    }


@dataclass(frozen=True)
class Bench:
    """What every chain of a run uses, set up once."""

    run_id: str
    settings: designs.Settings
    registry: Registry
    builder: DockerClient
    registry_log: Path
    servers: str  # "scratch" or "testbed"
    stores: tuple[str, ...]
    designs: tuple[str, ...]
    layer_order: tuple[str, ...] | None  # the dependency groups of ours, bottom to top (None: deps/layers.toml's)
    testbed_hosts: dict[str, str]

    def empty_servers(self):
        if self.servers == "scratch":
            return servers.scratch(self.stores)
        return servers.testbed(self.testbed_hosts, self.stores)


def run_chains(bench: Bench, chosen: tuple[scenarios.Scenario, ...], bases: designs.Bases) -> tuple[list[dict], list[dict]]:
    """For each design: empty servers, a fresh clone, then each scenario: change, build, pull on every store."""
    settings, registry = bench.settings, bench.registry
    rows: list[dict] = []
    layers_of_ours: list[dict] = []
    for design in bench.designs:
        uv = ROOT / ".venv" / "bin" / "uv"
        loaded: list[str] = []  # baseline releases in the builder's store, removed after the chain
        with bench.empty_servers() as hosts, Clone(ROOT, bench.run_id, uv, settings.ca_bundle, bench.layer_order) as clone, \
                contextlib.ExitStack() as cleanup:
            cleanup.callback(designs.remove_local, bench.builder, loaded)
            base = bases.original
            previous = None  # the release the servers hold before this scenario's pull
            for scenario in chosen:
                change = clone.apply(scenario)
                if scenario.change == "base":
                    base = bases.changed
                say(f"[{design}] {scenario.title}: {change}; building")
                if design == "ours":
                    build = designs.build_ours(clone, scenario, base, settings)
                else:
                    build = designs.build_baseline(bench.builder, clone, scenario, bases.standin[base], settings)
                    loaded.append(build.image)
                image = image_facts(registry, build.image)
                code_bytes = added_layers(image, image_facts(registry, build.deps_image)) if build.deps_image else None
                if design == "ours" and scenario.key == "first":
                    layers_of_ours = layer_listing(image, clone.path / "deps" / "layers.toml")
                floor = floor_bytes(image, previous)
                moved = []
                if design == "ours" and scenario.change != "base" and layers_of_ours:
                    below = next(i for i, layer in enumerate(layers_of_ours) if layer["what"].startswith("deps group"))
                    moved = [layers_of_ours[i]["what"] for i in layers_moved_below(image, previous, below)]
                    if moved:
                        say(f"[ours] warning: {', '.join(moved)} changed although only {scenario.title} should have: the "
                            "builder's cache is older than the Debian archive of the previous build (run "
                            "`docker builder prune` and the benchmark again); this row's bytes include it")
                previous = image
                say(f"[{design}] built {build.image} in {build.seconds:.1f}s ({human_bytes(image.total_bytes)}, "
                    f"{len(image.manifest.layers)} layers); pulling")
                for server in hosts:
                    pull = measured_pull(server, image, bench.registry_log)
                    say(f"[{design}] {server.store:<10} pulled {human_bytes(pull.bytes)} "
                        f"({pull.layers}/{pull.total_layers} layers) in {pull.seconds:.2f}s")
                    rows.append({
                        "scenario": scenario.key, "design": design, "store": server.store,
                        "bytes": pull.bytes, "manifest_bytes": pull.manifest_bytes,
                        "layer_bytes": pull.layer_bytes, "layers": pull.layers, **floor, **image.config_parts,
                        "total_layers": pull.total_layers, "pull_seconds": pull.seconds,
                        "build_seconds": build.seconds, "build_steps": build.steps, "clean_build": scenario.clean_build,
                        "image": build.image, "digest": image.manifest.digest, "image_bytes": image.total_bytes,
                        "code_layer_bytes": code_bytes, "predicted_bytes": pull.predicted_bytes, "change": change,
                        "moved_below": moved,
                    })
    return rows, layers_of_ours


def outputs(document: dict, json_path: Path, publish: bool) -> int:
    """Draw the chart next to the JSON (same name, .png), print the table and the targets; optionally publish."""
    rows = document["results"]
    titles = {**{s.key: s.title for s in scenarios.SCENARIOS}, **document.get("scenarios", {})}
    checks = report.targets(rows)
    chart = json_path.with_suffix(".png")
    m = document["machine"]
    subtitle = f"{document['date'][:10]}, {m['cpus']} CPUs ({m['cpu']}), {m['engine'].split(',')[0]}"
    report.write_chart(rows, titles, chart, subtitle)

    print(report.table(rows, titles))
    print()
    print(report.target_lines(checks))
    for line in report.mismatches(rows):
        say(f"note: {line}")
    if publish and document.get("layer_order", DEFAULT_ORDER) != DEFAULT_ORDER:
        copy(json_path, LAYER_ORDER_RESULTS)  # a run with another layer order: only the layer-order table uses it
        publish_blocks("performance.md", {"layer-order": layer_order_block()})
        say(f"published {LAYER_ORDER_RESULTS} and the layer-order table of docs/performance.md")
    elif publish:
        copy(json_path, DOCS / "benchmark-results.json")
        copy(chart, DOCS / "benchmark.png")
        publish_blocks("performance.md", {**report.layer_blocks(document), "layer-order": layer_order_block(), **builders_block()})
        say(f"published {DOCS / 'benchmark-results.json'}, {DOCS / 'benchmark.png'} and the tables of docs/performance.md")
    print(f"\nresults: {json_path}, chart: {chart}; the run took {document['duration_seconds']:.0f}s")
    return 0 if all(t.passed for t in checks) else 1


def availability_outputs(document: dict, json_path: Path, publish: bool) -> int:
    """Print the availability table (and its markdown); optionally publish the JSON to docs/."""
    checks = report.availability_targets(document)
    print(report.availability_table(document))
    print()
    print(report.availability_markdown(document))
    print()
    print(report.target_lines(checks))
    if publish:
        copy(json_path, DOCS / "availability-results.json")
        publish_blocks("performance.md", report.availability_blocks(document))
        say(f"published {DOCS / 'availability-results.json'} and its tables in docs/performance.md")
    print(f"\nresults: {json_path}; the availability run took {document['duration_seconds']:.0f}s")
    return 0 if all(t.passed for t in checks) else 1


DEFAULT_ORDER = list(layer_order.groups_of((ROOT / "deps" / "layers.toml").read_text()))
LAYER_ORDER_RESULTS = DOCS / "layer-order-results.json"


def layer_order_block() -> str:
    """docs/performance.md's layer-order table, from the published results (and any run with another order)."""
    return layer_order.markdown(json.loads(layer_order.RELEASES.read_text()), json.loads((DOCS / "benchmark-results.json").read_text()),
                                (ROOT / "deps" / "layers.toml").read_text(),
                                json.loads(LAYER_ORDER_RESULTS.read_text()) if LAYER_ORDER_RESULTS.exists() else None)


def copy(source: Path, target: Path) -> None:
    """Copy a results file into docs/ (nothing to do when publishing the docs' own copy again)."""
    if source.resolve() != target.resolve():
        shutil.copyfile(source, target)


def publish_blocks(doc: str, blocks: dict[str, str]) -> None:
    """Rewrite the generated blocks (between <!-- benchmark:NAME begin/end --> markers) of docs/DOC."""
    path = DOCS / doc
    path.write_text(report.replace_blocks(path.read_text(), blocks))


def results_outputs(document: dict, json_path: Path, publish: bool) -> int:
    """Figures an integration test saved (tests/integration/support/results.py): print its tables; optionally publish them
    (the JSON to docs/<kind>-results.json, the tables into their doc, report.RESULTS_DOCS)."""
    kind = document["kind"]
    blocks = report.results_blocks(document, published_benchmark())
    print("\n\n".join(blocks.values()))
    if publish:
        copy(json_path, DOCS / f"{kind}-results.json")
        publish_blocks(report.RESULTS_DOCS[kind], blocks)
        say(f"published {DOCS / f'{kind}-results.json'} and its tables in docs/{report.RESULTS_DOCS[kind]}")
    if kind == "zero-downtime":
        return 0 if all(r["failed"] == 0 for key, r in document["results"].items() if key != "legacy-move") else 1
    return 0


def published_benchmark() -> dict:
    return json.loads((DOCS / "benchmark-results.json").read_text())


def builders_block() -> dict[str, str]:
    """docs/performance.md's builders table, from the published builders and layer benchmark results."""
    builders = DOCS / "builders-results.json"
    return report.builders_blocks(json.loads(builders.read_text()), published_benchmark()) if builders.exists() else {}


def run(args: argparse.Namespace) -> int:
    if args.render:
        try:
            document = json.loads(args.render.read_text())
        except (OSError, ValueError) as exc:
            raise BenchmarkError(f"cannot read {args.render}: {exc}") from exc
        if document.get("kind") in report.RESULTS_DOCS:
            return results_outputs(document, args.render, args.publish)
        if "kinds" in document:
            return availability_outputs(document, args.render, args.publish)
        return outputs(document, args.render, args.publish)
    document, available, out = measure(args)
    status = 0
    if document is not None:
        text = json.dumps(document, indent=2) + "\n"
        (out / "results.json").write_text(text)
        (RESULTS / "latest.json").write_text(text)
        status = outputs(document, out / "results.json", args.publish)
        shutil.copyfile(out / "results.png", RESULTS / "latest.png")
    if available is not None:
        text = json.dumps(available, indent=2) + "\n"
        (out / "availability.json").write_text(text)
        (RESULTS / "latest-availability.json").write_text(text)
        status = max(status, availability_outputs(available, out / "availability.json", args.publish))
    return status


def layer_listing(image, layers_toml: Path) -> list[dict]:
    """Our image's layers, bottom to top: compressed size, the build step that made each, and what it holds."""
    history = list(image.history) if len(image.history) == len(image.manifest.layers) else [""] * len(image.manifest.layers)
    groups = [f"deps group `{g['name']}` ({', '.join(g['packages'])})" for g in tomllib.loads(layers_toml.read_text())["layer"]]
    groups.append("deps group `rest` (packages no group lists: new dependencies land here)")
    listing = []
    for index, (layer, step) in enumerate(zip(image.manifest.layers, history, strict=True)):
        if index == 0:
            what = "base image"
        elif step.startswith("RUN"):
            what = "OS packages and the `app` user"
        elif step.startswith("COPY /opt/venv /opt/venv"):
            what = "empty venv skeleton"
        elif step.startswith("COPY /opt/venv/ /opt/venv/") and groups:
            what = groups.pop(0)
        else:
            what = "`" + step.removesuffix(" # buildkit").split(" ")[-2 if step.startswith("COPY") else -1] + "`" \
                if step.startswith("COPY") else f"`{step[:60]}`"
        listing.append({"bytes": layer.size, "created_by": step[:160], "what": what})
    return listing


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (BenchmarkError, DeliveryError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DockerException as exc:
        print(f"error: {' '.join(exc.docker_command[:3])}... failed: {(exc.stderr or '').strip().splitlines()[-1:]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
