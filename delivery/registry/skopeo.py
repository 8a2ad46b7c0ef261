"""skopeo's command line and its answers: the argv for a command against the registry, and the one reason,
and kind of failure, in what it prints when it fails (pure); where it finds a registry's CA (`certs_dir`).
delivery/registry/client.py runs it."""
from __future__ import annotations

import json
import re
from pathlib import Path

CERTS_DIRS = (Path("/etc/docker/certs.d"), Path("/etc/containers/certs.d"))  # where engines and skopeo find a registry's CA
RETRIES = 3  # skopeo --retry-times: connection errors and resets (a 429 skopeo retries itself, after its Retry-After)
BACKOFF = 1.0  # seconds before our first retry of a 5xx answer (skopeo does not retry those); doubled each time

_MISSING = ("manifest unknown", "name unknown", "repository name not known", "404 (not found)", "not found")
_REFUSED = ("unauthorized", "authentication required", "denied", "invalid username/password", "forbidden")
_UNREACHABLE = ("connection refused", "no such host", "i/o timeout", "network is unreachable", "connection reset",
                "dial tcp", "eof")
_TLS = ("x509", "certificate", "tls:", "http response to https client")
_UNAVAILABLE = re.compile(r"\b5[0-9][0-9] (internal server error|not implemented|bad gateway|service unavailable|gateway timeout)|"
                          r"unexpected http status: 5[0-9][0-9]", re.IGNORECASE)


def skopeo_argv(command: str, reference: str, *, tls_verify: bool, auth: Path | None, timeout: float | None,
                extra: tuple[str, ...] = (), source: str | None = None, registry_side: str = "dest") -> list[str]:
    """Pure: the skopeo command line for `command` against `reference` (docker://...).

    For `copy`, `source` is what is copied (oci:LAYOUT) and the registry options are the --dest-* ones
    (registry_side="src" when the registry is the source, `source`, and `reference` a local dir:).
    """
    side = f"{registry_side}-" if command == "copy" else ""
    argv = ["skopeo", command, *extra, f"--retry-times={RETRIES}", f"--{side}tls-verify={'true' if tls_verify else 'false'}"]
    argv += [f"--{side}authfile", str(auth)] if auth else [f"--{side}no-creds"]
    if timeout is not None:
        argv.insert(2, f"--command-timeout={int(timeout)}s")
    return argv + ([source] if source else []) + [reference]


def skopeo_reason(stderr: str) -> str:
    """Pure: the message of skopeo's last `level=fatal msg="..."` line (or its last line)."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if not lines:
        return "no message"
    last = lines[-1]
    if 'msg="' in last:
        text = last.split('msg="', 1)[1].rsplit('"', 1)[0]
        try:
            last = json.loads(f'"{text}"')
        except ValueError:
            last = text.replace('\\"', '"')
    parts: list[str] = []  # one line: skopeo's messages may hold newlines and repeat themselves
    for part in last.split("\n"):
        part = " ".join(part.split())
        if part and part not in parts:
            parts.append(part)
    last = " ".join(parts)
    for noise in ("Error parsing image name ", "Error listing repository tags: ", "Error during inspect: "):
        if last.startswith(noise):
            last = last[len(noise):]
            if last.startswith('"docker://'):
                last = last.split('": ', 1)[-1]
    return last


def failure_kind(reason: str) -> str:
    """Pure: missing | refused | tls | unavailable (a 5xx answer) | unreachable | other, from skopeo's message."""
    lowered = reason.lower()
    if _UNAVAILABLE.search(reason):
        return "unavailable"
    for kind, needles in (("refused", _REFUSED), ("tls", _TLS), ("missing", _MISSING), ("unreachable", _UNREACHABLE)):
        if any(needle in lowered for needle in needles):
            return kind
    return "other"


def certs_dir(host: str) -> Path | None:
    """The certs.d directory that holds `host`'s CA, if any (as dockerd and skopeo look it up)."""
    for base in CERTS_DIRS:
        if (base / host).is_dir():
            return base / host
    return None
