"""Calibrated intervals: rolling backtests cut from the end of the training data, turned into
per-step conformal quantiles of scaled errors, so that any level or quantile can be served.

How a model is calibrated (:func:`calibrate`, called by :func:`forecaster.train.fit` once the
weights and the classical share are chosen): every training series is forecast from ``origins``
cut points ``T - H - j * stride`` (``j = 0 .. origins - 1``; ``T`` its length, ``H`` the trained
horizon, ``stride`` the seasonal period), exactly as it is served (the network rolled and blended
through :func:`forecaster.extend.forecast`), and each error ``actual - forecast`` is divided by
the series' scale at that origin: the seasonal-naive in-sample MAE of its last ``window`` points
(:func:`forecaster.metrics.scale`, lag 1 where the history is too short for a season; MASE's
denominator). The scaled signed errors are pooled across series and origins, per horizon step,
and the table keeps, per step, their quantiles at the probabilities of :data:`GRID` with the
split-conformal finite-sample correction: for ``n`` errors the quantile at ``p >= 0.5`` is the
``ceil((n + 1) p)``-th smallest, at ``p < 0.5`` the ``floor((n + 1) p)``-th (clamped to the
data), so each one-sided bound covers at least its nominal share of exchangeable errors.

Serving (:func:`bands`): the quantile ``q`` of a series at step ``t`` is its point forecast plus
its own scale times the table's value at ``(t, q)``, linear between the grid's probabilities (and
clamped to its ends: 0.001 and 0.999 are the most the data can vouch for). A level ``L`` (percent)
is the interval between the quantiles ``(1 - L/100) / 2`` and ``(1 + L/100) / 2``. Beyond the
trained horizon the distances are widened as a random walk of whole blocks
(:func:`forecaster.extend.widened`). A history whose scale is zero (constant) gets no width.

The statistical fallback (:mod:`forecaster.fallback`) is calibrated the same way, one table per
method, from cuts of the training series at ``FALLBACK_LENGTHS`` lengths spread over those that
method answers (below the model's ``min_input``, from ``SHORTEST_CUT`` points), at the same
origins: :func:`fallback_forecast` serves it. Its histories are scaled at lag 1 except the
seasonal blend's (:func:`_scale_lag`). On M4 Hourly's test set, cut to 24, 48 and 96 points, the
80% interval covered 80.9%, 78.9% and 82.4%, the 95% one 96.1%, 94.5% and 96.7%
(``benchmarks/intervals.py``); the method's own bands (:mod:`forecaster.fallback`) 84.1%, 79.8%,
85.4% and 93.3%, 93.8%, 96.2%. Histories of 2 or 3 points get the narrower table of longer ones.

Only the last cut ``T - H`` is out of sample for a model trained without ``refit`` (the selection
run never sees each series' last ``H`` points); the earlier ones were trained on, so their errors
are smaller than unseen ones (on M4 Hourly the 80% interval covered 76% of the test points from
eight origins taken as they are, 80% from the last one alone, but then each step's quantile
rests on one error per series). So the earlier origins' errors are widened by :func:`optimism`,
the ratio of the last origin's mean absolute scaled error to that of the origins wholly trained
on (at least 1): the table gets the many origins' shape at the unseen origin's size. After a
``refit`` every origin was trained on and the factor is about 1: such intervals are narrower
than they should be. ``benchmarks/intervals.py`` measures the coverage on M4 Hourly's test set.

Hooks for the live part (coverage from actuals, adaptive conformal): :class:`Table` answers for
any probability, so an online correction can shift the probabilities it is asked for
(``bands(..., probs)``) without touching the stored table.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from forecaster import fallback, metrics
from forecaster.covariates import CovariateSpec, CovariateValues, SeriesInputs
from forecaster.fallback import Fallback, Method

if TYPE_CHECKING:
    from forecaster.predict import Forecast, Predictor

F64 = NDArray[np.float64]

_TAIL = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04)
#: The probabilities each step's table holds: dense in the tails, where 95% and 99% intervals
#: end, every 2.5 points between 5% and 95%; any other is interpolated.
GRID: tuple[float, ...] = tuple(
    sorted(
        {
            *_TAIL,
            *(round(0.05 + 0.025 * k, 4) for k in range(37)),
            *(round(1 - p, 4) for p in _TAIL),
        }
    )
)
#: The interval levels (percent) every answer carries unless its request asks for others.
DEFAULT_LEVELS: tuple[float, ...] = (80.0, 95.0)
#: Most levels one request may ask for.
MAX_LEVELS = 20
#: Backtest origins per series, ``stride`` apart (a seasonal period; one point without one).
ORIGINS = 8
#: The fewest backtest errors per step a table is made from where the series allow: with fewer
#: than 39, the 2.5% and 97.5% quantiles are the smallest and largest error, as are 10% and 90%
#: below 9, so the 80% band would be the 95% one. Few series get more origins each.
LEAST_ERRORS = 40
#: Most backtest forecasts per fallback method (series are drawn at random beyond it): the
#: fallback runs per series in Python.
MAX_FALLBACK_ROWS = 20_000
SHORTEST_CUT = 4
#: History lengths per fallback method its table is made from, spread over those it answers.
FALLBACK_LENGTHS = 4
# Stored values keep this many significant digits: the table stays a few tens of KB.
DIGITS = 5


class NotCalibrated(ValueError):
    """The training data gives no backtest error to calibrate from (series too short, or all
    constant: no scale)."""


class Table(BaseModel):
    """Per-step quantiles of scaled signed errors: ``values[t][k]`` at step ``t + 1`` and
    probability ``GRID[k]``, from ``count`` errors per step (the fewest of any step)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    count: int = Field(..., ge=1)
    values: list[list[float]] = Field(..., min_length=1)

    def at(self, probs: Sequence[float], steps: int) -> F64:
        """The table's values at ``probs`` for steps 1..``steps``, [len(probs), steps], read-only;
        steps beyond the table repeat its last one (the caller widens them). Computed once per
        ``(probs, steps)`` and kept (:class:`_Derived`): a request's levels are nearly always
        those of the one before."""
        key = (tuple(float(p) for p in probs), steps)
        derived = self._derived
        found = derived.at.get(key)
        if found is None:
            found = self._interpolated(derived.values, key[0], steps)
            found.flags.writeable = False
            if len(derived.at) >= _KEPT:  # levels adjusted online keep moving: stay bounded
                derived.at.clear()
            derived.at[key] = found
        return found

    @staticmethod
    def _interpolated(table: F64, probs: Sequence[float], steps: int) -> F64:
        grid = np.asarray(GRID)
        rows = table[np.minimum(np.arange(steps), len(table) - 1)]  # [steps, G]
        out = np.empty((len(probs), steps))
        for i, p in enumerate(probs):
            p = min(max(float(p), grid[0]), grid[-1])
            k = min(int(np.searchsorted(grid, p, side="right")) - 1, len(grid) - 2)
            w = (p - grid[k]) / (grid[k + 1] - grid[k])
            out[i] = (1 - w) * rows[:, k] + w * rows[:, k + 1]
        return out

    @functools.cached_property
    def _derived(self) -> _Derived:
        # Reading ``values`` (a list of lists) into an array is most of what serving a level
        # cost per request; the table is frozen, so it is read once.
        return _Derived(np.asarray(self.values, np.float64))


# Most (probs, steps) a table keeps computed.
_KEPT = 64


class _Derived:
    """What a :class:`Table` serves from, computed from its fields on first use: the values as
    an array [H, G] and the interpolated rows already asked for. Equal for equal tables
    whatever was asked (pydantic compares a model's ``__dict__``, where this is kept)."""

    __slots__ = ("at", "values")

    def __init__(self, values: F64) -> None:
        self.values = values
        self.at: dict[tuple[tuple[float, ...], int], F64] = {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Derived)

    __hash__ = None  # type: ignore[assignment]  # mutable cache: unhashable, like a dict


class Calibration(BaseModel):
    """A model's calibration as its manifest stores it (module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["split-conformal"] = "split-conformal"
    scale: Literal["seasonal-naive-mae"] = "seasonal-naive-mae"
    season: int = Field(..., ge=1, description="Seasonal period of the scale.")
    window: int = Field(..., ge=1, description="Last points of a history its scale reads.")
    origins: int = Field(..., ge=1)
    stride: int = Field(..., ge=1)
    grid: list[float] = Field(default_factory=lambda: list(GRID))
    model: Table
    optimism: float = Field(
        1.0, ge=1.0, description="Factor the earlier origins' errors were widened by."
    )
    fallback: dict[Method, Table] = Field(default_factory=dict)
    seconds: float = Field(0.0, description="CPU seconds the calibration took.")

    @model_validator(mode="after")
    def _on_grid(self) -> Calibration:
        if tuple(self.grid) != GRID:
            raise ValueError("calibration grid differs from this forecaster's; recalibrate")
        widths = {len(row) for t in [self.model, *self.fallback.values()] for row in t.values}
        if widths != {len(GRID)}:
            raise ValueError(f"every table row must hold {len(GRID)} values")
        return self


# ------------------------------------------------------------------------------------ levels


def level_quantiles(levels: Sequence[float]) -> list[tuple[float, float]]:
    """Each level's (lower, upper) quantile probabilities: ``(1 -+ L / 100) / 2``."""
    return [(round((1 - L / 100) / 2, 9), round((1 + L / 100) / 2, 9)) for L in levels]


def level_key(level: float) -> str:
    """How an answer names a level: ``80``, ``99.5``."""
    return f"{level:g}"


class NotOffered(ValueError):
    """A level or quantile an uncalibrated model cannot give: ``field`` (``levels`` or
    ``quantiles``) and ``index``, its position among those asked, say which."""

    def __init__(self, message: str, field: Literal["levels", "quantiles"], index: int) -> None:
        super().__init__(message)
        self.field, self.index = field, index


def offered_match(q: float, offered: Sequence[float]) -> float | None:
    """The quantile level of ``offered`` that is ``q`` (to 1e-9), as the model names it."""
    return next((o for o in offered if math.isclose(o, q, abs_tol=1e-9)), None)


def uncalibrated_intervals(
    levels: Sequence[float],
    quantiles: Sequence[float],
    offered: Sequence[float],
    *,
    levels_asked: bool,
) -> tuple[list[float], list[tuple[float, float]], list[float]]:
    """What a model without calibration serves of ``levels`` and ``quantiles``: only what its
    quantile heads ``offered`` give. Returns the levels kept, each one's (lower, upper) heads
    and the heads of ``quantiles``. A quantile it cannot give raises :class:`NotOffered`, and
    so does a level when ``levels_asked`` (else, default levels, it is left out)."""
    picked = []
    for i, q in enumerate(quantiles):
        match = offered_match(q, offered)
        if match is None:
            msg = (f"quantile {q} is not offered; the model is not calibrated and offers "
                   f"{list(offered) or 'none'}")  # fmt: skip
            raise NotOffered(msg, "quantiles", i)
        picked.append(match)
    kept, bounds = [], []
    for i, (level, (lo, hi)) in enumerate(zip(levels, level_quantiles(levels), strict=True)):
        found = (offered_match(lo, offered), offered_match(hi, offered))
        if found[0] is not None and found[1] is not None:
            kept.append(level)
            bounds.append((found[0], found[1]))
        elif levels_asked:
            msg = (f"level {level:g} needs the quantiles {lo:g} and {hi:g}; the model is not "
                   f"calibrated and offers {list(offered) or 'none'}")  # fmt: skip
            raise NotOffered(msg, "levels", i)
    return kept, bounds, picked


# ------------------------------------------------------------------------------------ serving


def scales(histories: Sequence[F64], season: int, window: int) -> F64:
    """Each history's scale [n]: the seasonal-naive in-sample MAE of its last ``window``
    points (lag 1 when too short for a season); 0 where there is none (constant, one point)."""
    if len(histories) and all(len(h) >= window for h in histories):
        # One window length: the histories' scales in a few numpy calls, not a few per series.
        s = metrics.scale(np.array([h[-window:] for h in histories], np.float64), season)
    else:
        s = metrics.scale([np.asarray(h[-window:], np.float64) for h in histories], season)
    s[np.isnan(s)] = 0.0
    return s


def spread(
    table: Table, scale: F64, point: F64, probs: Sequence[float], block: int
) -> dict[float, F64]:
    """The quantiles ``probs`` of forecasts ``point`` [n, h] whose series have ``scale`` [n],
    from ``table``; beyond ``block`` steps (the table's horizon) widened as whole blocks."""
    h = point.shape[1]
    values = table.at(probs, min(h, block))  # [len(probs), min(h, block)]
    # Every quantile of every series at once: [len(probs), n, h].
    width = scale[None, :, None] * values[:, None, :]
    if h > block:  # no width beyond the table yet: widened below
        width = np.concatenate([width, np.zeros((*width.shape[:2], h - block))], axis=2)
    bands = point + width
    out = {float(q): bands[i] for i, q in enumerate(probs)}
    if h > block:
        from forecaster.extend import widened
        from forecaster.predict import Forecast

        out = widened(Forecast(point, out), block).quantiles
    return out


def bands(
    cal: Calibration, histories: Sequence[F64], forecast: Forecast, probs: Sequence[float]
) -> Forecast:
    """``forecast`` (the served point [n, h] of ``histories``) with calibrated quantiles at
    ``probs`` in place of the heads'."""
    from forecaster.predict import Forecast

    s = scales(histories, cal.season, cal.window)
    block = len(cal.model.values)
    return Forecast(forecast.point, spread(cal.model, s, forecast.point, probs, block))


def fallback_forecast(
    cal: Calibration | None,
    history: F64,
    horizon: int,
    season: int,
    probs: Sequence[float],
    method: Method | None = None,
) -> tuple[Fallback, bool]:
    """The statistical forecast of ``history`` with bands at ``probs``: calibrated from
    ``cal``'s table for the method that answered when there is one (then True), else the
    method's own bands from the history (:func:`forecaster.fallback.fallback_forecast`)."""
    own = fallback.fallback_forecast(history, horizon, season, probs, method)
    table = cal.fallback.get(own.method) if cal is not None else None
    if cal is None or table is None:
        return own, False
    s = scales([np.asarray(history, np.float64)], _scale_lag(own.method, cal.season), cal.window)
    block = len(table.values)
    qs = spread(table, s, own.point[None, :], probs, block)
    return Fallback(own.point, {q: v[0] for q, v in qs.items()}, own.method), True


# ------------------------------------------------------------------------------------ training


def conformal_table(errors: F64) -> Table:
    """The :class:`Table` of scaled signed ``errors`` [n, h] (nan: no error), per step."""
    rows, count = [], None
    for t in range(errors.shape[1]):
        e = np.sort(errors[:, t][np.isfinite(errors[:, t])])
        n = e.size
        if n == 0:
            raise NotCalibrated(f"no backtest error at step {t + 1} to calibrate from")
        count = n if count is None else min(count, n)
        row = []
        for p in GRID:
            rank = math.ceil((n + 1) * p) if p >= 0.5 else math.floor((n + 1) * p)
            row.append(float(f"{e[min(max(rank, 1), n) - 1]:.{DIGITS}g}"))
        rows.append(row)
    assert count is not None
    return Table(count=count, values=rows)


def origins_for(n_series: int, origins: int) -> int:
    """Backtest origins per series: ``origins``, or more where ``n_series`` series would give
    fewer than :data:`LEAST_ERRORS` errors per step (one series: 40 origins)."""
    if origins <= 0 or n_series <= 0:
        return origins
    return max(origins, -(-LEAST_ERRORS // n_series))


def _cut_points(
    values: Sequence[F64], horizon: int, origins: int, stride: int, least: int
) -> list[tuple[int, int, int]]:
    """Backtest cuts ``(series, cut, origin)``: series ``i`` forecast from its first ``cut``
    points (at least ``least``), ``origins`` per series where its length allows (origin 0:
    the last)."""
    points = []
    for i, x in enumerate(values):
        for j in range(origins):
            cut = len(x) - horizon - j * stride
            if cut < least:
                break
            points.append((i, cut, j))
    return points


def _cuts(
    values: Sequence[F64], horizon: int, origins: int, stride: int, least: int
) -> tuple[list[F64], F64, list[int]]:
    """Backtest cuts (:func:`_cut_points`): histories, targets [m, horizon] and the origin
    each came from."""
    points = _cut_points(values, horizon, origins, stride, least)
    histories = [values[i][:cut] for i, cut, _ in points]
    targets = [values[i][cut : cut + horizon] for i, cut, _ in points]
    return histories, np.asarray(targets, np.float64).reshape(-1, horizon), [j for *_, j in points]


def _cut_inputs(
    spec: CovariateSpec,
    covariates: CovariateValues,
    ends: Sequence[Any] | None,
    values: Sequence[F64],
    points: Sequence[tuple[int, int, int]],
    horizon: int,
) -> list[SeriesInputs]:
    """What each cut ``points`` of ``values`` brings to its forecast, as served: every past
    and future covariate up to the origin, the future-known ones over the horizon, the
    statics, and the origin's timestamp (``ends``: each series' last; calendar features)."""
    step = pd.tseries.frequencies.to_offset(spec.freq) if spec.timed and spec.freq else None
    dynamic = covariates.past | covariates.future
    out = []
    for i, cut, _ in points:
        end = None
        if step is not None and ends is not None:
            end = pd.Timestamp(ends[i]) - (len(values[i]) - cut) * step
        out.append(SeriesInputs(
            past={k: v[i][:cut] for k, v in dynamic.items()},
            future={k: v[i][cut : cut + horizon] for k, v in covariates.future.items()},
            static={k: v[i] for k, v in covariates.static.items()},
            end=end,
        ))  # fmt: skip
    return out


def _scaled_errors(
    histories: Sequence[F64], targets: F64, point: F64, season: int, window: int
) -> F64:
    s = scales(histories, season, window)
    with np.errstate(divide="ignore", invalid="ignore"):
        errors = (targets - point) / s[:, None]
    errors[s == 0] = np.nan  # no scale: nothing to learn about widths
    return errors


def _scale_lag(method: Method, season: int) -> int:
    """The lag of the scale of a history the fallback ``method`` answers: the season for the
    seasonal blend (two seasons or more: at least a season of lag-m differences), else 1. Below
    two seasons the seasonal scale would rest on few differences, and none at exactly one
    season, where it switches to lag 1 inside seasonal naive's range; on M4 Hourly the lag-1
    scale there covered within 1 point of nominal at 24 points (the seasonal one: 2.7 over at
    80%), while for the blend the seasonal scale kept the intervals a third as wide (MSIS)."""
    return season if method == "seasonal_blend" else 1


def _fallback_lengths(season: int, min_input: int) -> dict[Method, list[int]]:
    """Cut lengths for each fallback method answering below ``min_input``: up to
    ``FALLBACK_LENGTHS`` spread evenly over the lengths it answers (:func:`choose_method`)."""
    by_method: dict[Method, list[int]] = {}
    # From SHORTEST_CUT points: the scale of 2 or 3 (one or two differences) is mostly luck, and its
    # wild scaled errors would widen every short history's tails.
    for n in range(min(SHORTEST_CUT, min_input - 1), min_input):
        by_method.setdefault(fallback.choose_method(n, season), []).append(n)
    out: dict[Method, list[int]] = {}
    for method, lengths in by_method.items():
        picks = np.linspace(0, len(lengths) - 1, min(FALLBACK_LENGTHS, len(lengths)))
        out[method] = sorted({lengths[round(float(k))] for k in picks})
    return out


def optimism(errors: F64, origin: NDArray[np.int_]) -> float:
    """How much larger the errors [m, h] of the last origin (0: unseen by a model trained
    without refit) are than those of the origins whose targets it trained on (2 and later:
    wholly before the validation split), as the ratio of their mean absolute values; at least 1,
    and 1 when either is missing."""
    unseen, seen = np.abs(errors[origin == 0]), np.abs(errors[origin >= 2])
    unseen, seen = unseen[np.isfinite(unseen)], seen[np.isfinite(seen)]
    if not unseen.size or not seen.size or not seen.mean() > 0:
        return 1.0
    return max(1.0, float(unseen.mean() / seen.mean()))


def calibrate_fallback(
    values: Sequence[F64],
    horizon: int,
    season: int,
    min_input: int,
    *,
    window: int,
    origins: int = ORIGINS,
    stride: int | None = None,
    seed: int = 0,
) -> dict[Method, Table]:
    """A :class:`Table` per fallback method answering below ``min_input``, from cuts of
    ``values`` at the lengths it answers (module docstring)."""
    stride = stride or max(season, 1)
    rng = np.random.default_rng(seed)
    out: dict[Method, Table] = {}
    for method, lengths in _fallback_lengths(season, min_input).items():
        rows: list[F64] = []
        hist, targ = [], []
        for n in lengths:
            full, targets, _ = _cuts(values, horizon, origins, stride, n)
            hist += [h[-n:] for h in full]
            targ.append(targets)
        if not hist:
            continue
        targets = np.concatenate(targ)
        if len(hist) > MAX_FALLBACK_ROWS:
            keep = np.sort(rng.choice(len(hist), MAX_FALLBACK_ROWS, replace=False))
            hist, targets = [hist[k] for k in keep], targets[keep]
        rows = [fallback.fallback_forecast(h, horizon, season).point for h in hist]
        lag = _scale_lag(method, season)
        errors = _scaled_errors(hist, targets, np.asarray(rows), lag, window)
        if np.isfinite(errors).any(axis=0).all():
            out[method] = conformal_table(errors)
    return out


def calibrate(
    predictor: Predictor,
    values: Sequence[F64],
    season: int,
    *,
    origins: int = ORIGINS,
    stride: int | None = None,
    with_fallback: bool = True,
    covariates: CovariateValues | None = None,
    ends: Sequence[Any] | None = None,
) -> Calibration:
    """Calibrate ``predictor`` (the chosen model, blended as served) on rolling backtests of
    the training series ``values`` (module docstring). A model that reads covariates is
    forecast at each cut with them, as it is served: ``covariates`` holds the series' values
    aligned with ``values`` (:class:`~forecaster.data.SeriesSet`'s), ``ends`` each series'
    last timestamp (for calendar features)."""
    from forecaster import extend

    started = time.process_time()
    cfg = predictor.config
    stride = stride or max(season, 1)
    values = [np.asarray(v, np.float64) for v in values]
    origins = origins_for(len(values), origins)
    points = _cut_points(values, cfg.horizon, origins, stride, cfg.min_input)
    if not points:
        raise NotCalibrated(
            f"no series is long enough for one backtest of {cfg.min_input + cfg.horizon} points"
        )
    histories = [values[i][:cut] for i, cut, _ in points]
    targets = np.asarray([values[i][cut : cut + cfg.horizon] for i, cut, _ in points])
    origin = [j for *_, j in points]
    inputs = None
    if cfg.covariates:
        if covariates is None:
            raise NotCalibrated("the model reads covariates: calibrating it needs their values")
        inputs = _cut_inputs(predictor.covariates, covariates, ends, values, points, cfg.horizon)
    point = extend.forecast(predictor, histories, cfg.horizon, inputs).point
    window = cfg.input_size
    errors = _scaled_errors(histories, targets, point, season, window)
    factor = optimism(errors, np.asarray(origin))
    errors[np.asarray(origin) > 0] *= factor
    table = conformal_table(errors)
    tables = (
        calibrate_fallback(
            values,
            cfg.horizon,
            season,
            cfg.min_input,
            window=window,
            origins=origins,
            stride=stride,
        )
        if with_fallback
        else {}
    )
    return Calibration(
        season=season,
        window=window,
        origins=origins,
        stride=stride,
        model=table,
        optimism=round(factor, 4),
        fallback=tables,
        seconds=round(time.process_time() - started, 3),
    )
