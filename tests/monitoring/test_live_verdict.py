"""``retrain --when degraded``'s verdict (forecaster.monitoring.health) against hostile data:
targets far in the future must not make the window theirs (issue 29)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
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
    """The recent MASE is the mean over points, as docs/operations/retraining.md says: 99 good
    series and one bad one move it by a hundredth of the bad one's error, whatever series they
    belong to."""
    for k in range(99):
        forecasts_and_actuals(store, f"s{k}", START, 10.0, 10.0)
    forecasts_and_actuals(store, "bad", START, 110.0, 10.0)
    verdict = health.check(store, "m", 1)
    assert verdict.recent is not None and verdict.recent.points == 100 * H
    # |110 - 10| over the history's scale (2: its lag-1 error, its seasonal one being 0)
    assert verdict.recent.model.mase == pytest.approx(100.0 / 2 / 100)


# ---------------------------------------------------------------------------- slow frequencies

FIRST = datetime(2022, 1, 1)
MH = 18  # a monthly model's horizon (M3 Monthly's)


def month(k: int) -> datetime:
    return (pd.Timestamp(FIRST) + pd.DateOffset(months=k)).to_pydatetime()


def monthly_forecasts(store: MonitoringStore, origins: range, level: float) -> None:
    """One series' forecasts of ``level``, one made at each month of ``origins`` for the next
    ``MH`` months, as the service records them (stamps at month starts)."""
    records = [
        ForecastRecord("wine", "model", [month(o + 1 + j).isoformat() for j in range(MH)],
                       np.full(MH, level), HISTORY)
        for o in origins
    ]  # fmt: skip
    store.write([RecordBatch("wine", 1, 2, time.time(), records)])


def monthly_actuals(store: MonitoringStore, last: int) -> None:
    stamps_ = [month(k).isoformat() for k in range(1, last + 1)]
    store.ingest([("wine", to_utc(stamps_), np.full(last, 10.0))])


def test_a_monthly_model_is_judged_over_months_not_days(store: MonitoringStore) -> None:
    """One monthly series forecast every month for two years: 7 days of target time hold one
    month (18 points, never 48: "has not degraded" said nothing was decided); a window of
    months decides, and sees the forecasts go bad."""
    monthly_forecasts(store, range(24), 10.1)
    monthly_actuals(store, 24)
    week = health.check(store, "wine", 1, window=health.Window(days=7), now=month(24))
    assert week.status == "undecided" and not week.decided and not week.degraded
    assert week.reason.startswith("18 of 48 points in the last 7 days up to 2024-01-01")

    steps = health.default_steps(MH, 12)
    assert steps == MH
    window = health.Window(steps=steps, freq="MS")
    good = health.check(store, "wine", 1, window=window, now=month(24))
    assert good.status == "not degraded" and good.decided, good.reason
    assert (good.start, good.latest) == (month(6), month(24))  # targets July 2022 .. Jan 2024
    # Each target month m is forecast from the min(m, 18) origins before it.
    assert good.points == sum(min(m, MH) for m in range(7, 25)) == 258
    assert good.baseline is not None and good.baseline.points == sum(range(1, 7))
    assert good.recent is not None and good.recent.model.mase == pytest.approx(0.05)

    # Six more months of forecasts off by 10: the window moves with the latest actual.
    monthly_forecasts(store, range(24, 30), 20.0)
    monthly_actuals(store, 30)
    bad = health.check(store, "wine", 1, window=window, now=month(30))
    assert bad.degraded and bad.latest == month(30) and bad.start == month(12)
    assert "is worse than 0.050 before" in bad.reason  # the months before the window


def test_too_few_points_are_undecided(store: MonitoringStore) -> None:
    window = health.Window(steps=health.default_steps(MH, 12), freq="MS")
    none = health.check(store, "wine", 1, window=window)
    assert none.status == "undecided" and none.reason.startswith("0 of 48 points: no actuals")
    monthly_forecasts(store, range(3), 20.0)  # terrible, but three months say too little
    monthly_actuals(store, 3)
    verdict = health.check(store, "wine", 1, window=window, now=month(3))
    assert verdict.status == "undecided" and verdict.points == 1 + 2 + 3
    assert verdict.reason == "6 of 48 points in the last 18 steps (MS) up to 2022-04-01T00:00:00"
    assert health.check(store, "wine", 1, window=window, min_points=6, now=month(3)).degraded


@pytest.mark.parametrize(
    ("freq", "steps", "last", "start"),
    [
        ("MS", 18, datetime(2024, 6, 1), datetime(2022, 12, 1)),
        ("MS", 18, datetime(2024, 6, 15), datetime(2022, 12, 1)),  # 18 month starts after it
        ("ME", 1, datetime(2024, 6, 30), datetime(2024, 5, 31)),
        ("QS-OCT", 8, datetime(2024, 7, 1), datetime(2022, 7, 1)),
        ("YS", 8, datetime(2024, 1, 1), datetime(2016, 1, 1)),
        ("W-SUN", 52, datetime(2024, 6, 2), datetime(2023, 6, 4)),
        ("h", 48, datetime(2024, 6, 3, 5), datetime(2024, 6, 1, 5)),
        ("YS", 5000, datetime(2024, 1, 1), datetime.min),  # before year 1: everything
    ],
)
def test_a_window_of_steps_counts_steps_of_the_frequency(
    freq: str, steps: int, last: datetime, start: datetime
) -> None:
    assert health.Window(steps=steps, freq=freq).start(last) == start


def test_the_default_window_lets_one_series_decide() -> None:
    """A horizon, a season at least, and 48 points from one series forecast every step."""
    assert health.default_steps(6, None) == 8  # yearly: 8 x 6 = 48 points
    assert health.default_steps(8, 4) == 8  # quarterly
    assert health.default_steps(13, 52) == 52  # weekly: a year
    assert health.default_steps(48, 24) == 48  # no step given: two days of hourly steps
    hour, day = timedelta(hours=1), timedelta(days=1)
    assert health.default_steps(48, 24, step=hour) == 168  # hourly keeps its week
    assert health.default_steps(14, 7, step=day) == 14  # daily: a horizon is longer than a week
    with pytest.raises(ValueError, match="pandas alias"):
        health.Window(steps=3, freq="monthly")
    with pytest.raises(ValueError):
        health.Window(steps=3, freq="MS", days=7)
