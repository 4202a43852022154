"""The backtest: champion and challenger forecast the same hold-out and are scored alike."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from forecaster import data, metrics
from forecaster.configs import ModelConfig
from forecaster.covariates import CovariateSpec, SeriesInputs, series_inputs
from forecaster.predict import Predictor, score_model
from forecaster.registry import LoadedModel


class RetrainError(RuntimeError):
    """The job could not finish; the registry is as it was (bar an unpromoted version)."""


@dataclass(frozen=True)
class Holdout:
    """The most recent window of every series: forecast ``targets`` [n, horizon] from
    ``histories`` (all points before them) and, when the data hold covariates, ``inputs``
    [n]: their values over each history, the future-known ones over the window, the statics
    (every column read; each model takes those it reads, :meth:`CovariateSpec.keep`)."""

    ids: list[str]
    histories: list[np.ndarray]
    targets: np.ndarray
    seasonality: int
    inputs: list[SeriesInputs] | None = None

    def inputs_for(self, spec: CovariateSpec) -> list[SeriesInputs] | None:
        """The covariates a model of ``spec`` reads (None for a model of the target alone)."""
        return spec.keep(self.inputs) if spec and self.inputs is not None else None

    @property
    def horizon(self) -> int:
        return self.targets.shape[1]

    def select(self, keep: np.ndarray, horizon: int) -> Holdout:
        """The series where ``keep`` [n] is true, scored on the first ``horizon`` steps."""
        pos = np.flatnonzero(keep)
        inputs = None
        if self.inputs is not None:
            inputs = [
                dataclasses.replace(given, future={k: np.asarray(v)[:horizon]
                                                   for k, v in given.future.items()})
                for given in (self.inputs[i] for i in pos)
            ]  # fmt: skip
        return Holdout(
            [self.ids[i] for i in pos],
            [self.histories[i] for i in pos],
            self.targets[pos, :horizon],
            self.seasonality,
            inputs,
        )


def split_holdout(
    series: data.SeriesSet, horizon: int, seasonality: int
) -> tuple[data.SeriesSet, Holdout]:
    """``(training series without their last horizon points, the hold-out)``; the hold-out's
    covariates are the training part's values and the future-known ones over the window."""
    train, targets = data.train_val_split(series, horizon)
    inputs = None
    if series.covariates:
        future = series.covariates.future
        ahead = {k: [v[-horizon:] for v in arrays] for k, arrays in future.items()}
        inputs = series_inputs(len(train), train.covariates, train.end, ahead)
    return train, Holdout(list(train.ids), list(train.values), targets, seasonality, inputs)


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
    holdout: Holdout,
    challenger: tuple[ModelConfig, Any],
    champion: LoadedModel | None,
    covariates: CovariateSpec | None = None,
) -> Backtest:
    """Score both models on the same series, inputs and targets; ``covariates``: what the
    challenger reads (each model forecasts with the covariates it reads).

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
    spec = covariates or CovariateSpec()
    ours, ours_scores = _forecast(Predictor(*challenger, covariates=spec), common)
    naive = metrics.naive2(common.histories, horizon, common.seasonality)
    naive_scores = metrics.score(common.histories, common.targets, naive, common.seasonality)
    theirs, their_scores = None, None
    if champion is not None:
        # (A model of the target alone needs no spec, nor a manifest to read one from.)
        theirs_reads = champion.covariates if champion.config.covariates else None
        theirs, their_scores = _forecast(
            Predictor(champion.config, champion.params, covariates=theirs_reads), common
        )
    return Backtest(common, ours, ours_scores, theirs, their_scores, naive_scores)


def _forecast(predictor: Predictor, holdout: Holdout) -> tuple[np.ndarray, dict[str, float]]:
    """Point forecasts [n, horizon] of the hold-out and their scores."""
    forecast, scores = score_model(
        predictor,
        holdout.histories,
        holdout.targets,
        holdout.seasonality,
        holdout.inputs_for(predictor.covariates),
    )
    return forecast.point, scores
