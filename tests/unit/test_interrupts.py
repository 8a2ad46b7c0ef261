"""delivery/interrupts.py: signals become one Interrupted exception, never during a restore."""

import os
import signal

import pytest

from delivery.errors import Interrupted
from delivery.interrupts import SignalRelay, restoring_on_signals, shielded
from delivery.reporting import Recorded, Silent


def test_the_first_signal_raises_and_later_ones_are_only_said() -> None:
    said: list[str] = []
    relay = SignalRelay(Recorded(said))
    with pytest.raises(Interrupted) as caught:
        relay(signal.SIGTERM)
    assert str(caught.value) == "interrupted by SIGTERM" and caught.value.exit_code == 143
    relay(signal.SIGINT)  # a cancelled CI job's second signal: the cleanup goes on
    assert said == ["SIGINT again: still cleaning up, then the task ends"]


def test_a_signal_during_a_restore_waits_for_its_end() -> None:
    said: list[str] = []
    relay = SignalRelay(Recorded(said))
    finished = []
    with pytest.raises(Interrupted, match="SIGHUP"):
        with relay.shielded():
            relay(signal.SIGHUP)
            relay(signal.SIGTERM)
            finished.append(True)
    assert finished == [True]
    assert said == ["SIGHUP: restoring what was serving first, then the task ends",
                    "SIGTERM: restoring what was serving first, then the task ends"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_a_real_signal_runs_the_cleanup_and_the_handlers_come_back(sig: signal.Signals) -> None:
    before = signal.getsignal(sig)
    cleaned = []
    with pytest.raises(Interrupted) as caught:
        with restoring_on_signals(Silent()):
            try:
                os.kill(os.getpid(), sig)
                pytest.fail("the signal did not interrupt")
            finally:
                cleaned.append(True)
    assert caught.value.signum == sig and cleaned == [True]
    assert signal.getsignal(sig) == before


def test_shielded_outside_a_task_is_a_no_op() -> None:
    with shielded():
        pass
