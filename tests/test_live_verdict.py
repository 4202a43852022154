"""``retrain --when degraded``'s verdict (forecaster.monitoring.health) against hostile data:
targets far in the future must not make the window theirs (issue 29)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import numpy as np
import pytest

from forecaster.monitoring import health
from forecaster.monitoring.records import ForecastRecord, RecordBatch
from forecaster.monitoring.store import MonitoringStore
from forecaster.monitoring.times import to_utc

H = 48
START = datetime(2024, 3, 1)
HISTORY = np.tile([9.0, 11.0], 12)  # seasonal naive (period 2) is off by 1 against 10


def stamps(start: datetime, n: int = H) -> list[str]:
    return [(start + timedelta(hours=k)).isoformat() for k in range(n)]


def forecasts_and_actuals(
    store: MonitoringStore, sid: str, start: datetime, level: float, actual: float
) -> None:
    record = ForecastRecord(sid, "model", stamps(start), np.full(H, level), HISTORY)
    store.write([RecordBatch("m", 1, 2, time.time(), [record])])
    store.ingest([(sid, to_utc(stamps(start)), np.full(H, actual))])


@pytest.fixture
def store(tmp_path) -> MonitoringStore:
    s = MonitoringStore(f"sqlite:///{tmp_path / 'monitoring.sqlite3'}")
    yield s
    s.close()


def test_far_future_targets_do_not_decide_the_verdict(store: MonitoringStore) -> None:
    """100 series of good forecasts (4,800 points) and one series whose 48 targets lie in the
    year 9999, forecast terribly: once the latter was the whole recent window (degraded)."""
    for k in range(100):
        forecasts_and_actuals(store, f"s{k}", START + timedelta(hours=k), 10.1, 10.0)
    good = health.check(store, "m", 1)
    assert not good.degraded and good.recent is not None
    forecasts_and_actuals(store, "probe", datetime(9999, 12, 1), 1e6, 10.0)
    verdict = health.check(store, "m", 1)
    assert not verdict.degraded, verdict.reason
    assert verdict.recent == good.recent  # the far targets are in neither window
    assert verdict.latest == good.latest == START + timedelta(hours=99 + H - 1)


def test_targets_up_to_a_day_past_the_clock_count(store: MonitoringStore) -> None:
    now = datetime(2024, 3, 10)
    forecasts_and_actuals(store, "a", now - timedelta(hours=30), 10.1, 10.0)  # ends at now + 17h
    verdict = health.check(store, "m", 1, now=now)
    assert verdict.latest == now + timedelta(hours=17) and verdict.recent.points == H  # type: ignore[union-attr]
    # Two days earlier, only the first six targets are within a day of the clock.
    early = health.check(store, "m", 1, now=now - timedelta(days=2))
    assert early.latest == now - timedelta(days=1, hours=1) and early.recent.points == 6  # type: ignore[union-attr]
    earlier = health.check(store, "m", 1, now=now - timedelta(days=3))
    assert earlier.latest is None and "no actuals" in earlier.reason


def test_every_point_weighs_the_same(store: MonitoringStore) -> None:
    """The recent MASE is the mean over points, as the README says: 99 good series and one
    bad one move it by a hundredth of the bad one's error, whatever series they belong to."""
    for k in range(99):
        forecasts_and_actuals(store, f"s{k}", START, 10.0, 10.0)
    forecasts_and_actuals(store, "bad", START, 110.0, 10.0)
    verdict = health.check(store, "m", 1)
    assert verdict.recent is not None and verdict.recent.points == 100 * H
    # |110 - 10| over the history's scale (2: its lag-1 error, its seasonal one being 0)
    assert verdict.recent.model.mase == pytest.approx(100.0 / 2 / 100)
