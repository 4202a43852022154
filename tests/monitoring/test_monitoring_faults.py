"""The monitoring store and recorder under faults: a bad record among good ones, a recorder hit
by what it did not expect, a schema newer than the code, a SQLite file deleted while in use,
large actuals, slow statements. SQLite and a real PostgreSQL (:mod:`tests.helpers.postgres`).

Bad records are fed to the library directly: the service refuses them at the request (issue 29),
so this is the writer's own guard, for whatever still gets through.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from forecaster.monitoring import store as store_module
from forecaster.monitoring.recorder import Recorder
from forecaster.monitoring.records import ForecastRecord, RecordBatch
from forecaster.monitoring.store import MonitoringStore, SchemaTooNew, StoreError
from forecaster.monitoring.times import to_utc
from tests.helpers.polling import wait_until
from tests.monitoring.test_monitoring import START, batch, record, stamps

GOOD = 50


def _ids(store: MonitoringStore) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT series_id FROM forecasts ORDER BY id")).scalars())


def _with_stamps(rec: ForecastRecord, times: list[str]) -> ForecastRecord:
    return ForecastRecord(rec.series_id, rec.method, times, rec.point, rec.history, rec.quantiles)


def _bad_records() -> dict[str, ForecastRecord]:
    """Records no database should take (the key says why), each a different way."""
    good = record("x", START, 99)
    offset = [s + "+99:99" for s in good.times]
    midnight = [s + "+24:00" for s in good.times]
    return {
        "offset +99:99": _with_stamps(record("bad-offset", START, 1), offset),
        "offset +24:00": _with_stamps(record("bad-midnight", START, 2), midnight),
        "NUL in the id": record("nul\x00id", START, 3),
        "lone surrogate in the id": record("sur\ud800", START, 4),
        "id too long": record("x" * 300, START, 5),
        "point shorter than its stamps": ForecastRecord(
            "short-point", "model", good.times, good.point[:2], good.history
        ),
    }


@pytest.fixture
def store(database_url: str):
    s = MonitoringStore(database_url)
    yield s
    s.close()


def test_one_bad_record_never_drops_the_others_of_its_flush(
    store: MonitoringStore, caplog: pytest.LogCaptureFixture
) -> None:
    bad = _bad_records()
    good = [record(f"g{k}", START, k) for k in range(GOOD)]
    mixed = good[:20] + list(bad.values())[:3] + good[20:] + list(bad.values())[3:]
    written, dropped = [], []
    rec = Recorder(store, flush_s=60, on_write=written.append,
                   on_drop=lambda reason, n: dropped.append((reason, n)))  # fmt: skip
    with caplog.at_level(logging.WARNING, "forecaster.monitoring"):
        assert rec.submit(batch(*mixed[:30]))
        assert rec.submit(batch(*mixed[30:]))
        rec.start()
        rec.stop()  # one flush: both batches together
    assert sum(written) == GOOD
    assert dropped and {reason for reason, _ in dropped} == {"bad_record"}
    assert sum(n for _, n in dropped) == len(bad)
    assert _ids(store) == [f"g{k}" for k in range(GOOD)]
    lines = [r.getMessage() for r in caplog.records if "bad_record" in r.getMessage()]
    assert len(lines) == len(bad)  # once per record, each naming its series
    for rec_ in bad.values():
        assert sum(repr(rec_.series_id[:64]) in line for line in lines) == 1
    assert rec.failing is None  # a bad record is not an outage


def test_the_store_names_each_record_it_refused(store: MonitoringStore) -> None:
    bad = _bad_records()
    done = store.write([batch(record("a", START, 1), *bad.values(), record("b", START, 2))])
    assert done.stored == 2
    assert [r.series_id for r in done.rejected] == [r.series_id for r in bad.values()]
    assert all(r.model == "m" and r.version == 1 and r.reason for r in done.rejected)
    assert "99:99" in done.rejected[0].reason
    assert _ids(store) == ["a", "b"]


def test_a_refusal_only_the_database_knows_is_isolated_too(store: MonitoringStore) -> None:
    """Rows that pass the writer's own checks but that the database refuses (here: a version
    beyond its 32-bit column, which PostgreSQL enforces and SQLite does not) cost only
    themselves: the insert is retried without them."""
    huge = RecordBatch("m", 2**40, 4, time.time(), [record("huge", START, 3)])
    done = store.write([batch(record("a", START, 1)), huge, batch(record("b", START, 2))])
    if store.engine.dialect.name == "postgresql":
        assert done.stored == 2 and [r.series_id for r in done.rejected] == ["huge"]
        assert "out of range" in done.rejected[0].reason
        assert _ids(store) == ["a", "b"]
    else:
        assert done.stored == 3 and done.rejected == []


# ---------------------------------------------------------------------- the recorder lives on


def _set_revision(store: MonitoringStore, revision: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


def test_a_schema_newer_than_the_code_is_named_and_the_recorder_lives_on(
    store: MonitoringStore, database_url: str
) -> None:
    store.migrate()
    _set_revision(store, "9999")  # a newer forecaster migrated the shared database
    newer = MonitoringStore(database_url)
    with pytest.raises(SchemaTooNew, match="revision 9999, newer than this forecaster knows"):
        newer.migrate()
    written, dropped = [], []
    rec = Recorder(newer, flush_s=0.05, on_write=written.append,
                   on_drop=lambda reason, n: dropped.append((reason, n)))  # fmt: skip
    rec.start()
    try:
        rec.submit(batch(record("a", START, 1)))
        wait_until(
            lambda: dropped == [("store_error", 1)],
            message="the record was not dropped as a store error",
        )
        assert rec.down is not None and "newer" in rec.down
        _set_revision(store, "0001")  # the newer service rolled back: recording resumes
        rec.submit(batch(record("b", START, 2)))
        wait_until(lambda: written == [1], message="the forecast was not written")
        assert rec.down is None
    finally:
        rec.stop()
        newer.close()
    assert _ids(store) == ["b"]


def test_the_recorder_survives_a_retention_that_cannot_be_applied(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A retention so long that its cutoff falls before year 1 (OverflowError, once silently
    the end of the recording thread): logged, and recording goes on."""
    store = MonitoringStore(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    written = []
    rec = Recorder(store, flush_s=0.05, retention_days=1e6, on_write=written.append)
    rec.start()
    try:
        with caplog.at_level(logging.WARNING, "forecaster.monitoring"):
            rec.submit(batch(record("a", START, 1)))
            wait_until(lambda: written == [1], message="the forecast was not written")
            wait_until(
                lambda: any("retention not applied" in r.getMessage() for r in caplog.records),
                message="no warning that the retention was not applied",
            )
            rec.submit(batch(record("b", START, 2)))
            wait_until(lambda: written == [1, 1], message="recording did not go on")
        assert rec.down is None
    finally:
        rec.stop()
        store.close()


# ---------------------------------------------------------------------- the SQLite file


def test_a_sqlite_file_deleted_while_in_use_is_recreated_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "m.sqlite3"
    store = MonitoringStore(f"sqlite:///{path}")
    try:
        store.write([batch(record("a", START, 1))])
        path.unlink()  # an operator's cleanup; the open connections keep the old inode
        with caplog.at_level(logging.WARNING, "forecaster.monitoring"):
            store.write([batch(record("b", START, 2))])
        assert path.exists()
        assert _ids(MonitoringStore(f"sqlite:///{path}")) == ["b"]  # in the file, not the ghost
        assert any("was deleted while in use" in r.getMessage() for r in caplog.records)
    finally:
        store.close()


def test_a_sqlite_file_replaced_while_in_use_is_reopened(tmp_path: Path) -> None:
    path, other = tmp_path / "m.sqlite3", tmp_path / "restored.sqlite3"
    restored = MonitoringStore(f"sqlite:///{other}")
    restored.write([batch(record("restored", START, 1))])
    restored.close()
    store = MonitoringStore(f"sqlite:///{path}")
    try:
        store.write([batch(record("a", START, 1))])
        os.replace(other, path)  # a backup restored over it
        store.write([batch(record("b", START, 2))])
        assert _ids(store) == ["restored", "b"]
    finally:
        store.close()


# ---------------------------------------------------------------------- actuals


def test_large_actuals_are_written_in_bounded_transactions(store: MonitoringStore) -> None:
    """So the recorder's flushes (and SQLite's one writer) get in between the parts."""
    n_series, points = 30, 400  # 12,000 values: more than two transactions' worth
    start = START
    store.write([batch(*[record(f"s{k}", start, k) for k in range(n_series)])])
    per_transaction, rows = [], [0]

    @sa.event.listens_for(store.engine, "before_cursor_execute")
    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO ACTUALS"):
            rows[0] += len(parameters) if executemany else 1

    @sa.event.listens_for(store.engine, "commit")
    def committed(conn) -> None:
        per_transaction.append(rows[0])
        rows[0] = 0

    times = to_utc(stamps(start, points))
    done = store.ingest([(f"s{k}", times, np.ones(points)) for k in range(n_series)])
    assert done.stored == n_series * points and done.matched == n_series * 6
    written = [n for n in per_transaction if n]
    assert sum(written) == n_series * points
    assert len(written) > 1 and max(written) <= store_module.ACTUALS_PER_TRANSACTION
    assert store.accuracy("m")[0].overall.points == n_series * 6


def test_stored_counts_each_series_and_time_once(store: MonitoringStore) -> None:
    store.write([batch(record("a", START, 1))])
    times = to_utc(stamps(START, 3))
    later = to_utc(stamps(START + timedelta(hours=2), 2))  # overlaps the first at one time
    done = store.ingest([("a", times, [1.0, 2.0, 3.0]), ("a", later, [30.0, 4.0])])
    assert (done.stored, done.matched) == (4, 4)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT value FROM actuals ORDER BY time")).scalars()
        assert list(rows) == [1.0, 2.0, 30.0, 4.0]  # the last value given wins


# ---------------------------------------------------------------------- statement timeouts


def test_a_statement_past_the_timeout_is_cancelled(database_url: str) -> None:
    store = MonitoringStore(database_url, timeout_s=0.5)
    endless = (
        "SELECT pg_sleep(30)"
        if database_url.startswith("postgresql")
        else "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
        "SELECT count(*) FROM c"
    )
    try:
        with pytest.raises(StoreError, match="timed out") as err, store._begin() as conn:
            conn.execute(sa.text(endless))
        assert err.value.public == "monitoring database timed out"
        assert store.models() == []  # the connection serves on
    finally:
        store.close()


def test_a_locked_table_costs_an_accuracy_query_the_timeout_not_forever(pg_cluster) -> None:
    import psycopg

    url = pg_cluster.database()
    store = MonitoringStore(url, timeout_s=0.5)
    store.migrate()
    try:
        with psycopg.connect(url) as locker:
            locker.execute("LOCK TABLE scores IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(StoreError, match="timed out"):
                store.accuracy("m")
            locker.rollback()
        assert store.accuracy("m") == []
    finally:
        store.close()


def test_a_flush_the_database_never_answers_makes_recording_down(pg_cluster) -> None:
    """A database that stops answering without refusing (here: a table locked by another
    client) fails nothing for a while; recording says it is down once a flush has waited
    ``stuck_s``, and recovers when the flush goes through."""
    import psycopg

    url = pg_cluster.database()
    store = MonitoringStore(url, timeout_s=30)
    store.migrate()
    written = []
    rec = Recorder(store, flush_s=0.05, stuck_s=0.5, on_write=written.append)
    rec.start()
    try:
        with psycopg.connect(url) as locker:
            locker.execute("LOCK TABLE forecasts IN ACCESS EXCLUSIVE MODE")
            rec.submit(batch(record("a", START, 1)))
            wait_until(
                lambda: rec.down is not None, message="the recorder never found the database down"
            )
            assert "has not answered a flush" in rec.down and not written
            locker.rollback()
        wait_until(lambda: written == [1], message="the forecast was not written")
        assert rec.down is None
    finally:
        rec.stop()
        store.close()


# ---------------------------------------------------------------------- transient failures
# A flush the database fails for a reason that may pass (issue 29's soak: PostgreSQL restarted)
# is retried, its forecasts kept queued, instead of dropped.


def test_a_database_restarted_loses_no_forecast(
    pg_cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL stopped for about 2 s, then started again: every forecast queued meanwhile
    is written once it is back, each once and in order, and none is dropped; meanwhile
    recording says it is down."""
    store = MonitoringStore(pg_cluster.database())
    written, dropped = [], []
    rec = Recorder(store, flush_s=0.05, stuck_s=30, on_write=written.append,
                   on_drop=lambda reason, n: dropped.append((reason, n)))  # fmt: skip
    rec.start()
    down = []
    try:
        with caplog.at_level(logging.WARNING, "forecaster.monitoring"):
            rec.submit(batch(record("before", START, 0)))
            wait_until(lambda: written == [1], message="the forecast was not written")
            pg_cluster.stop()
            try:
                rec.submit(batch(record("down0", START, 0)))
                wait_until(
                    lambda: rec.down is not None,
                    message="the recorder never found the database down",
                )
                back_at = time.monotonic() + 2.0
                while time.monotonic() < back_at:  # forecasts keep coming during the outage
                    down.append(f"down{len(down) + 1}")
                    rec.submit(batch(record(down[-1], START, len(down))))
                    time.sleep(0.1)  # the behaviour under test: 2 s of outage, a forecast a tick
                assert "unavailable" in rec.down
                assert rec.queued == len(down) + 1 and written == [1] and dropped == []
            finally:
                pg_cluster.start()
            rec.submit(batch(record("after", START, 99)))
            wait_until(
                lambda: sum(written) == len(down) + 3,
                message="the queued forecasts were not written after the outage",
            )
        assert rec.down is None and dropped == [] and rec.queued == 0
        assert _ids(store) == ["before", "down0", *down, "after"]
        messages = [r.getMessage() for r in caplog.records]
        assert len([m for m in messages if "retrying (forecasts stay queued" in m]) == 1
        assert not any("dropping records" in m for m in messages)
        assert any("resumed; no forecast was dropped" in m for m in messages)
    finally:
        rec.stop()
        store.close()


def _lock(database_url: str) -> tuple[object, Callable[[], None]]:
    """Another client holding the forecasts table (PostgreSQL) or the database's write lock
    (SQLite); and what releases it."""
    if database_url.startswith("postgresql"):
        import psycopg

        conn = psycopg.connect(database_url)
        conn.execute("LOCK TABLE forecasts IN ACCESS EXCLUSIVE MODE")
    else:
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
    return conn, lambda: (conn.rollback(), conn.close())


def test_a_lock_timeout_is_waited_out_not_dropped(database_url: str) -> None:
    """A flush cancelled by the statement (lock) timeout because another client holds a lock
    is retried until that client lets go: nothing dropped."""
    store = MonitoringStore(database_url, timeout_s=0.3)
    store.migrate()
    written, dropped = [], []
    rec = Recorder(store, flush_s=0.05, stuck_s=30, on_write=written.append,
                   on_drop=lambda reason, n: dropped.append((reason, n)))  # fmt: skip
    rec.start()
    try:
        _, release = _lock(database_url)
        try:
            rec.submit(batch(record("a", START, 1)))
            wait_until(lambda: rec.down is not None, message="no flush failed")
            rec.submit(batch(record("b", START, 2)))
            assert not written and not dropped
        finally:
            release()
        wait_until(lambda: sum(written) == 2, message="the queued forecasts were not written")
        assert dropped == [] and rec.down is None
        assert _ids(store) == ["a", "b"]
    finally:
        rec.stop()
        store.close()


def test_during_an_outage_the_queue_stays_bounded_and_stop_drops_after_its_grace(
    pg_cluster,
) -> None:
    """The forecasts kept for a retry count against the queue's capacity (beyond it new ones
    are dropped, ``queue_full``), and stopping while the database is still down drops what is
    queued once the grace is spent (``store_error``): every forecast is written or counted."""
    store = MonitoringStore(pg_cluster.database())
    store.migrate()
    dropped = []
    rec = Recorder(store, capacity=3, flush_s=0.05, stuck_s=30,
                   on_drop=lambda reason, n: dropped.append((reason, n)))  # fmt: skip
    rec.start()
    pg_cluster.stop()
    try:
        assert rec.submit(batch(record("a", START, 1), record("b", START, 2)))
        wait_until(
            lambda: rec.down is not None, message="the recorder never found the database down"
        )
        assert not rec.submit(batch(record("c", START, 3), record("d", START, 4)))
        assert rec.submit(batch(record("e", START, 5)))
        assert dropped == [("queue_full", 2)] and rec.queued == 3
        rec.stop(timeout_s=0.5)
        assert dropped == [("queue_full", 2), ("store_error", 3)] and rec.queued == 0
    finally:
        pg_cluster.start()
        store.close()


def test_only_failures_that_may_pass_are_transient(pg_cluster) -> None:
    """Connection refused: worth a retry. A table gone (an operator's mistake): not; its
    records are dropped at once, not kept for ``stuck_s``."""
    with pytest.raises(StoreError) as refused:
        MonitoringStore("postgresql://nobody@127.0.0.1:1/none").models()
    assert refused.value.transient
    store = MonitoringStore(pg_cluster.database())
    store.migrate()
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE scores"))
    with pytest.raises(StoreError) as missing:
        store.accuracy("m")
    assert not missing.value.transient
    store.close()


def test_a_write_the_database_fails_part_way_stores_nothing(pg_cluster) -> None:
    """The connection lost while a refused record is being isolated: no row is stored (the
    halves found good are not committed before the end), so the retry stores each once."""
    import psycopg

    url = pg_cluster.database()
    store = MonitoringStore(url)
    store.migrate()
    huge = RecordBatch("m", 2**40, 4, time.time(), [record("huge", START, 3)])  # out of range
    batches = [batch(record("a", START, 1)), huge, batch(record("b", START, 2))]
    inserts = []

    def lose_the_connection(conn, cursor, statement, *_: object) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO FORECASTS"):
            inserts.append(statement)
            if len(inserts) == 3:  # the whole, the first half, then this: the second half
                pid = conn.connection.dbapi_connection.info.backend_pid
                with psycopg.connect(url, autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s)", [pid])

    sa.event.listen(store.engine, "before_cursor_execute", lose_the_connection)
    try:
        with pytest.raises(StoreError) as lost:
            store.write(batches)
        assert lost.value.transient and _ids(store) == []
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", lose_the_connection)
    done = store.write(batches)
    assert done.stored == 2 and [r.series_id for r in done.rejected] == ["huge"]
    assert _ids(store) == ["a", "b"]
    store.close()
