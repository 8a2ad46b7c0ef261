""".github/workflows/ci.yml, run here: its own `run:` steps, in order, on the classic-store builder.

A hosted runner cannot be had here, nor Docker Hub (the docker-container builder's
moby/buildkit image). So the workflow's `uses:` steps are stood in for by the test bed,
each named in STAND_INS (a new action fails the test until it has one), and its `run:`
steps run as the runner runs them (`bash --noprofile --norc -eo pipefail`) in a fresh
clone, with the job's and the step's env and DOCKER_HOST on the test bed's classic-store
builder engine: the stock runner's engine without the builder set-up step. As for every
task the tests run, the environment also names this machine's offline base image and its
proxy's CA bundle (INVOKE_DEPLOY_PYTHON_IMAGE, INVOKE_DEPLOY_CA_BUNDLE): no Docker Hub here.
"""

import json
import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from tests.integration.support.tasks_helpers import APP_REPOSITORY, REGISTRY, Clone, release_blobs, task_environment
from tests.integration.support.testbed import OsvStandin, Testbed

pytestmark = pytest.mark.docker

WORKFLOW = Path(".github/workflows/ci.yml")
STEP_TIMEOUT = 1500  # the last step runs the unit tests and may build the deps image
STAND_INS = {
    "actions/checkout": "the clone the steps run in",
    "actions/setup-python": "the machine's python on PATH",
    "docker/setup-qemu-action": "the test bed's QEMU registration; unused here: the classic-store engine path builds "
    "only the engine's own platform (INVOKE_DEPLOY_PLATFORMS=linux/amd64, as for every task the tests run)",
    "docker/setup-buildx-action": "DOCKER_HOST on the classic-store builder engine (the stock runner's engine, unconfigured)",
    "docker/login-action": "nothing: the test bed's registry has no password",
}
# The repository settings the steps read: the test bed's registry, no user.
VARIABLES = {"vars": {"REGISTRY": REGISTRY}, "secrets": {}}
_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_OPERAND = re.compile(r"(vars|secrets)\.([A-Za-z_][A-Za-z0-9_]*)|'([^']*)'")


@dataclass(frozen=True)
class StepRun:
    name: str
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return f"step {self.name!r}: exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def evaluate(value: str, contexts: Mapping[str, Mapping[str, str]]) -> str:
    """The ${{ }} expressions the workflow's env uses: `vars.X`, `secrets.X`, `a || 'default'`; others fail."""

    def one(match: re.Match[str]) -> str:
        for operand in (part.strip() for part in match.group(1).split("||")):
            found = _OPERAND.fullmatch(operand)
            assert found, f"the test cannot evaluate ${{{{ {match.group(1)} }}}}: teach evaluate() this expression"
            result = contexts[found.group(1)].get(found.group(2), "") if found.group(1) else found.group(3)
            if result:
                return result
        return ""

    return _EXPRESSION.sub(one, str(value))


def runner_path() -> str:
    """PATH without any project venv: the steps use the .venv they create."""
    return os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if not p.endswith(".venv/bin"))


@pytest.fixture(scope="module")
def steps_run(tmp_path_factory: pytest.TempPathFactory, testbed: Testbed) -> Iterator[tuple[dict[str, Any], list[StepRun]]]:
    repo = Clone.create(tmp_path_factory.mktemp("workflow") / "repo", testbed)
    workflow = yaml.safe_load((repo.path / WORKFLOW).read_text())
    job = workflow["jobs"]["release"]
    job_env = {name: evaluate(value, VARIABLES) for name, value in (job.get("env") or {}).items()}
    runs: list[StepRun] = []
    # The audit's public vulnerability services are out of reach here: `invoke ci` audits against
    # the test bed's OSV stand-in (the one place the workflow's environment differs from a runner's).
    osv = OsvStandin()
    job_env["INVOKE_DEPLOY_AUDIT_OSV_URL"] = osv.url
    for step in job["steps"]:
        if "uses" in step:
            action = step["uses"].split("@", 1)[0]
            assert action in STAND_INS, f"{WORKFLOW} uses {action}: give it a stand-in in STAND_INS"
            continue
        env = task_environment(testbed, {
            **job_env,
            **{name: evaluate(value, VARIABLES) for name, value in (step.get("env") or {}).items()},
            "DOCKER_HOST": testbed.classic_builder_host,
            "PATH": runner_path(),
        })
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=repo.path, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT, stdin=subprocess.DEVNULL,
        )
        runs.append(StepRun(step.get("name", step["run"]), result.returncode, result.stdout, result.stderr))
        if result.returncode != 0:
            break
    osv.close()
    yield job, runs
    if runs and runs[-1].returncode == 0:
        builder = DockerClient(host=testbed.classic_builder_host)
        with suppress(ValueError, KeyError, TypeError):
            result = json.loads(runs[-1].stdout)
            for ref in (result["app"]["image"], result["deps"]["image"]):  # untag; a deps image not built here is not there
                with suppress(DockerException):
                    builder.image.remove(ref)


def test_every_run_step_succeeds_in_order(steps_run: tuple[dict[str, Any], list[StepRun]]) -> None:
    job, runs = steps_run
    wanted = [s.get("name", s["run"]) for s in job["steps"] if "run" in s]
    for run in runs:
        assert run.returncode == 0, run.describe()
    assert [run.name for run in runs] == wanted


def test_the_workflow_shows_the_build_path_and_invoke_ci_builds_on_it(steps_run: tuple[dict[str, Any], list[StepRun]]) -> None:
    _, runs = steps_run
    doctor = next(run for run in runs if "invoke doctor" in run.name.lower() or "build path" in run.name.lower())
    assert "build path    engine" in doctor.stdout, doctor.describe()
    ci = runs[-1]
    assert ci.returncode == 0, ci.describe()
    result = json.loads(ci.stdout)  # --json: only JSON on stdout (the unit tests' report goes to stderr)
    assert "building into the engine and pushing with docker push" in ci.stderr, ci.describe()
    assert result["app"]["image"].startswith(f"{REGISTRY}/{APP_REPOSITORY}:")
    assert release_blobs(REGISTRY, APP_REPOSITORY, result["app"]["tag"]).digest == result["app"]["digest"]


def test_the_workflow_sets_up_a_builder_and_logs_in_before_invoke_ci(steps_run: tuple[dict[str, Any], list[StepRun]]) -> None:
    job, _ = steps_run
    names = [s.get("uses", "").split("@", 1)[0] or s.get("run", "") for s in job["steps"]]
    ci = next(i for i, name in enumerate(names) if "invoke ci" in name)
    assert names.index("docker/setup-buildx-action") < ci and names.index("docker/login-action") < ci
