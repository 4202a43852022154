"""Where the monitoring store lives (no database imports: the settings read this)."""

from __future__ import annotations

from pathlib import Path

SQLITE_FILE = "monitoring.sqlite3"


def sqlite_url(registry: Path) -> str:
    """SQLite in a local registry's directory."""
    return f"sqlite:///{registry.resolve() / SQLITE_FILE}"


def default_url(registry: str | Path) -> str | None:
    """:func:`sqlite_url` of a local registry; None for a registry behind a URL."""
    return None if "://" in str(registry) else sqlite_url(Path(registry))


def normalise_url(url: str) -> str:
    """PostgreSQL URLs without a driver use psycopg 3 (the one installed)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url
