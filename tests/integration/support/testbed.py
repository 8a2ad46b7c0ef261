"""The Docker test bed as the integration tests see it: its settings, its engine, image builds.

`scripts/testbed up` starts the engines and the registry; `scripts/testbed env` prints
the variables read here. Nothing in this module skips: a missing test bed is a failure.
"""

import os
import shlex
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from python_on_whales import DockerClient, Image
from python_on_whales.exceptions import DockerException

REPO_ROOT = Path(__file__).resolve().parents[3]
START_HINT = "run `sudo scripts/testbed up`"
# PyPI goes through a TLS-inspecting proxy here: pip in the build needs this bundle.
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

ENV_NAMES = {
    "registry": "TESTBED_REGISTRY",
    "registry_log": "TESTBED_REGISTRY_LOG",
    "server_host": "TESTBED_SERVER_HOST",
    "classic_builder_host": "TESTBED_CLASSIC_BUILDER_HOST",
    "python_image": "TESTBED_PYTHON_IMAGE",
    "multi_python_image": "TESTBED_MULTI_PYTHON_IMAGE",
    "proxy_image": "TESTBED_PROXY_IMAGE",
    "state": "TESTBED_STATE",
}


class TestbedUnavailable(Exception):
    """The test bed is not set up or not running; the message says what to do."""

    __test__ = False  # not a pytest test class


@dataclass(frozen=True)
class Testbed:
    """Where the test bed's pieces are: registry, server engine, classic-store builder engine, offline base image."""

    __test__ = False  # not a pytest test class

    registry: str
    registry_log: Path
    server_host: str
    classic_builder_host: str  # an engine with the classic image store: builds take the engine path there
    python_image: str
    proxy_image: str  # HAProxy from Debian's package, in the test bed's registry
    state: Path
    # The offline base for linux/amd64 and linux/arm64 (built under QEMU), one index in the registry
    multi_python_image: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "Testbed":
        """Read every TESTBED_* variable; KeyError names the first one missing."""
        values = {field: environ[name] for field, name in ENV_NAMES.items()}
        return cls(
            registry=values["registry"],
            registry_log=Path(values["registry_log"]),
            server_host=values["server_host"],
            classic_builder_host=values["classic_builder_host"],
            python_image=values["python_image"],
            proxy_image=values["proxy_image"],
            state=Path(values["state"]),
            multi_python_image=values["multi_python_image"],
        )


@dataclass(frozen=True)
class BuiltImages:
    """The `deps` and `runtime` targets built from the repository, runtime FROM that deps tag."""

    deps: Image
    deps_ref: str
    deps_tag: str  # the DEPS_TAG build arg, reported by /healthz as `deps`
    runtime: Image
    runtime_ref: str


def parse_env_script(text: str) -> dict[str, str]:
    """The variables of `export NAME=value` lines (what `scripts/testbed env` prints)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            found[name] = value
    return found


def read_testbed(environ: Mapping[str, str] = os.environ) -> Testbed:
    """The test bed from the environment, else from `scripts/testbed env`."""
    if all(name in environ for name in ENV_NAMES.values()):
        return Testbed.from_env(environ)
    script = REPO_ROOT / "scripts" / "testbed"
    try:
        result = subprocess.run([str(script), "env"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as error:
        raise TestbedUnavailable(
            f"cannot read the test bed settings from `{script} env` ({error}): {START_HINT}"
        ) from None
    try:
        return Testbed.from_env({**parse_env_script(result.stdout), **environ})
    except KeyError as missing:
        raise TestbedUnavailable(f"`{script} env` did not print {missing}: {START_HINT}") from None


def connect_engine(testbed: Testbed) -> DockerClient:
    """A client of the builder engine, checked to answer and to hold the offline base image."""
    docker = DockerClient()
    try:
        docker.system.info()
    except DockerException as error:
        reason = (error.stderr or "").strip().splitlines() or [f"exit code {error.return_code}"]
        raise TestbedUnavailable(f"the builder Docker engine is not reachable ({reason[0]}): {START_HINT}") from None
    except OSError as error:  # no docker CLI at all
        raise TestbedUnavailable(f"the docker CLI cannot run ({error}): {START_HINT}") from None
    if not docker.image.exists(testbed.python_image):
        raise TestbedUnavailable(f"the offline base image {testbed.python_image} is missing: {START_HINT}")
    return docker


def build_target(docker: DockerClient, testbed: Testbed, context: Path, *, tag: str, **options: Any) -> Image:
    """Build one Dockerfile stage of `context` into the engine's image store as `tag` (options: build_log's).

    A failed build raises a DockerException that carries the build log.
    """
    for _ in build_log(docker, testbed, context, tag=tag, **options):
        pass
    # By tag: with the containerd image store the --iidfile digest is not an inspectable id.
    return docker.image.inspect(tag)


def build_log(
    docker: DockerClient,
    testbed: Testbed,
    context: Path,
    *,
    target: str,
    tag: str,
    build_args: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Build like build_target, yielding the plain-progress build log line by line."""
    lines = docker.buildx.build(
        context,
        target=target,
        tags=[tag],
        build_args=build_arguments(testbed, build_args),
        secrets=build_secrets(),
        load=True,
        provenance=False,
        progress="plain",
        stream_logs=True,
    )
    assert not isinstance(lines, (Image, type(None)))
    return iter(lines)


def build_arguments(testbed: Testbed, extra: Mapping[str, str] | None) -> dict[str, str]:
    """The offline base image (no Docker Hub here) plus the caller's build args."""
    return {"PYTHON_IMAGE": testbed.python_image, **(extra or {})}


def build_secrets() -> list[str]:
    """The CA bundle as BuildKit secret `ca_bundle` when the machine has one."""
    return [f"id=ca_bundle,src={CA_BUNDLE}"] if CA_BUNDLE.is_file() else []


# -- a vulnerability service for the audit ------------------------------------------------------------
ADVISORIES = Path(__file__).resolve().parents[1] / "fixtures" / "advisories"


class OsvStandin:
    """An OSV-compatible query API (POST /v1/query) on a loopback port, serving the advisory
    records in tests/integration/fixtures/advisories (real advisories, OSV format).

    The audit's public services (PyPI's per-release JSON API, api.osv.dev) are not reachable
    from the test bed: this serves pip-audit real records through its real OSV client. It
    records every (name, version) it was asked about.
    """

    def __init__(self, records_dir: Path = ADVISORIES):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from packaging.version import Version

        records = [json.loads(p.read_text()) for p in sorted(records_dir.glob("*.json"))]
        self.queries: list[tuple[str, str]] = []
        standin = self

        def affects(record: dict, name: str, version: str) -> bool:
            for affected in record.get("affected", []):
                if affected["package"]["name"].lower() != name or affected["package"]["ecosystem"] != "PyPI":
                    continue
                if version in affected.get("versions", []):
                    return True
                for span in affected.get("ranges", []):
                    introduced = fixed = None
                    for event in span.get("events", []):
                        introduced = event.get("introduced", introduced)
                        fixed = event.get("fixed", fixed)
                    low = Version("0") if introduced in (None, "0") else Version(introduced)
                    if low <= Version(version) and (fixed is None or Version(version) < Version(fixed)):
                        return True
            return False

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                query = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                name, version = query["package"]["name"].lower(), query["version"]
                standin.queries.append((name, version))
                body = json.dumps({"vulns": [r for r in records if affects(r, name, version)]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1/query"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
