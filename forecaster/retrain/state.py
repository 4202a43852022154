"""The stages of one retraining job, each a frozen record of all the job knows by then:
:class:`Loaded` → :class:`Trained` → :class:`Evaluated` → :class:`Decided` → :class:`Published`.
Each is made from the one before by a function of :mod:`.run`, adding fields, never changing
them; :mod:`.report` reads them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from forecaster import data
from forecaster.configs import ModelConfig, TrainConfig
from forecaster.covariates import Role
from forecaster.registry import LoadedModel
from forecaster.retrain.backtest import Backtest, Holdout
from forecaster.retrain.decision import Decision
from forecaster.retrain.jobs import Job
from forecaster.train import TrainResult


@dataclass(frozen=True)
class Champion:
    """The production version before the job, if any, or why it could not be loaded."""

    version: int | None = None
    model: LoadedModel | None = None
    error: str | None = None


@dataclass(frozen=True)
class Loaded:
    """The data and the champion; production was read once, so ``live`` judges the same one."""

    job: Job
    live: dict[str, Any]
    series: data.SeriesSet
    champion: Champion
    seconds: Mapping[str, float]  # per step, for the report: each stage adds its own
    # The challenger's covariate columns by role (``series`` may hold the champion's too).
    reads: Mapping[Role, tuple[str, ...]]


@dataclass(frozen=True)
class Trained(Loaded):
    """The challenger, fit on every point before the hold-out (the one split of the data)."""

    model: ModelConfig
    train: TrainConfig
    changes: dict[str, list[Any]]  # {setting: [champion's, challenger's]} where they differ
    warm: dict[str, Any]
    holdout: Holdout
    fitted: TrainResult


@dataclass(frozen=True)
class Evaluated(Trained):
    """Both models' backtest on the hold-out, and the challenger's sanity problems."""

    backtest: Backtest
    problems: list[str]


@dataclass(frozen=True)
class Decided(Evaluated):
    """The decision, against ``production`` as read under the writers' lock."""

    decision: Decision
    production: int | None

    def production_after(self, version: int) -> int | None:
        """Production once the challenger is published as ``version``."""
        return version if self.decision.promote else self.production


@dataclass(frozen=True)
class Published(Decided):
    """The challenger's version, with the report stored inside it."""

    version: int
    report: dict[str, Any]
