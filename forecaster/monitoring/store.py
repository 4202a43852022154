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
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from forecaster.monitoring import tables
from forecaster.monitoring.accuracy import SUM_FIELDS, Sums, VersionAccuracy, by_version
from forecaster.monitoring.records import RecordBatch, score_rows, to_rows
from forecaster.monitoring.times import as_datetimes, to_micros
from forecaster.monitoring.urls import normalise_url

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
# Ids per IN (...) list: well under SQLite's bound on parameters.
_IN_CHUNK = 500
# A database that does not answer within this is "down": recording drops, forecasts go on.
CONNECT_TIMEOUT_S = 5


# What scoring reads of a recorded forecast.
SCORING = [tables.forecasts.c[n] for n in ("id", "scale", "targets", "point", "seasonal_naive",
                                           "quantile_levels", "quantiles")]  # fmt: skip


class StoreError(RuntimeError):
    """The monitoring database cannot be reached or used; the message says which and why."""


def _engine(url: str) -> sa.Engine:
    url = normalise_url(url)  # postgresql:// -> psycopg 3
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
        self.engine = _engine(url)
        self._schema_ready = False
        self._schema_lock = threading.Lock()

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
        """Store the forecasts of ``batches`` (one row each); returns how many. Raises
        :class:`StoreError`."""
        rows = to_rows(batches)
        if rows:
            with self._begin() as conn:
                conn.execute(sa.insert(tables.forecasts), rows)
        return len(rows)

    def ingest(self, series: Sequence[tuple[str, np.ndarray, Sequence[float]]]) -> Ingested:
        """Store actuals ``(series_id, times [n] datetime64 UTC, values [n])`` and score the
        recorded forecasts they match; a value already stored for a series and time is
        replaced, with its scores (sending the same again changes nothing). Series with no
        recorded forecast are ignored and named. Raises :class:`StoreError`."""
        ids = sorted({sid for sid, _, _ in series})
        now = datetime.now(UTC).replace(tzinfo=None)
        with self._begin() as conn:
            known = self._known(conn, ids)
            given = [_last_per_time(sid, t, v) for sid, t, v in series if sid in known]
            rows = [
                {"series_id": sid, "time": t, "value": v, "received_at": now}
                for sid, times, values in given
                for t, v in zip(as_datetimes(times), values.tolist(), strict=True)
            ]
            if rows:
                conn.execute(self._upsert(tables.actuals, ["series_id", "time"]), rows)
            scored = self._score(conn, given)
            if scored:
                conn.execute(self._upsert(tables.scores, ["forecast_id", "step"]), scored)
        return Ingested(len(rows), len(scored), [i for i in ids if i not in known])

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
    ) -> list[dict]:
        """``scores`` rows of the recorded forecasts whose targets the actuals ``given`` hit."""
        f = tables.forecasts
        out: list[dict] = []
        for sid, times, values in given:
            if not times.size:
                continue
            first, last = as_datetimes(np.array([times.min(), times.max()]))
            overlapping = (f.c.series_id == sid, f.c.last_target >= first, f.c.first_target <= last)
            query = sa.select(*SCORING).where(*overlapping)
            micros = to_micros(times)
            for forecast in conn.execute(query):
                out += score_rows(forecast, micros, values)
        return out

    def _upsert(self, table: sa.Table, key: list[str]) -> sa.Insert:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(table)
        others = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in key}
        return stmt.on_conflict_do_update(index_elements=key, set_=others)

    def purge(self, before: datetime) -> tuple[int, int]:
        """Delete forecasts made (with their scores) and actuals received before ``before``
        (naive UTC): the retention setting. Returns ``(forecasts, actuals)`` deleted."""
        f, sc, a = tables.forecasts, tables.scores, tables.actuals
        old = sa.select(f.c.id).where(f.c.made_at < before)
        with self._begin() as conn:
            conn.execute(sa.delete(sc).where(sc.c.forecast_id.in_(old)))
            gone = conn.execute(sa.delete(f).where(f.c.made_at < before)).rowcount
            actual = conn.execute(sa.delete(a).where(a.c.received_at < before)).rowcount
        return gone, actual

    # ------------------------------------------------------------------------- reading

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
        query = _sums_query().where(f.c.model == model)
        if version is not None:
            query = query.where(f.c.version == version)
        if since is not None:
            query = query.where(sc.c.target_time >= since)
        if until is not None:
            query = query.where(sc.c.target_time < until)
        levels = (
            sa.select(f.c.version, f.c.lower_level, f.c.upper_level)
            .where(f.c.model == model, f.c.lower_level.is_not(None))
            .distinct()
        )
        with self._begin() as conn:
            rows = conn.execute(query).all()
            intervals = {v: (lo, hi) for v, lo, hi in conn.execute(levels)}
        return by_version([(r[0], r[1], Sums.from_row(r[2:])) for r in rows], intervals)

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

    # ------------------------------------------------------------------------- connections

    @contextlib.contextmanager
    def _begin(self) -> Iterator[sa.Connection]:
        """A transaction (the schema migrated first); database errors come out as
        :class:`StoreError`."""
        if not self._schema_ready:
            self.migrate()
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"monitoring database unavailable: {_brief(exc)}") from exc


def _last_per_time(
    sid: str, times: np.ndarray, values: Sequence[float]
) -> tuple[str, np.ndarray, np.ndarray]:
    """One value per time (the last given), so no statement touches a row twice."""
    array = np.asarray(values, np.float64)
    reverse_unique, first = np.unique(times[::-1], return_index=True)
    return sid, reverse_unique, array[::-1][first]


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


def _brief(exc: BaseException) -> str:
    """The driver's first line, without SQLAlchemy's background links."""
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
