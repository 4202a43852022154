"""The opt-in online adjustment of served intervals: adaptive conformal inference (Gibbs and
Candès, 2021) over the live coverage record.

For each (model, version, level) the coverage rows (``inside`` per scored point) are replayed in
target-time order, the last :data:`WINDOW` of them, through

    alpha_{t+1} = alpha_t + gamma * (alpha_nominal - err_t)    (err_t = 1: the actual fell outside)

starting from the nominal ``alpha = 1 - level / 100``: a band that misses too often is widened,
one that covers too often narrowed. The effective level is kept within :func:`level_bounds` at
every step (so a long run of misses cannot wind it up beyond them). Nothing is stored: the record
itself is the state, replayed whenever actuals arrive, so every replica serving from the same
database reaches the same levels.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import NamedTuple

# Coverage rows replayed per (model, version, level): the most recent ones.
WINDOW = 1000
# How far the effective level may move from the nominal, in points, and its ceiling.
BELOW, ABOVE, CEILING = 15.0, 4.5, 99.5
# Effective levels are served (and reported) rounded to this many decimals.
DIGITS = 2


def level_bounds(nominal: float) -> tuple[float, float]:
    """The range an effective level is kept in: ``[nominal - 15, min(99.5, nominal + 4.5)]``
    points, never below half the nominal (a level stays above 0) nor a ceiling under it."""
    low = max(nominal - BELOW, nominal / 2)
    high = max(nominal, min(CEILING, nominal + ABOVE))
    return low, high


def effective_level(nominal: float, inside: Sequence[bool], gamma: float) -> float:
    """The level (percent) to serve for ``nominal`` after replaying ``inside`` (whether each
    actual fell within the band served, oldest first) with step size ``gamma``."""
    low, high = level_bounds(nominal)
    target = 1 - nominal / 100
    least, most = 1 - high / 100, 1 - low / 100
    alpha = target
    for covered in inside:
        alpha = min(max(alpha + gamma * (target - (0.0 if covered else 1.0)), least), most)
    return round(100 * (1 - alpha), DIGITS)


class Change(NamedTuple):
    """One level's effective level moved: what a log line says."""

    model: str
    version: int
    level: str
    old: float
    new: float


class Adjustments:
    """The effective levels now served, per (model, version): level key (``"80"``) -> level.
    Written by the monitoring refresh, read by every request (a mapping once published is
    never changed, so readers need no lock)."""

    def __init__(self) -> None:
        self._levels: dict[tuple[str, int], Mapping[str, float]] = {}
        self._write = threading.Lock()

    def of(self, model: str, version: int) -> Mapping[str, float]:
        """Effective levels of ``model`` ``version`` that differ from their nominal."""
        return self._levels.get((model, version), {})

    def publish(self, model: str, version: int, levels: Mapping[str, float]) -> list[Change]:
        """Serve ``levels`` (key -> effective level) for ``model`` ``version``; the changes
        from what was served (a level not adjusted before counts from its nominal)."""
        moved = {k: v for k, v in levels.items() if v != float(k)}
        with self._write:
            before = self._levels.get((model, version), {})
            self._levels[(model, version)] = moved
        keys = sorted({*before, *moved}, key=float)
        return [
            Change(model, version, k, before.get(k, float(k)), moved.get(k, float(k)))
            for k in keys
            if before.get(k, float(k)) != moved.get(k, float(k))
        ]
