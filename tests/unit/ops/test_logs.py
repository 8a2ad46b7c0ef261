"""logs: the --since forms docker accepts, refused flags, the argv, and each host's lines prefixed."""

import sys

import pytest

from delivery.errors import DeliveryError
from delivery.ops.logs import LogsRequest, logs_argv, logs_request, show_logs


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
