"""What users see: the stderr Reporter and the results on stdout."""

import json

import pytest

from delivery.reporting import Reporter
from delivery.ui.progress import STDERR, emit, emit_reports, one_or_many


class Report:
    def __init__(self, host: str) -> None:
        self.host = host

    def as_dict(self) -> dict[str, str]:
        return {"host": self.host}


def test_a_step_is_one_line_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    reporter: Reporter = STDERR
    reporter.step("pulling 1.0.1 on local")
    assert capsys.readouterr() == ("", "pulling 1.0.1 on local\n")


def test_emit_prints_the_text_or_sorted_json(capsys: pytest.CaptureFixture[str]) -> None:
    emit({"b": 1, "a": 2}, False, "text")
    emit({"b": 1, "a": 2}, True, "text")
    assert capsys.readouterr().out == 'text\n{\n  "a": 2,\n  "b": 1\n}\n'


def test_one_host_is_its_report_several_are_listed() -> None:
    assert one_or_many([{"host": "a"}]) == {"host": "a"}
    assert one_or_many([{"host": "a"}, {"host": "b"}]) == {"hosts": [{"host": "a"}, {"host": "b"}]}


def test_emit_reports(capsys: pytest.CaptureFixture[str]) -> None:
    emit_reports([Report("a"), Report("b")], False, lambda r: f"{r.host}: done")
    assert capsys.readouterr().out == "a: done\n\nb: done\n"
    emit_reports([Report("a"), Report("b")], True, lambda r: f"{r.host}: done")
    assert json.loads(capsys.readouterr().out) == {"hosts": [{"host": "a"}, {"host": "b"}]}
