"""CRON_SCHEDULE, validated field by field in the same way twice: by the toolkit (deploy.cron_schedule,
delivery/config/validation.py) and by the image's entrypoint, which installs it into /etc/cron.d (docker-entrypoint.sh);
and the entrypoint's bound on its file logs (the in-memory /var/log is bounded)."""

import shutil
import subprocess
from pathlib import Path

import pytest

from delivery.config.settings import load_config
from delivery.config.validation import cron_schedule
from delivery.errors import DeliveryError

ENTRYPOINT = Path(__file__).resolve().parents[3] / "docker-entrypoint.sh"

VALID = ["*/5 * * * *", "0 3 * * mon-fri", "0 0 1,15 JAN-mar 0-7", "00 09 * * *", "59 23 31 12 7", "0-30/10 */2 * * sun"]
INVALID = {
    "newline adds a root line": "* * * * *\n* * * * * root sh -c id",
    "carriage return": "* * * * *\r",
    "tab": "*\t* * * *",
    "awk escape": "\\n * * * *",
    "four fields": "* * * *",
    "six fields": "* * * * * root",
    "minute 60": "60 * * * *",
    "weekday 8": "* * * * 8",
    "day of month 0": "* * 0 * *",
    "backwards range": "5-1 * * * *",
    "step 0": "* * * * */0",
    "trailing comma": "1, * * * *",
    "empty list item": "1,,2 * * * *",
    "unknown month": "* * * foo *",
    "month name as weekday": "* * * * jan",
    "two steps": "*/5/2 * * * *",
    "non-ascii digit": "\u0663 * * * *",
    "special string": "@reboot",
    "shell": "$(id) * * * *",
}


@pytest.mark.parametrize("schedule", VALID)
def test_config_accepts_cron_fields(schedule: str) -> None:
    assert cron_schedule(schedule) == " ".join(schedule.split())


@pytest.mark.parametrize("schedule", INVALID.values(), ids=INVALID.keys())
def test_config_refuses_in_one_line(schedule: str) -> None:
    with pytest.raises(DeliveryError, match="invalid deploy.cron_schedule") as caught:
        cron_schedule(schedule)
    assert "\n" not in str(caught.value)


def test_config_names_the_field_that_is_wrong() -> None:
    with pytest.raises(DeliveryError, match="the hour field '24' is not \\*, a number from 0 to 23"):
        load_config({"cron_schedule": "0 24 * * *"})


def test_config_defaults_to_the_crontabs_schedule() -> None:
    assert load_config({}).cron_schedule is None
    assert load_config({"cron_schedule": ""}).cron_schedule is None


def entrypoint_check(schedule: str) -> subprocess.CompletedProcess[str]:
    script = 'source "$1"; check_cron_schedule "$2"'
    return subprocess.run(["bash", "-c", script, "bash", str(ENTRYPOINT), schedule], capture_output=True, text=True, timeout=20)


needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")


@needs_bash
@pytest.mark.parametrize("schedule", VALID)
def test_entrypoint_accepts_cron_fields(schedule: str) -> None:
    result = entrypoint_check(schedule)
    assert result.returncode == 0, result.stderr


@needs_bash
@pytest.mark.parametrize("schedule", INVALID.values(), ids=INVALID.keys())
def test_entrypoint_refuses_before_installing(schedule: str) -> None:
    result = entrypoint_check(schedule)
    assert result.returncode == 1
    assert "error: CRON_SCHEDULE" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@needs_bash
def test_sourcing_the_entrypoint_starts_nothing() -> None:
    result = subprocess.run(["bash", "-c", 'source "$1"; echo sourced', "bash", str(ENTRYPOINT)], capture_output=True, text=True, timeout=20)
    assert result.stdout == "sourced\n" and result.returncode == 0


@needs_bash
def test_a_file_log_beyond_its_bound_keeps_its_newer_half(tmp_path: Path) -> None:
    log = tmp_path / "webapp.log"
    log.write_bytes(b"old\n" * 1024 + b"new\n" * 1024)  # 8 KiB
    script = 'source "$1"; LOG_FILE_MAX_KB=4; trim_log "$2"; trim_log "$3"'
    subprocess.run(["bash", "-c", script, "bash", str(ENTRYPOINT), str(log), str(tmp_path / "missing.log")], check=True, timeout=20)
    assert log.read_bytes() == b"new\n" * 512
    log.write_bytes(b"x" * 4096)
    subprocess.run(["bash", "-c", script, "bash", str(ENTRYPOINT), str(log), str(log)], check=True, timeout=20)
    assert log.stat().st_size == 4096  # at the bound: untouched
