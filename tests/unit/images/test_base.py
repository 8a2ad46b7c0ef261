"""The base image: a configured digest split off its name, and the pinned reference."""

from delivery.images.base import BaseImage, strip_digest

BASE = BaseImage("python:3.12.12-slim-bookworm", "sha256:" + "a" * 64)


# -- base ----------------------------------------------------------------------------------------------
def test_a_configured_digest_is_split_off() -> None:
    assert strip_digest(f"python:3.12@{BASE.digest}") == ("python:3.12", BASE.digest)
    assert strip_digest("localhost:5000/python:3.12") == ("localhost:5000/python:3.12", None)
    assert BASE.pinned == f"python:3.12.12-slim-bookworm@{BASE.digest}"
