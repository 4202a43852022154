"""Forecasts beyond the trained horizon: the model rolled forward on its own forecasts.

A model forecasts ``H`` steps at once (``ModelConfig.horizon``). Asked for ``h > H`` steps, it
forecasts ``H``, appends them to the history, forecasts ``H`` more from there, and so on until
``h`` steps are covered (as Darts does for ``n > output_chunk_length``); the last block is cut to
length. What the network reads back is its own point forecast (the median head). A blended model
(:meth:`Predictor.blend`) is blended once, over the whole horizon: Theta and damped trend forecast
any horizon from the history itself, so only the network is rolled. The first ``H`` steps are
exactly the plain forecast's. Reading back the blended forecast instead (``fed_blend`` in
``benchmarks/long_horizon.py``) was better on M3 Monthly and worse on tourism-like and weekly
data, and it needs the classical forecasts block by block.

Intervals: each rolled block's quantiles describe the network's uncertainty given the block
before it, as if that block were certain, so on their own they would be too narrow. Each later
step's distance from the point forecast is therefore at least a random walk of whole blocks
(:func:`widened`): at step ``t = (k - 1) H + j`` (block ``k``, position ``j``), for every quantile
level, ``|d_t| >= sqrt((k - 1) d_H^2 + d_j^2)``, with ``d`` the first block's distances of that
level (``d_H`` at its last step), and ``|d_t| >= |d_{t-H}|``. Each earlier block's error at its end
is carried forward and the errors add in quadrature: the band at step ``H + j`` is at least as
wide as the first block's at step ``j`` and at its end, it grows like ``sqrt(k)`` from block to
block, and it never narrows from one block to the next at the same position. A band on the wrong
side of the point (independently trained heads that crossed) counts as no width. On M3 Monthly
(trained at 18, asked 36) the 80% band covered 82% of the first block's actuals, and beyond it 45%
as the network gave it, 77% widened (``benchmarks/long_horizon.py``).

The asked horizon is bounded by :func:`forecaster.horizons.horizon_limit` (ten trained horizons,
at most 1,000 steps).

The service (:mod:`service.forecasting`, one micro-batched pass per block), ``forecaster
evaluate`` and :func:`forecaster.predict.score_model` all roll through :class:`Roll`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from forecaster.covariates import SeriesInputs
from forecaster.horizons import horizon_problem
from forecaster.predict import Forecast, Predictor

__all__ = ["Roll", "forecast", "widened"]


@dataclass
class Roll:
    """One roll-forward of the network over ``histories`` to ``horizon`` steps, ``block`` steps
    (the trained horizon) at a time: ask :meth:`pending` for the histories of the next pass,
    give its network forecast (unblended, full block) to :meth:`add`, and when :meth:`pending`
    is None take :meth:`network`: the network's forecast [n, horizon], intervals widened.

    The caller runs the passes (directly, or through the service's micro-batcher) and blends.
    """

    histories: Sequence[np.ndarray]
    horizon: int
    block: int
    parts: list[Forecast] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.horizon < 1 or self.block < 1:
            raise ValueError(f"horizon and block must be positive: {self.horizon}, {self.block}")

    @property
    def extended(self) -> bool:
        """Whether more than one pass is needed (the horizon is beyond the trained one)."""
        return self.horizon > self.block

    @property
    def done(self) -> int:
        """Steps forecast so far."""
        return sum(p.point.shape[1] for p in self.parts)

    def pending(self) -> list[np.ndarray] | None:
        """The histories of the next pass (each history with the point forecasts so far
        appended), or None when the horizon is covered."""
        if self.done >= self.horizon:
            return None
        if not self.parts:
            return list(self.histories)
        ahead = np.concatenate([p.point for p in self.parts], axis=1)
        return [np.concatenate([h, a]) for h, a in zip(self.histories, ahead, strict=True)]

    def add(self, out: Forecast) -> None:
        """The network's forecast [n, >= the steps left or a block] of the pending histories."""
        take = min(self.block, self.horizon - self.done)
        if out.point.shape[1] < take:
            raise ValueError(f"a pass gave {out.point.shape[1]} steps; {take} are needed")
        self.parts.append(
            Forecast(
                point=out.point[:, :take],
                quantiles={q: v[:, :take] for q, v in out.quantiles.items()},
            )
        )

    def network(self) -> Forecast:
        """The network's forecast [n, horizon] of every pass, its intervals :func:`widened`."""
        if self.pending() is not None:
            raise RuntimeError(f"{self.done} of {self.horizon} steps forecast so far")
        if len(self.parts) == 1:
            return self.parts[0]
        point = np.concatenate([p.point for p in self.parts], axis=1)
        quantiles = {
            q: np.concatenate([p.quantiles[q] for p in self.parts], axis=1)
            for q in self.parts[0].quantiles
        }
        return widened(Forecast(point, quantiles), self.block)


def widened(out: Forecast, block: int) -> Forecast:
    """``out`` [n, h] with each quantile's distance from the point at step ``t = (k-1) block +
    j`` at least ``sqrt((k-1) d_block^2 + d_j^2)`` and at least a block earlier (module
    docstring), ``d`` being that quantile's distances in the first block; the first block is
    unchanged."""
    h = out.point.shape[1]
    if h <= block or not out.quantiles:
        return out
    t = np.arange(block, h)
    k, j = t // block, t % block  # whole blocks before step t, and t's position in its block
    quantiles = {}
    for q, band in out.quantiles.items():
        side = np.sign(q - 0.5)
        if not side:  # the median: no distance to keep
            quantiles[q] = band
            continue
        # Distances on the level's own side of the point; crossed heads count as none.
        d = np.maximum(side * (band - out.point), 0.0)
        first = d[:, :block]
        floor = np.sqrt(k * first[:, block - 1 : block] ** 2 + first[:, j] ** 2)
        wide = np.maximum(d[:, block:], floor)
        for start in range(block, h - block):  # and never narrower than a block earlier
            wide[:, start] = np.maximum(wide[:, start], wide[:, start - block])
        later = out.point[:, block:] + side * wide
        quantiles[q] = np.concatenate([band[:, :block], later], axis=1)
    return Forecast(out.point, quantiles)


def forecast(
    predictor: Predictor,
    histories: Sequence[np.ndarray],
    horizon: int,
    inputs: Sequence[SeriesInputs] | None = None,
) -> Forecast:
    """``predictor``'s forecast of ``horizon`` steps, rolled forward beyond its trained horizon
    (module docstring) and blended; up to the trained horizon, :meth:`Predictor.predict`
    (with the covariates ``inputs`` of a model that reads them: such a model is not rolled
    forward, as its own forecasts carry no covariates)."""
    trained = predictor.config.horizon
    if predictor.config.covariates and horizon > trained:
        raise ValueError(
            f"a model with covariates forecasts at most its trained horizon, {trained} steps"
        )
    if horizon <= trained:
        return predictor.predict(histories, horizon, inputs)
    problem = horizon_problem(horizon, trained)
    if problem is not None:
        raise ValueError(problem)
    roll = Roll(histories, horizon, trained)
    while (pending := roll.pending()) is not None:
        x, lengths = predictor.windows(pending)
        roll.add(predictor.predict_windows(x, lengths))
    return predictor.blend(histories, roll.network())
