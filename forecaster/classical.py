"""Classical forecasts blended into the network's: Theta (the winner of M3) and damped trend
exponential smoothing.

A trained model's point forecast is ``network + wt * (theta - network) + wd * (damped -
network)`` with the shares ``ModelConfig.theta_weight`` and ``damped_weight``. Training tries each
share ``w`` of ``TrainConfig.theta_weights`` for the mean of the two methods (``wt = wd = w / 2``)
and keeps the one with the best validation OWA (:func:`choose_weight`): on short yearly,
quarterly and monthly series a recurrent network and the classical methods err differently, and
their blend beats each; where the network is far better (hourly) validation keeps ``w`` at 0
and nothing is computed. The mean of the two did better than either alone on the validation
splits of M3's four subsets (docs/guide/training.md gives the figures).

Both methods work on the series seasonally adjusted as in the M4 benchmarks (classical
multiplicative decomposition, when M4's 90% seasonality test passes and the series is positive)
and re-seasonalise their forecasts:

- Theta as R's ``forecast::thetaf``: simple exponential smoothing (its weight from a grid and its
  initial level fitted by least squares one step ahead) gives the level, half the slope of a
  least-squares line gives the drift.
- Damped trend as R's ``ets(x, "AAN", damped=TRUE)`` fitted by least squares: level weight,
  trend weight and damping from a grid, initial level and trend in closed form.

Trends that run away: on a volatile short series (a level that jumps or collapses from one
period to the next) neither the network nor the trend methods can tell a trend from noise, and
the few series whose level collapsed got forecasts several times their actuals. So the blended
forecast ``f`` is pulled toward Naive2 ``a`` (the last seasonally adjusted value, re-seasonalised)
as ``a + (f - a) / (1 + k v)``, ``v`` the series' volatility (the spread of its seasonal
differences over its mean magnitude, :func:`volatility`) and ``k`` the model's
``naive_shrink``: a smooth series keeps its forecast, a jumpy one moves toward its last level.
Training tries each ``k`` of ``TrainConfig.naive_shrinks`` and keeps the strongest whose
validation OWA is within ``SHRINK_TOLERANCE`` of the best (:func:`choose_shrink`): where
validation cannot tell them apart the damped forecast is the safer one.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from forecaster import metrics

# SES smoothing weights tried for Theta (the least one-step squared error wins).
ALPHAS = np.linspace(0.02, 1.0, 50)
# Damped trend: (level weight, trend weight, damping) tried; the trend weight as a share of the
# level weight (it must not exceed it), the damping within ets's bounds [0.8, 0.98].
_LEVEL = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99)
_TREND_SHARE = (0.01, 0.05, 0.1, 0.3, 0.6)
_DAMPING = (0.8, 0.85, 0.9, 0.95, 0.98)
DAMPED_GRID = np.array([(a, a * b, p) for a in _LEVEL for b in _TREND_SHARE for p in _DAMPING])
# Fewest points that fix a level and a trend; shorter series get their last value.
_DAMPED_LEAST = 3
# Damped trend is fitted to at most this many of a series' last points: its cost grows with the
# length, and its state forgets the past at the rate of its level weight (0.95^1000 ~ 1e-22).
DAMPED_HISTORY = 1_000
# Strengths of the pull toward Naive2 whose validation OWA is within this share of the best
# count as equal (about the seed-to-seed spread of a short data set's OWA), the strongest wins.
SHRINK_TOLERANCE = 0.01


def forecasts(
    histories: Sequence[np.ndarray], horizon: int, m: int, methods: Sequence[str]
) -> dict[str, np.ndarray]:
    """Forecasts [n, horizon] of ``histories`` (n arrays of any lengths >= 1) with seasonal
    period ``m`` by each of ``methods`` (``"theta"``, ``"damped"``, ``"naive2"``: the last
    seasonally adjusted value, M4's Naive2)."""
    # Both methods are linear in the data (their fitted settings are not changed by a scale), so
    # each series is fitted divided by its largest magnitude: squared errors stay in range at any
    # finite scale (1e300 as 1e-300).
    scales = np.array([np.abs(h).max(initial=0.0) or 1.0 for h in histories])[:, None]
    adjusted, factors = _seasonal_adjustment(
        [np.asarray(h, np.float64) / s for h, s in zip(histories, scales, strict=True)], horizon, m
    )
    return {name: _METHODS[name](adjusted, horizon) * factors * scales for name in methods}


def theta(histories: Sequence[np.ndarray], horizon: int, m: int) -> np.ndarray:
    """Theta forecasts [n, horizon] (see :func:`forecasts`)."""
    return forecasts(histories, horizon, m, ("theta",))["theta"]


def damped(histories: Sequence[np.ndarray], horizon: int, m: int) -> np.ndarray:
    """Damped trend forecasts [n, horizon] (see :func:`forecasts`)."""
    return forecasts(histories, horizon, m, ("damped",))["damped"]


def _seasonal_adjustment(
    histories: Sequence[np.ndarray], horizon: int, m: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """The histories divided by their seasonal indices, and the indices [n, horizon] of the
    forecast steps (1 where a series is not adjusted)."""
    adjusted, factors = [], np.ones((len(histories), horizon))
    for i, x in enumerate(histories):
        if np.all(x > 0) and metrics.seasonality_test(x, m):
            x, factors[i] = metrics.seasonally_adjusted(x, m, horizon)
        adjusted.append(x)
    return adjusted, factors


def _aligned(series: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Series aligned at their start, zero-padded: [n, longest], and their lengths [n]."""
    lengths = np.array([x.size for x in series])
    x = np.zeros((len(series), lengths.max()))
    for i, s in enumerate(series):
        x[i, : s.size] = s
    return x, lengths


def _theta(series: list[np.ndarray], horizon: int) -> np.ndarray:
    """Theta's forecasts [n, horizon] of (seasonally adjusted) ``series``."""
    level, alpha, lengths = _ses(series)
    slope = np.array([_slope(x) for x in series])
    steps = np.arange(horizon)[None, :]
    drift = (
        0.5 * slope[:, None] * (steps + (1.0 - (1.0 - alpha) ** lengths)[:, None] / alpha[:, None])
    )
    return level[:, None] + drift


def _ses(series: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Final SES level [n], smoothing weight [n] and length [n] of each series, the weight and
    the initial level fitted by least squares one step ahead (as R's ``ets(x, "ANN")``), every
    weight of ``ALPHAS`` run at once; series stop at their own length.

    For a given weight the one-step errors are linear in the initial level ``l0``
    (``e_t = e0_t - (1 - a)^t l0``, with ``e0`` the errors from ``l0 = 0``), so the best
    ``l0`` has a closed form and one pass accumulates what it needs."""
    x, lengths = _aligned(series)
    shape = (len(series), ALPHAS.size)
    level, decay = np.zeros(shape), np.ones(shape)  # the level from l0 = 0; (1 - a)^t
    ee, ec, cc = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for t in range(x.shape[1]):
        live = (t < lengths)[:, None]
        err = np.where(live, x[:, t : t + 1] - level, 0.0)
        c = np.where(live, decay, 0.0)
        ee += err * err
        ec += err * c
        cc += c * c
        level += ALPHAS * err
        decay *= 1.0 - ALPHAS
    l0 = ec / cc
    best = np.argmin(ee - ec * l0, axis=1)
    final = level + (1.0 - ALPHAS) ** lengths[:, None] * l0
    rows = np.arange(len(series))
    return final[rows, best], ALPHAS[best], lengths


def _slope(x: np.ndarray) -> float:
    """Least-squares slope of ``x`` against 0..n-1 (0 for one point)."""
    if x.size < 2:
        return 0.0
    t = np.arange(x.size) - (x.size - 1) / 2
    return float(t @ (x - x.mean()) / (t @ t))


def _damped(series: list[np.ndarray], horizon: int) -> np.ndarray:
    """Damped trend forecasts [n, horizon] of (seasonally adjusted) ``series``: every setting of
    ``DAMPED_GRID`` run at once, the one with the least one-step squared error kept.

    The filter (``e = y - l - phi b``, ``l += phi b + alpha e``, ``b = phi b + beta e``) is
    linear in the data and the initial state: the errors from an initial level ``l0`` and trend
    ``b0`` are ``e_data + l0 e_l + b0 e_b``, where ``e_data`` runs on the data from a zero state
    and ``e_l``, ``e_b`` run on no data from a unit level or trend, and are the same for every
    series (:func:`_unit_responses`). Their squared sum is a quadratic in ``(l0, b0)``, minimised
    in closed form; the final state follows by the same linearity."""
    x, lengths = _aligned([s[-DAMPED_HISTORY:] for s in series])
    n, k = len(series), len(DAMPED_GRID)
    alpha, beta, phi = (DAMPED_GRID[:, j] for j in range(3))
    unit_errors, unit_states = (a[..., : x.shape[1], :] for a in _unit_responses())
    level, trend = np.zeros((n, k)), np.zeros((n, k))
    final = np.zeros((2, n, k))  # the data's level and trend at each series' end
    ee, el, eb = np.zeros((n, k)), np.zeros((n, k)), np.zeros((n, k))
    live = (np.arange(x.shape[1])[:, None] < lengths[None, :]).astype(np.float64)[..., None]
    for t in range(x.shape[1]):
        ahead = level + phi * trend
        err = (x[:, t : t + 1] - ahead) * live[t]  # past its end a series adds no errors
        ee += err * err
        el += err * unit_errors[0, t]
        eb += err * unit_errors[1, t]
        level = ahead + alpha * err
        trend = phi * trend + beta * err
        ends = lengths == t + 1
        if ends.any():
            final[0, ends], final[1, ends] = level[ends], trend[ends]
    # Sums over each series' own length of the unit responses' products: [n, k] each.
    products = np.cumsum(unit_errors[:, None] * unit_errors[None, :], axis=2)[:, :, lengths - 1]
    l0, b0, sse = _least_squares_start(ee, el, eb, products)
    best = np.argmin(sse, axis=1)
    rows = np.arange(n)
    start = np.stack([l0[rows, best], b0[rows, best]])  # [2 (l0, b0), n]
    unit_final = unit_states[:, :, lengths - 1, best]  # [2 (from l0, b0), 2 (level, trend), n]
    last = final[:, rows, best] + (unit_final * start[:, None, :]).sum(0)  # [2, n]
    damping = np.cumsum(phi[best][:, None] ** np.arange(1, horizon + 1)[None, :], axis=1)
    out = last[0][:, None] + damping * last[1][:, None]
    short = lengths < _DAMPED_LEAST
    out[short] = x[short, lengths[short] - 1][:, None]
    return out


@functools.cache
def _unit_responses() -> tuple[np.ndarray, np.ndarray]:
    """The damped trend filter run on ``DAMPED_HISTORY`` zeros from a unit level and from a
    unit trend, for every setting of ``DAMPED_GRID``: the one-step errors [2, steps, k] and the
    level and trend after each step [2, 2 (level, trend), steps, k]. Computed once (read-only):
    a shorter series reads their beginning."""
    steps = DAMPED_HISTORY
    alpha, beta, phi = (DAMPED_GRID[:, j] for j in range(3))
    level = np.array([1.0, 0.0])[:, None] * np.ones(len(DAMPED_GRID))
    trend = 1.0 - level
    errors, states = (
        np.zeros((2, steps, len(DAMPED_GRID))),
        np.zeros((2, 2, steps, len(DAMPED_GRID))),
    )
    for t in range(steps):
        ahead = level + phi * trend
        errors[:, t] = err = -ahead
        level, trend = ahead + alpha * err, phi * trend + beta * err
        states[:, 0, t], states[:, 1, t] = level, trend
    errors.flags.writeable = states.flags.writeable = False
    return errors, states


def _least_squares_start(
    ee: np.ndarray, el: np.ndarray, eb: np.ndarray, units: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The initial level and trend [n, k] minimising ``|e_data + l0 e_l + b0 e_b|^2``, and that
    minimum (inf where it is not defined), from the sums of products ``e_data·e_data``,
    ``e_data·e_l``, ``e_data·e_b`` [n, k] and of the unit responses' ``units`` [2, 2, n, k]."""
    mll, mlb, mbb = units[0, 0], units[0, 1], units[1, 1]
    rl, rb = -el, -eb
    det = mll * mbb - mlb**2
    with np.errstate(divide="ignore", invalid="ignore"):
        l0 = (rl * mbb - rb * mlb) / det
        b0 = (mll * rb - mlb * rl) / det
    sse = ee - l0 * rl - b0 * rb
    ok = np.isfinite(sse) & (np.abs(det) > 1e-12 * np.maximum(mll * mbb, 1e-300))
    return np.where(ok, l0, 0.0), np.where(ok, b0, 0.0), np.where(ok, sse, np.inf)


def _naive2(series: list[np.ndarray], horizon: int) -> np.ndarray:
    """The last value of each (seasonally adjusted) series, [n, horizon]."""
    return np.repeat(np.array([x[-1] for x in series])[:, None], horizon, axis=1)


_METHODS = {"theta": _theta, "damped": _damped, "naive2": _naive2}


def volatility(histories: Sequence[np.ndarray], m: int) -> np.ndarray:
    """[n] the spread (standard deviation) of each history's changes over one season (over one
    step where the history holds fewer than two seasonal differences, and where ``m`` is 1),
    over its mean magnitude: 0 for a constant or a straight line, about 0.1 for a typical M3
    yearly series, above 0.5 for one whose level jumps or collapses."""
    out = np.zeros(len(histories))
    for i, h in enumerate(histories):
        x = np.asarray(h, np.float64)
        lag = m if x.size > m + 1 else 1
        if x.size <= lag:
            continue
        size = np.abs(x).mean()
        out[i] = np.std(x[lag:] - x[:-lag]) / size if size > 0 else 0.0
    return out


def toward_naive(
    histories: Sequence[np.ndarray], point: np.ndarray, naive2: np.ndarray, m: int, strength: float
) -> np.ndarray:
    """``point`` [n, h] pulled toward ``naive2`` [n, h] (:func:`forecasts`' Naive2 of
    ``histories``) by ``strength`` times each history's :func:`volatility`:
    ``naive2 + (point - naive2) / (1 + strength * volatility)``."""
    keep = 1.0 / (1.0 + strength * volatility(histories, m))
    return naive2 + keep[:, None] * (point - naive2)


def choose_shrink(
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    point: np.ndarray,
    m: int,
    candidates: Sequence[float],
) -> tuple[float, dict[float, float]]:
    """The strongest candidate pull toward Naive2 (:func:`toward_naive`) whose validation OWA
    is within ``SHRINK_TOLERANCE`` of the best candidate's, and the OWA of each: ``histories``
    with ``targets`` [n, h], the model's forecasts ``point`` [n, h]. Undefined scores never
    win; all undefined: 0."""
    naive2 = forecasts(histories, targets.shape[1], m, ("naive2",))["naive2"]
    scores = {
        float(k): metrics.score(
            histories, targets, toward_naive(histories, point, naive2, m, k), m
        )["owa"]
        for k in sorted(candidates)
    }
    finite = [s for s in scores.values() if np.isfinite(s)]
    if not finite:
        return 0.0, scores
    best = min(finite)
    return max(k for k, s in scores.items() if s <= best * (1 + SHRINK_TOLERANCE)), scores


def choose_weight(
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    network: np.ndarray,
    m: int,
    candidates: Sequence[float],
) -> tuple[float, dict[float, float]]:
    """The candidate share of the classical forecast (the mean of Theta and damped trend) with
    the lowest validation OWA (ties and undefined scores: the smaller share) and the OWA of each:
    ``histories`` with ``targets`` [n, h], the network's forecasts [n, h]."""
    both = forecasts(histories, targets.shape[1], m, ("theta", "damped"))
    classical = 0.5 * (both["theta"] + both["damped"])
    scores = {
        float(w): metrics.score(histories, targets, network + w * (classical - network), m)["owa"]
        for w in sorted(candidates)
    }
    # An undefined score (e.g. Naive2 exact on every series) never wins; all undefined: 0.
    best = min(scores, key=lambda w: (scores[w] if np.isfinite(scores[w]) else np.inf, w))
    return best, scores
