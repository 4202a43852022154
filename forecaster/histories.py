"""From a history as users send it (missing values, skipped timestamps) to what a forecast reads.

The policy is training's (:func:`forecaster.data.split_at_gaps`, its one home): leading and
trailing missing points are trimmed, interior runs of up to ``MAX_GAP`` missing points are
interpolated. A longer gap cuts the history (training reads the segments between long gaps): the
forecast is made from the points after the last one when they are at least ``min_after_gap``
(the caller's choice: enough for the model or a seasonal fallback), else :class:`GapTooLong` names
the gap. A timestamp skipped on the series' grid counts as a missing point (:func:`on_grid`).

Positions: :func:`on_grid` maps sent points to grid positions, inserting the missing ones; every
:class:`Gap` says which *sent* points bound it, so errors name positions the user recognises.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from forecaster.data import MAX_GAP, split_at_gaps

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

__all__ = [
    "Cleaned",
    "Gap",
    "GapTooLong",
    "NoValues",
    "beyond",
    "clean_history",
    "least_after_gap",
    "magnitude_rule",
    "on_grid",
    "trained_max_gap",
]


@dataclass(frozen=True)
class Gap:
    """A run of missing points longer than ``MAX_GAP``: ``missing`` points between the sent
    points at indices ``before`` and ``after`` (the last observed one before it, the first
    after it)."""

    before: int
    after: int
    missing: int


class NoValues(ValueError):
    """A history without a single observed value."""

    def __init__(self) -> None:
        super().__init__("the history holds no value, only nulls")


class GapTooLong(ValueError):
    """The points after the history's last long gap are too few to forecast from."""

    def __init__(self, gap: Gap, points_after: int, needed: int, max_gap: int) -> None:
        super().__init__(
            f"a gap of {gap.missing} missing points (more than the {max_gap} that are "
            f"interpolated) leaves {points_after} points after it, fewer than the {needed} "
            "needed to forecast from them; fill the gap or send only the points after it"
        )
        self.gap, self.points_after, self.needed = gap, points_after, needed
        self.max_gap = max_gap


@dataclass(frozen=True)
class Cleaned:
    """A history ready to forecast from.

    Attributes:
      values: [k] float64, no missing value.
      last: index among the sent points of the last one kept (the forecast starts after it).
      filled: how many of ``values`` were interpolated.
      gap: the long gap the history was cut after, if any.
    """

    values: F64
    last: int
    filled: int
    gap: Gap | None


def on_grid(values: ArrayLike, positions: ArrayLike, max_gap: int = MAX_GAP) -> tuple[F64, I64]:
    """``values [n]`` placed at their grid ``positions [n]`` (increasing), nan between.

    Returns the values on the grid and, for each grid point, the index of the sent point there
    (-1 for a missing one). A run of more than ``max_gap`` skipped points is stored as
    ``max_gap + 1`` of them: it cuts the history all the same, and a few stamps years apart
    cannot ask for a grid of millions of points.
    """
    values = np.asarray(values, dtype=np.float64)
    skipped = np.diff(np.asarray(positions, dtype=np.int64), prepend=-1) - 1
    skipped = np.minimum(skipped, max_gap + 1)
    skipped[0] = 0
    where = np.arange(values.size) + np.cumsum(skipped)
    grid = np.full(int(where[-1]) + 1 if values.size else 0, np.nan)
    sent = np.full(grid.size, -1, dtype=np.int64)
    grid[where], sent[where] = values, np.arange(values.size)
    return grid, sent


def clean_history(
    values: ArrayLike,
    *,
    sent: ArrayLike | None = None,
    positions: ArrayLike | None = None,
    max_gap: int = MAX_GAP,
    min_after_gap: int = 1,
) -> Cleaned:
    """The history ``values [n]`` (nan = missing) as the policy in the module docstring reads it.

    Args:
      values: the history, on its grid (see :func:`on_grid`).
      sent: [n] index of the sent point at each grid point (-1: missing); default: all sent.
      positions: the true grid position of each sent point (gaps :func:`on_grid` shortened
        are counted whole); default: consecutive.
      max_gap: longest run of missing points that is interpolated.
      min_after_gap: fewest points after a longer gap to forecast from.

    Raises :class:`NoValues` or :class:`GapTooLong`.
    """
    values = np.asarray(values, dtype=np.float64)
    if sent is None and values.size and not np.isnan(values).any():  # the common case
        return Cleaned(values, values.size - 1, 0, None)
    sent = np.arange(values.size) if sent is None else np.asarray(sent)
    split = split_at_gaps(values, max_gap)
    if not split.segments:
        raise NoValues()
    first, core = split.segments[-1]
    last = first + core.size - 1
    gap = None
    if len(split.segments) > 1:  # cut after the last long gap, which ends where it starts
        before, after = int(sent[split.starts[split.stops == first][0] - 1]), int(sent[first])
        at = np.arange(int(sent.max()) + 1) if positions is None else np.asarray(positions)
        gap = Gap(before, after, int(at[after] - at[before] - 1))
        if core.size < min_after_gap:
            raise GapTooLong(gap, core.size, min_after_gap, max_gap)
    filled = int(np.isnan(values[first : last + 1]).sum())
    return Cleaned(core, int(sent[last]), filled, gap)


def least_after_gap(min_input: int, seasonality: int) -> int:
    """Fewest points after a long gap to forecast from: enough for the model (its
    ``min_input``) or for a seasonal fallback (one season), whichever is fewer."""
    return min(min_input, seasonality)


def trained_max_gap(training: object) -> int:
    """Longest run of missing points interpolated in a history: the one the model was trained
    with (``training["max_gap"]`` of its manifest), so a forecast reads a history as training
    read its data; ``MAX_GAP`` for a model that records none."""
    value = training.get("max_gap", MAX_GAP) if isinstance(training, dict) else MAX_GAP
    return value if isinstance(value, int) and value >= 0 else MAX_GAP


#: Largest accepted |value| in a history (the service's ``max_abs_value`` default) and in
#: actuals read from a file.
MAX_ABS_VALUE = 1e15


def beyond(values: ArrayLike, bound: float) -> I64:
    """Positions of the values whose magnitude exceeds ``bound`` (infinities included; NaN, a
    missing value, is not): the service's ``max_abs_value`` rule, for histories and actuals."""
    return np.flatnonzero(np.abs(np.asarray(values, np.float64)) > bound)


def magnitude_rule(bound: float) -> str:
    """What :func:`beyond` holds values to, in words."""
    return f"|value| must be at most {bound:g}"
