"""A test bed of the fault and security tests' own, and the faults they inject into it.

Stopping the test bed's registry or restarting its server engines would break whatever
else runs on them at the same time (other test modules, benchmarks). So these tests bring
their own pieces, started exactly like scripts/testbed starts the shared ones:

- `RegistryServer`: a registry of dockerbed.registries (as scripts/testbed starts the shared one)
  on a free loopback port, with its own storage and access log, and optionally htpasswd basic
  auth, token auth (with a `TokenIssuer`: the token server, the only test code in that set-up)
  or TLS (a `TestCA`, trusted through certs.d). It is stopped, killed and started again by its
  pid file, always with the same command line. A `RedirectingFront` in front of it redirects blob downloads to another port,
  throttles or fails a first request, or pages tag lists.
- `ScratchEngine`: a dockerbed.scratch engine like the test bed's overlay2 server engine, on a
  bridge of its own (pcfault0, 10.213.21.1/24), with its data root on a tmpfs of its own: a disk
  the tests can fill. It is restarted with the same command line.
- `FaultBed`: those two, a git clone of the repository whose tasks build into that registry
  and deploy to that engine under a compose project and loopback port of their own, and the
  releases built from the clone (a good one, one that crashes, one whose /healthz answers 500...).

One FaultBed serves the whole session (both test modules): `fault_bed(config)` builds it on
first use and registers its removal (engine stopped, tmpfs unmounted, bridge deleted, registry
stopped, files deleted) with pytest's config cleanup, so it runs whatever happened.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
from python_on_whales import Container, DockerClient

from dockerbed import BedError, certificates, registries, scratch
from dockerbed.engines import Engine
from tests.integration.support.tasks_helpers import (
    Clone,
    TaskRun,
    app_container,
    free_port,
    healthz,
    invoke_executable,
    project_filter,
    task_environment,
    wait_for,
)
from tests.integration.support.testbed import CA_BUNDLE, START_HINT, Testbed

APP_REPOSITORY = "production-control"
DEPS_REPOSITORY = "production-control-deps"
BRIDGE, BRIDGE_CIDR = "pcfault0", "10.213.21.1/24"  # next to pctb0/pctb1 (7, 8) and the benchmarks' (9, 10)
ENGINE_DISK = "1536m"  # the scratch engine's tmpfs: the app image (~350 MB unpacked) a few times over
DEPS_BUILD_TIMEOUT = 1200  # a deps build that misses the cache installs every locked package from PyPI
HEALTHZ_OK = '    db.count_runs(conn)\n    return {"status": "ok"'
HEALTHZ_500 = '    return JSONResponse({"status": "broken"}, status_code=500)\n    return {"status": "ok"'
CRASH_AFTER = 12  # seconds from the web app's start to its crash (crashloop release): healthy, switched, then dead
WEB_IMPORTS = "from production_control.settings import Settings\n"
INDEX_DOC = '    """An HTML overview: version, dependency image and recent job runs."""\n'
CRON_ROLE = "  cron) prepare; start_cron; supervise ;;\n"
APP_LINE = "app = create_app()\n"
SLOW_SECONDS = 6  # GET /slow of the `slowpage` release


class FaultBedUnavailable(Exception):
    """A piece of the fault test bed could not be started; the message says what to do."""


# -- a registry of our own ---------------------------------------------------------------------------
@dataclass
class RegistryServer:
    """A dockerbed registry on 127.0.0.1:<port>, as scripts/testbed runs the shared one.

    Optionally with htpasswd basic auth, token auth (`token`: a TokenIssuer whose key it trusts)
    and TLS (`tls`: a TestCA; the CA goes to certs.d, where engines and skopeo look for it).
    """

    root: Path
    port: int
    htpasswd: Path | None = None
    token: TokenIssuer | None = None
    tls: TestCA | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def spec(self) -> registries.Registry:
        token = None
        if self.token is not None:
            token = registries.TokenAuth(self.token.realm, self.token.service, self.token.issuer, self.token.certificate)
        certificate, key = (self.root / "server.crt", self.root / "server.key") if self.tls else (None, None)
        return registries.Registry(self.root, self.address, certificate, key, self.htpasswd, token)

    log_path = property(lambda self: self.spec.log)
    storage = property(lambda self: self.spec.storage)

    def start(self) -> None:
        """Start it (a no-op when it runs) and wait until /v2/ answers."""
        if self.running():
            return
        spec = self.spec
        if self.tls is not None:
            if spec.tls_certificate and not spec.tls_certificate.exists():
                self.root.mkdir(parents=True, exist_ok=True)
                certificates.server_certificate(self.tls.certificate, self.tls.key, spec.tls_certificate, spec.tls_key,
                                                "127.0.0.1", days=2)  # fmt: skip
            self.tls.trust(self.address)
        try:
            self.process = registries.start(spec, cafile=self.tls.certificate if self.tls else None)
        except BedError as error:
            raise FaultBedUnavailable(f"{error} ({START_HINT})") from None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it by its pid file (SIGKILL: as if it crashed, cutting pulls in flight); certs.d entry removed."""
        if self.tls is not None:
            self.tls.distrust(self.address)
        registries.stop(self.spec, self.process, sig)
        self.process = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def running(self) -> bool:
        return registries.running(self.spec)

    @property
    def url(self) -> str:
        return self.spec.url

    def blob_file(self, digest: str) -> Path:
        """Where the registry keeps a blob's bytes (filesystem storage driver layout)."""
        hexdigest = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def wait_for_access(self, offset: int, *needles: str, timeout: float) -> str:
        """The first access log line after `offset` containing every needle (polled every 20 ms)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_since(offset).splitlines():
                if all(needle in line for needle in needles):
                    return line
            time.sleep(0.02)
        raise AssertionError(f"no access log line with {needles} within {timeout:.0f}s")


# -- what registries with auth and TLS need: a CA, a token issuer, a redirecting front -----------------
def _openssl(*args: str, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(["openssl", *args], input=stdin, capture_output=True)
    if result.returncode != 0:
        raise FaultBedUnavailable(f"openssl {args[0]} failed: {result.stderr.decode(errors='replace').strip()} ({START_HINT})")
    return result.stdout


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


CERTS_D = Path("/etc/docker/certs.d")  # dockerd's and skopeo's per-registry CA directories


@dataclass
class TestCA:
    """A CA of the test bed's own (openssl), trusted per registry address through certs.d."""

    __test__ = False
    root: Path
    trusted: list[Path] = field(default_factory=list)

    certificate = property(lambda self: self.root / "ca.crt")
    key = property(lambda self: self.root / "ca.key")

    def create(self) -> TestCA:
        certificates.create_ca(self.certificate, self.key, "production-control test CA", days=2)
        return self

    def trust(self, address: str) -> None:
        """certs.d/<address>/ca.crt: engines and skopeo then verify the registry at `address` with this CA."""
        directory = CERTS_D / address
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.certificate, directory / "ca.crt")
        if directory not in self.trusted:
            self.trusted.append(directory)

    def distrust(self, address: str) -> None:
        directory = CERTS_D / address
        if directory in self.trusted:
            shutil.rmtree(directory, ignore_errors=True)
            self.trusted.remove(directory)


@dataclass
class TokenIssuer:
    """The token server of a registry with `auth: token`: the only test code in that set-up.

    It answers the registry's Bearer challenge as Docker's token spec says (GET with Basic
    credentials or none, or the OAuth2 password POST), with a JWT signed by a key whose
    certificate the registry trusts (rootcertbundle), granting pull and push to its user and
    pull to anonymous clients when `anonymous_pull`. `expired` makes it hand out tokens that
    have already expired; `requests` records what was asked (scopes, whether credentials came).
    """

    root: Path
    users: dict[str, str]
    anonymous_pull: bool = True
    expired: bool = False
    service: str = "production-control-test"
    issuer: str = "production-control-test-issuer"
    port: int = field(default_factory=lambda: 0)
    requests: list[dict[str, Any]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = field(default=None, init=False, repr=False)
    _x5c: str = field(default="", init=False, repr=False)

    certificate = property(lambda self: self.root / "issuer.crt")
    key = property(lambda self: self.root / "issuer.key")

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def start(self) -> TokenIssuer:
        self.root.mkdir(parents=True, exist_ok=True)
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key), "-out", str(self.certificate),
                 "-days", "2", "-subj", "/CN=production-control test token issuer")  # fmt: skip
        self._x5c = base64.b64encode(_openssl("x509", "-in", str(self.certificate), "-outform", "DER")).decode()
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                user, password = None, None
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                issuer.answer(self, user, password, query.get("scope", []), "token")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                issuer.answer(self, (form.get("username") or [None])[0], (form.get("password") or [None])[0],
                              form.get("scope", [""])[0].split(), "access_token")  # fmt: skip

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def answer(self, handler: BaseHTTPRequestHandler, user: str | None, password: str | None, scopes: list[str], key: str) -> None:
        self.requests.append({"user": user, "scopes": scopes, "credentials": password is not None})
        if user is not None and self.users.get(user) != password:
            body, status = b'{"errors": [{"code": "UNAUTHORIZED", "message": "wrong user name or password"}]}', 401
        else:
            actions = ["pull", "push"] if user is not None else (["pull"] if self.anonymous_pull else [])
            access = []
            for scope in scopes:
                kind, _, rest = scope.partition(":")
                name, _, wanted = rest.rpartition(":")
                granted = [action for action in wanted.split(",") if action in actions or (action == "*" and "push" in actions)]
                if kind == "repository" and name:
                    access.append({"type": kind, "name": name, "actions": granted})
            token = self.sign(user or "", access)
            body, status = json.dumps({key: token, "token": token, "expires_in": 300}).encode(), 200
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def sign(self, subject: str, access: list[dict[str, Any]]) -> str:
        now = int(time.time())
        expires = now - 60 if self.expired else now + 300
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service, "exp": expires, "nbf": now - 120,
                  "iat": now - 120, "jti": uuid.uuid4().hex, "access": access}  # fmt: skip
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = _openssl("dgst", "-sha256", "-sign", str(self.key), stdin=signing_input.encode())
        return f"{signing_input}.{_b64url(signature)}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@dataclass
class RedirectingFront:
    """A front for a registry, on a port of its own, as registries with object storage behave.

    Everything is passed through to the registry, except blob downloads: those are answered
    `307` to a blob store on another loopback port, which serves the bytes from the registry's
    storage and records the headers of each request (no credentials may reach it). With
    `throttle` > 0 the first manifest request is answered 429 with `Retry-After: <throttle>`;
    with `fail_first` (an HTTP status) it is answered that status. With `page_size`, tag
    lists come `page_size` tags at a time with a `Link` to the next page, as registries with
    many tags answer (docker-registry 2.8 itself does not page tag lists).
    """

    registry: RegistryServer
    throttle: int = 0
    fail_first: int = 0
    page_size: int = 0
    tag_requests: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    store_port: int = field(default_factory=free_port)
    store_requests: list[dict[str, str]] = field(default_factory=list)
    redirected: list[dict[str, str]] = field(default_factory=list)  # the blob requests answered 307
    manifest_times: list[tuple[float, int]] = field(default_factory=list)  # (monotonic time, status)
    _servers: list[ThreadingHTTPServer] = field(default_factory=list, init=False, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> RedirectingFront:
        front = self

        class Front(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def handle_any(self) -> None:
                path = urlparse(self.path).path
                if "/manifests/" in path:
                    first = not front.manifest_times
                    if first and front.throttle:
                        front.manifest_times.append((time.monotonic(), 429))
                        return self.reply(429, {"Retry-After": str(front.throttle)}, b"")
                    if first and front.fail_first:
                        front.manifest_times.append((time.monotonic(), front.fail_first))
                        return self.reply(front.fail_first, {}, b"")
                    front.manifest_times.append((time.monotonic(), 200))
                upstream = self.path
                if path.endswith("/tags/list"):
                    front.tag_requests.append(self.path)
                    if front.page_size:
                        upstream = path
                if self.command == "GET" and "/blobs/sha256:" in path:
                    front.redirected.append(dict(self.headers.items()))
                    digest = path.rsplit("/", 1)[1]
                    return self.reply(307, {"Location": f"http://127.0.0.1:{front.store_port}/blobs/{digest}"}, b"")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = [(k, v) for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")]
                headers.append(("Host", front.address))  # upload locations then point back at the front
                with httpx.Client(timeout=60, follow_redirects=False) as client:
                    answer = client.request(self.command, f"http://{front.registry.address}{upstream}", headers=headers, content=body)
                keep = {
                    k: v
                    for k, v in answer.headers.items()
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding")
                }
                if path.endswith("/tags/list") and front.page_size and answer.status_code == 200:
                    return self.page(path, answer.json(), keep)
                self.reply(answer.status_code, keep, answer.content if self.command != "HEAD" else b"",
                           length=len(answer.content) if self.command != "HEAD" else int(answer.headers.get("content-length") or 0))

            def page(self, path: str, listing: dict[str, Any], headers: dict[str, str]) -> None:
                query = parse_qs(urlparse(self.path).query)
                size = int((query.get("n") or [front.page_size])[0])
                tags = sorted(listing.get("tags") or [])
                last = (query.get("last") or [""])[0]
                rest = [tag for tag in tags if tag > last]
                if len(rest) > size:
                    headers["Link"] = f'<{path}?n={size}&last={rest[size - 1]}>; rel="next"'
                self.reply(200, headers, json.dumps({"name": listing.get("name"), "tags": rest[:size]}).encode())

            def reply(self, status: int, headers: Mapping[str, str], body: bytes, length: int | None = None) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                if body:
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

        class Store(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                front.store_requests.append(dict(self.headers.items()))
                data = front.registry.blob_file(self.path.rsplit("/", 1)[1]).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        for handler, port in ((Front, self.port), (Store, self.store_port)):
            server = ThreadingHTTPServer(("127.0.0.1", port), handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers.append(server)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()


# -- an engine of our own ----------------------------------------------------------------------------
class ScratchEngine(scratch.ScratchEngine):
    """A dockerd like the test bed's overlay2 server, its data root on a tmpfs, on its own bridge.

    iptables stays on (as on every server): the embedded DNS of compose networks, which the
    proxy resolves the web slots with, needs its rules in each container's namespace."""

    def __init__(self, root: Path, disk_size: str = ENGINE_DISK, bridge: str = BRIDGE, bridge_cidr: str = BRIDGE_CIDR):
        # root: short, the containerd socket below exec/ must fit in 107 bytes. Each engine running at
        # the same time needs a bridge (and subnet) of its own.
        super().__init__(Engine(root, "overlay2", bridge=bridge, ip_forward=False), bridge_cidr, disk_size)

    socket = property(lambda self: self.engine.socket)
    data_root = property(lambda self: self.engine.data_root)

    @property
    def client(self) -> DockerClient:
        return DockerClient(host=self.host)

    def start(self) -> None:
        try:
            super().start()
        except BedError as error:
            raise FaultBedUnavailable(f"the scratch engine did not start: {error}") from None

    def free_bytes(self) -> int:
        stats = os.statvfs(self.data_root)
        return stats.f_bavail * stats.f_frsize

    @contextmanager
    def disk_filled(self, leave: int) -> Iterator[Path]:
        """Fill the engine's disk with one file, leaving about `leave` bytes free; removed afterwards."""
        filler = self.data_root / f"filler-{uuid.uuid4().hex[:8]}"
        try:
            size = self.free_bytes() - leave
            with filler.open("wb") as f:
                os.posix_fallocate(f.fileno(), 0, size)
            yield filler
        finally:
            filler.unlink(missing_ok=True)


# -- a running `invoke` ------------------------------------------------------------------------------
class RunningTask:
    """An `invoke` command in the background; its stderr lines as they come."""

    def __init__(self, clone: Clone, args: tuple[str, ...], env: Mapping[str, str]):
        self.argv = ("invoke", *args)
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            (str(invoke_executable()), *args), cwd=clone.path, env=task_environment(clone.testbed, {**clone.env, **env}),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self.stderr_lines: list[str] = []
        self._stdout: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stderr, self.stderr_lines), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stdout, self._stdout), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    def wait_for_stderr(self, text: str, timeout: float) -> str:
        """The first stderr line containing `text`; fails if the task ends or the time runs out first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.stderr_lines):
                if text in line:
                    return line
            if self.process.poll() is not None:
                time.sleep(0.2)  # let the readers catch up
                if any(text in line for line in self.stderr_lines):
                    continue
                raise AssertionError(f"`{self.command}` ended before printing {text!r}:\n{self.finish().describe()}")
            time.sleep(0.05)
        raise AssertionError(f"`{self.command}` did not print {text!r} within {timeout:.0f}s:\n{''.join(self.stderr_lines)}")

    @property
    def command(self) -> str:
        return " ".join(self.argv)

    def finish(self, timeout: float = 300) -> TaskRun:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for reader in self._readers:
            reader.join(timeout=5)
        return TaskRun(self.argv, self.process.returncode, "".join(self._stdout), "".join(self.stderr_lines),
                       time.monotonic() - self.started)  # fmt: skip


# -- the bed -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Release:
    name: str
    tag: str
    digest: str
    commit: str


@dataclass(frozen=True)
class Markers:
    """Unique strings inside the build secrets; none may reach an image layer."""

    ca_bundle: str  # a comment line of the CA bundle secret
    index_password: str  # the password in the pip_index_url secret
    env_file: str  # in .env files of the work tree (git-ignored, as developers keep them)

    @classmethod
    def new(cls) -> Markers:
        return cls(*(f"{kind}-marker-{secrets.token_hex(16)}" for kind in ("ca", "index", "dotenv")))

    def all(self) -> tuple[str, ...]:
        return (self.ca_bundle, self.index_password, self.env_file)


def _after_web_imports(repo: Path, code: str) -> None:
    path = repo / "production_control/web.py"
    text = path.read_text()
    assert text.count(WEB_IMPORTS) == 1, "web.py changed: update WEB_IMPORTS"
    path.write_text(text.replace(WEB_IMPORTS, WEB_IMPORTS + code))


def _crash_at_import(repo: Path) -> None:
    _after_web_imports(repo, 'raise RuntimeError("fault test: this release cannot start")\n')


def _healthz_500(repo: Path) -> None:
    path = repo / "production_control/web.py"
    text = path.read_text()
    assert text.count(HEALTHZ_OK) == 1, "web.py changed: update HEALTHZ_OK"
    path.write_text(text.replace(HEALTHZ_OK, HEALTHZ_500))


def _slow_start(repo: Path) -> None:
    _after_web_imports(repo, "import time\ntime.sleep(8)  # fault test: slow to become healthy\n")


def _hang_at_start(repo: Path) -> None:
    _after_web_imports(repo, "import time\ntime.sleep(3600)  # fault test: hangs at start, never healthy\n")


def _crash_loop(repo: Path) -> None:
    """Healthy, then the web process dies CRASH_AFTER seconds after each start: after the switch, in the watch window."""
    _after_web_imports(repo, f"import os, threading\nthreading.Timer({CRASH_AFTER}, os._exit, (3,)).start()  # fault test: crash loop\n")


def _replace_once(repo: Path, relative: str, old: str, new: str) -> None:
    path = repo / relative
    text = path.read_text()
    assert text.count(old) == 1, f"{relative} changed: update the fault test's marker {old!r}"
    path.write_text(text.replace(old, new))


def _root_500(repo: Path) -> None:
    """Healthy on /healthz, broken on its real page: only the watch window can tell."""
    _replace_once(repo, "production_control/web.py", INDEX_DOC,
                  INDEX_DOC + '    return HTMLResponse("fault test: this page is broken", status_code=500)\n')


def _cron_fails(repo: Path) -> None:
    _replace_once(repo, "docker-entrypoint.sh", CRON_ROLE, "  cron) say 'fault test: cron cannot start'; exit 3 ;;\n")


def _slow_page(repo: Path) -> None:
    _replace_once(repo, "production_control/web.py", APP_LINE, APP_LINE + (
        "\n\n@app.get('/slow')\nasync def slow() -> dict[str, str]:  # fault test: a long request\n"
        f"    import asyncio\n    await asyncio.sleep({SLOW_SECONDS})\n    return {{'status': 'slow but fine'}}\n"
    ))


def _code_change(repo: Path) -> None:
    with (repo / "production_control/jobs.py").open("a") as f:
        f.write(f"# fault test: a code-only release {uuid.uuid4().hex}\n")


def _ballast(megabytes: int) -> Callable[[Path], None]:
    """A release with one large new layer: random (incompressible) bytes in the code."""

    def change(repo: Path) -> None:
        (repo / "production_control" / f"ballast-{megabytes}m.bin").write_bytes(os.urandom(megabytes << 20))

    return change


RELEASES: dict[str, Callable[[Path], None]] = {
    "good": lambda repo: None,  # the clone as it is
    "second": _code_change,
    "crash": _crash_at_import,
    "healthz500": _healthz_500,
    "slow": _slow_start,
    "hang": _hang_at_start,
    "root500": _root_500,
    "crashloop": _crash_loop,
    "cronfail": _cron_fails,
    "slowpage": _slow_page,
    "big": _ballast(160),  # pulled for a few seconds: long enough to kill the registry in the middle
    "medium": _ballast(24),  # more than a full disk has left
}


@dataclass
class FaultBed:
    testbed: Testbed
    tmp: Path
    registry: RegistryServer
    engine: ScratchEngine
    markers: Markers
    clone: Clone | None = None
    project: str = field(default_factory=lambda: f"pcfault-{uuid.uuid4().hex[:8]}")
    port: int = field(default_factory=free_port)
    base_commit: str = ""
    deps_build: TaskRun | None = None
    releases: dict[str, Release] = field(default_factory=dict)

    # -- setting up ----------------------------------------------------------------------------------
    @classmethod
    def create(cls, testbed: Testbed) -> FaultBed:
        tmp = Path(tempfile.mkdtemp(prefix="pcf-", dir="/tmp"))  # short: socket paths are limited
        bed = cls(testbed, tmp, RegistryServer(tmp / "registry", free_port()), ScratchEngine(tmp / "engine"), Markers.new())
        try:
            bed.registry.start()
            bed.engine.start()
            bed.clone = Clone.create(tmp / "repo", testbed)
            for env_file in (bed.clone.path / ".env", bed.clone.path / "production_control" / ".env"):
                env_file.write_text(f"DATABASE_PASSWORD={bed.markers.env_file}\n")
            assert bed.clone.is_clean(), ".env is not git-ignored"
            # A lock of our own (one comment more): the dependency stages miss the build cache, so
            # pip runs with the marked secrets, without --no-cache (which rebuilds everything).
            with (bed.clone.path / "requirements.lock").open("a") as f:
                f.write(f"# fault tests {uuid.uuid4().hex}\n")
            bed.base_commit = bed.clone.commit("fault tests: a deps image of their own")
            bed.clone.env.update(bed.task_env())
        except BaseException:
            bed.close()
            raise
        return bed

    def task_env(self) -> dict[str, str]:
        """INVOKE_DEPLOY_* of every task: our registry, project and port; the build secrets with markers."""
        ca = self.tmp / "ca-bundle.pem"
        ca.write_text(CA_BUNDLE.read_text() + f"\n# {self.markers.ca_bundle}\n")
        index = self.tmp / "pip-index-url"
        index.write_text(f"https://fault-test:{self.markers.index_password}@pypi.org/simple\n")
        return {
            "INVOKE_DEPLOY_REGISTRY": self.registry.address,
            "INVOKE_DEPLOY_COMPOSE_PROJECT": self.project,
            "INVOKE_DEPLOY_HTTP_PORT": str(self.port),
            "INVOKE_DEPLOY_HEALTH_TIMEOUT": "30",
            "INVOKE_DEPLOY_MONITOR": "3",  # the watch window test sets its own
            "INVOKE_DEPLOY_CA_BUNDLE": str(ca),
            "INVOKE_DEPLOY_PIP_INDEX_URL_FILE": str(index),
            "HTTP_BIND": "127.0.0.1",  # compose publishes the app on loopback only
        }

    def close(self) -> None:
        with suppress(Exception):
            self.engine.close()
        with suppress(Exception):
            self.registry.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- tasks -----------------------------------------------------------------------------------------
    @property
    def repo(self) -> Clone:
        assert self.clone is not None
        return self.clone

    def invoke(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 300) -> TaskRun:
        return self.repo.invoke(*args, env=env, timeout=timeout)

    def start_invoke(self, *args: str, env: Mapping[str, str] | None = None) -> RunningTask:
        return RunningTask(self.repo, args, env or {})

    def deploy_args(self, release: Release, *flags: str) -> tuple[str, ...]:
        return ("deploy", "--host", self.engine.host, "--version", release.tag, *flags)

    def deploy(self, release: Release, *flags: str, env: Mapping[str, str] | None = None) -> TaskRun:
        return self.invoke(*self.deploy_args(release, *flags), env=env)

    def build_deps(self) -> TaskRun:
        """The session's one deps build: its lock is new to the builder, so pip runs with the marked secrets."""
        if self.deps_build is None:
            run = self.invoke("build-deps", "--json", timeout=DEPS_BUILD_TIMEOUT)
            assert run.returncode == 0, run.describe()
            assert "building deps image" in run.stderr, run.describe()
            self.deps_build = run
        return self.deps_build

    def release(self, name: str) -> Release:
        """The release `name` of RELEASES, built from the base commit plus its change (once)."""
        if name not in self.releases:
            self.build_deps()
            change = RELEASES[name]
            try:
                change(self.repo.path)
                commit = self.repo.commit(f"fault test release: {name}")
                run = self.invoke("build-app", "--json")
                assert run.returncode == 0, run.describe()
                result = run.json()
            finally:
                self.repo.reset_to(self.base_commit)
            self.releases[name] = Release(name, result["tag"], result["digest"], commit)
        return self.releases[name]

    # -- the deployed site -------------------------------------------------------------------------
    @property
    def server(self) -> DockerClient:
        return self.engine.client

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthz(self) -> dict[str, Any] | None:
        return healthz(self.url)

    def serving_commit(self, timeout: float = 30) -> str:
        """The commit of the release answering /healthz (waits for an answer)."""
        return str(wait_for(f"/healthz on {self.url} answered 200", self.healthz, timeout=timeout)["commit"])

    def runs_total(self) -> int:
        def fetch() -> int | None:
            response = httpx.get(f"{self.url}/runs", timeout=5)
            return int(response.json()["total"]) if response.status_code == 200 else None

        return int(wait_for(f"/runs on {self.url} answered 200", fetch, timeout=30))

    def container(self, role: str = "web") -> Container:
        """The running container of `role`: web (the live slot), cron or proxy."""
        return app_container(self.server, self.project, role)

    def containers(self) -> dict[str, str]:
        """Every running container of the project: compose service -> container id."""
        running = self.server.container.list(filters=project_filter(self.project))
        return {(c.config.labels or {}).get("com.docker.compose.service", c.name): c.id for c in running}

    def record_run(self) -> None:
        """One row, written as cron writes it: the job role of the entrypoint in the cron container, as user app."""
        self.server.container.execute(self.container("cron"), ["/usr/local/bin/docker-entrypoint.sh", "job", "record-run"], user="app")

    def ensure_serving(self, release: Release) -> int:
        """`release` deployed and healthy, with at least one more job run recorded; the runs total."""
        if (self.healthz() or {}).get("commit") != release.commit:
            run = self.deploy(release)
            assert run.returncode == 0, run.describe()
        assert self.serving_commit() == release.commit
        self.record_run()
        return self.runs_total()

    def history(self) -> list[dict[str, Any]]:
        run = self.invoke("status", "--host", self.engine.host, "--json")
        assert run.returncode == 0, run.describe()
        return list(run.json()["history"])

    def status(self) -> dict[str, Any]:
        run = self.invoke("status", "--host", self.engine.host, "--json")
        assert run.returncode == 0, run.describe()
        return dict(run.json())


_BED: FaultBed | None = None
_BED_ERROR: str | None = None


def fault_bed(config: Any, testbed: Testbed) -> FaultBed:
    """The session's FaultBed, created on first use; removed when pytest ends (config cleanup)."""
    global _BED, _BED_ERROR
    if _BED_ERROR is not None:
        raise FaultBedUnavailable(_BED_ERROR)
    if _BED is None:
        try:
            _BED = FaultBed.create(testbed)
        except FaultBedUnavailable as error:
            _BED_ERROR = str(error)
            raise

        def close() -> None:
            global _BED
            if _BED is not None:
                _BED.close()
                _BED = None

        config.add_cleanup(close)
    return _BED
