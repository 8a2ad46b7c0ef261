"""Every exception class of the toolkit.

DeliveryError and its kinds are what the invoke tasks show to users, as one line and a non-zero exit;
Interrupted is the signal a task got (not an Exception, so cleanup paths let it through).
(registry/local.py keeps its own NotStarted: it is shared with the test bed, which imports only the standard library and it.)
"""

from __future__ import annotations

import signal
from typing import Any


class DeliveryError(Exception):
    """A user-facing failure; str() is one line saying what went wrong and what to do.

    Example: "requirements.lock is missing: run `invoke lock`".
    """


class HandoverFailed(DeliveryError):
    """The new release did not take over on a compose host; what was serving still is."""


class CronFailed(DeliveryError):
    """The web app switched to the new release, but its cron did not start (the old cron was put back)."""


class Interrupted(BaseException):
    """The task got a signal; not an Exception, so `except Exception` cleanup paths let it through."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class DeployFailed(DeliveryError):
    """A deploy that failed after doing something: carries the reports so far (for --json)."""

    def __init__(self, message: str, reports: list[dict[str, Any]]):
        super().__init__(message)
        self.reports = reports


class RegistryUnreachable(DeliveryError):
    """Nothing answers at the registry's address (as opposed to an answer we do not like)."""


class OlderDebianPackages(DeliveryError):
    """A deps image with older Debian packages than the one it follows (`refuse_older`)."""
