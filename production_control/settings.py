"""Runtime settings, read once from the environment."""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DB_FILENAME = "production_control.db"


@dataclass(frozen=True)
class Settings:
    """What the web app and the jobs need to know about their environment."""

    data_dir: Path = Path("/data")
    deps_tag: str = "dev"
    git_commit: str = "unknown"
    site_name: str = "unset"

    @property
    def db_path(self) -> Path:
        """The SQLite database inside `data_dir`."""
        return self.data_dir / DB_FILENAME

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Settings":
        """Build settings from environment variables; unset or empty ones take the default."""
        defaults = cls()
        return cls(
            data_dir=Path(environ.get("DATA_DIR") or defaults.data_dir),
            deps_tag=environ.get("PRODUCTION_CONTROL_DEPS_TAG") or defaults.deps_tag,
            git_commit=environ.get("PRODUCTION_CONTROL_GIT_COMMIT") or defaults.git_commit,
            site_name=environ.get("SITE_NAME") or defaults.site_name,
        )
