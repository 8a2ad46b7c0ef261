"""Registries of the test bed: Debian's `docker-registry serve CONFIG`, its files under one root.

Access log on (the tests and benchmarks count blob downloads in it), deletes enabled, and
optionally htpasswd or token auth and TLS.
"""

from __future__ import annotations

import signal
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from dockerbed import processes


@dataclass(frozen=True)
class TokenAuth:
    """`auth: token`: the registry trusts tokens signed by the key of `rootcertbundle`."""

    realm: str
    service: str
    issuer: str
    rootcertbundle: Path


@dataclass(frozen=True)
class Registry:
    root: Path
    address: str  # host:port it listens on
    tls_certificate: Path | None = None
    tls_key: Path | None = None
    htpasswd: Path | None = None
    token: TokenAuth | None = None

    # Its files, under its root.
    config_file = property(lambda self: self.root / "config.yml")
    log = property(lambda self: self.root / "registry.log")
    pid_file = property(lambda self: self.root / "pid")
    storage = property(lambda self: self.root / "data")
    url = property(lambda self: f"{'https' if self.tls_certificate else 'http'}://{self.address}")

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


def answers(registry: Registry, cafile: Path | None = None) -> bool:
    """/v2/ answers: 200, or 401 when it wants credentials."""
    context = ssl.create_default_context(cafile=str(cafile) if cafile else None) if registry.tls_certificate else None
    try:
        with urllib.request.urlopen(f"{registry.url}/v2/", timeout=2, context=context) as response:
            return response.status == 200
    except urllib.error.HTTPError as error:
        return error.code == 401
    except (OSError, ValueError):
        return False


def running(registry: Registry) -> bool:
    return processes.owned_pid(registry.pid_file, registry.config_file) is not None


def start(registry: Registry, cafile: Path | None = None, timeout: float = 30) -> subprocess.Popen[bytes] | None:
    """Write its config, start it and wait until /v2/ answers; None when it already answers.
    `cafile`: the CA to check a TLS registry's certificate with."""
    if answers(registry, cafile):
        return None
    registry.storage.mkdir(parents=True, exist_ok=True)
    registry.config_file.write_text(registry.config())
    process = processes.spawn(registry.argv(), registry.log)
    registry.pid_file.write_text(f"{process.pid}\n")
    processes.wait_until_up(f"docker-registry on {registry.address}", lambda: answers(registry, cafile), process,
                            registry.log, timeout)  # fmt: skip
    return process


def stop(registry: Registry, process: subprocess.Popen[bytes] | None = None, sig: int = signal.SIGTERM) -> None:
    """Stop it by its pid file (SIGKILL: as if it crashed, cutting pulls in flight). `process`: reaped."""
    processes.stop(registry.pid_file, registry.config_file, sig)
    registry.pid_file.unlink(missing_ok=True)
    processes.reap(process)
