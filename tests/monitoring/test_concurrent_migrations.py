"""Replicas started together on one monitoring database: its schema is made once, and none of
them fails at it (SQLite and a real PostgreSQL). The three-server version of this is
tests/service/test_replicas.py; here the race is forced rather than left to timing."""

from __future__ import annotations

import contextlib
import threading

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from forecaster.monitoring.store import MonitoringStore
from forecaster.monitoring.tables import metadata

STARTERS = 3
# How long a migrator about to create its first table waits for the others to get as far. With
# the lock only one ever does, so this is what the test costs; without it they all arrive at once.
GATHER_S = 2.0


def _gather_at_first_create(store: MonitoringStore, barrier: threading.Barrier) -> None:
    """Make ``store``'s first CREATE TABLE wait until every migrator is about to run its own
    (or :data:`GATHER_S` passed): the moment the race needs, every time."""
    first = [True]

    def before(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if first[0] and statement.lstrip().upper().startswith("CREATE TABLE"):
            first[0] = False
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=GATHER_S)

    sa.event.listen(store.engine, "before_cursor_execute", before)


def test_stores_migrating_at_once_make_the_schema_once(database_url: str) -> None:
    barrier = threading.Barrier(STARTERS)
    stores = [MonitoringStore(database_url) for _ in range(STARTERS)]
    failures: list[BaseException] = []

    def migrate(store: MonitoringStore) -> None:
        try:
            store.migrate()
        except BaseException as exc:
            failures.append(exc)

    for store in stores:
        _gather_at_first_create(store, barrier)
    threads = [threading.Thread(target=migrate, args=(s,)) for s in stores]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "a migration never finished"
        assert failures == []
        with stores[0].engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        for store in stores:
            store.close()


def test_a_store_at_head_migrates_without_waiting_for_a_writer(database_url: str) -> None:
    """Every start but the first finds the schema done: it must not queue behind another
    replica's long write (or migration lock) to learn that."""
    first = MonitoringStore(database_url)
    first.migrate()
    later = MonitoringStore(database_url, timeout_s=1.0)
    try:
        with first.engine.begin() as conn:
            # A writer holding the write lock (SQLite) and the migration lock (PostgreSQL).
            if conn.dialect.name == "postgresql":
                from forecaster.monitoring.store import MIGRATION_LOCK_KEY

                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            later.migrate()  # would time out (StoreError) waiting for either lock
    finally:
        later.close()
        first.close()
