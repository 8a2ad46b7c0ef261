"""Image references: split into registry, repository, tag and digest, and the one-line refusal of a malformed one."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from delivery.config.references import ImageRef, split_image_ref
from delivery.errors import DeliveryError

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        pytest.param("localhost:5000/production-control:1.0.0-0123456789ab",
                     ("localhost:5000", "production-control", "1.0.0-0123456789ab", None), id="host-port-repo-tag"),
        pytest.param("registry.example.com/team/app:v1", ("registry.example.com", "team/app", "v1", None), id="nested-path"),
        pytest.param(f"python@{DIGEST}", ("", "python", None, DIGEST), id="repo-digest"),
        pytest.param(f"python:3.12@{DIGEST}", ("", "python", "3.12", DIGEST), id="tag-and-digest"),
        pytest.param(f"localhost:5000/app@{DIGEST}", ("localhost:5000", "app", None, DIGEST), id="host-port-digest"),
        pytest.param("localhost/app", ("localhost", "app", None, None), id="localhost-no-port"),
        pytest.param("library/python", ("", "library/python", None, None), id="hub-namespace"),
        pytest.param("[::1]:5000/app:x", ("[::1]:5000", "app", "x", None), id="ipv6"),
        pytest.param("python", ("", "python", None, None), id="bare"),
    ],
)  # fmt: skip
def test_split_image_ref(ref: str, expected: tuple[str, str, str | None, str | None]) -> None:
    assert split_image_ref(ref) == ImageRef(*expected)


@pytest.mark.parametrize(
    "ref",
    [
        pytest.param("", id="empty"),
        pytest.param("Python:3", id="uppercase-repository"),
        pytest.param("python:", id="empty-tag"),
        pytest.param("python@sha256:abc", id="short-digest"),
        pytest.param("http://localhost:5000/app", id="scheme"),
        pytest.param("localhost:5000/", id="no-repository"),
        pytest.param("app:tag:more", id="two-tags"),
    ],
)
def test_split_image_ref_errors(ref: str) -> None:
    with pytest.raises(DeliveryError, match=r"invalid image reference .*: use \[registry\[:port\]/\]repository"):
        split_image_ref(ref)


@given(st.text())
def test_split_image_ref_raises_only_delivery_error(text: str) -> None:
    try:
        split_image_ref(text)
    except DeliveryError as error:
        assert "\n" not in str(error)
