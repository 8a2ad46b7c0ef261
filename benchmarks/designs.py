"""Building a release with each design, timed: ours (the clone's invoke tasks) and the baseline (the seed's Dockerfile).

Also the base images the scenarios need, prepared once and not timed: the
"changed" base of the base-image scenario, and for the baseline a local
stand-in for python:3.12 on top of each base.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from benchmarks import scenarios
from benchmarks.workspace import BenchmarkError, Clone

HERE = Path(__file__).resolve().parent
BASELINE_DIR = HERE / "baseline"
BASELINE_REPOSITORY = "production-control-baseline"
BENCH_IMAGES = "production-control-bench"  # the stand-ins (local only) and the changed base (pushed too)


@dataclass(frozen=True)
class Bases:
    """The base image of each scenario (ours) and the python:3.12 stand-in on it (baseline)."""

    original: str
    changed: str
    standin: dict[str, str]  # base -> stand-in tag


@dataclass
class Build:
    image: str  # the app image pushed, registry/repository:tag
    seconds: float
    deps_image: str | None = None  # ours: the deps image the app image is built FROM
    steps: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class Settings:
    """What the builds need, read once from the environment at the start of a run."""

    registry: str
    python_image: str
    ca_bundle: str | None
    invoke: Path
    log_dir: Path


# -- base images ----------------------------------------------------------------------------------
def image_id(docker: DockerClient, ref: str) -> str | None:
    try:
        return str(docker.image.inspect(ref).id)
    except DockerException:
        return None


@contextlib.contextmanager
def prepared_bases(docker: DockerClient, settings: Settings, run_id: str, changed_base: bool = True) -> Iterator[Bases]:
    """The bases of a run. The changed base (made only when `changed_base`) and its stand-in
    are new in every run (the base's content names the run), so no build can reuse an
    earlier run's cache for them; both are removed from the builder afterwards."""
    base = settings.python_image
    if image_id(docker, base) is None:
        raise BenchmarkError(f"the base image {base} is not on the builder: run `sudo scripts/testbed up`")
    # In the registry, where our builds read every base by digest (delivery/images/base.py); the stand-ins stay local.
    changed = f"{settings.registry}/{BENCH_IMAGES}-base:{run_id.lower()}-plus-{scenarios.BASE_EXTRA_PACKAGE}"
    made: list[str] = []
    try:
        if changed_base:
            with tempfile.TemporaryDirectory(prefix="production-control-bench-base-") as tmp:
                rootfs = Path(tmp) / "rootfs.tar"
                docker.buildx.build(
                    BASELINE_DIR, file=BASELINE_DIR / "base-change.Dockerfile",
                    build_args={"BASE_IMAGE": base, "BENCH_RUN": run_id},
                    output={"type": "tar", "dest": str(rootfs)}, progress=False,
                )
                # One layer, as scripts/testbed imports the original base: the bottom layer changes.
                docker.image.import_(rootfs, changed, changes=['ENV LANG=C.UTF-8', 'CMD ["python3"]'])
                made.append(changed)
                docker.image.push(changed, quiet=True)
        standin = {}
        for image in (base, changed) if changed_base else (base,):
            tag = f"{BENCH_IMAGES}/python-pip:{image_id(docker, image).split(':')[-1][:12]}"
            if image_id(docker, tag) is None:
                docker.buildx.build(
                    BASELINE_DIR, file=BASELINE_DIR / "python.Dockerfile", build_args={"BASE_IMAGE": image},
                    tags=[tag], load=True, progress=False,
                )
                if image == changed:
                    made.append(tag)
            standin[image] = tag  # the original base's stand-in stays: it plays python:3.12, pulled once
        yield Bases(original=base, changed=changed, standin=standin)
    finally:
        for ref in reversed(made):
            with contextlib.suppress(DockerException):
                docker.image.remove(ref, force=True)


# -- ours -----------------------------------------------------------------------------------------
def build_ours(clone: Clone, scenario: scenarios.Scenario, base: str, settings: Settings) -> Build:
    """Run the clone's own invoke tasks, as a developer would for this release."""
    env = {
        **os.environ,
        "INVOKE_DEPLOY_REGISTRY": settings.registry,
        "INVOKE_DEPLOY_PYTHON_IMAGE": base,
        "INVOKE_DEPLOY_PLATFORMS": "linux/amd64",  # as are they (the test bed's base is amd64 only)
    }
    if settings.ca_bundle:
        env["INVOKE_DEPLOY_CA_BUNDLE"] = settings.ca_bundle
    steps, outputs = [], []
    for argv in scenarios.ours_steps(scenario):
        log = settings.log_dir / f"ours-{scenario.key}-{argv[0]}.log"
        start = time.monotonic()
        with log.open("w") as stderr:
            result = subprocess.run([str(settings.invoke), *argv], cwd=clone.path, env=env,
                                    stdout=subprocess.PIPE, stderr=stderr, text=True)
        seconds = time.monotonic() - start
        if result.returncode != 0:
            tail = log.read_text().strip().splitlines()[-3:]
            raise BenchmarkError(f"`invoke {' '.join(argv)}` failed: {' | '.join(tail)} (log: {log})")
        output = json.loads(result.stdout)
        outputs.append(output)
        steps.append({"command": f"invoke {' '.join(argv)}", "seconds": round(seconds, 2),
                      "built": output.get("built", True)})
    app = outputs[-1]
    return Build(image=app["image"], deps_image=app["deps"], steps=steps,
                 seconds=round(sum(s["seconds"] for s in steps), 2))


# -- baseline -------------------------------------------------------------------------------------
def baseline_plan(context: Path, commit: str, scenario: scenarios.Scenario, standin: str, settings: Settings) -> dict:
    """Pure: the buildx arguments of the baseline build (the seed: docker build, then docker push)."""
    return {
        "context_path": context,
        "file": BASELINE_DIR / "Dockerfile",
        "build_args": {"PYTHON_IMAGE": standin},
        "secrets": [f"id=ca_bundle,src={settings.ca_bundle}"] if settings.ca_bundle else [],
        "tags": [f"{settings.registry}/{BASELINE_REPOSITORY}:{commit[:12]}"],
        "cache": not scenario.clean_build,
        "load": True,
        "provenance": False,
    }


def remove_local(docker: DockerClient, refs: list[str]) -> None:
    """Remove images this run loaded into the builder's store (the baseline's releases, once pushed)."""
    for ref in refs:
        with contextlib.suppress(DockerException):
            docker.image.remove(ref, force=True)


def build_baseline(docker: DockerClient, clone: Clone, scenario: scenarios.Scenario, standin: str,
                   settings: Settings) -> Build:
    plan = baseline_plan(clone.path, clone.commit_id, scenario, standin, settings)
    ref = plan["tags"][0]
    log = settings.log_dir / f"baseline-{scenario.key}.log"
    start = time.monotonic()
    try:
        with log.open("w") as out:
            for line in docker.buildx.build(**plan, progress="plain", stream_logs=True):
                out.write(line)
        built = time.monotonic()
        docker.image.push(ref, quiet=True)
    except DockerException as exc:
        raise BenchmarkError(f"baseline build of {ref} failed: {(exc.stderr or '').strip().splitlines()[-1:]} (log: {log})") from exc
    end = time.monotonic()
    steps = [{"command": "docker buildx build --load", "seconds": round(built - start, 2)},
             {"command": "docker push", "seconds": round(end - built, 2)}]
    return Build(image=ref, seconds=round(end - start, 2), steps=steps)
