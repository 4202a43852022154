"""Has a model version's live accuracy degraded? The rule behind ``retrain --when degraded``.

Recent points are those whose target time lies in the :class:`Window` up to the latest actual:
the last ``steps`` steps of the model's frequency (by default :func:`default_steps`: a horizon,
at least a season, and enough steps for one series forecast at every step to reach
``min_points``), or, for a model whose frequency is unknown, the last ``days`` calendar days.
A window of calendar days once kept monthly and yearly models from ever deciding: 7 days hold
one monthly target at most (issue 34). The baseline is every earlier matched point of the same
version. MASE is the mean over matched points: each point weighs the same, whichever series it
belongs to. The version is degraded when its recent MASE is worse than the baseline's by more
than ``margin`` (relative), or worse than the seasonal naive forecast's on the same recent points,
or when an interval level's recent coverage falls short of nominal by more than
``coverage_margin`` points (a level with fewer than ``min_points`` recent points is not judged).
Fewer than ``min_points`` recent points decide nothing: the verdict is ``undecided`` (never "not
degraded"), and says how many of the points it needs it has.

The latest actual is the latest scored target time no later than a day past the clock
(``CLOCK_SLACK``: stamps without an offset are wall-clock time in the client's zone, up to 14 hours
ahead of UTC). An actual of a time to come is a mistake or a probe, and once one series' year-9999
targets made the window theirs alone: their 48 points outweighed 240,000 (issue 29). Targets
after the window's end count neither as recent nor as baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from forecaster.frequency import frequency_key, steps_before
from forecaster.monitoring.accuracy import Figures
from forecaster.monitoring.store import MonitoringStore

#: How far past the clock a target time may be and still count (module docstring).
CLOCK_SLACK = timedelta(days=1)
#: Recent points below which nothing is decided.
MIN_POINTS = 48
#: The window, in calendar days, of a model whose frequency is unknown.
DEFAULT_DAYS = 7.0
_TICK = timedelta(microseconds=1)  # the store's resolution: windows are half-open

Status = Literal["degraded", "not degraded", "undecided"]


def default_steps(
    horizon: int,
    seasonality: int | None,
    min_points: int = MIN_POINTS,
    step: timedelta | None = None,
) -> int:
    """The recent window's length in steps for a model of ``horizon`` and seasonal period
    ``seasonality``: one horizon (every step of a forecast is in it), at least one season (so no
    season is left out), at least ``min_points / horizon`` steps, in which one series
    forecast at every step is scored ``min_points`` times (a yearly model of horizon 6: 8), and,
    for a fixed ``step`` (hours, days), at least the ``DEFAULT_DAYS`` the window spanned before it
    was counted in steps (an hourly model keeps its week: 168 steps, not two days)."""
    days = math.ceil(timedelta(days=DEFAULT_DAYS) / step) if step else 1
    return max(horizon, seasonality or 1, math.ceil(min_points / max(horizon, 1)), days)


@dataclass(frozen=True)
class Window:
    """How far the recent window reaches back from the latest actual: ``steps`` steps of the
    frequency ``freq`` (a pandas alias), or else ``days`` calendar days."""

    steps: int | None = None
    freq: str | None = None
    days: float | None = None

    def __post_init__(self) -> None:
        if self.days is not None:
            if not self.days > 0 or self.steps is not None:
                raise ValueError(f"a window of days needs days > 0 and no steps: {self}")
        elif self.steps is None or self.steps < 1 or self.freq is None:
            raise ValueError(f"a window needs days, or steps >= 1 and a frequency: {self}")
        elif frequency_key(self.freq) is None:
            raise ValueError(f"a window's frequency must be a pandas alias, not {self.freq!r}")

    def start(self, last: datetime) -> datetime:
        """The window's exclusive start: recent targets lie in ``(start, last]``."""
        if self.steps is not None and self.freq is not None:
            return steps_before(last, self.freq, self.steps)
        try:
            return last - timedelta(days=self.days or DEFAULT_DAYS)
        except OverflowError:
            return datetime.min

    def describe(self) -> str:
        """``18 steps (MS)`` or ``7 days``."""
        if self.steps is not None:
            return f"{self.steps} step{'s' if self.steps != 1 else ''} ({self.freq})"
        return f"{self.days:g} days"

    def as_dict(self) -> dict[str, Any]:
        if self.steps is not None:
            return {"steps": self.steps, "freq": self.freq}
        return {"days": self.days}


@dataclass(frozen=True)
class Verdict:
    """Whether ``model`` version ``version`` has degraded (``status``), why, and the figures
    compared; ``points``: the recent window's matched points."""

    model: str
    version: int | None
    status: Status
    reason: str
    recent: Figures | None = None
    baseline: Figures | None = None
    latest: datetime | None = None  # the window's end: the latest actual that counts
    start: datetime | None = None  # the window's exclusive start
    points: int = 0

    @property
    def degraded(self) -> bool:
        return self.status == "degraded"

    @property
    def decided(self) -> bool:
        return self.status != "undecided"


def check(
    store: MonitoringStore,
    model: str,
    version: int,
    *,
    window: Window | None = None,
    margin: float = 0.1,
    coverage_margin: float = 5.0,
    min_points: int = MIN_POINTS,
    now: datetime | None = None,
) -> Verdict:
    """The verdict on ``model`` version ``version`` (module docstring); ``window``: by default
    the last :data:`DEFAULT_DAYS` days; ``now``: the clock, as naive UTC (default: the
    system's)."""
    window = window if window is not None else Window(days=DEFAULT_DAYS)
    now = now if now is not None else datetime.now(UTC).replace(tzinfo=None)
    last = store.last_actual(model, before=now + CLOCK_SLACK)
    if last is None:
        why = f"0 of {min_points} points: no actuals match its recorded forecasts yet"
        return Verdict(model, version, "undecided", why)
    start = window.start(last)
    since = start + _TICK if start > datetime.min else None
    recent = _figures(store.accuracy(model, version=version, since=since, until=last + _TICK))
    got = 0 if recent is None else recent.points
    if recent is None or got < min_points:
        why = (
            f"{got} of {min_points} points in the last {window.describe()} up to {last.isoformat()}"
        )
        return Verdict(model, version, "undecided", why, recent, None, last, start, got)
    before_window = store.accuracy(model, version=version, until=since) if since else []
    baseline = _figures(before_window)
    found = (recent, baseline, last, start, got)
    mase, naive = recent.model.mase, recent.seasonal_naive.mase
    if mase is not None and naive is not None and mase > naive:
        why = f"recent MASE {mase:.3f} is worse than seasonal naive's {naive:.3f}"
        return Verdict(model, version, "degraded", why, *found)
    before = None if baseline is None else baseline.model.mase
    if mase is not None and before is not None and mase > before * (1 + margin):
        why = f"recent MASE {mase:.3f} is worse than {before:.3f} before by more than {margin:.0%}"
        return Verdict(model, version, "degraded", why, *found)
    # (level, coverage in percent, points) of the levels with enough recent points to judge.
    judged = [
        (c.level, 100 * c.covered / c.points, c.points)
        for c in recent.levels.values()
        if c.points >= min_points
    ]
    for level, covered, points in judged:
        if covered < level - coverage_margin:
            why = (
                f"recent coverage of the {level:g}% interval is {covered:.1f}% over {points} "
                f"points, short of nominal by more than {coverage_margin:g} points"
            )
            return Verdict(model, version, "degraded", why, *found)
    why = f"recent MASE {_text(mase)} (before: {_text(before)}, seasonal naive: {_text(naive)})"
    if judged:
        why += "; coverage " + ", ".join(f"{L:g}%: {c:.1f}%" for L, c, _ in judged)
    return Verdict(model, version, "not degraded", why, *found)


def _figures(versions: list) -> Figures | None:
    return versions[0].overall if versions else None


def _text(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"
