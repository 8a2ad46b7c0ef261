"""The pure parts of logs, run-job, the service table and the deploy lock wait."""

import sys
from types import SimpleNamespace

import pytest
from python_on_whales.exceptions import DockerException, NoSuchVolume

from delivery.errors import DeliveryError
from delivery.hosts import lock as lock_module
from delivery.hosts.lock import Holder, Machine, acquire, deploy_lock, my_labels, process_start, release, unlock
from delivery.hosts.services import COMPOSE_SERVICES, compose_services
from delivery.ops.jobs import CronJob, crontab_jobs, job_argv
from delivery.ops.logs import LogsRequest, logs_argv, logs_request, show_logs


# -- crontab --------------------------------------------------------------------------------------------
def test_crontab_jobs_reads_the_entrypoint_jobs() -> None:
    text = """# comment
SHELL=/bin/bash
* * * * * app /usr/local/bin/docker-entrypoint.sh job record-run
*/5  1 * * 1-5 app /usr/local/bin/docker-entrypoint.sh job send-report --verbose
# 0 0 * * * app /usr/local/bin/docker-entrypoint.sh job disabled
0 3 * * * root /usr/sbin/logrotate /etc/logrotate.conf
"""
    assert crontab_jobs(text) == [CronJob("record-run", "* * * * *", "app"), CronJob("send-report", "*/5 1 * * 1-5", "app")]


def test_the_repository_crontab_has_record_run() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "crontab").read_text()
    assert [job.name for job in crontab_jobs(text)] == ["record-run"]


def test_job_argv_runs_the_entrypoint_job_role_by_hand() -> None:
    assert job_argv(["docker", "--host", "ssh://h"], "c1", "record-run") == [
        "docker", "--host", "ssh://h", "exec", "--env", "JOB_BY_HAND=1", "c1", "/usr/local/bin/docker-entrypoint.sh", "job", "record-run",
    ]  # fmt: skip


# -- services ------------------------------------------------------------------------------------------
def test_services_map_to_compose_services() -> None:
    assert compose_services("web") == COMPOSE_SERVICES["web"]
    assert compose_services(None) == tuple(dict.fromkeys(s for v in COMPOSE_SERVICES.values() for s in v))


@pytest.mark.parametrize(
    ("name", "message"),
    [("database", "unknown service 'database': use web, cron, proxy"), ("WEB", "unknown service 'WEB'")],
    ids=["unknown", "case-matters"],
)
def test_unknown_services_are_refused(name: str, message: str) -> None:
    with pytest.raises(DeliveryError, match=message):
        compose_services(name)


def test_a_service_this_deployment_lacks_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(COMPOSE_SERVICES, "proxy", ())
    with pytest.raises(DeliveryError, match="no proxy service"):
        compose_services("proxy")


# -- logs ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("since", ["10m", "1h30m", "1.5h", "1732860000", "2026-11-29", "2026-11-29T05:00:00Z", "2026-11-29T05:00:00+01:00"])
def test_since_forms_docker_accepts(since: str) -> None:
    assert logs_request(("app",), since, None, False).since == since


@pytest.mark.parametrize(
    ("since", "tail", "message"),
    [("yesterday", None, "invalid --since 'yesterday'"), ("10 m", None, "invalid --since"),
     (None, "-1", "invalid --tail '-1': use a number of lines"), (None, "all", "invalid --tail 'all'")],
    ids=["since-word", "since-space", "tail-negative", "tail-word"],
)  # fmt: skip
def test_bad_logs_flags_are_refused(since: str | None, tail: str | None, message: str) -> None:
    with pytest.raises(DeliveryError, match=message):
        logs_request(("app",), since, tail, False)


def test_logs_argv() -> None:
    request = logs_request(("web-blue", "web-green"), "10m", "50", True)
    assert request == LogsRequest(("web-blue", "web-green"), "10m", 50, True)
    assert logs_argv(["docker", "compose", "-p", "pc"], request) == [
        "docker", "compose", "-p", "pc", "--ansi", "never", "logs", "--no-color", "--follow", "--tail", "50",
        "--since", "10m", "web-blue", "web-green",
    ]  # fmt: skip
    assert logs_argv(["dc"], LogsRequest(("app",))) == ["dc", "--ansi", "never", "logs", "--no-color", "app"]


def test_show_logs_prefixes_each_hosts_lines_and_strips_terminal_codes(capsys: pytest.CaptureFixture[str]) -> None:
    script = "import sys; sys.stdout.write('\\x1b[2Kapp-1  | one\\n\\x1b[2Kapp-1  | two\\n')"
    show_logs([("h1", [sys.executable, "-c", script]), ("h2", [sys.executable, "-c", script])], prefix=True)
    lines = capsys.readouterr().out.splitlines()
    assert sorted(lines) == sorted(["h1 | app-1  | one", "h1 | app-1  | two", "h2 | app-1  | one", "h2 | app-1  | two"])
    assert [line for line in lines if line.startswith("h1")] == ["h1 | app-1  | one", "h1 | app-1  | two"]


def test_show_logs_turns_a_failure_into_one_line() -> None:
    script = "import sys; print('no such service: proxy', file=sys.stderr); sys.exit(1)"
    with pytest.raises(DeliveryError, match="reading the logs on h1 failed: no such service: proxy"):
        show_logs([("h1", [sys.executable, "-c", script])], prefix=False)


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
    acquire(store, MINE, "h", "ssh://h", wait, (said.append if said is not None else None), HERE, starts,
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
    with deploy_lock(None, "pc", "h", "ssh://h", say=said.append, store=store):
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
    with deploy_lock(None, "pc", "h", "ssh://h", say=said.append, store=store):
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


# -- the engine API through `docker system dial-stdio` ---------------------------------------------------
def fake_docker(tmp_path, response: bytes):
    """A `docker` whose `system dial-stdio` reads one request and answers `response`."""
    from python_on_whales import DockerClient

    answer = tmp_path / "answer"
    answer.write_bytes(response)
    script = tmp_path / "docker"
    script.write_text(f"#!/bin/sh\nhead -n 1 >{tmp_path}/request\ncat {answer}\n")
    script.chmod(0o755)
    return DockerClient(client_call=[str(script)])


def test_engine_api_reads_a_chunked_json_answer(tmp_path) -> None:
    from delivery.docker.engine import disk_usage

    body = b'{"LayersSize": 123456789, "Images": []}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    docker = fake_docker(tmp_path, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
    assert disk_usage(docker) == 123456789
    assert (tmp_path / "request").read_bytes() == b"GET /system/df?type=image HTTP/1.1\r\n"


def test_engine_api_errors_are_one_line(tmp_path) -> None:
    from delivery.docker.engine import engine_api

    docker = fake_docker(tmp_path, b'HTTP/1.1 500 Internal Server Error\r\nContent-Length: 30\r\n\r\n{"message":"context canceled"}')
    with pytest.raises(DeliveryError, match=r'^the engine API call /x failed: HTTP 500 \{"message":"context canceled"\}$'):
        engine_api(docker, "/x")
    with pytest.raises(DeliveryError, match="^the engine API call /x failed: "):
        engine_api(fake_docker(tmp_path, b""), "/x")
