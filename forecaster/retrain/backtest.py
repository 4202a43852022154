"""The backtest: champion and challenger forecast the same hold-out and are scored alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from forecaster import data, metrics
from forecaster.configs import ModelConfig
from forecaster.predict import Predictor, score_model
from forecaster.registry import LoadedModel


class RetrainError(RuntimeError):
    """The job could not finish; the registry is as it was (bar an unpromoted version)."""


@dataclass(frozen=True)
class Holdout:
    """The most recent window of every series: forecast ``targets`` [n, horizon] from
    ``histories`` (all points before them)."""

    ids: list[str]
    histories: list[np.ndarray]
    targets: np.ndarray
    seasonality: int

    @property
    def horizon(self) -> int:
        return self.targets.shape[1]

    def select(self, keep: np.ndarray, horizon: int) -> Holdout:
        """The series where ``keep`` [n] is true, scored on the first ``horizon`` steps."""
        pos = np.flatnonzero(keep)
        return Holdout(
            [self.ids[i] for i in pos],
            [self.histories[i] for i in pos],
            self.targets[pos, :horizon],
            self.seasonality,
        )


def split_holdout(
    series: data.SeriesSet, horizon: int, seasonality: int
) -> tuple[data.SeriesSet, Holdout]:
    """``(training series without their last horizon points, the hold-out)``."""
    train, targets = data.train_val_split(series, horizon)
    return train, Holdout(list(train.ids), list(train.values), targets, seasonality)


@dataclass(frozen=True)
class Backtest:
    """Both models' forecasts and scores on one shared hold-out (no champion: None)."""

    holdout: Holdout
    challenger: np.ndarray
    challenger_metrics: dict[str, float]
    champion: np.ndarray | None
    champion_metrics: dict[str, float] | None
    naive2_metrics: dict[str, float]


def backtest(
    holdout: Holdout, challenger: tuple[ModelConfig, Any], champion: LoadedModel | None
) -> Backtest:
    """Score both models on the same series, inputs and targets.

    Series too short for either model's input window are left out for both, and when the
    champion forecasts fewer steps than the hold-out, both are scored on its horizon only.
    """
    horizon, needed = holdout.horizon, challenger[0].input_size
    if champion is not None:
        horizon = min(horizon, champion.config.horizon)
        needed = max(needed, champion.config.input_size)
    lengths = np.array([len(h) for h in holdout.histories])
    if not (lengths >= needed).any():
        raise RetrainError(f"no series has the {needed} points before the hold-out a model needs")
    common = holdout.select(lengths >= needed, horizon)
    ours, ours_scores = _forecast(Predictor(*challenger), common)
    naive = metrics.naive2(common.histories, horizon, common.seasonality)
    naive_scores = metrics.score(common.histories, common.targets, naive, common.seasonality)
    theirs, their_scores = None, None
    if champion is not None:
        theirs, their_scores = _forecast(Predictor(champion.config, champion.params), common)
    return Backtest(common, ours, ours_scores, theirs, their_scores, naive_scores)


def _forecast(predictor: Predictor, holdout: Holdout) -> tuple[np.ndarray, dict[str, float]]:
    """Point forecasts [n, horizon] of the hold-out and their scores."""
    forecast, scores = score_model(
        predictor, holdout.histories, holdout.targets, holdout.seasonality
    )
    return forecast.point, scores
