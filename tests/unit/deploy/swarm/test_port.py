"""The swarm port's pure part: the tag an image reference names; and the system clock the steps use by default."""

import time

import pytest

from delivery.deploy.swarm.port import SYSTEM_CLOCK, tag_of
from delivery.errors import DeliveryError


@pytest.mark.parametrize(
    ("image", "tag"),
    [
        pytest.param("reg:5000/app:1.0.1-b@sha256:" + "d" * 64, "1.0.1-b", id="pinned"),
        pytest.param("reg:5000/app:1.0.1-b", "1.0.1-b", id="tag"),
        pytest.param("haproxy:3.0", "3.0", id="hub"),
        pytest.param("reg:5000/app", None, id="no-tag"),
        pytest.param("reg:5000/app@sha256:" + "d" * 64, None, id="digest-only"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="none"),
    ],
)
def test_tag_of(image: str | None, tag: str | None) -> None:
    assert tag_of(image) == tag


def test_tag_of_a_malformed_reference_is_one_line() -> None:
    with pytest.raises(DeliveryError, match="^invalid image reference 'Reg/App:1'"):
        tag_of("Reg/App:1")


def test_the_system_clock_is_wall_and_monotonic_time() -> None:
    before = time.time()
    assert before <= SYSTEM_CLOCK.time() <= time.time()
    first = SYSTEM_CLOCK.monotonic()
    SYSTEM_CLOCK.sleep(0.001)
    assert SYSTEM_CLOCK.monotonic() > first
