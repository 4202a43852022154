"""Where the monitoring store lives (no database imports: the settings read this)."""

from __future__ import annotations

from pathlib import Path

SQLITE_FILE = "monitoring.sqlite3"


def default_url(registry: str | Path) -> str | None:
    """SQLite in the registry's directory (a local one; None for a registry behind a URL)."""
    text = str(registry)
    if "://" in text:
        return None
    return f"sqlite:///{Path(text).resolve() / SQLITE_FILE}"


def normalise_url(url: str) -> str:
    """PostgreSQL URLs without a driver use psycopg 3 (the one installed)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url
