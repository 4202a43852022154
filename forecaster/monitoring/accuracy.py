"""Live accuracy: sums of errors per (version, step) from the store, combined into figures.

The store adds up, in SQL, each matched point's errors (:data:`SUM_FIELDS`); here those sums
become sMAPE (M4's definition, in percent), MASE (each point's absolute error over its history's
seasonal-naive scale, :func:`forecaster.metrics.scale`), MAE and interval coverage, for the
forecasts and for the seasonal naive forecast of the same histories on the same points.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: The sums the store returns per (version, step), in this order.
SUM_FIELDS = (
    "points",  # matched points
    "abs_error",  # sum |actual - point|
    "smape",  # sum 200 |a - p| / (|a| + |p|)  (0 where both are 0)
    "scaled",  # sum |a - p| / scale, over points whose history has a scale
    "scaled_points",
    "sn_abs_error",  # the same three for the seasonal naive forecast
    "sn_smape",
    "sn_scaled",
    "interval_points",  # points recorded with an interval
    "covered",  # ... whose actual fell inside it
)


@dataclass(frozen=True)
class Sums:
    """Error sums over some matched points (fields: :data:`SUM_FIELDS`)."""

    points: int = 0
    abs_error: float = 0.0
    smape: float = 0.0
    scaled: float = 0.0
    scaled_points: int = 0
    sn_abs_error: float = 0.0
    sn_smape: float = 0.0
    sn_scaled: float = 0.0
    interval_points: int = 0
    covered: int = 0

    @classmethod
    def from_row(cls, row: Sequence[object]) -> Sums:
        """From the store's SQL sums (None, an empty sum, is 0)."""
        empty = cls()
        sums: dict[str, Any] = {
            f: type(getattr(empty, f))(value or 0) for f, value in zip(SUM_FIELDS, row, strict=True)
        }
        return cls(**sums)

    def __add__(self, other: Sums) -> Sums:
        return Sums.from_row([a + b for a, b in zip(_values(self), _values(other), strict=True)])


def _values(sums: Sums) -> tuple[float, ...]:
    return tuple(getattr(sums, f) for f in SUM_FIELDS)


@dataclass(frozen=True)
class Errors:
    """Mean errors over ``points`` matched points (None where undefined)."""

    points: int
    smape: float | None
    mase: float | None
    mae: float | None


@dataclass(frozen=True)
class Figures:
    """Accuracy over some points: the forecasts', the seasonal naive's on the same points, and
    the share of actuals inside the recorded interval (``interval_points`` of them)."""

    points: int
    model: Errors
    seasonal_naive: Errors
    coverage: float | None
    interval_points: int

    @classmethod
    def of(cls, s: Sums) -> Figures:
        return cls(
            points=s.points,
            model=_errors(s.points, s.smape, s.scaled, s.scaled_points, s.abs_error),
            seasonal_naive=_errors(
                s.points, s.sn_smape, s.sn_scaled, s.scaled_points, s.sn_abs_error
            ),
            coverage=s.covered / s.interval_points if s.interval_points else None,
            interval_points=s.interval_points,
        )


def _errors(n: int, smape: float, scaled: float, n_scaled: int, abs_error: float) -> Errors:
    return Errors(
        points=n,
        smape=_mean(smape, n),
        mase=_mean(scaled, n_scaled),
        mae=_mean(abs_error, n),
    )


def _mean(total: float, n: int) -> float | None:
    """``total / n``; None for no points, and for a sum that overflowed (values near 1e308)."""
    return total / n if n and math.isfinite(total) else None


@dataclass(frozen=True)
class VersionAccuracy:
    """One model version's live accuracy: overall, and per horizon step (1-based)."""

    version: int
    overall: Figures
    steps: dict[int, Figures]
    interval: tuple[float, float] | None  # quantile levels of the recorded interval


def by_version(
    rows: list[tuple[int, int, Sums]], intervals: dict[int, tuple[float, float]]
) -> list[VersionAccuracy]:
    """Rows of ``(version, step, sums)`` as each version's figures, newest version first."""
    per_version: dict[int, dict[int, Sums]] = {}
    for version, step, sums in rows:
        steps = per_version.setdefault(version, {})
        steps[step] = steps.get(step, Sums()) + sums
    out = []
    for version in sorted(per_version, reverse=True):
        steps = per_version[version]
        total = sum(steps.values(), Sums())
        out.append(
            VersionAccuracy(
                version=version,
                overall=Figures.of(total),
                steps={k: Figures.of(steps[k]) for k in sorted(steps)},
                interval=intervals.get(version),
            )
        )
    return out


def as_dict(accuracy: VersionAccuracy) -> dict:
    """Plain JSON-able form (the API's and ``forecaster monitor --json``'s)."""
    out = dataclasses.asdict(accuracy)
    out["steps"] = [{"step": k, **v} for k, v in out["steps"].items()]
    return out
