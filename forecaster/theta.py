"""The Theta method (Assimakopoulos & Nikolopoulos; the winner of M3), blended into forecasts.

A trained model's point forecast is ``(1 - w) * network + w * theta`` with ``w``
(``ModelConfig.theta_weight``) chosen on the validation split by :func:`choose_weight` from
``TrainConfig.theta_weights``: on short yearly, quarterly and monthly series a recurrent network
and Theta err differently, and their blend beats both; where the network is far better (hourly)
validation keeps ``w`` at 0 and nothing is computed.

Theta as in the M4 benchmarks (R's ``forecast::thetaf``): the series is seasonally adjusted
(classical multiplicative decomposition, when M4's 90% seasonality test passes and the series is
positive), simple exponential smoothing (its weight from a grid and its initial level fitted by
least squares one step ahead) gives the level, half the slope of a least-squares line gives
the drift, and the forecast is re-seasonalised.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from forecaster import metrics

# SES smoothing weights tried (the least one-step squared error wins).
ALPHAS = np.linspace(0.02, 1.0, 50)


def theta(histories: Sequence[np.ndarray], horizon: int, m: int) -> np.ndarray:
    """Theta forecasts [n, horizon] of ``histories`` (n arrays of any lengths >= 1) with
    seasonal period ``m``."""
    n = len(histories)
    adjusted, factors = [], np.ones((n, horizon))
    for i, h in enumerate(histories):
        x = np.asarray(h, np.float64)
        if np.all(x > 0) and metrics.seasonality_test(x, m):
            si = metrics.seasonal_indices(x, m)
            x = x / si[np.arange(x.size) % m]
            factors[i] = si[(x.size + np.arange(horizon)) % m]
        adjusted.append(x)
    level, alpha = _ses(adjusted)
    lengths = np.array([x.size for x in adjusted])
    slope = np.array([_slope(x) for x in adjusted])
    steps = np.arange(horizon)[None, :]
    drift = (
        0.5 * slope[:, None] * (steps + (1.0 - (1.0 - alpha) ** lengths)[:, None] / alpha[:, None])
    )
    return (level[:, None] + drift) * factors


def _ses(series: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Final SES level [n] and smoothing weight [n] of each series, the weight and the initial
    level fitted by least squares one step ahead (as R's ``ets(x, "ANN")``), every weight of
    ``ALPHAS`` run at once; series are aligned at their start and stop at their own length.

    For a given weight the one-step errors are linear in the initial level ``l0``
    (``e_t = e0_t - (1 - a)^t l0``, with ``e0`` the errors from ``l0 = 0``), so the best
    ``l0`` has a closed form and one pass accumulates what it needs."""
    lengths = np.array([x.size for x in series])
    x = np.zeros((len(series), lengths.max()))
    for i, s in enumerate(series):
        x[i, : s.size] = s
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
    return final[rows, best], ALPHAS[best]


def _slope(x: np.ndarray) -> float:
    """Least-squares slope of ``x`` against 0..n-1 (0 for one point)."""
    if x.size < 2:
        return 0.0
    t = np.arange(x.size) - (x.size - 1) / 2
    return float(t @ (x - x.mean()) / (t @ t))


def choose_weight(
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    network: np.ndarray,
    m: int,
    candidates: Sequence[float],
) -> tuple[float, dict[float, float]]:
    """The candidate weight with the lowest validation OWA (ties and undefined scores: the
    smaller weight) and the OWA of each: ``histories`` with ``targets`` [n, h], the network's
    forecasts [n, h]."""
    classical = theta(histories, targets.shape[1], m)
    scores = {
        float(w): metrics.score(histories, targets, network + w * (classical - network), m)["owa"]
        for w in sorted(candidates)
    }
    # An undefined score (e.g. Naive2 exact on every series) never wins; all undefined: 0.
    best = min(scores, key=lambda w: (scores[w] if np.isfinite(scores[w]) else np.inf, w))
    return best, scores
