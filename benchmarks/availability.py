"""Availability during releases: what a steady stream of users sees while a release goes out.

Under a bounded, fixed-rate load (tests/integration/support/loadgen.py: GET / at 50 requests/s on
loopback), each kind of release is deployed in three ways, and every failed request
(connection error, timeout, 5xx) is counted:

- ours: `invoke deploy` / `invoke rollback` (HAProxy in front, blue/green slots, watch window);
- recreate: BASELINE, the single-container layout the project shipped until zero-downtime
  releases (benchmarks/baseline/single-container-compose.yml), driven as that release's
  `invoke deploy` did it (see `recreate_release`);
- seed: BASELINE, the original design note: its image (benchmarks/baseline/Dockerfile) and
  `docker compose pull && docker compose up -d` (benchmarks/baseline/seed-compose.yml).

The releases are the fault tests' own recipes (RELEASES of tests/integration/support/faults_helpers.py). Each way
runs on a throwaway server engine of its own (benchmarks/servers.py), never the test bed's.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from benchmarks import designs, scenarios, servers
from benchmarks.workspace import BenchmarkError, Clone, git
from delivery.deploy.compose.health import wait_healthy
from delivery.reporting import Silent
from tests.integration.support.faults_helpers import RELEASES  # the fault tests' release recipes
from tests.integration.support.loadgen import Load, LoadResult  # the tests' own load generator

ROOT = Path(__file__).resolve().parent.parent

SELECTOR = "availability"  # --scenarios availability
RATE = 50.0  # requests per second, GET /
BEFORE = 2.0  # seconds of load before the release starts (the site must answer)
AFTER = 5.0  # seconds of load after the release command returned
MAX_WINDOW = 240.0  # the load stops by itself after this, whatever happens
REQUEST_TIMEOUT = 10.0  # a request without an answer within this counts as failed
HEALTH_TIMEOUT = 30  # deploy.health_timeout for ours and the recreate baseline, as the fault tests use
SINGLE_CONTAINER_COMPOSE = designs.BASELINE_DIR / "single-container-compose.yml"
SEED_COMPOSE = designs.BASELINE_DIR / "seed-compose.yml"


@dataclass(frozen=True)
class Kind:
    key: str
    title: str
    release: str | None  # the faults_helpers.RELEASES recipe deployed; None: a rollback


KINDS = (
    Kind("code", "code-only release", "second"),
    Kind("crash", "release crashes at import", "crash"),
    Kind("healthz500", "release whose /healthz answers 500", "healthz500"),
    Kind("hang", "release that hangs at start (never healthy)", "hang"),
    Kind("root500", "release healthy on /healthz, 500 on /", "root500"),
    Kind("rollback", "rollback to the release before", None),
)
# The order they run in on one server: rollback (second -> good) before root500, which the
# recreate baseline leaves live (nothing there checks / once /healthz passes).
RUN_ORDER = ("code", "crash", "healthz500", "hang", "rollback", "root500")
WAYS = ("ours", "recreate", "seed")
WAY_TITLES = {
    "ours": "ours: invoke deploy / rollback",
    "recreate": "single container, recreate (until now)",
    "seed": "seed: compose pull && up -d",
}
BUILT_RELEASES = ("good", "second", "crash", "healthz500", "hang", "root500")
SEED_RELEASES = ("good", "second")  # the seed's image is built for these only: see seed_rows
assert set(RUN_ORDER) == {k.key for k in KINDS} and all(k.release in (None, *BUILT_RELEASES) for k in KINDS)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- pure parts ------------------------------------------------------------------------------------
def split_selection(keys: tuple[str, ...] | None) -> tuple[tuple[str, ...] | None, bool]:
    """--scenarios as given -> (the layer scenarios, or None for all of them; run availability?).

    None (no --scenarios) runs everything; `availability` alone runs no layer scenario."""
    if keys is None:
        return None, True
    layer = tuple(k for k in keys if k != SELECTOR)
    return layer, SELECTOR in keys


def summarize(result: LoadResult, release_start: float, release_end: float) -> dict[str, Any]:
    """What the load saw; times are seconds since the load started, failure times relative to the release start."""
    summary = result.summary()
    failures = sorted(result.failures, key=lambda o: o.sent_at)
    return {
        "requests": summary["requests"],
        "failed": summary["failed"],
        "unavailable_seconds": summary["unavailable_seconds"],
        "answers": summary["answers"],
        "release_seconds": round(release_end - release_start, 2),
        "window_seconds": round(max((o.sent_at for o in result.outcomes), default=0.0), 2),
        "failures_from": round(failures[0].sent_at - release_start, 2) if failures else None,
        "failures_to": round(failures[-1].sent_at + failures[-1].seconds - release_start, 2) if failures else None,
        "slowest_seconds": round(max((o.seconds for o in result.outcomes), default=0.0), 3),
    }


def not_run(kind: str, way: str, reason: str) -> dict[str, Any]:
    return {"kind": kind, "way": way, "measured": False, "reason": reason}


def seed_rows(measured_code: dict[str, Any], container: dict[str, Any]) -> list[dict[str, Any]]:
    """The seed's rows: the code-only release measured; the others not run when its release never serves."""
    rows = [measured_code]
    never_serves = measured_code.get("failed") == measured_code.get("requests") and not container.get("serves")
    for kind in KINDS:
        if kind.key == "code":
            continue
        if kind.key == "rollback":
            reason = ("the design has no rollback: `APP_TAG=<older> docker compose up -d` is a release like any other"
                      + ("; and no release of it serves" if never_serves else ""))
        elif never_serves:
            reason = (f"no release of the seed design serves ({container.get('why', 'its container does not start')}): "
                      "every request fails before, during and after any release, so a failing release cannot be "
                      "told from a good one")
        else:
            reason = "not built: the seed's image is built for the code-only release only"
        rows.append(not_run(kind.key, "seed", reason))
    return rows


def commit_release(commit: str | None, releases: dict[str, Built]) -> str | None:
    """The release name whose commit /healthz named (it may give a prefix or the full id)."""
    if not commit:
        return None
    return next((b.name for b in releases.values() if b.commit.startswith(commit) or commit.startswith(b.commit)), "other")


# -- building the releases -------------------------------------------------------------------------
@dataclass(frozen=True)
class Built:
    name: str
    tag: str  # app tag, as `invoke deploy --version` takes it
    commit: str
    baseline_tag: str | None = None  # the seed's image of the same commit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def task_env(settings: designs.Settings, env: dict[str, str], extra: dict[str, str] | None = None) -> dict[str, str]:
    result = {**os.environ, "INVOKE_DEPLOY_REGISTRY": settings.registry, "INVOKE_DEPLOY_PYTHON_IMAGE": settings.python_image,
              "INVOKE_DEPLOY_PLATFORMS": "linux/amd64"}  # the test bed's base is amd64 only
    if settings.ca_bundle:
        result["INVOKE_DEPLOY_CA_BUNDLE"] = settings.ca_bundle
    proxy = env.get("INVOKE_DEPLOY_PROXY_IMAGE") or env.get("TESTBED_PROXY_IMAGE")
    if proxy:
        result["INVOKE_DEPLOY_PROXY_IMAGE"] = proxy
    return {**result, **(extra or {})}


def invoke(clone: Clone, settings: designs.Settings, env: dict[str, str], log_name: str, *argv: str,
           timeout: float = 900) -> tuple[int, Any]:
    """Run the clone's `invoke ARGV --json`; (exit code, parsed stdout or None). stderr goes to a log."""
    log = settings.log_dir / log_name
    with log.open("a") as stderr:
        result = subprocess.run([str(settings.invoke), *argv, "--json"], cwd=clone.path, env=env, stdout=subprocess.PIPE,
                                stderr=stderr, text=True, timeout=timeout)
    try:
        return result.returncode, json.loads(result.stdout)
    except ValueError:
        return result.returncode, None


def build_releases(clone: Clone, settings: designs.Settings, env: dict[str, str], builder: DockerClient,
                   standin: str) -> dict[str, Built]:
    """Each recipe of BUILT_RELEASES on the clone's commit, committed, built with `invoke build-app`
    (and, for SEED_RELEASES, the seed's image of the same commit); the clone is reset after each."""
    base = clone.commit_id
    code, _ = invoke(clone, settings, task_env(settings, env), "availability-build.log", "build-deps")
    if code != 0:
        raise BenchmarkError(f"`invoke build-deps` failed (log: {settings.log_dir / 'availability-build.log'})")
    built: dict[str, Built] = {}
    try:
        for name in BUILT_RELEASES:
            RELEASES[name](clone.path)
            clone.commit(f"availability benchmark release: {name}")
            started = time.monotonic()
            code, app = invoke(clone, settings, task_env(settings, env), "availability-build.log", "build-app")
            if code != 0 or not app:
                raise BenchmarkError(f"`invoke build-app` of release {name} failed (log: {settings.log_dir / 'availability-build.log'})")
            baseline = None
            if name in SEED_RELEASES:
                scenario = scenarios.Scenario(f"availability-{name}", f"seed image, release {name}", "none",
                                              clean_build=False, deps_changed=False)
                baseline = designs.build_baseline(builder, clone, scenario, standin, settings).image
            built[name] = Built(name, app["tag"], clone.commit_id, baseline.rsplit(":", 1)[1] if baseline else None)
            say(f"[availability] built release {name}: {app['tag']}" + (f", seed image {baseline}" if baseline else "")
                + f" ({time.monotonic() - started:.0f}s)")
            git(clone.path, "reset", "--quiet", "--hard", base)
    finally:
        git(clone.path, "reset", "--quiet", "--hard", base)
    return built


# -- measuring one release -------------------------------------------------------------------------
def healthz_commit(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as response:
            return str(json.loads(response.read()).get("commit") or "") or None
    except (OSError, ValueError):
        return None


def measure(port: int, action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Load the site, run `action` (a release) BEFORE seconds in, keep the load AFTER seconds after it returns."""
    with Load(port, "/", rate=RATE, max_seconds=MAX_WINDOW, timeout=REQUEST_TIMEOUT) as load:
        started = time.monotonic()
        time.sleep(BEFORE)
        release_start = time.monotonic() - started
        outcome = action()
        release_end = time.monotonic() - started
        time.sleep(AFTER)
    return {**summarize(load.result, release_start, release_end), **outcome}


# -- way 1: ours -------------------------------------------------------------------------------------
class Ours:
    """`invoke deploy` / `invoke rollback` of the clone, onto the scratch server."""

    def __init__(self, clone: Clone, settings: designs.Settings, env: dict[str, str], server: servers.Server,
                 project: str, port: int):
        self.clone, self.settings, self.server, self.port = clone, settings, server, port
        self.env = task_env(settings, env, {
            "INVOKE_DEPLOY_COMPOSE_PROJECT": project, "INVOKE_DEPLOY_HTTP_PORT": str(port),
            "INVOKE_DEPLOY_HEALTH_TIMEOUT": str(HEALTH_TIMEOUT), "HTTP_BIND": "127.0.0.1",
        })

    def _run(self, log: str, *argv: str) -> dict[str, Any]:
        code, report = invoke(self.clone, self.settings, self.env, log, *argv, "--host", self.server.host, timeout=600)
        report = report or {}
        return {"exit_code": code, "tool_said": report.get("error") or ("live: " + str(report.get("version")) if code == 0 else "no report"),
                "switched_back": bool((report.get("monitor") or {}).get("switched_back"))}

    def release(self, built: Built, kind: str) -> dict[str, Any]:
        return self._run(f"availability-ours-{kind}.log", "deploy", "--version", built.tag)

    def rollback(self, kind: str) -> dict[str, Any]:
        return self._run(f"availability-ours-{kind}.log", "rollback")


# -- way 2: the single-container recreate (BASELINE PROCEDURE) -----------------------------------------
class Recreate:
    """BASELINE PROCEDURE, reimplemented here (the old deploy module is gone): how `invoke deploy` and
    `invoke rollback` ran the single-container layout until zero-downtime releases (delivery/deploy/compose/handover.py
    at daba0fb). Deploy: compose pull, compose up (recreates the one `app` container, which publishes
    the port), wait for its healthcheck; if it does not pass, start the previous release again the same
    way. Rollback: start the previous release the same way. Nothing stands in front of the container."""

    def __init__(self, server: servers.Server, registry: str, project: str, port: int, tmp: Path,
                 compose_file: Path = SINGLE_CONTAINER_COMPOSE):
        self.server, self.registry, self.project, self.port, self.tmp = server, registry, project, port, tmp
        self.compose_file = compose_file
        self.current: str | None = None
        self.previous: str | None = None

    def client(self, tag: str) -> DockerClient:
        env_file = self.tmp / f"{self.project}-{tag}.env"
        env_file.write_text(f"REGISTRY={self.registry}\nAPP_TAG={tag}\nHTTP_PORT={self.port}\nHTTP_BIND=127.0.0.1\n")
        return DockerClient(host=self.server.host, compose_files=[self.compose_file], compose_env_files=[env_file],
                            compose_project_name=self.project)

    def start(self, tag: str) -> tuple[bool, str]:
        """compose up (recreate) and wait for health, as the old deploy's start() did."""
        compose = self.client(tag)
        compose.compose.up(detach=True, pull="never", quiet=True)
        containers = compose.compose.ps(services=["app"], all=True)
        if not containers:
            return False, "compose started no container"
        return wait_healthy(self.server.docker, containers[0].id, HEALTH_TIMEOUT, Silent())

    def release(self, built: Built, kind: str = "") -> dict[str, Any]:
        tag = built.tag
        try:
            self.client(tag).compose.pull()
            healthy, why = self.start(tag)
            if healthy:
                self.previous, self.current = self.current, tag
                return {"exit_code": 0, "tool_said": f"live: {tag}"}
            said = f"{tag} failed: {why}"
            if self.current and self.current != tag:
                back, why_back = self.start(self.current)
                said += f"; restored {self.current}" if back else f"; restoring {self.current} failed too: {why_back}"
            return {"exit_code": 1, "tool_said": said}
        except DockerException as exc:
            return {"exit_code": 1, "tool_said": f"docker failed: {(exc.stderr or '').strip().splitlines()[-1:]}"}

    def rollback(self, kind: str = "") -> dict[str, Any]:
        if not self.previous:
            return {"exit_code": 1, "tool_said": "no previous release"}
        target = self.previous
        try:
            healthy, why = self.start(target)
        except DockerException as exc:
            return {"exit_code": 1, "tool_said": f"docker failed: {(exc.stderr or '').strip().splitlines()[-1:]}"}
        if healthy:
            self.previous, self.current = self.current, target
            return {"exit_code": 0, "tool_said": f"live: {target}"}
        return {"exit_code": 1, "tool_said": f"rollback to {target} is not healthy: {why}"}


# -- way 3: the seed -----------------------------------------------------------------------------------
class Seed:
    """The design note's deployment: `docker compose pull && docker compose up -d`, nothing else."""

    def __init__(self, server: servers.Server, registry: str, project: str, port: int, tmp: Path):
        self.helper = Recreate(server, registry, project, port, tmp, SEED_COMPOSE)

    def release(self, built: Built, kind: str = "") -> dict[str, Any]:
        assert built.baseline_tag is not None
        compose = self.helper.client(built.baseline_tag)
        try:
            compose.compose.pull()
            compose.compose.up(detach=True, quiet=True)
        except DockerException as exc:
            return {"exit_code": 1, "tool_said": f"docker failed: {(exc.stderr or '').strip().splitlines()[-1:]}"}
        return {"exit_code": 0, "tool_said": f"started {built.baseline_tag} (no health check)"}

    def container(self, tag: str) -> dict[str, Any]:
        """What became of the seed's container: state, exit code, last log lines, and whether / answers."""
        docker = self.helper.server.docker
        found = self.helper.client(tag).compose.ps(all=True)
        if not found:
            return {"serves": False, "why": "compose started no container"}
        state = docker.container.inspect(found[0].id).state
        logs = ""
        try:
            logs = docker.container.logs(found[0].id, tail=5)
        except DockerException:
            pass
        last = [line for line in logs.splitlines() if line.strip()][-3:]
        serves = healthz_commit(self.helper.port) is not None
        why = f"its container is {state.status}, exit code {state.exit_code}" + (f": {last[-1].strip()}" if last else "")
        return {"serves": serves, "status": state.status, "exit_code": state.exit_code, "log_tail": last, "why": why}


# -- the run -----------------------------------------------------------------------------------------
def run(settings: designs.Settings, env: dict[str, str], builder: DockerClient, run_id: str) -> dict[str, Any]:
    """Build the releases, then each way on its own scratch server; the results document."""
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    uv = ROOT / ".venv" / "bin" / "uv"
    with designs.prepared_bases(builder, settings, run_id, changed_base=False) as bases, \
            Clone(ROOT, run_id, uv, settings.ca_bundle) as clone, \
            tempfile.TemporaryDirectory(prefix="pcb-avail-") as tmp, contextlib.ExitStack() as cleanup:
        say("[availability] building the releases (faults_helpers.RELEASES) and the seed's images")
        built = build_releases(clone, settings, env, builder, bases.standin[bases.original])
        seed_images = [f"{settings.registry}/{designs.BASELINE_REPOSITORY}:{b.baseline_tag}" for b in built.values() if b.baseline_tag]
        cleanup.callback(designs.remove_local, builder, seed_images)  # pushed; the builder's copies go
        extra["releases"] = {name: {"tag": b.tag, "commit": b.commit, "seed_tag": b.baseline_tag} for name, b in built.items()}
        builds_done = time.monotonic()
        for way in WAYS:
            project, port = f"pcb-avail-{way}-{run_id.lower()}", free_port()
            with servers.scratch(("overlay2",), iptables=True) as (server,):
                say(f"[availability] {WAY_TITLES[way]}: throwaway engine {server.host}, 127.0.0.1:{port}")
                if way == "seed":
                    seed = Seed(server, settings.registry, project, port, Path(tmp))
                    setup = seed.release(built["good"])
                    time.sleep(5)
                    first = seed.container(built["good"].baseline_tag or "")
                    say(f"[availability] seed: first release: {setup['tool_said']}; {first['why']}")
                    row = {"kind": "code", "way": way, "measured": True, **measure(port, lambda seed=seed: seed.release(built["second"], "code"))}
                    time.sleep(2)
                    extra["seed_container"] = seed.container(built["second"].baseline_tag or "")
                    row["serving_after"] = commit_release(healthz_commit(port), built)
                    say(f"[availability] seed / code: {row['failed']}/{row['requests']} failed, "
                        f"{row['unavailable_seconds']}s unavailable; {extra['seed_container']['why']}")
                    rows += seed_rows(row, extra["seed_container"])
                    continue
                site: Ours | Recreate = (Ours(clone, settings, env, server, project, port) if way == "ours"
                                         else Recreate(server, settings.registry, project, port, Path(tmp)))
                setup = site.release(built["good"], "setup")
                if setup["exit_code"] != 0 or healthz_commit(port) is None:
                    raise BenchmarkError(f"{way}: the first release (good) did not go live: {setup['tool_said']}")
                for key in RUN_ORDER:
                    kind = next(k for k in KINDS if k.key == key)
                    before = commit_release(healthz_commit(port), built)
                    if kind.release is None:
                        row = measure(port, lambda site=site, key=key: site.rollback(key))
                    else:
                        release = built[kind.release]
                        row = measure(port, lambda site=site, release=release, key=key: site.release(release, key))
                    row = {"kind": key, "way": way, "measured": True, "serving_before": before,
                           "serving_after": commit_release(healthz_commit(port), built), **row}
                    rows.append(row)
                    say(f"[availability] {way} / {key}: {row['failed']}/{row['requests']} failed, "
                        f"{row['unavailable_seconds']}s unavailable; {row['serving_before']} -> {row['serving_after']}; "
                        f"{row['tool_said'][:160]}")
    order = [k.key for k in KINDS]
    rows.sort(key=lambda r: (order.index(r["kind"]), WAYS.index(r["way"])))
    return {
        "load": {"rate_per_second": RATE, "path": "/", "before_seconds": BEFORE, "after_seconds": AFTER,
                 "request_timeout_seconds": REQUEST_TIMEOUT, "health_timeout_seconds": HEALTH_TIMEOUT},
        "kinds": {k.key: k.title for k in KINDS},
        "ways": WAY_TITLES,
        "results": rows,
        "build_seconds": round(builds_done - started, 1),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        **extra,
    }
