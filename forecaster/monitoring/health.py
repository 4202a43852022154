"""Has a model version's live accuracy degraded? The rule behind ``retrain --when degraded``.

Recent points are those whose target time lies in the last ``window`` up to the latest actual;
the baseline is every earlier matched point of the same version. MASE is the mean over matched
points: each point weighs the same, whichever series it belongs to. The version is degraded when
its recent MASE is worse than the baseline's by more than ``margin`` (relative), or worse than
the seasonal naive forecast's on the same recent points. Fewer than ``min_points`` recent points
decide nothing (not degraded, and the verdict says why).

The latest actual is the latest scored target time no later than a day past the clock
(``CLOCK_SLACK``: stamps without an offset are wall-clock time in the client's zone, up to 14 hours
ahead of UTC). An actual of a time to come is a mistake or a probe, and once one series' year-9999
targets made the window theirs alone: their 48 points outweighed 240,000 (issue 29). Targets
after the window's end count neither as recent nor as baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from forecaster.monitoring.accuracy import Figures
from forecaster.monitoring.store import MonitoringStore

#: How far past the clock a target time may be and still count (module docstring).
CLOCK_SLACK = timedelta(days=1)
_TICK = timedelta(microseconds=1)  # the store's resolution: windows are half-open


@dataclass(frozen=True)
class Verdict:
    """Whether ``model`` version ``version`` has degraded, why, and the figures compared."""

    model: str
    version: int | None
    degraded: bool
    reason: str
    recent: Figures | None = None
    baseline: Figures | None = None
    latest: datetime | None = None  # the window's end: the latest actual that counts


def check(
    store: MonitoringStore,
    model: str,
    version: int,
    *,
    window: timedelta = timedelta(days=7),
    margin: float = 0.1,
    min_points: int = 48,
    now: datetime | None = None,
) -> Verdict:
    """The verdict on ``model`` version ``version`` (module docstring); ``now``: the clock, as
    naive UTC (default: the system's)."""
    now = now if now is not None else datetime.now(UTC).replace(tzinfo=None)
    last = store.last_actual(model, before=now + CLOCK_SLACK)
    if last is None:
        return Verdict(model, version, False, "no actuals match its recorded forecasts yet")
    start, end = last - window + _TICK, last + _TICK
    recent = _figures(store.accuracy(model, version=version, since=start, until=end))
    if recent is None or recent.points < min_points:
        got = 0 if recent is None else recent.points
        why = f"{got} matched points in the last {_span(window)}; at least {min_points} decide"
        return Verdict(model, version, False, why, recent, latest=last)
    baseline = _figures(store.accuracy(model, version=version, until=start))
    mase, naive = recent.model.mase, recent.seasonal_naive.mase
    if mase is not None and naive is not None and mase > naive:
        why = f"recent MASE {mase:.3f} is worse than seasonal naive's {naive:.3f}"
        return Verdict(model, version, True, why, recent, baseline, last)
    before = None if baseline is None else baseline.model.mase
    if mase is not None and before is not None and mase > before * (1 + margin):
        why = f"recent MASE {mase:.3f} is worse than {before:.3f} before by more than {margin:.0%}"
        return Verdict(model, version, True, why, recent, baseline, last)
    why = f"recent MASE {_text(mase)} (before: {_text(before)}, seasonal naive: {_text(naive)})"
    return Verdict(model, version, False, why, recent, baseline, last)


def _figures(versions: list) -> Figures | None:
    return versions[0].overall if versions else None


def _span(window: timedelta) -> str:
    hours = window.total_seconds() / 3600
    return f"{hours / 24:g} days" if hours >= 24 else f"{hours:g} hours"


def _text(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"
