"""The Reporter doubles of delivery/reporting.py: Recorded keeps each step's line in order, Silent drops them."""

from delivery.reporting import Recorded, Reporter, Silent


def announce(reporter: Reporter) -> None:
    reporter.step("pulling 2.0.0 on prod-1")
    reporter.step("switched prod-1 to 2.0.0")


def test_recorded_keeps_every_step_in_order() -> None:
    recorded = Recorded()
    announce(recorded)
    assert recorded.lines == ["pulling 2.0.0 on prod-1", "switched prod-1 to 2.0.0"]


def test_silent_drops_every_step() -> None:
    assert Silent().step("anything") is None
    announce(Silent())
