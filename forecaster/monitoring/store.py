"""The monitoring store: SQLite by default, PostgreSQL by URL, its schema kept by Alembic.

``MonitoringStore(url)`` opens the database lazily; :meth:`MonitoringStore.migrate` brings its
schema to the newest revision (every process that opens the store calls it: a no-op when up to
date). Recording is one row per forecast, written in bulk (one ``executemany`` per flush); actuals
are scored against the forecasts they match as they arrive (:func:`records.score_rows`), and
accuracy is summed in SQL over those scores, so the figures of a million matched points cost one
grouped query, not a million rows in Python.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from forecaster.data import one_line

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy.pool import ConnectionPoolEntry
from forecaster.monitoring import tables
from forecaster.monitoring.accuracy import SUM_FIELDS, Sums, VersionAccuracy, by_version
from forecaster.monitoring.records import (
    PastForecast,
    RecordBatch,
    Rejected,
    SeriesSeen,
    past_forecast,
    score_rows,
    to_rows,
)
from forecaster.monitoring.times import as_datetimes, to_micros
from forecaster.monitoring.urls import normalise_url

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
# Ids per IN (...) list: well under SQLite's bound on parameters.
_IN_CHUNK = 500
# A database that does not answer within this is "down": recording drops, forecasts go on.
CONNECT_TIMEOUT_S = 5
# Longest one statement may run (or wait for a lock) before it is cancelled: a hung database
# costs a caller this long, never its thread for good.
STATEMENT_TIMEOUT_S = 30.0
# Actual values written per transaction: a large ingest lets the recorder's flushes (and other
# ingests) in between its parts instead of holding SQLite's one write lock for its whole run.
ACTUALS_PER_TRANSACTION = 5_000
# PostgreSQL advisory lock key held while migrating (any fixed bigint: advisory locks are per
# database, so only processes migrating the same database wait for each other). "fcst-mig".
MIGRATION_LOCK_KEY = 0x6663_7374_2D6D_6967


# What scoring reads of a recorded forecast.
SCORING = [tables.forecasts.c[n] for n in ("id", "scale", "targets", "point", "seasonal_naive",
                                           "quantile_levels", "quantiles",
                                           "intervals")]  # fmt: skip


class StoreError(RuntimeError):
    """The monitoring database cannot be reached or used; the message says which and why.

    ``public`` is the same without the driver's words (which name the database's host and
    port): what an HTTP client is told, while the log and the command line get the message.
    ``transient`` is True when the same statement may well succeed if tried again shortly (the
    connection refused or lost, the database starting or shutting down, a lock or statement
    timeout): not for a database that refuses what it was sent, or a schema it cannot use."""

    def __init__(self, message: str, public: str | None = None, *, transient: bool = False) -> None:
        super().__init__(message)
        self.public = public or message
        self.transient = transient


class SchemaTooNew(StoreError):
    """The database's schema was made by a newer forecaster than this one."""


def _engine(url: str, timeout_s: float) -> sa.Engine:
    url = normalise_url(url)  # postgresql:// -> psycopg 3
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        # SQLAlchemy's message repeats the URL, password included.
        raise StoreError(
            "the monitoring database URL cannot be read (expected e.g. "
            "postgresql://user@host/db or sqlite:///path/monitoring.sqlite3)"
        ) from None
    try:
        if parsed.get_backend_name() == "sqlite":
            path = parsed.database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(parsed, connect_args={"timeout": timeout_s})
            sa.event.listen(engine, "connect", _sqlite_connect(timeout_s))
            sa.event.listen(engine, "before_cursor_execute", _sqlite_deadline(timeout_s))
            sa.event.listen(engine, "after_cursor_execute", _sqlite_deadline(math.inf))
            return engine
        engine = sa.create_engine(
            parsed, pool_pre_ping=True, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}
        )
    except (sa.exc.ArgumentError, ImportError) as exc:  # an unknown dialect, a missing driver
        where = parsed.render_as_string(hide_password=True)
        raise StoreError(f"the monitoring database URL {where} cannot be used: {exc}") from None
    if engine.dialect.name == "postgresql":
        sa.event.listen(engine, "connect", _postgres_timeout(timeout_s))
    return engine


def _sqlite_connect(timeout_s: float) -> Callable[..., None]:
    def connect(dbapi_connection: sqlite3.Connection, record: ConnectionPoolEntry) -> None:
        # WAL: readers (accuracy) never wait for the writer; NORMAL sync is durable across
        # crashes of the process (not of the machine), which is the bound the service states.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        # SQLite has no statement timeout: a progress handler cancels a statement that runs
        # past the deadline set as it starts (_sqlite_deadline).
        deadline = [math.inf]
        record.info["deadline"] = deadline
        dbapi_connection.set_progress_handler(lambda: int(time.monotonic() > deadline[0]), 10_000)

    return connect


def _sqlite_deadline(timeout_s: float) -> Callable[..., None]:
    """Sets the deadline of the statement starting (``timeout_s`` ahead), or of none once it
    ended (``math.inf``): the driver's own statements (COMMIT) are never cut short."""

    def set_deadline(conn: sa.Connection, *_: object) -> None:
        deadline = conn.info.get("deadline")
        if deadline is not None:
            deadline[0] = time.monotonic() + timeout_s

    return set_deadline


def _postgres_timeout(timeout_s: float) -> Callable[..., None]:
    def connect(dbapi_connection: psycopg.Connection[Any], _record: object) -> None:
        # Set per session rather than as a startup option, which poolers such as PgBouncer
        # refuse; it bounds lock waits too (a table locked by another client).
        ms = max(1, int(timeout_s * 1000))
        dbapi_connection.execute(f"SET statement_timeout = {ms}")
        dbapi_connection.commit()

    return connect


@dataclass(frozen=True)
class Written:
    """What became of some forecasts: rows stored, and the records refused (each on its own:
    the others are stored regardless)."""

    stored: int
    rejected: list[Rejected] = field(default_factory=list)


@dataclass(frozen=True)
class Ingested:
    """What became of some actuals: points stored (new or replaced), points matching a
    recorded forecast, and the series ignored because no forecast of theirs is recorded."""

    stored: int
    matched: int
    unknown_series: list[str]


class MonitoringStore:
    """Forecasts, actuals and live accuracy in one SQL database (``url``: SQLAlchemy's form;
    ``postgresql://`` uses psycopg 3). Every statement is cancelled after ``timeout_s``.
    Raises :class:`StoreError` for a URL it cannot use."""

    def __init__(self, url: str, *, timeout_s: float = STATEMENT_TIMEOUT_S) -> None:
        self.engine = _engine(url, timeout_s)
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        database = self.engine.url.database
        local = self.engine.dialect.name == "sqlite" and database not in (None, "", ":memory:")
        self._file = Path(database).absolute() if local and database else None
        self._file_identity: tuple[int, int] | None = None
        self._wal_identity: tuple[int, int] | None = None  # the last seen of our file's WAL

    def __repr__(self) -> str:
        return f"MonitoringStore({self.engine.url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        self.engine.dispose()

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest revision (done by the first use of the
        store in each process; a no-op when up to date). Raises :class:`StoreError`."""
        with self._schema_lock:
            self._migrate()
            if self._file is not None:
                self._file_identity = _identity(self._file)
                self._wal_identity = _identity(_wal(self._file))
            self._schema_ready = True

    def _migrate(self) -> None:
        """Bring the schema to head, one process at a time: replicas started together on one
        database would otherwise each find it empty and create the same tables, all but one
        failing ("already exists"). The revision is read again once the lock is held, so
        those that waited find the schema done and change nothing. A schema already at head
        (every start but the first) is seen without the lock: no writer waits on it, and a
        read-only SQLite file still opens."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        script = ScriptDirectory.from_config(config)
        public = "monitoring database unavailable (preparing its schema)"
        try:
            with self.engine.begin() as conn:
                if _at_head(conn, script):
                    return
            with self.engine.begin() as conn:
                _lock_for_migration(conn)
                if _at_head(conn, script):
                    return  # another process migrated it while this one waited
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"{public}: {_brief(exc)}", public, transient=_transient(exc)) from exc
        except CommandError as exc:
            raise StoreError(f"{public}: {exc}", public) from exc

    def _check_file(self) -> None:
        """Reopen the SQLite file when it was deleted or replaced since it was opened: the
        open connections would go on writing to the old, unlinked file, and every later
        reader would see nothing of it."""
        if self._file is None or not self._schema_ready:
            return
        wal = _wal(self._file)
        if _identity(self._file) == self._file_identity:
            self._wal_identity = _identity(wal) or self._wal_identity
            return
        with self._schema_lock:
            now = _identity(self._file)
            if not self._schema_ready or now == self._file_identity:
                return  # another thread reopened it meanwhile
            what = "deleted" if now is None else "replaced"
            log.warning("monitoring database %s was %s while in use: reopening it%s",
                        self._file, what, " (a new, empty one)" if now is None else "")  # fmt: skip
            self.engine.dispose()  # closes the connections to the old file
            # SQLite leaves the old file's WAL behind when that file was moved or unlinked;
            # opened beside the new file it would be replayed into it. Ours only: a WAL
            # another process made for the new file is that file's.
            if self._wal_identity is not None and _identity(wal) == self._wal_identity:
                for stale in (wal, self._file.with_name(self._file.name + "-shm")):
                    with contextlib.suppress(FileNotFoundError):
                        stale.unlink()
            self._wal_identity = None
            self._schema_ready = False

    # ------------------------------------------------------------------------- writing

    def write(self, batches: Sequence[RecordBatch]) -> Written:
        """Store the forecasts of ``batches`` (one row each). A record that cannot be stored
        (an unreadable stamp, an id the database refuses, ...) is left out and named; the
        others are stored. All or nothing otherwise: :class:`StoreError` (the database is
        down) means no row was stored, so writing the same batches again stores each once."""
        rows, rejected = to_rows(batches)
        stored = self._insert(rows, rejected) if rows else 0
        return Written(stored, rejected)

    def _insert(self, rows: list[dict], rejected: list[Rejected]) -> int:
        """Insert ``rows`` in one transaction. When the database refuses one of them, the rows
        it refuses are found by halving in transactions rolled back (a few per bad row, none
        when there is none) and appended to ``rejected``; the others are then inserted in one
        transaction, so a failure part way stores nothing. Returns the rows stored."""
        refused = self._try_insert(rows, keep=True)
        if refused is None:
            return len(rows)
        accepted = self._accepted(rows, refused, rejected)
        return self._insert(accepted, rejected) if accepted else 0

    def _accepted(self, rows: list[dict], refused: str, rejected: list[Rejected]) -> list[dict]:
        """``rows`` (which the database refused, saying ``refused``) less those it refuses."""
        if len(rows) == 1:
            row = rows[0]
            rejected.append(Rejected(row["series_id"], row["model"], row["version"], refused))
            return []
        half = len(rows) // 2
        out: list[dict] = []
        for part in (rows[:half], rows[half:]):
            why = self._try_insert(part, keep=False)
            out += part if why is None else self._accepted(part, why, rejected)
        return out

    def _try_insert(self, rows: list[dict], *, keep: bool) -> str | None:
        """Insert ``rows`` (committed when ``keep``, else rolled back); why the database refused
        them, or None when it took them. Raises :class:`StoreError` when it is down."""
        try:
            with self._begin() as conn:
                conn.execute(sa.insert(tables.forecasts), rows)
                if not keep:
                    conn.rollback()
            return None
        except StoreError as exc:
            if not _refused_a_row(exc.__cause__):
                raise
            return _brief(exc.__cause__)
        except (ValueError, TypeError) as exc:  # the driver could not send a value
            return _brief(exc)

    def ingest(self, series: Sequence[tuple[str, np.ndarray, Sequence[float]]]) -> Ingested:
        """Store actuals ``(series_id, times [n] datetime64 UTC, values [n])`` and score the
        recorded forecasts they match; a value already stored for a series and time is
        replaced, with its scores (sending the same again changes nothing). Series with no
        recorded forecast are ignored and named. ``stored`` counts each series and time once
        (the last value given wins, a series sent twice included).

        Written in transactions of at most :data:`ACTUALS_PER_TRANSACTION` values, so a large
        ingest never holds the database's write lock for long; a failure part way leaves the
        parts before it stored (sending the same again completes it). Raises
        :class:`StoreError`."""
        merged = _merge(series)
        ids = sorted(merged)
        now = datetime.now(UTC).replace(tzinfo=None)
        with self._begin() as conn:
            known = self._known(conn, ids)
        stored = matched = 0
        for part in _parts([merged[sid] for sid in ids if sid in known], ACTUALS_PER_TRANSACTION):
            rows = [
                {"series_id": sid, "time": t, "value": v, "received_at": now}
                for sid, times, values in part
                for t, v in zip(as_datetimes(times), values.tolist(), strict=True)
            ]
            with self._begin() as conn:
                conn.execute(self._upsert(tables.actuals, ["series_id", "time"]), rows)
                scored, covered = self._score(conn, part)
                if scored:
                    conn.execute(self._upsert(tables.scores, ["forecast_id", "step"]), scored)
                if covered:
                    key = ["forecast_id", "step", "level"]
                    conn.execute(self._upsert(tables.coverage, key), covered)
            stored, matched = stored + len(rows), matched + len(scored)
        return Ingested(stored, matched, [i for i in ids if i not in known])

    def _known(self, conn: sa.Connection, ids: list[str]) -> set[str]:
        f = tables.forecasts
        known: set[str] = set()
        for k in range(0, len(ids), _IN_CHUNK):
            part = ids[k : k + _IN_CHUNK]
            query = sa.select(f.c.series_id).where(f.c.series_id.in_(part)).distinct()
            known.update(conn.execute(query).scalars())
        return known

    def _score(
        self, conn: sa.Connection, given: list[tuple[str, np.ndarray, np.ndarray]]
    ) -> tuple[list[dict], list[dict]]:
        """``scores`` and ``coverage`` rows of the recorded forecasts whose targets the actuals
        ``given`` hit."""
        f = tables.forecasts
        out: list[dict] = []
        covered: list[dict] = []
        for sid, times, values in given:
            if not times.size:
                continue
            first, last = as_datetimes(np.array([times.min(), times.max()]))
            overlapping = (f.c.series_id == sid, f.c.last_target >= first, f.c.first_target <= last)
            query = sa.select(*SCORING).where(*overlapping)
            micros = to_micros(times)
            for forecast in conn.execute(query):
                scored, inside = score_rows(forecast, micros, values)
                out += scored
                covered += inside
        return out, covered

    def _upsert(self, table: sa.Table, key: list[str]) -> sa.Insert:
        from sqlalchemy.dialects import postgresql, sqlite

        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(table)
        others = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in key}
        return stmt.on_conflict_do_update(index_elements=key, set_=others)

    def purge(self, before: datetime) -> tuple[int, int]:
        """Delete forecasts made (with their scores) and actuals received before ``before``
        (naive UTC): the retention setting. Returns ``(forecasts, actuals)`` deleted."""
        f, sc, a, cov = tables.forecasts, tables.scores, tables.actuals, tables.coverage
        old = sa.select(f.c.id).where(f.c.made_at < before)
        with self._begin() as conn:
            conn.execute(sa.delete(cov).where(cov.c.forecast_id.in_(old)))
            conn.execute(sa.delete(sc).where(sc.c.forecast_id.in_(old)))
            gone = conn.execute(sa.delete(f).where(f.c.made_at < before)).rowcount
            actual = conn.execute(sa.delete(a).where(a.c.received_at < before)).rowcount
        return gone, actual

    # ------------------------------------------------------------------------- reading

    def has_model(self, model: str) -> bool:
        """Whether any forecast of ``model`` is recorded."""
        f = tables.forecasts
        with self._begin() as conn:
            query = sa.select(f.c.id).where(f.c.model == model).limit(1)
            return conn.execute(query).first() is not None

    def models(self) -> list[str]:
        """Models with recorded forecasts."""
        f = tables.forecasts
        with self._begin() as conn:
            return list(conn.execute(sa.select(f.c.model).distinct().order_by(f.c.model)).scalars())

    def accuracy(
        self,
        model: str,
        *,
        version: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[VersionAccuracy]:
        """Live accuracy of ``model`` per version (newest first) over the scored points whose
        target time is in ``[since, until)`` (naive UTC). Raises :class:`StoreError`."""
        f, sc = tables.forecasts, tables.scores
        query, per_level = _sums_query().where(f.c.model == model), _coverage_query(model)
        if version is not None:
            query = query.where(f.c.version == version)
            per_level = per_level.where(f.c.version == version)
        if since is not None:
            query = query.where(sc.c.target_time >= since)
            per_level = per_level.where(sc.c.target_time >= since)
        if until is not None:
            query = query.where(sc.c.target_time < until)
            per_level = per_level.where(sc.c.target_time < until)
        levels = (
            sa.select(f.c.version, f.c.lower_level, f.c.upper_level)
            .where(f.c.model == model, f.c.lower_level.is_not(None))
            .distinct()
        )
        with self._begin() as conn:
            rows = conn.execute(query).all()
            intervals = {v: (lo, hi) for v, lo, hi in conn.execute(levels)}
            covered = [(v, k, L, n, int(c or 0)) for v, k, L, n, c in conn.execute(per_level)]
        sums = [(r[0], r[1], Sums.from_row(r[2:])) for r in rows]
        return by_version(sums, intervals, covered)

    def recent_coverage(self, model: str, *, last: int) -> dict[tuple[int, float], list[bool]]:
        """Per (version, level) of ``model``: whether each of the ``last`` latest scored points
        fell inside that level's band as served, oldest first (target time, then forecast and
        step). Raises :class:`StoreError`."""
        f, sc, cov = tables.forecasts, tables.scores, tables.coverage
        joined = cov.join(f, f.c.id == cov.c.forecast_id).join(
            sc, (sc.c.forecast_id == cov.c.forecast_id) & (sc.c.step == cov.c.step)
        )
        groups = (
            sa.select(f.c.version, cov.c.level)
            .select_from(cov.join(f, f.c.id == cov.c.forecast_id))
            .where(f.c.model == model)
            .distinct()
        )
        out: dict[tuple[int, float], list[bool]] = {}
        with self._begin() as conn:
            for version, level in conn.execute(groups).all():
                query = (
                    sa.select(cov.c.inside)
                    .select_from(joined)
                    .where(f.c.model == model, f.c.version == version, cov.c.level == level)
                    .order_by(sc.c.target_time.desc(), cov.c.forecast_id.desc(), cov.c.step.desc())
                    .limit(last)
                )
                newest_first = [bool(inside) for inside in conn.execute(query).scalars()]
                out[(int(version), float(level))] = newest_first[::-1]
        return out

    def last_actual(self, model: str, *, before: datetime | None = None) -> datetime | None:
        """The latest scored target time of ``model`` (for windows of recent points), of those
        before ``before`` (naive UTC) when given."""
        f, sc = tables.forecasts, tables.scores
        query = (
            sa.select(sa.func.max(sc.c.target_time))
            .select_from(sc.join(f, f.c.id == sc.c.forecast_id))
            .where(f.c.model == model)
        )
        if before is not None:
            query = query.where(sc.c.target_time < before)
        with self._begin() as conn:
            return conn.execute(query).scalar_one()

    def scored_span(self, model: str) -> tuple[datetime, datetime] | None:
        """The earliest and latest scored target time of ``model``; None before any."""
        f, sc = tables.forecasts, tables.scores
        query = (
            sa.select(sa.func.min(sc.c.target_time), sa.func.max(sc.c.target_time))
            .select_from(sc.join(f, f.c.id == sc.c.forecast_id))
            .where(f.c.model == model)
        )
        with self._begin() as conn:
            first, last = conn.execute(query).one()
        return None if first is None else (first, last)

    def accuracy_timeline(
        self, model: str, starts: Sequence[datetime], *, version: int | None = None
    ) -> list[list[VersionAccuracy]]:
        """:meth:`accuracy` over each window ``[starts[i], starts[i + 1])`` (naive UTC; one
        fewer window than ``starts``). Raises :class:`StoreError`."""
        return [
            self.accuracy(model, version=version, since=a, until=b)
            for a, b in itertools.pairwise(starts)
        ]

    def recent_series(self, model: str | None = None, *, limit: int = 50) -> list[SeriesSeen]:
        """The series forecast most recently (of ``model`` when given), newest first: per
        series and model, how many forecasts, the latest version and times."""
        f = tables.forecasts
        query = sa.select(
            f.c.series_id,
            f.c.model,
            sa.func.max(f.c.version),
            sa.func.count(),
            sa.func.max(f.c.made_at),
            sa.func.max(f.c.last_target),
        ).group_by(f.c.series_id, f.c.model)
        if model is not None:
            query = query.where(f.c.model == model)
        query = query.order_by(sa.func.max(f.c.made_at).desc(), f.c.series_id).limit(limit)
        with self._begin() as conn:
            return [SeriesSeen(*row) for row in conn.execute(query).all()]

    def series_record(
        self, series_id: str, *, model: str | None = None, forecasts: int = 20, actuals: int = 5000
    ) -> tuple[list[datetime], list[float], list[PastForecast]]:
        """A series' latest ``actuals`` values and ``forecasts`` recorded forecasts (of
        ``model`` when given), both oldest first: ``(times, values, forecasts)``."""
        f, a = tables.forecasts, tables.actuals
        rows = sa.select(f).where(f.c.series_id == series_id)
        if model is not None:
            rows = rows.where(f.c.model == model)
        rows = rows.order_by(f.c.made_at.desc(), f.c.id.desc()).limit(forecasts)
        truth = (
            sa.select(a.c.time, a.c.value)
            .where(a.c.series_id == series_id)
            .order_by(a.c.time.desc())
            .limit(actuals)
        )
        with self._begin() as conn:
            made = [past_forecast(r) for r in conn.execute(rows).all()]
            observed = conn.execute(truth).all()[::-1]
        return [t for t, _ in observed], [v for _, v in observed], made[::-1]

    # ------------------------------------------------------------------------- connections

    @contextlib.contextmanager
    def _begin(self) -> Iterator[sa.Connection]:
        """A transaction (the schema migrated first, the SQLite file reopened if it was
        deleted or replaced); database errors come out as :class:`StoreError`."""
        self._check_file()
        if not self._schema_ready:
            self.migrate()
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.SQLAlchemyError as exc:
            what = "timed out" if _timed_out(exc) else "unavailable"
            public = f"monitoring database {what}"
            raise StoreError(f"{public}: {_brief(exc)}", public, transient=_transient(exc)) from exc


def _wal(path: Path) -> Path:
    return path.with_name(path.name + "-wal")


def _identity(path: Path) -> tuple[int, int] | None:
    """A file's (device, inode); None when it is not there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _lock_for_migration(conn: sa.Connection) -> None:
    """Hold the database's migration lock until ``conn``'s transaction ends (the schema's
    changes and its revision commit together, then the next process in gets it).

    PostgreSQL: a transaction-level advisory lock on :data:`MIGRATION_LOCK_KEY` (per database;
    waiting for it counts against the statement timeout, as a migration's statements do).
    SQLite: the file's write lock, taken at once (``BEGIN IMMEDIATE``): the driver would begin
    only at the first INSERT and run the DDL before it outside any transaction, so two
    processes would interleave their CREATE TABLEs and a crash could leave half a schema. The
    wait for it is the connection's busy timeout."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _at_head(conn: sa.Connection, script: ScriptDirectory) -> bool:
    """Whether the schema is at the newest revision these migrations know; :class:`SchemaTooNew`
    when it is at one they do not know (Alembic would fail on it with no word of why)."""
    known = {s.revision for s in script.walk_revisions()}
    current = MigrationContext.configure(conn).get_current_heads()
    unknown = [r for r in current if r not in known]
    if unknown:
        msg = (
            f"the monitoring database's schema is at revision {', '.join(unknown)}, newer than "
            f"this forecaster knows (up to {script.get_current_head()}): upgrade forecaster, or "
            "give it a database of its own"
        )
        raise SchemaTooNew(msg, "monitoring database unavailable (its schema is newer)")
    return set(current) == set(script.get_heads())


def _refused_a_row(exc: BaseException | None) -> TypeGuard[BaseException]:
    """Whether ``exc`` is the database refusing a value (not the database being down)."""
    return isinstance(exc, (sa.exc.DataError, sa.exc.IntegrityError)) or (
        isinstance(exc, sa.exc.StatementError) and not isinstance(exc, sa.exc.DBAPIError)
    )


def _transient(exc: sa.exc.SQLAlchemyError) -> bool:
    """Whether ``exc`` may pass if the statement is tried again: the connection refused or
    lost, the database starting up or shutting down, a lock or statement timeout, a deadlock
    (the DB-API's OperationalError, which psycopg raises for SQLSTATE classes 08, 40, 53, 55 and
    57 and SQLite for a locked or unopenable file), the driver's connection gone, or no
    connection free in the pool. Never a value the database refused (DataError,
    IntegrityError) nor a statement it cannot run (ProgrammingError)."""
    if isinstance(exc, sa.exc.DBAPIError):
        return exc.connection_invalidated or isinstance(
            exc, (sa.exc.OperationalError, sa.exc.InterfaceError)
        )
    return isinstance(exc, (sa.exc.TimeoutError, sa.exc.DisconnectionError))


def _timed_out(exc: sa.exc.SQLAlchemyError) -> bool:
    """A statement cancelled by the timeout (PostgreSQL's query_canceled, SQLite's interrupt)."""
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) == "57014" or "interrupted" in str(orig)


def _merge(
    series: Sequence[tuple[str, np.ndarray, Sequence[float]]],
) -> dict[str, tuple[str, np.ndarray, np.ndarray]]:
    """Per series id: one value per time, the last given (a series may come more than once),
    so no statement touches a row twice and each stored point is counted once."""
    given: dict[str, list[tuple[np.ndarray, Sequence[float]]]] = {}
    for sid, times, values in series:
        given.setdefault(sid, []).append((times, values))
    out = {}
    for sid, parts in given.items():
        times = np.concatenate([t for t, _ in parts]) if len(parts) > 1 else parts[0][0]
        merged = np.concatenate([np.asarray(v, np.float64) for _, v in parts])
        reverse_unique, first = np.unique(times[::-1], return_index=True)
        out[sid] = (sid, reverse_unique, merged[::-1][first])
    return out


def _parts(
    given: list[tuple[str, np.ndarray, np.ndarray]], size: int
) -> Iterator[list[tuple[str, np.ndarray, np.ndarray]]]:
    """``given`` in parts of at most ``size`` values (a long series split across parts)."""
    part: list[tuple[str, np.ndarray, np.ndarray]] = []
    room = size
    for sid, times, values in given:
        at = 0
        while at < times.size:
            take = min(room, times.size - at)
            part.append((sid, times[at : at + take], values[at : at + take]))
            at, room = at + take, room - take
            if room == 0:
                yield part
                part, room = [], size
    if part:
        yield part


def _sums_query() -> sa.Select:
    """Per (version, step): the sums of :data:`SUM_FIELDS` over scored points."""
    f, sc = tables.forecasts, tables.scores
    columns = [
        sa.func.count(),
        sa.func.sum(sc.c.abs_error),
        sa.func.sum(sc.c.smape),
        sa.func.sum(sc.c.scaled),
        sa.func.count(sc.c.scaled),
        sa.func.sum(sc.c.sn_abs_error),
        sa.func.sum(sc.c.sn_smape),
        sa.func.sum(sc.c.sn_scaled),
        sa.func.count(sc.c.inside),
        sa.func.sum(sa.case((sc.c.inside, 1), else_=0)),
    ]
    assert len(columns) == len(SUM_FIELDS)
    return (
        sa.select(f.c.version, sc.c.step, *columns)
        .select_from(sc.join(f, f.c.id == sc.c.forecast_id))
        .group_by(f.c.version, sc.c.step)
    )


def _coverage_query(model: str) -> sa.Select:
    """Per (version, step, level) of ``model``: points scored, and those inside the level's
    band (joined to ``scores`` for the target time the window filters on)."""
    f, sc, cov = tables.forecasts, tables.scores, tables.coverage
    return (
        sa.select(f.c.version, cov.c.step, cov.c.level, sa.func.count(),
                  sa.func.sum(sa.case((cov.c.inside, 1), else_=0)))
        .select_from(
            cov.join(f, f.c.id == cov.c.forecast_id).join(
                sc, (sc.c.forecast_id == cov.c.forecast_id) & (sc.c.step == cov.c.step)
            )
        )
        .where(f.c.model == model)
        .group_by(f.c.version, cov.c.step, cov.c.level)
    )  # fmt: skip


def _brief(exc: BaseException) -> str:
    """The driver's first line, without SQLAlchemy's background links."""
    return one_line(getattr(exc, "orig", None) or exc, first=True)
