"""Background processes of the test bed: started detached with a log, found again by pid file."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path

from delivery.registry import local  # spawning and waiting: shared with delivery/ (standard library only)
from dockerbed import BedError


def alive(pid: int) -> bool:
    """`pid` runs (a zombie does not count: its parent may never reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def owned_pid(pid_file: Path, marker: Path) -> int | None:
    """The pid of `pid_file` when that process still runs and is ours: its command line names `marker`
    (the config file it was started with). A pid file outlives a reboot under /var/tmp, and its number
    may then belong to any other process: that one is neither ours to signal nor a reason to wait."""
    pid = read_pid(pid_file)
    if pid is None or not alive(pid):
        return None
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return pid if str(marker).encode() in argv else None


def clear_stale(pid_file: Path, marker: Path) -> None:
    """Remove `pid_file` unless it names a running process of ours (dockerd refuses to start while the
    pid in its pid file runs, whatever that process is)."""
    if owned_pid(pid_file, marker) is None:
        pid_file.unlink(missing_ok=True)


def signal_and_wait(pid: int, sig: int = signal.SIGTERM, timeout: float = 15) -> bool:
    """Send `sig` to `pid`; True once it is gone within `timeout` seconds."""
    with suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def stop(pid_file: Path, marker: Path, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    """Stop the process of `pid_file` with `sig` (SIGKILL when it outlives `timeout`); no-op when it is gone
    or the pid is no longer ours (see owned_pid)."""
    pid = owned_pid(pid_file, marker)
    if pid is not None and not signal_and_wait(pid, sig, timeout):
        signal_and_wait(pid, signal.SIGKILL, 5)


def reap(process: subprocess.Popen[bytes] | None) -> None:
    """Collect a stopped child's exit status (killing it if it still runs), so no zombie stays."""
    if process is None:
        return
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def spawn(argv: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """`argv` in a session of its own (it outlives its caller), output appended to `log`."""
    return local.spawn(argv, log)


def wait_until_up(what: str, answers: Callable[[], bool], process: subprocess.Popen[bytes], log: Path,
                  timeout: float) -> None:
    """Poll `answers` until True; BedError with the log's last lines when the process ends or time runs out."""
    try:
        local.wait_until_up(what, answers, process, log, timeout)
    except local.NotStarted as error:
        raise BedError(str(error)) from None


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True)


def check(*argv: str) -> str:
    """Run `argv`; its stdout, or BedError naming the command and its error."""
    result = run(*argv)
    if result.returncode != 0:
        raise BedError(f"`{' '.join(argv)}` failed: {result.stderr.strip()} (the test bed needs root)")
    return result.stdout
