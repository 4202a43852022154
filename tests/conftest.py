"""Fixtures shared by every test package: the monitoring databases (SQLite, and a real
PostgreSQL cluster started for the session: :mod:`tests.helpers.postgres`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import postgres


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[postgres.Cluster]:
    if not postgres.available():
        pytest.skip(postgres.SKIP_REASON)
    with postgres.cluster() as c:
        yield c


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty monitoring database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'monitoring.sqlite3'}"
    return request.getfixturevalue("pg_cluster").database()
