"""The online adjustment of intervals (adaptive conformal inference): the update, its bounds,
the changes it reports, and the coverage record it replays from a real SQLite store."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from forecaster.monitoring.adaptive import Adjustments, effective_level, level_bounds
from forecaster.monitoring.records import ForecastRecord, RecordBatch
from forecaster.monitoring.store import MonitoringStore
from forecaster.monitoring.times import to_utc


def test_misses_widen_and_hits_narrow_by_the_gibbs_candes_step() -> None:
    # alpha_{t+1} = alpha_t + gamma (alpha_nominal - err_t): a miss at 80% widens by
    # 100 * 0.01 * 0.8 = 0.8 points, a hit narrows by 100 * 0.01 * 0.2 = 0.2.
    assert effective_level(80, [False], 0.01) == pytest.approx(80.8)
    assert effective_level(80, [True], 0.01) == pytest.approx(79.8)
    assert effective_level(80, [False, True, True, True, True], 0.01) == pytest.approx(80)
    assert effective_level(80, [], 0.01) == 80
    # Covering exactly as often as promised leaves the level where it is.
    assert effective_level(90, ([True] * 9 + [False]) * 50, 0.005) == pytest.approx(90)


def test_the_effective_level_stays_within_its_bounds() -> None:
    assert level_bounds(80) == (65, 84.5)
    assert level_bounds(95) == (80, 99.5)
    assert level_bounds(99.8) == (84.8, 99.8)  # no ceiling below the nominal itself
    assert level_bounds(10) == (5, 14.5)  # a level stays above 0
    assert effective_level(80, [False] * 1000, 0.05) == 84.5
    assert effective_level(80, [True] * 1000, 0.05) == 65
    assert effective_level(95, [False] * 1000, 0.05) == 99.5
    # Bounded at every step, not only at the end: no wind-up to unwind after a run of misses.
    assert effective_level(80, [False] * 1000 + [True], 0.05) == pytest.approx(84.5 - 1)


def test_adjustments_report_each_change_from_the_nominal_level() -> None:
    adjustments = Adjustments()
    assert adjustments.of("m", 1) == {}
    changes = adjustments.publish("m", 1, {"80": 83.1, "95": 95.0})
    assert [(c.level, c.old, c.new) for c in changes] == [("80", 80.0, 83.1)]
    assert adjustments.of("m", 1) == {"80": 83.1}  # a level at its nominal is not adjusted
    assert adjustments.publish("m", 1, {"80": 83.1, "95": 95.0}) == []
    changes = adjustments.publish("m", 1, {"80": 80.0, "95": 96.0})
    assert [(c.level, c.old, c.new) for c in changes] == [("80", 83.1, 80.0), ("95", 95.0, 96.0)]
    assert adjustments.of("m", 2) == {}


def test_the_coverage_record_is_replayed_in_target_time_order(tmp_path: Path) -> None:
    store = MonitoringStore(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    store.migrate()
    start = datetime(2024, 5, 1)
    point = np.full(3, 10.0)
    lo, hi = np.full(3, 9.0), np.full(3, 11.0)
    records = []
    for k, sid in enumerate(("b", "a")):  # "b"'s targets come later, written first
        future = [(start + timedelta(hours=3 * (1 - k) + h)).isoformat() for h in range(3)]
        bands, intervals = {0.1: lo, 0.9: hi}, {80.0: (0.1, 0.9)}
        history = np.full(30, 10.0)
        records.append(ForecastRecord(sid, "model", future, point, history, bands, intervals))
    store.write([RecordBatch("m", 1, 24, 0.0, records)])
    times = to_utc([(start + timedelta(hours=h)).isoformat() for h in range(6)])
    # "a" (hours 0-2): inside, outside, inside; "b" (hours 3-5): outside at each.
    store.ingest([("a", times[:3], [10.0, 20.0, 10.0]), ("b", times[3:], [0.0, 0.0, 0.0])])
    assert store.recent_coverage("m", last=1000) == {
        (1, 80.0): [True, False, True, False, False, False]
    }
    assert store.recent_coverage("m", last=2) == {(1, 80.0): [False, False]}
    assert store.recent_coverage("other", last=10) == {}
