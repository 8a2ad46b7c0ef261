"""The one error type the invoke tasks show to users."""


class DeliveryError(Exception):
    """A user-facing failure; str() is one line saying what went wrong and what to do.

    Example: "requirements.lock is missing: run `invoke lock`".
    """
