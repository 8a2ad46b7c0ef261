"""The pure parts of logs, run-job, the service table and the deploy lock wait."""

import sys
from typing import Any

import pytest
from python_on_whales.exceptions import DockerException

from delivery import lock as lock_module
from delivery.errors import DeliveryError
from delivery.jobs import CronJob, crontab_jobs, job_argv
from delivery.lock import Holder, deploy_lock, my_labels, process_start
from delivery.logs import LogsRequest, logs_argv, logs_request, show_logs
from delivery.services import COMPOSE_SERVICES, compose_services


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
def test_my_labels_name_this_process() -> None:
    labels = my_labels()
    assert labels["pid"].isdigit() and labels["pid_start"] == process_start(int(labels["pid"]))
    assert f"pid {labels['pid']}" in labels["owner"]


@pytest.mark.parametrize(
    ("labels", "gone"),
    [
        ({"machine": "here", "pid": "4242"}, True),  # no such process
        ({"machine": "here", "pid": "100", "pid_start": "555"}, False),  # alive, same start time
        ({"machine": "here", "pid": "100", "pid_start": "111"}, True),  # the pid was reused by another process
        ({"machine": "elsewhere", "pid": "4242"}, False),  # cannot be checked from here
        ({"owner": "old@here pid 4242"}, False),  # a lock taken by an older version: no machine label
        ({"machine": "here", "pid": "4242", "pid_ns": "pid:[1]"}, True),  # same pid namespace
        ({"machine": "here", "pid": "4242", "pid_ns": "pid:[2]"}, False),  # a container with our host name
    ],
    ids=["process-gone", "alive", "pid-reused", "other-machine", "old-labels", "same-namespace", "other-namespace"],
)
def test_holder_is_gone(labels: dict[str, str], gone: bool) -> None:
    starts = {100: "555"}
    assert Holder.from_labels(labels).is_gone("here", "pid:[1]", starts.get) is gone


class FakeNetworks:
    """A lock network held by `holder` for `held_for` create attempts."""

    def __init__(self, holder: dict[str, str], held_for: int):
        self.holder, self.held_for, self.created, self.removed = holder, held_for, 0, 0

    def create(self, name: str, labels: dict[str, str]) -> None:
        self.created += 1
        if self.created <= self.held_for:
            raise DockerException(["docker", "network", "create"], 1, stderr=b"network with name x already exists")

    def inspect(self, name: str) -> Any:
        return type("Net", (), {"labels": self.holder})()

    def remove(self, name: str) -> None:
        self.removed += 1


class FakeDocker:
    def __init__(self, networks: FakeNetworks):
        self.network = networks


ALIVE = {"owner": "ci@runner pid 7", "since": "2026-11-29T05:00:00Z", "machine": "another-machine", "pid": "7"}


def test_lock_wait_waits_for_the_holder_then_takes_the_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lock_module, "POLL_SECONDS", 0.01)
    networks, said = FakeNetworks(ALIVE, held_for=3), []
    with deploy_lock(FakeDocker(networks), "pc", "h", "ssh://h", wait=5, say=said.append):
        assert networks.created == 4
    assert networks.removed == 1
    assert said == ["h: waiting up to 5s for the deploy lock, held by ci@runner pid 7 since 2026-11-29T05:00:00Z",
                    "h: got the deploy lock"]


def test_without_a_wait_a_held_lock_fails_at_once() -> None:
    networks = FakeNetworks(ALIVE, held_for=100)
    with pytest.raises(DeliveryError) as caught:
        with deploy_lock(FakeDocker(networks), "pc", "h", "ssh://h"):
            pass
    assert networks.created == 1
    assert str(caught.value).startswith("another deploy to h is running (held by ci@runner pid 7 since 2026-11-29T05:00:00Z): ")
    assert "--lock-wait SECONDS" in str(caught.value) and "`invoke unlock --host ssh://h`" in str(caught.value)


def test_a_lock_still_held_after_the_wait_says_how_long_it_waited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lock_module, "POLL_SECONDS", 0.01)
    with pytest.raises(DeliveryError, match=r"after waiting 0s"):
        with deploy_lock(FakeDocker(FakeNetworks(ALIVE, held_for=10**6)), "pc", "h", "h", wait=0.05):
            pass


def test_a_stale_lock_is_reported_at_once_with_the_unlock_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lock_module.socket, "gethostname", lambda: "this-machine")
    monkeypatch.setattr(lock_module, "process_start", lambda pid: None)
    monkeypatch.setattr(lock_module, "pid_namespace", lambda: "pid:[1]")
    stale = {**ALIVE, "machine": "this-machine", "pid_ns": "pid:[1]"}
    networks = FakeNetworks(stale, held_for=10**6)
    with pytest.raises(DeliveryError) as caught:
        with deploy_lock(FakeDocker(networks), "pc", "h", "ssh://h", wait=600):
            pass
    assert networks.created == 1
    assert str(caught.value) == (
        "the deploy lock on h is stale: it is held by ci@runner pid 7 since 2026-11-29T05:00:00Z, and that process is gone; "
        "remove it with `invoke unlock --host ssh://h`, then deploy again"
    )


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
    from delivery.engine import disk_usage

    body = b'{"LayersSize": 123456789, "Images": []}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    docker = fake_docker(tmp_path, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
    assert disk_usage(docker) == 123456789
    assert (tmp_path / "request").read_bytes() == b"GET /system/df?type=image HTTP/1.1\r\n"


def test_engine_api_errors_are_one_line(tmp_path) -> None:
    from delivery.engine import engine_api

    docker = fake_docker(tmp_path, b'HTTP/1.1 500 Internal Server Error\r\nContent-Length: 30\r\n\r\n{"message":"context canceled"}')
    with pytest.raises(DeliveryError, match=r'^the engine API call /x failed: HTTP 500 \{"message":"context canceled"\}$'):
        engine_api(docker, "/x")
    with pytest.raises(DeliveryError, match="^the engine API call /x failed: "):
        engine_api(fake_docker(tmp_path, b""), "/x")
