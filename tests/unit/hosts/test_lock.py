"""The deploy lock: labels naming this process, holders gone or alive, waiting for the lock, releasing and unlocking (a fake lock store)."""

from types import SimpleNamespace

import pytest
from python_on_whales.exceptions import DockerException, NoSuchVolume

from delivery.errors import DeliveryError
from delivery.hosts import lock as lock_module
from delivery.hosts.lock import Holder, Machine, acquire, deploy_lock, my_labels, process_start, release, unlock
from delivery.reporting import Recorded

# -- the deploy lock -----------------------------------------------------------------------------------
HERE = Machine(machine_id="m-here", boot_id="b-1", pid_ns="pid:[1]")


def test_my_labels_name_this_process_and_carry_a_fresh_token() -> None:
    labels = my_labels("pc")
    assert labels["pid"].isdigit() and labels["pid_start"] == process_start(int(labels["pid"]))
    assert f"pid {labels['pid']}" in labels["owner"] and labels[lock_module.LOCK_LABEL] == "pc"
    assert len(labels["token"]) == 32 and labels["token"] != my_labels("pc")["token"]
    assert labels["machine_id"] and labels["boot_id"]  # /etc/machine-id, else the boot id


HERE_LABELS = {"machine_id": "m-here", "boot_id": "b-1", "pid_ns": "pid:[1]"}


@pytest.mark.parametrize(
    ("labels", "gone"),
    [
        ({**HERE_LABELS, "pid": "4242"}, True),  # no such process
        ({**HERE_LABELS, "pid": "100", "pid_start": "555"}, False),  # alive, same start time
        ({**HERE_LABELS, "pid": "100", "pid_start": "111"}, True),  # the pid was reused by another process
        ({**HERE_LABELS, "machine_id": "m-other", "pid": "4242"}, False),  # another machine: cannot be checked
        ({**HERE_LABELS, "boot_id": "b-0", "pid": "4242"}, False),  # another boot (or a clone with our machine id)
        ({**HERE_LABELS, "pid_ns": "pid:[2]", "pid": "4242"}, False),  # a container on this machine
        ({"machine": "vm", "pid": "4242", "pid_ns": "pid:[1]"}, False),  # an older toolkit's labels: no machine id
    ],
    ids=["process-gone", "alive", "pid-reused", "other-machine", "other-boot", "other-namespace", "old-labels"],
)
def test_holder_is_gone(labels: dict[str, str], gone: bool) -> None:
    starts = {100: "555"}
    assert Holder.from_labels(labels).is_gone(HERE, starts.get) is gone


def test_two_machines_with_one_host_name_and_the_initial_pid_namespace_are_told_apart() -> None:
    # Issue 20: `runner` on two machines, both in the initial pid namespace (the same id everywhere).
    elsewhere = {"machine": "runner", "machine_id": "m-other", "boot_id": "b-9", "pid_ns": "pid:[4026531836]", "pid": "7"}
    here = Machine("m-here", "b-1", "pid:[4026531836]")
    assert not Holder.from_labels(elsewhere).is_gone(here, lambda pid: None)


class FakeLockStore:
    """A lock volume: `create` keeps an existing lock's labels (as `docker volume create` does)."""

    def __init__(self, labels: dict[str, str] | None = None, release_after: int | None = None):
        self.held, self.release_after, self.created, self.removed = labels, release_after, 0, 0

    def create(self, labels: dict[str, str]) -> None:
        self.created += 1
        if self.release_after is not None and self.created > self.release_after:
            self.held = None  # the other holder released it
        if self.held is None:
            self.held = dict(labels)

    def labels(self) -> dict[str, str] | None:
        return self.held

    def remove(self) -> None:
        self.removed += 1
        self.held = None


ALIVE = {"owner": "ci@runner pid 7", "since": "2026-11-29T05:00:00Z", "machine": "runner", "machine_id": "m-other",
         "boot_id": "b-9", "pid": "7", "token": "theirs"}
MINE = {"owner": "me@vm pid 1", "since": "2026-11-29T06:00:00Z", **HERE_LABELS, "pid": "1", "token": "ours"}


def take(store: FakeLockStore, wait: float = 0.0, said: list[str] | None = None, starts=lambda pid: "1") -> None:
    acquire(store, MINE, "h", "ssh://h", wait, (Recorded(said) if said is not None else None), HERE, starts,
            sleep=lambda seconds: None)


def test_a_free_lock_is_taken_with_our_token() -> None:
    store = FakeLockStore()
    take(store)
    assert store.held == MINE and store.created == 1


def test_lock_wait_waits_for_the_holder_then_takes_the_lock() -> None:
    store, said = FakeLockStore(ALIVE, release_after=3), []
    take(store, wait=5, said=said)
    assert store.created == 4 and store.held == MINE
    assert said == ["h: waiting up to 5s for the deploy lock, held by ci@runner pid 7 since 2026-11-29T05:00:00Z",
                    "h: got the deploy lock"]


def test_without_a_wait_a_held_lock_fails_at_once() -> None:
    store = FakeLockStore(ALIVE)
    with pytest.raises(DeliveryError) as caught:
        take(store)
    assert store.created == 1 and store.held == ALIVE
    assert str(caught.value).startswith("another deploy to h is running (held by ci@runner pid 7 since 2026-11-29T05:00:00Z): ")
    assert "--lock-wait SECONDS" in str(caught.value) and "`invoke unlock --host ssh://h`" in str(caught.value)


def test_a_lock_still_held_after_the_wait_says_how_long_it_waited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lock_module, "POLL_SECONDS", 0.01)
    with pytest.raises(DeliveryError, match=r"after waiting 0s"):
        acquire(FakeLockStore(ALIVE), MINE, "h", "h", 0.05, None, HERE, lambda pid: "1")


class VanishingStore(FakeLockStore):
    """Every create finds someone else's lock, which is gone by the time it is read."""

    def labels(self) -> None:
        return None


def test_a_lock_that_keeps_vanishing_fails_instead_of_spinning() -> None:
    store = VanishingStore(ALIVE)
    with pytest.raises(DeliveryError, match="vanished 11 times"):
        take(store)
    assert store.created == lock_module.VANISHED_RETRIES + 1


def test_a_stale_lock_is_reported_at_once_with_the_unlock_command() -> None:
    stale = {**ALIVE, **HERE_LABELS}
    store = FakeLockStore(stale)
    with pytest.raises(DeliveryError) as caught:
        take(store, wait=600, starts=lambda pid: None)
    assert store.created == 1
    assert str(caught.value) == (
        "the deploy lock on h is stale: it is held by ci@runner pid 7 since 2026-11-29T05:00:00Z, and that process is gone; "
        "remove it with `invoke unlock --host ssh://h`, then deploy again"
    )


def test_release_removes_only_our_own_lock() -> None:
    store = FakeLockStore(ALIVE)  # ours was forced away and someone else took it
    assert not release(store, "ours") and store.held == ALIVE and store.removed == 0
    store = FakeLockStore(MINE)
    assert release(store, "ours") and store.held is None


def test_deploy_lock_releases_its_own_lock_and_leaves_a_successors() -> None:
    store, said = FakeLockStore(), []
    with deploy_lock(None, "pc", "h", "ssh://h", reporter=Recorded(said), store=store):
        assert store.held is not None
        store.held = dict(ALIVE)  # `invoke unlock --force`, then another deploy took it
    assert store.held == ALIVE and said == ["h: warning: the deploy lock was no longer this deploy's (removed by hand, "
                                            "or `invoke unlock --force`): left as it is"]
    with deploy_lock(None, "pc", "h", "ssh://h", store=(store := FakeLockStore())):
        pass
    assert store.held is None and store.removed == 1


def _volume_lock(monkeypatch: pytest.MonkeyPatch, answer) -> lock_module.VolumeLock:
    """A VolumeLock whose `docker volume inspect` answers `answer` (labels, or an exception to raise)."""
    def inspect(docker, *names):
        if isinstance(answer, BaseException):
            raise answer
        return [answer]

    monkeypatch.setattr(lock_module, "volume_labels", inspect)
    docker = SimpleNamespace(volume=SimpleNamespace(create=lambda *args, **kwargs: None, remove=lambda name: None))
    return lock_module.VolumeLock(docker, "pc", "h")


def _docker_error(stderr: bytes, kind: type[DockerException] = DockerException) -> DockerException:
    return kind(["docker", "volume", "inspect", "pc-deploy-lock"], 1, b"", stderr)


def test_a_missing_lock_volume_is_no_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = _docker_error(b"Error response from daemon: get pc-deploy-lock: no such volume\n", NoSuchVolume)
    assert _volume_lock(monkeypatch, missing).labels() is None
    assert _volume_lock(monkeypatch, {"token": "t"}).labels() == {"token": "t"}


def test_an_engine_that_cannot_answer_about_the_lock_is_one_line_not_no_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    refused = _docker_error(b"permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock\n")
    store = _volume_lock(monkeypatch, refused)
    expected = ("the engine at h could not be asked about the deploy lock: permission denied while trying to connect to "
                "the Docker daemon socket at unix:///var/run/docker.sock")
    with pytest.raises(DeliveryError) as raised:
        store.labels()
    assert str(raised.value) == expected
    with pytest.raises(DeliveryError) as taking:  # not "the deploy lock vanished N times"
        acquire(store, MINE, "h", "ssh://h", 0.0, None, HERE, lambda pid: "1", sleep=lambda seconds: None)
    assert str(taking.value) == expected


def test_a_lock_that_cannot_be_read_at_release_is_a_warning_not_a_new_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class Unreadable(FakeLockStore):
        failing = False

        def labels(self):
            if self.failing:
                raise DeliveryError("the engine at h could not be asked about the deploy lock: EOF")
            return self.held

    store, said = Unreadable(), []
    with deploy_lock(None, "pc", "h", "ssh://h", reporter=Recorded(said), store=store):
        store.failing = True  # the engine went away during the task
    assert said == ["h: warning: the engine at h could not be asked about the deploy lock: EOF; the lock may still be held: "
                    "`invoke status --host ssh://h` shows it, `invoke unlock --host ssh://h` removes it"]


@pytest.mark.parametrize(
    ("held", "force", "outcome"),
    [
        (None, False, "h: no deploy lock was held"),
        ({**MINE, "pid": "4242"}, False, "h: removed a stale deploy lock (held by me@vm pid 1 since 2026-11-29T06:00:00Z)"),
        (MINE, False, "error: the deploy lock on h is held by me@vm pid 1 since 2026-11-29T06:00:00Z, and that process is "
                      "still running on this machine: let it finish, or remove the lock anyway with `invoke unlock --host ssh://h --force`"),
        (ALIVE, False, "error: the deploy lock on h is held by ci@runner pid 7 since 2026-11-29T05:00:00Z, taken on runner "
                       "(another machine, boot or container), which cannot be checked from here: if that deploy is gone, "
                       "remove the lock with `invoke unlock --host ssh://h --force`"),
        (ALIVE, True, "h: removed the deploy lock (held by ci@runner pid 7 since 2026-11-29T05:00:00Z) (--force)"),
    ],
    ids=["none", "stale", "alive-here", "other-machine", "forced"],
)
def test_unlock_refuses_a_live_or_unverifiable_holder_without_force(held, force, outcome) -> None:
    store = FakeLockStore(dict(held) if held else None)
    try:
        result = unlock(None, "pc", "h", "ssh://h", force, store=store, here=HERE, started=lambda pid: "1" if pid == 1 else None)
    except DeliveryError as exc:
        result = f"error: {exc}"
    assert result == outcome
    assert (store.held is None) == (not outcome.startswith("error"))
