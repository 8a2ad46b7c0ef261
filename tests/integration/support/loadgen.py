"""A bounded load generator on loopback: a fixed request rate for at most a given time.

Used by the zero-downtime tests and the benchmark: requests go out at `rate` per
second (each on its own connection, from a small thread pool) while a deploy
runs, and stop by themselves after `max_seconds` or when the block ends. Every
failure is counted: connection errors, timeouts and 5xx answers.
"""

from __future__ import annotations

import http.client
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Outcome:
    sent_at: float  # seconds since the load started
    seconds: float
    status: int | None  # None: no HTTP answer
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.status is None or self.status >= 500


@dataclass
class LoadResult:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.failed]

    @property
    def unavailable_seconds(self) -> float:
        """From the first failed request to the end of the last one of a run of failures (summed)."""
        total, run_start, run_end = 0.0, None, None
        for outcome in sorted(self.outcomes, key=lambda o: o.sent_at):
            if outcome.failed:
                run_start = outcome.sent_at if run_start is None else run_start
                run_end = outcome.sent_at + outcome.seconds
            elif run_start is not None:
                total += run_end - run_start
                run_start = run_end = None
        if run_start is not None:
            total += run_end - run_start
        return round(total, 2)

    def summary(self) -> dict[str, object]:
        statuses: dict[str, int] = {}
        for outcome in self.outcomes:
            key = str(outcome.status) if outcome.status is not None else (outcome.error or "error")
            statuses[key] = statuses.get(key, 0) + 1
        return {"requests": self.requests, "failed": len(self.failures),
                "unavailable_seconds": self.unavailable_seconds, "answers": statuses}


def request(port: int, path: str, timeout: float, host: str = "127.0.0.1") -> tuple[int | None, str | None]:
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        response.read()
        return response.status, None
    except (OSError, http.client.HTTPException) as exc:
        return None, type(exc).__name__
    finally:
        connection.close()


class Load:
    """`with Load(port) as load: ...` sends GET `path` at `rate`/s until the block ends (or max_seconds)."""

    def __init__(self, port: int, path: str = "/", rate: float = 50, max_seconds: float = 300, timeout: float = 10,
                 host: str = "127.0.0.1"):
        self.port, self.path, self.rate, self.max_seconds, self.timeout, self.host = port, path, rate, max_seconds, timeout, host
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._pool = ThreadPoolExecutor(max_workers=max(4, int(rate * timeout / 4)))

    def __enter__(self) -> Load:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> LoadResult:
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True)
        return self.result

    def _one(self, sent_at: float) -> None:
        status, error = request(self.port, self.path, self.timeout, self.host)
        outcome = Outcome(round(sent_at, 3), round(time.monotonic() - self._started - sent_at, 3), status, error)
        with self._lock:
            self.result.outcomes.append(outcome)

    def _run(self) -> None:
        interval = 1.0 / self.rate
        n = 0
        while not self._stop.is_set():
            due = n * interval
            if due > self.max_seconds:
                break
            delay = self._started + due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            self._pool.submit(self._one, due)
            n += 1
