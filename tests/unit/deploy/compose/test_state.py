"""The state of a compose handover: the pure plan (which slot is new, what each service runs) and the slot a new
handover records in its report."""

from __future__ import annotations

from delivery.deploy.compose.state import plan_handover
from tests.unit.deploy.compose.conftest import NEW, OLD, PIN, _handover, _site


def test_the_plan_starts_the_pin_in_the_free_slot_and_keeps_what_the_others_run() -> None:
    slots = plan_handover(_site("blue"), NEW, PIN)
    assert (slots.old, slots.new) == ("blue", "green")
    assert slots.tags == {"blue": OLD, "green": PIN, "cron": OLD} and slots.previous_cron == OLD


def test_a_first_deploy_starts_in_blue_and_its_cron_runs_the_new_release() -> None:
    slots = plan_handover(_site(None), NEW, None)
    assert (slots.old, slots.new, slots.tags, slots.previous_cron) == (None, "blue", {"blue": NEW, "green": None, "cron": NEW}, None)


def test_the_plan_sets_the_reports_slot() -> None:
    h, _, _ = _handover(_site("green"))
    assert (h.old, h.new, h.report.slot) == ("green", "blue", "blue")
