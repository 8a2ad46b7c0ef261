"""A registry on this machine: Debian's `docker-registry serve CONFIG`, its files under one root.

The one module the toolkit and the test bed share: `invoke registry` starts a developer's
loopback registry with it (delivery/registry/client.py), and the test bed its registries
(dockerbed/registries.py, which adds stopping them). Standard library only, and it imports
nothing else of delivery/: scripts/testbed runs the test bed with the system python3, before
the project's venv exists.

Access log on (the tests and benchmarks count blob downloads in it), deletes enabled, and
optionally htpasswd or token auth and TLS.
"""

from __future__ import annotations

import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


class NotStarted(Exception):
    """A background process did not come up; the message says what it printed last and where its log is."""



@dataclass(frozen=True)
class TokenAuth:
    """`auth: token`: the registry trusts tokens signed by the key of `rootcertbundle`."""

    realm: str
    service: str
    issuer: str
    rootcertbundle: Path


@dataclass(frozen=True)
class RegistryServer:
    """A docker-registry process: where its files are, the address it listens on, its auth and TLS."""

    root: Path
    address: str  # host:port it listens on
    tls_certificate: Path | None = None
    tls_key: Path | None = None
    htpasswd: Path | None = None
    token: TokenAuth | None = None

    @property
    def config_file(self) -> Path:
        return self.root / "config.yml"

    @property
    def log(self) -> Path:
        return self.root / "registry.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "pid"

    @property
    def storage(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls_certificate else 'http'}://{self.address}"

    def argv(self) -> list[str]:
        return ["docker-registry", "serve", str(self.config_file)]

    def config(self) -> str:
        """Pure: the registry's config.yml."""
        auth = ""
        if self.htpasswd is not None:
            auth = f"auth:\n  htpasswd:\n    realm: production-control-test\n    path: {self.htpasswd}\n"
        elif self.token is not None:
            auth = (f"auth:\n  token:\n    realm: {self.token.realm}\n    service: {self.token.service}\n"
                    f"    issuer: {self.token.issuer}\n    rootcertbundle: {self.token.rootcertbundle}\n")  # fmt: skip
        tls = ""
        if self.tls_certificate is not None:
            tls = f"  tls:\n    certificate: {self.tls_certificate}\n    key: {self.tls_key}\n"
        return (
            "version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n  delete:\n    enabled: true\n"
            f"{auth}http:\n  addr: {self.address}\n{tls}"
        )


def answers(server: RegistryServer, cafile: Path | None = None) -> bool:
    """/v2/ answers: 200, or 401 when it wants credentials."""
    context = ssl.create_default_context(cafile=str(cafile) if cafile else None) if server.tls_certificate else None
    try:
        with urllib.request.urlopen(f"{server.url}/v2/", timeout=2, context=context) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError as error:
        return error.code == 401
    except (OSError, ValueError):
        return False


def spawn(argv: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """`argv` in a session of its own (it outlives its caller), output appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(list(argv), stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)


def wait_until_up(what: str, up: Callable[[], bool], process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Poll `up` until True; NotStarted with the log's last line when the process ends or time runs out."""
    deadline = time.monotonic() + timeout
    while not up():
        exited = process.poll() is not None
        if exited or time.monotonic() > deadline:
            tail = (log.read_text(errors="replace").strip().splitlines() or [""])[-1] if log.exists() else ""
            ended = f"exited ({process.returncode})" if exited else f"did not answer in {timeout:.0f} s"
            raise NotStarted(f"{what} {ended}: {tail} (log: {log})")
        time.sleep(0.1)


def start(server: RegistryServer, cafile: Path | None = None, timeout: float = 30) -> subprocess.Popen[bytes] | None:
    """Write its config, start it and wait until /v2/ answers; None when it already answers.
    `cafile`: the CA to check a TLS registry's certificate with. NotStarted when it does not come up."""
    if answers(server, cafile):
        return None
    server.storage.mkdir(parents=True, exist_ok=True)
    server.config_file.write_text(server.config())
    process = spawn(server.argv(), server.log)
    server.pid_file.write_text(f"{process.pid}\n")
    wait_until_up(f"docker-registry on {server.address}", lambda: answers(server, cafile), process, server.log, timeout)
    return process
