"""Settings read from the environment."""

from pathlib import Path

from production_control.settings import Settings


def test_defaults_when_environment_is_empty() -> None:
    settings = Settings.from_env({})

    assert settings == Settings(data_dir=Path("/data"), deps_tag="dev", git_commit="unknown", site_name="unset")
    assert settings.db_path == Path("/data/production_control.db")


def test_environment_overrides_every_field() -> None:
    settings = Settings.from_env(
        {
            "DATA_DIR": "/srv/pc",
            "PRODUCTION_CONTROL_DEPS_TAG": "deps-1.2.3-abcd",
            "PRODUCTION_CONTROL_GIT_COMMIT": "cafe",
            "SITE_NAME": "plant-a",
        }
    )

    assert settings.db_path == Path("/srv/pc/production_control.db")
    assert (settings.deps_tag, settings.git_commit, settings.site_name) == ("deps-1.2.3-abcd", "cafe", "plant-a")


def test_empty_values_fall_back_to_defaults() -> None:
    assert Settings.from_env({"DATA_DIR": "", "SITE_NAME": ""}) == Settings()
