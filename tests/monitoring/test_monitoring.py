"""The monitoring store, recorder and degradation rule, against SQLite and a real PostgreSQL.

Figures are checked against the same definitions computed here with numpy on the same points.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from forecaster import metrics
from forecaster.configs import ConfigError
from forecaster.monitoring import health
from forecaster.monitoring.recorder import Recorder
from forecaster.monitoring.records import ForecastRecord, RecordBatch
from forecaster.monitoring.store import MonitoringStore, StoreError
from forecaster.monitoring.tables import metadata
from forecaster.monitoring.times import BadTimestamp, to_utc
from forecaster.monitoring.urls import monitoring_url, normalise_url
from tests.helpers.polling import wait_until

H, M = 6, 4
START = datetime(2024, 3, 1)


def stamps(start: datetime, n: int, hours: int = 1) -> list[str]:
    return [(start + timedelta(hours=hours * k)).isoformat() for k in range(n)]


def record(sid: str, start: datetime, seed: int, method: str = "model") -> ForecastRecord:
    rng = np.random.default_rng(seed)
    history = 10 + rng.normal(size=20)
    point = 10 + rng.normal(size=H)
    bands = {0.1: point - 1.0, 0.9: point + 1.0}
    return ForecastRecord(sid, method, stamps(start, H), point, history, bands)


def batch(*records: ForecastRecord, version: int = 1, model: str = "m") -> RecordBatch:
    return RecordBatch(model, version, M, time.time(), list(records))


@pytest.fixture
def store(database_url: str) -> MonitoringStore:
    s = MonitoringStore(database_url)
    yield s
    s.close()


def test_migrations_build_exactly_the_tables_the_code_uses(store: MonitoringStore) -> None:
    store.migrate()
    store.migrate()  # a second run changes nothing
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_accuracy_matches_the_definitions(store: MonitoringStore) -> None:
    a, b = record("a", START, 1), record("b", START, 2)
    assert store.write([batch(a, b)]).stored == 2
    rng = np.random.default_rng(7)
    truth = {r.series_id: 10 + rng.normal(size=H) for r in (a, b)}
    done = store.ingest([(sid, to_utc(stamps(START, H)), y) for sid, y in truth.items()])
    assert (done.stored, done.matched, done.unknown_series) == (2 * H, 2 * H, [])

    [v1] = store.accuracy("m")
    y = np.stack([truth["a"], truth["b"]])
    f = np.stack([a.point, b.point])
    sn = metrics.seasonal_naive([a.history, b.history], H, M)
    scale = metrics.scale([a.history, b.history], M)[:, None]
    o = v1.overall
    assert o.points == 2 * H and v1.version == 1 and v1.interval == (0.1, 0.9)
    assert o.model.smape == pytest.approx(metrics.smape(y, f))
    assert o.model.mase == pytest.approx(np.mean(np.abs(y - f) / scale))
    assert o.model.mae == pytest.approx(np.mean(np.abs(y - f)))
    assert o.seasonal_naive.mase == pytest.approx(np.mean(np.abs(y - sn) / scale))
    assert o.coverage == pytest.approx(np.mean(np.abs(y - f) <= 1.0))
    assert sorted(v1.steps) == list(range(1, H + 1))
    step1 = v1.steps[1]
    assert step1.points == 2
    assert step1.model.mae == pytest.approx(np.mean(np.abs(y[:, 0] - f[:, 0])))


def test_actuals_are_idempotent_replaced_and_unknown_series_ignored(
    store: MonitoringStore,
) -> None:
    store.write([batch(record("a", START, 1))])
    times = to_utc(stamps(START, 3))
    first = store.ingest([("a", times, [1.0, 2.0, 3.0]), ("ghost", times, [1.0, 2.0, 3.0])])
    assert (first.stored, first.matched, first.unknown_series) == (3, 3, ["ghost"])
    again = store.ingest([("a", times, [1.0, 2.0, 3.0])])
    assert again.matched == 3
    mae = store.accuracy("m")[0].overall.model.mae
    store.ingest([("a", times, [1.0, 2.0, 3.0])])
    assert store.accuracy("m")[0].overall.model.mae == pytest.approx(mae)
    store.ingest([("a", times[:1], [100.0])])  # a corrected value replaces the old one
    assert store.accuracy("m")[0].overall.points == 3
    assert store.accuracy("m")[0].overall.model.mae != pytest.approx(mae)
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM actuals")).scalar_one() == 3


def test_a_time_sent_twice_in_one_request_keeps_the_last_value(store: MonitoringStore) -> None:
    store.write([batch(record("a", START, 1))])
    times = to_utc([*stamps(START, 2), stamps(START, 1)[0]])
    assert store.ingest([("a", times, [5.0, 6.0, 7.0])]).stored == 2
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT value FROM actuals ORDER BY time")).scalars()
        assert list(rows) == [7.0, 6.0]


def test_filters_by_version_and_target_time(store: MonitoringStore) -> None:
    store.write([batch(record("a", START, 1), version=1)])
    store.write([batch(record("a", START + timedelta(hours=H), 2), version=2)])
    store.ingest([("a", to_utc(stamps(START, 2 * H)), np.arange(2.0 * H))])
    assert [v.version for v in store.accuracy("m")] == [2, 1]
    assert [v.version for v in store.accuracy("m", version=1)] == [1]
    later = store.accuracy("m", since=START + timedelta(hours=H + 2))
    assert [(v.version, v.overall.points) for v in later] == [(2, H - 2)]
    early = store.accuracy("m", until=START + timedelta(hours=2))
    assert [(v.version, v.overall.points) for v in early] == [(1, 2)]
    assert store.accuracy("other") == []


def test_one_actual_scores_every_forecast_of_its_time(store: MonitoringStore) -> None:
    store.write([batch(record("a", START, 1), version=1), batch(record("a", START, 2), version=2)])
    early = START - timedelta(hours=1)
    store.write([batch(record("a", early, 3), version=2)])  # overlaps the others by H - 1 hours
    done = store.ingest([("a", to_utc(stamps(START, H)), np.ones(H))])
    assert (done.stored, done.matched) == (H, 3 * H - 1)
    per_version = {v.version: v.overall.points for v in store.accuracy("m")}
    assert per_version == {1: H, 2: 2 * H - 1}


def test_actuals_score_only_forecasts_recorded_before_them(store: MonitoringStore) -> None:
    store.write([batch(record("a", START, 1))])
    times = to_utc(stamps(START + timedelta(hours=H), H))
    assert store.ingest([("a", times, np.ones(H))]).matched == 0  # no forecast of those hours
    store.write([batch(record("a", START + timedelta(hours=H), 2))])
    assert store.accuracy("m") == []
    assert store.ingest([("a", times, np.ones(H))]).matched == H  # sent again: scored now


def test_offsets_are_matched_in_utc(store: MonitoringStore) -> None:
    rec = record("a", START, 1)
    with_offset = [s + "+02:00" for s in stamps(START, H)]
    store.write([batch(ForecastRecord("a", "model", with_offset, rec.point, rec.history))])
    utc = stamps(START - timedelta(hours=2), H)
    assert store.ingest([("a", to_utc(utc), np.ones(H))]).matched == H


def test_constant_histories_have_no_mase_but_keep_their_other_figures(
    store: MonitoringStore,
) -> None:
    rec = ForecastRecord("flat", "model", stamps(START, H), np.full(H, 5.0), np.full(20, 5.0))
    store.write([batch(rec)])
    store.ingest([("flat", to_utc(stamps(START, H)), np.full(H, 6.0))])
    o = store.accuracy("m")[0].overall
    assert o.model.mase is None and o.model.mae == pytest.approx(1.0)
    assert o.coverage is None and o.interval_points == 0


def test_overflowing_errors_are_undefined_not_infinite(store: MonitoringStore) -> None:
    rec = ForecastRecord("big", "model", stamps(START, 2), np.full(2, -1e308), np.ones(20))
    store.write([batch(rec)])
    store.ingest([("big", to_utc(stamps(START, 2)), [1e308, 1e308])])
    o = store.accuracy("m")[0].overall
    assert o.points == 2 and o.model.mae is None and o.model.smape == pytest.approx(200.0)


def test_purge_deletes_what_is_older_than_the_retention(store: MonitoringStore) -> None:
    old = RecordBatch("m", 1, M, time.time() - 10 * 86400, [record("a", START, 1)])
    store.write([old, batch(record("b", START, 2))])
    store.ingest([("a", to_utc(stamps(START, H)), np.ones(H))])
    forecasts, actuals = store.purge(datetime.now() + timedelta(seconds=5) - timedelta(days=5))
    assert (forecasts, actuals) == (1, 0)
    with store.engine.connect() as conn:
        left = conn.execute(sa.text("SELECT DISTINCT series_id FROM forecasts")).all()
    assert left == [("b",)]


def test_bad_timestamps_name_the_first_bad_one() -> None:
    with pytest.raises(BadTimestamp) as err:
        to_utc(["2024-01-01T00:00", "2024-01-01T01:00", "yesterday"])
    assert err.value.index == 2 and "yesterday" in str(err.value)
    for unusable in ("NaT", "-0001-01-01", "10000-01-01", "0"):
        with pytest.raises(BadTimestamp) as err:
            to_utc(["2024-01-01T00:00", unusable])
        assert err.value.index == 1, unusable


def test_urls() -> None:
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert monitoring_url(None, "/srv/models") == "sqlite:////srv/models/monitoring.sqlite3"
    assert monitoring_url("", "/srv/models") == "sqlite:////srv/models/monitoring.sqlite3"
    assert monitoring_url("postgresql://u@h/db", "s3://bucket/models") == "postgresql://u@h/db"
    with pytest.raises(ConfigError, match="s3://bucket/models is not local"):
        monitoring_url(None, "s3://bucket/models")


def test_the_service_and_the_commands_find_the_same_store_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One rule (monitoring_url) and one reading of FORECASTER_REGISTRY and
    FORECASTER_DATABASE_URL: the service's settings and `forecaster monitor` agree on every
    combination of variables and flags."""
    from forecaster.cli import build_parser
    from forecaster.cli._options import store_url
    from service.settings import Settings

    models, other = tmp_path / "models", tmp_path / "other"
    monitor = build_parser().parse_args
    for registry, database in [(None, None), (models, None), (None, "sqlite:///x.db"),
                               (models, "postgresql://u@h/db"), (models, "")]:  # fmt: skip
        for name, value in (("REGISTRY", registry), ("DATABASE_URL", database)):
            if value is None:
                monkeypatch.delenv(f"FORECASTER_{name}", raising=False)
            else:
                monkeypatch.setenv(f"FORECASTER_{name}", str(value))
        served = Settings().monitoring_url
        assert store_url(monitor(["monitor"])) == served, (registry, database)
        flags = ["monitor", "--registry", str(other), "--database-url", "sqlite:///y.db"]
        assert Settings(registry=other, database_url="sqlite:///y.db").monitoring_url == (
            store_url(monitor(flags))
        )
    assert served == f"sqlite:///{models.resolve() / 'monitoring.sqlite3'}"  # empty is unset


# ---------------------------------------------------------------------------- the recorder


def test_recorder_writes_in_the_background_and_drops_beyond_its_capacity(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    store = MonitoringStore(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    written, dropped = [], []
    rec = Recorder(store, capacity=3, flush_s=60, on_write=written.append,
                   on_drop=lambda reason, n: dropped.append((reason, n)))  # fmt: skip
    with caplog.at_level(logging.WARNING, "forecaster.monitoring"):
        assert rec.submit(batch(record("a", START, 1), record("b", START, 2)))
        assert not rec.submit(batch(record("c", START, 3), record("d", START, 4)))
        assert not rec.submit(batch(record("e", START, 5), record("f", START, 6)))
    assert rec.queued == 2 and dropped == [("queue_full", 2), ("queue_full", 2)]
    assert len([r for r in caplog.records if "dropping" in r.message]) == 1  # once per incident
    rec.start()
    rec.stop()  # writes what is queued
    assert written == [2] and rec.queued == 0
    assert [v.overall.points for v in store.accuracy("m")] == []  # no actuals yet
    assert store.models() == ["m"]


def test_the_recorder_applies_the_retention(tmp_path) -> None:
    store = MonitoringStore(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    store.write([RecordBatch("m", 1, M, time.time() - 3 * 86400, [record("old", START, 1)])])
    rec = Recorder(store, flush_s=0.05, retention_days=2)
    rec.start()
    rec.submit(batch(record("new", START, 2)))
    rec.stop()
    with store.engine.connect() as conn:
        left = conn.execute(sa.text("SELECT series_id FROM forecasts")).scalars()
        assert list(left) == ["new"]
    store.close()


def test_database_down_longer_than_stuck_s_drops_and_counts_then_recording_resumes(
    pg_cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """Forecasts are kept for retries while the database is down, but for ``stuck_s`` at
    most: then they are dropped and counted (a brief outage loses nothing:
    test_monitoring_faults.py)."""
    store = MonitoringStore(pg_cluster.database())
    written, dropped = [], []
    rec = Recorder(store, flush_s=0.05, stuck_s=0.5, on_write=written.append,
                   on_drop=lambda reason, n: dropped.append((reason, n)))  # fmt: skip
    rec.start()
    try:
        with caplog.at_level(logging.WARNING, "forecaster.monitoring"):
            rec.submit(batch(record("a", START, 1)))
            wait_until(lambda: written == [1], timeout=20, message="the first forecast unwritten")
            pg_cluster.stop()
            try:
                for k in range(3):
                    rec.submit(batch(record(f"down{k}", START, k)))
                    wait_until(
                        lambda k=k: sum(n for _, n in dropped) == k + 1,
                        timeout=20,
                        message=f"forecast down{k} not dropped after stuck_s",
                    )
            finally:
                pg_cluster.start()
            rec.submit(batch(record("b", START, 2)))
            wait_until(lambda: sum(written) == 2, message="recording did not resume")
        assert dropped == [("store_error", 1)] * 3
        messages = [r.getMessage() for r in caplog.records]
        assert len([m for m in messages if "dropping records" in m]) == 1
        assert any("resumed; 3 forecasts were dropped" in m for m in messages)
        assert store.models() == ["m"]
        with store.engine.connect() as conn:
            ids = conn.execute(sa.text("SELECT series_id FROM forecasts ORDER BY id")).scalars()
            assert list(ids) == ["a", "b"]
    finally:
        rec.stop()
        store.close()


def test_a_store_that_cannot_be_reached_raises_store_error(tmp_path) -> None:
    store = MonitoringStore("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(StoreError, match="unavailable"):
        store.accuracy("m")


# ---------------------------------------------------------------------------- degradation


def test_degradation_rule(store: MonitoringStore) -> None:
    day0 = START
    # Two weeks of good hourly forecasts, then a week where the model is off by a lot.
    history = np.tile([9.0, 11.0], 10)
    good = [
        ForecastRecord(f"s{k}", "model", stamps(day0 + timedelta(hours=H * k), H),
                       np.full(H, 10.0), history)
        for k in range(56)
    ]  # fmt: skip
    store.write([batch(*good)])
    times = to_utc(stamps(day0, H * 56))
    for k in range(56):
        store.ingest([(f"s{k}", times[H * k : H * (k + 1)], np.full(H, 10.5))])
    verdict = health.check(store, "m", 1, window=health.Window(days=7), min_points=10)
    assert not verdict.degraded, verdict.reason
    later = day0 + timedelta(hours=H * 56)
    bad = [
        ForecastRecord(f"t{k}", "model", stamps(later + timedelta(hours=H * k), H),
                       np.full(H, 20.0), history)
        for k in range(28)
    ]  # fmt: skip
    store.write([batch(*bad)])
    times = to_utc(stamps(later, H * 28))
    for k in range(28):
        store.ingest([(f"t{k}", times[H * k : H * (k + 1)], np.full(H, 10.5))])
    verdict = health.check(store, "m", 1, window=health.Window(days=7), min_points=10)
    assert verdict.degraded and "seasonal naive" in verdict.reason
    assert verdict.recent is not None and verdict.baseline is not None
    assert verdict.recent.model.mase > verdict.baseline.model.mase
    few = health.check(store, "m", 1, window=health.Window(days=7), min_points=10_000)
    assert few.status == "undecided" and not few.degraded
    assert few.reason.startswith(f"{few.points} of 10000 points in the last 7 days")
    none = health.check(store, "other", 1)
    assert none.status == "undecided" and "no actuals" in none.reason
