"""BuildKit's plain progress: what a user sees while a build runs, and the one line when it fails."""

import pytest

from delivery.images.buildprogress import DEFAULT_HINT, BuildProgress, hint_for
from delivery.reporting import Recorded, Silent

FAILED_DEPS_BUILD = """\
#1 [internal] load build definition from Dockerfile
#1 transferring dockerfile: 3.1kB done
#1 DONE 0.0s
#9 [layer-1 1/1] RUN --mount=type=secret,id=ca_bundle,required=false     /deps/install-layer.sh 1
#9 0.512 Collecting pydantic-core==2.33.2
#9 2.001 ERROR: Could not find a version that satisfies the requirement pydantic-core==99.0 (from versions: none)
#9 2.002 ERROR: No matching distribution found for pydantic-core==99.0
#9 ERROR: process "/bin/sh -c /deps/install-layer.sh 1" did not complete successfully: exit code: 1
------
 > [layer-1 1/1] RUN /deps/install-layer.sh 1:
2.001 ERROR: Could not find a version that satisfies the requirement pydantic-core==99.0 (from versions: none)
------
ERROR: failed to solve: process "/bin/sh -c /deps/install-layer.sh 1" did not complete successfully: exit code: 1
"""


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_failed_build_names_the_failing_step_its_error_and_what_to_do() -> None:
    recorded = Recorded()
    shown = recorded.lines
    progress = BuildProgress(recorded)
    for line in FAILED_DEPS_BUILD.splitlines():
        progress.feed(line)
    message = progress.failure(
        "building deps (x)", 'ERROR: failed to solve: process "/bin/sh -c /deps/install-layer.sh 1" did not complete successfully: exit code: 1'
    )
    assert message == (
        "building deps (x) failed at step [layer-1 1/1] RUN --mount=type=secret,id=ca_bundle,required=false /deps/install-layer.sh 1: "
        "ERROR: No matching distribution found for pydantic-core==99.0: "
        "requirements.lock does not match the index: re-lock (`invoke lock`), commit, then run the task again"
    )
    assert "docs.docker.com" not in message and "\n" not in message
    assert shown[0] == "#1 [internal] load build definition from Dockerfile"
    assert "#9 [layer-1 1/1] RUN --mount=type=secret,id=ca_bundle,required=false     /deps/install-layer.sh 1" in shown
    assert "#9 2.002 ERROR: No matching distribution found for pydantic-core==99.0" in shown
    assert shown[-1].startswith("ERROR: failed to solve")


def test_a_failure_outside_any_step_quotes_the_docker_error() -> None:
    progress = BuildProgress(Silent())
    progress.feed("ERROR: OCI exporter is not supported for the docker driver.")
    message = progress.failure("building deps (x)", "ERROR: failed to solve: OCI exporter is not supported for the docker driver.")
    assert message.startswith("building deps (x) failed: OCI exporter is not supported for the docker driver.: ")
    assert message.endswith("run `invoke doctor`, it names the fix")


def test_long_steps_show_their_progress_every_heartbeat() -> None:
    recorded = Recorded()
    shown = recorded.lines
    clock = Clock()
    progress = BuildProgress(recorded, heartbeat=10, clock=clock)
    progress.feed("#5 [layer-rest 1/1] RUN /deps/install-layer.sh rest")
    for second in range(1, 26):
        clock.now = float(second)
        progress.feed(f"#5 {second}.0 Collecting package-{second}")
    progress.feed("#5 DONE 25.3s")
    progress.feed("#6 [deps 2/5] COPY --link --from=layer-1 /opt/venv/ /opt/venv/")
    progress.feed("#6 DONE 0.1s")
    assert shown == [
        "#5 [layer-rest 1/1] RUN /deps/install-layer.sh rest",
        "#5 10.0 Collecting package-10",
        "#5 20.0 Collecting package-20",
        "#5 DONE 25.3s",
        "#6 [deps 2/5] COPY --link --from=layer-1 /opt/venv/ /opt/venv/",
    ]


@pytest.mark.parametrize(
    ("output", "words"),
    [
        pytest.param("write /opt/venv/x: no space left on device", "docker builder prune", id="disk-full"),
        pytest.param("SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED]", "deploy.ca_bundle", id="tls-proxy"),
        pytest.param("THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE", "invoke lock", id="hash-mismatch"),
        pytest.param("Temporary failure in name resolution", "network", id="dns"),
        pytest.param(
            "failed to resolve source metadata for docker.io/library/python:3.12: pull access denied", "deploy.python_image", id="base-image"
        ),
        pytest.param("something nobody has seen", DEFAULT_HINT, id="unknown"),
    ],
)
def test_hint_for(output: str, words: str) -> None:
    assert words in hint_for(output)
