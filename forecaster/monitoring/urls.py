"""Where the monitoring store lives (no database imports: the settings read this)."""

from __future__ import annotations

import os
from pathlib import Path

from forecaster.configs import ConfigError

SQLITE_FILE = "monitoring.sqlite3"


def monitoring_url(database_url: str | None, registry: str | os.PathLike[str]) -> str:
    """The monitoring database, the one rule for the service, the commands and retraining:
    ``database_url`` when given, else SQLite in the registry's directory (``monitoring.sqlite3``).

    Raises :class:`~forecaster.configs.ConfigError` for a registry behind a URL, which has no
    directory to hold the file.
    """
    if database_url:
        return database_url
    if "://" in str(registry):
        raise ConfigError(
            f"registry {registry} is not local, so it holds no {SQLITE_FILE}: give a database "
            "URL (--database-url or FORECASTER_DATABASE_URL; database_url in a retrain config)"
        )
    return f"sqlite:///{Path(registry).resolve() / SQLITE_FILE}"


def normalise_url(url: str) -> str:
    """PostgreSQL URLs without a driver use psycopg 3 (the one installed)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url
