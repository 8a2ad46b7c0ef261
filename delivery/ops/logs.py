"""`invoke logs`: the project's container logs on each host, through `docker compose logs`.

With several hosts each line starts with the host's name. With `follow`, every host is
followed at once until Ctrl-C (SIGINT), which stops the `docker compose logs` processes
and ends cleanly.
"""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

from delivery.errors import DeliveryError

# docker's --since: a Unix time, an RFC 3339 date/time, or a Go duration such as 10m or 1h30m.
_SINCE = re.compile(
    r"[0-9]+(?:\.[0-9]+)?"
    r"|(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|s|m|h))+"
    r"|[0-9]{4}-[0-9]{2}-[0-9]{2}(?:T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:Z|[+-][0-9]{2}:[0-9]{2})?)?"
)

# compose 2.26 writes "erase line" before every line, even with --ansi never and no terminal.
_ERASE_LINE = re.compile(r"\x1b\[[0-9;]*K")


@dataclass(frozen=True)
class LogsRequest:
    services: tuple[str, ...]
    since: str | None = None
    tail: int | None = None
    follow: bool = False


def logs_request(services: tuple[str, ...], since: str | None, tail: str | int | None, follow: bool) -> LogsRequest:
    """Validate the flags into a request (one-line errors, before any host is touched)."""
    if since is not None and not _SINCE.fullmatch(since):
        raise DeliveryError(f"invalid --since {since!r}: use a duration (10m, 1h30m), a date/time (2026-11-29T05:00:00Z) or a Unix time")
    count: int | None = None
    if tail is not None:
        text = str(tail).strip()
        if not (text.isascii() and text.isdigit()):
            raise DeliveryError(f"invalid --tail {tail!r}: use a number of lines, e.g. 100")
        count = int(text)
    return LogsRequest(services, since, count, follow)


def logs_argv(compose_cmd: Sequence[str], request: LogsRequest) -> list[str]:
    """The `docker compose logs` command line for one host."""
    argv = [*compose_cmd, "--ansi", "never", "logs", "--no-color"]
    if request.follow:
        argv.append("--follow")
    if request.tail is not None:
        argv += ["--tail", str(request.tail)]
    if request.since is not None:
        argv += ["--since", request.since]
    return argv + list(request.services)


def show_logs(commands: Sequence[tuple[str, list[str]]], prefix: bool, out: IO[str] | None = None) -> None:
    """Run each host's logs command (label, argv) at once and copy their lines to `out`.

    Ctrl-C stops them all and returns normally. A command that fails raises one DeliveryError.
    """
    procs = [(label, _start(argv)) for label, argv in commands]
    lock = threading.Lock()
    threads = [threading.Thread(target=_copy, args=(label, proc.stdout, out or sys.stdout, lock, prefix), daemon=True)
               for label, proc in procs]
    for thread in threads:
        thread.start()
    # Ctrl-C (even when started with SIGINT ignored, as shells do for background jobs) and SIGTERM both stop cleanly.
    previous = [(sig, signal.signal(sig, signal.default_int_handler)) for sig in (signal.SIGINT, signal.SIGTERM)]
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    except KeyboardInterrupt:
        _stop([proc for _, proc in procs])
        return
    finally:
        for sig, handler in previous:
            signal.signal(sig, handler)
    for label, proc in procs:
        if proc.wait() != 0:
            lines = [line.strip() for line in (proc.stderr.read() if proc.stderr else "").splitlines() if line.strip()]
            raise DeliveryError(f"reading the logs on {label} failed: {lines[-1] if lines else f'exit {proc.returncode}'}")


def _start(argv: list[str]) -> subprocess.Popen[str]:
    # Its own session: the terminal's Ctrl-C reaches this process only, which stops them.
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True, errors="replace", bufsize=1, start_new_session=True)


def _copy(label: str, stream: IO[str], out: IO[str], lock: threading.Lock, prefix: bool) -> None:
    for line in stream:
        line = _ERASE_LINE.sub("", line)
        with lock:
            out.write(f"{label} | {line}" if prefix else line)
            out.flush()


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
