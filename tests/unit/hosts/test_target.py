"""The env file compose runs the project with (pure), for each combination of releases and settings."""

from __future__ import annotations

from delivery.config.settings import load_config
from delivery.hosts.target import compose_env

PINNED = "2.0.0-abcdef123456@sha256:" + "a" * 64


def test_the_env_file_names_each_slot_and_cron() -> None:
    lines = compose_env(load_config({"registry": "localhost:5000"}), PINNED, None, "1.0.0-abcdef123456")
    assert lines[0] == "REGISTRY=localhost:5000"
    assert [line for line in lines if "_TAG=" in line] == ["APP_TAG=1.0.0-abcdef123456", f"BLUE_TAG={PINNED}", "GREEN_TAG="]


def test_with_nothing_running_app_tag_is_none() -> None:
    assert "APP_TAG=none" in compose_env(load_config({}), None, None, None)


def test_the_proxy_image_and_cron_schedule_are_written_only_when_set() -> None:
    plain = compose_env(load_config({}), None, None, None)
    assert not any(line.startswith(("PROXY_IMAGE=", "CRON_SCHEDULE=")) for line in plain)
    set_ = compose_env(load_config({"proxy_image": "haproxy:2.9", "cron_schedule": "*/5 * * * *"}), None, None, None)
    assert "PROXY_IMAGE=haproxy:2.9" in set_ and "CRON_SCHEDULE=*/5 * * * *" in set_
