"""The monitoring store: SQLite by default, PostgreSQL by URL, its schema kept by Alembic.

``MonitoringStore(url)`` opens the database lazily; :meth:`MonitoringStore.migrate` brings its
schema to the newest revision (every process that opens the store calls it: a no-op when up to
date). Writes are bulk (one ``executemany`` per table per flush); accuracy is summed in SQL, so
the figures of a million matched points cost one grouped query, not a million rows in Python.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from forecaster.monitoring import tables
from forecaster.monitoring.accuracy import SUM_FIELDS, Sums, VersionAccuracy, by_version
from forecaster.monitoring.records import RecordBatch, to_rows
from forecaster.monitoring.times import as_datetimes
from forecaster.monitoring.urls import normalise_url

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
# Ids per IN (...) list: well under SQLite's bound on parameters.
_IN_CHUNK = 500
# A database that does not answer within this is "down": recording drops, forecasts go on.
CONNECT_TIMEOUT_S = 5


class StoreError(RuntimeError):
    """The monitoring database cannot be reached or used; the message says which and why."""


def _engine(url: str) -> sa.Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(
        url, pool_pre_ping=True, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}
    )


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    # WAL: readers (accuracy) never wait for the writer; NORMAL sync is durable across crashes
    # of the process (not of the machine), which is the bound the service states.
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@dataclass(frozen=True)
class Ingested:
    """What became of some actuals: points stored (new or replaced), points matching a
    recorded forecast, and the series ignored because no forecast of theirs is recorded."""

    stored: int
    matched: int
    unknown_series: list[str]


class MonitoringStore:
    """Forecasts, actuals and live accuracy in one SQL database (``url``: SQLAlchemy's form;
    ``postgresql://`` uses psycopg 3)."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine = _engine(self.url)
        # What SQLAlchemy does to a datetime before the driver sees it (None: nothing).
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        dialect = self.engine.dialect
        self._time_bind = sa.DateTime().dialect_impl(dialect).bind_processor(dialect)

    def __repr__(self) -> str:
        return f"MonitoringStore({self.engine.url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        self.engine.dispose()

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest revision (done by the first use of the
        store in each process; a no-op when up to date). Raises :class:`StoreError`."""
        with self._schema_lock:
            self._migrate()
            self._schema_ready = True

    def _migrate(self) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as conn:
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except sa.exc.SQLAlchemyError as exc:
            msg = f"monitoring database unavailable (preparing its schema): {_brief(exc)}"
            raise StoreError(msg) from exc

    # ------------------------------------------------------------------------- writing

    def write(self, batches: Sequence[RecordBatch]) -> int:
        """Store the forecasts of ``batches``; returns how many. Raises :class:`StoreError`."""
        rows = to_rows(batches)
        if not rows.forecasts:
            return 0
        insert = sa.insert(tables.forecasts).returning(
            tables.forecasts.c.id, sort_by_parameter_order=True
        )
        sql = self._points_sql()
        with self._begin() as conn:
            ids = conn.execute(insert, rows.forecasts).scalars().all()
            flat = [(fid, *p) for fid, pts in zip(ids, rows.points, strict=True) for p in pts]
            if self._time_bind is not None:  # SQLite keeps times as SQLAlchemy-formatted text
                flat = [(*p[:3], self._time_bind(p[3]), *p[4:]) for p in flat]
            conn.exec_driver_sql(sql, flat)  # type: ignore[arg-type]
        return len(ids)

    def _points_sql(self) -> str:
        # Positional tuples straight to the driver: a dict per point would cost more than the
        # insert itself at thousands of points a second.
        names = [c.name for c in tables.points.columns]
        mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        return (
            f"INSERT INTO forecast_points ({', '.join(names)}) "
            f"VALUES ({', '.join([mark] * len(names))})"
        )

    def ingest(self, series: Sequence[tuple[str, np.ndarray, Sequence[float]]]) -> Ingested:
        """Store actuals ``(series_id, times [n] datetime64 UTC, values [n])``; a value already
        stored for a series and time is replaced (sending the same again changes nothing).
        Series with no recorded forecast are ignored and named. Raises :class:`StoreError`."""
        ids = sorted({sid for sid, _, _ in series})
        now = datetime.now(UTC).replace(tzinfo=None)
        with self._begin() as conn:
            known = self._known(conn, ids)
            rows = [
                {"series_id": sid, "time": t, "value": float(v), "received_at": now}
                for sid, times, values in series
                if sid in known
                for t, v in zip(as_datetimes(times), values, strict=True)
            ]
            if rows:
                conn.execute(self._upsert(), rows)
            matched = self._matched(conn, [(r["series_id"], r["time"]) for r in rows])
        return Ingested(len(rows), matched, [i for i in ids if i not in known])

    def _known(self, conn: sa.Connection, ids: list[str]) -> set[str]:
        f = tables.forecasts
        known: set[str] = set()
        for k in range(0, len(ids), _IN_CHUNK):
            part = ids[k : k + _IN_CHUNK]
            query = sa.select(f.c.series_id).where(f.c.series_id.in_(part)).distinct()
            known.update(conn.execute(query).scalars())
        return known

    def _upsert(self) -> sa.Insert:
        a = tables.actuals
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(a)
        excluded = stmt.excluded
        return stmt.on_conflict_do_update(
            index_elements=[a.c.series_id, a.c.time],
            set_={"value": excluded.value, "received_at": excluded.received_at},
        )

    def _matched(self, conn: sa.Connection, keys: list[tuple[str, datetime]]) -> int:
        p = tables.points
        matched = 0
        for k in range(0, len(keys), _IN_CHUNK):
            part = keys[k : k + _IN_CHUNK]
            query = sa.select(sa.func.count()).where(
                sa.tuple_(p.c.series_id, p.c.target_time).in_(part)
            )
            matched += conn.execute(query).scalar_one()
        return matched

    def purge(self, before: datetime) -> tuple[int, int]:
        """Delete forecasts made and actuals received before ``before`` (naive UTC): the
        retention setting. Returns ``(forecasts, actuals)`` deleted."""
        f, p, a = tables.forecasts, tables.points, tables.actuals
        old = sa.select(f.c.id).where(f.c.made_at < before)
        with self._begin() as conn:
            conn.execute(sa.delete(p).where(p.c.forecast_id.in_(old)))
            gone = conn.execute(sa.delete(f).where(f.c.made_at < before)).rowcount
            actual = conn.execute(sa.delete(a).where(a.c.received_at < before)).rowcount
        return gone, actual

    # ------------------------------------------------------------------------- reading

    def models(self) -> list[str]:
        """Models with recorded forecasts."""
        f = tables.forecasts
        with self._connect() as conn:
            return list(conn.execute(sa.select(f.c.model).distinct().order_by(f.c.model)).scalars())

    def accuracy(
        self,
        model: str,
        *,
        version: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[VersionAccuracy]:
        """Live accuracy of ``model`` per version (newest first) over the matched points whose
        target time is in ``[since, until)`` (naive UTC). Raises :class:`StoreError`."""
        f, p = tables.forecasts, tables.points
        query = _sums_query().where(f.c.model == model)
        if version is not None:
            query = query.where(f.c.version == version)
        if since is not None:
            query = query.where(p.c.target_time >= since)
        if until is not None:
            query = query.where(p.c.target_time < until)
        levels = (
            sa.select(f.c.version, f.c.lower_level, f.c.upper_level)
            .where(f.c.model == model, f.c.lower_level.is_not(None))
            .distinct()
        )
        with self._connect() as conn:
            rows = conn.execute(query).all()
            intervals = {v: (lo, hi) for v, lo, hi in conn.execute(levels)}
        return by_version([(r[0], r[1], Sums.from_row(r[2:])) for r in rows], intervals)

    def last_actual(self, model: str) -> datetime | None:
        """The latest target time of ``model`` with an actual (for windows of recent points)."""
        f, p = tables.forecasts, tables.points
        query = (
            sa.select(sa.func.max(p.c.target_time)).select_from(_joined()).where(f.c.model == model)
        )
        with self._connect() as conn:
            return conn.execute(query).scalar_one()

    # ------------------------------------------------------------------------- connections

    def _connect(self) -> _Translated:
        return self._begin()

    def _begin(self) -> _Translated:
        if not self._schema_ready:
            self.migrate()
        return _Translated(self.engine.begin())


class _Translated:
    """A connection's context whose database errors come out as :class:`StoreError`."""

    def __init__(self, cm: contextlib.AbstractContextManager[sa.Connection]) -> None:
        self._cm = cm

    def __enter__(self) -> sa.Connection:
        try:
            return self._cm.__enter__()
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"monitoring database unavailable: {_brief(exc)}") from exc

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._cm.__exit__(*exc_info)  # type: ignore[arg-type]
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"monitoring database error: {_brief(exc)}") from exc
        if exc_info[1] is not None and isinstance(exc_info[1], sa.exc.SQLAlchemyError):
            raise StoreError(f"monitoring database error: {_brief(exc_info[1])}") from exc_info[1]


def _joined() -> sa.FromClause:
    f, p, a = tables.forecasts, tables.points, tables.actuals
    return p.join(f, f.c.id == p.c.forecast_id).join(
        a, sa.and_(a.c.series_id == p.c.series_id, a.c.time == p.c.target_time)
    )


def _sums_query() -> sa.Select:
    """Per (version, step): the sums of :data:`SUM_FIELDS` over matched points."""
    f, p, a = tables.forecasts, tables.points, tables.actuals

    def errors(forecast: sa.ColumnElement) -> list[sa.ColumnElement]:
        err = sa.func.abs(a.c.value - forecast)
        both = sa.func.abs(a.c.value) + sa.func.abs(forecast)
        return [
            sa.func.sum(err),
            sa.func.sum(sa.case((both > 0, 200.0 * err / both), else_=0.0)),
            sa.func.sum(err / f.c.scale),
        ]

    model, naive = errors(p.c.point), errors(p.c.seasonal_naive)
    inside = sa.and_(a.c.value >= p.c.lower, a.c.value <= p.c.upper)
    columns = [
        sa.func.count(),
        *model,
        sa.func.count(f.c.scale),
        *naive,
        sa.func.count(p.c.lower),
        sa.func.sum(sa.case((inside, 1), else_=0)),
    ]
    assert len(columns) == len(SUM_FIELDS)
    return (
        sa.select(f.c.version, p.c.step, *columns)
        .select_from(_joined())
        .group_by(f.c.version, p.c.step)
    )


def _brief(exc: BaseException) -> str:
    """The driver's first line, without SQLAlchemy's background links."""
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
