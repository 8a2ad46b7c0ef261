"""The one error type the invoke tasks show to users."""


class DeliveryError(Exception):
    """A user-facing failure; str() is one line saying what went wrong and what to do.

    Example: "requirements.lock is missing: run `invoke lock`".
    """


class HandoverFailed(DeliveryError):
    """The new release did not take over on a compose host; what was serving still is."""


class CronFailed(DeliveryError):
    """The web app switched to the new release, but its cron did not start (the old cron was put back)."""
