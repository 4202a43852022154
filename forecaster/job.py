"""One retraining job: its option fields are ``forecaster retrain``'s flags and config keys.
Outside :mod:`forecaster.retrain` so that building the command line imports no pandas or JAX."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from forecaster.configs import ModelConfig, TrainConfig
from forecaster.options import ConfigError, check_choices, option
from forecaster.sources import DataSource

Policy = Literal["if-better", "always", "never"]
POLICIES: tuple[str, ...] = get_args(Policy)


@dataclass(frozen=True)
class Job:
    """Everything one retraining of one model needs.

    ``model`` and ``train`` are the configs from the given settings alone; the challenger's
    are settled once the champion and the data are known
    (:func:`forecaster.retrain.jobs.challenger_configs`), from ``given`` (the settings given by
    flags or the config file, ``{"model": {...}, "train": {...}}``) over the champion's own.
    """

    name: str
    data: DataSource
    model: ModelConfig
    train: TrainConfig
    # Required, and last of the required fields: type checkers read any call as a default.
    registry: str = option("registry root (path or fsspec URL)")
    promote: Policy = option("promotion policy", "if-better")
    margin: float = option("relative OWA improvement over the champion needed, 0.01 = 1%", 0.0)
    warm_start: bool = option(
        "start from the production weights when the model config is unchanged", False
    )
    plot_series: int = option("series drawn in plot.png", 4)
    allow_config_change: bool = option(
        "let the challenger change the champion's horizon, quantiles or frequency", False
    )
    when: Literal["always", "degraded"] = option(
        "degraded: only when the production version's live accuracy over the recent window has "
        "worsened by --live-margin, is worse than seasonal naive, or an interval level's coverage "
        "falls short of nominal by --coverage-margin points (too few points: undecided, exit 3)",
        "always"
    )  # fmt: skip
    database_url: str = option(
        "monitoring database", "", shown="$FORECASTER_DATABASE_URL, else the registry's "
        "monitoring.sqlite3"
    )  # fmt: skip
    # 0 for both: derived from the model (forecaster.monitoring.health.default_steps).
    live_window_steps: int = option(
        "recent window in steps of the model's frequency (not with --live-window-days)", 0,
        shown="derived from the model's horizon and seasonal period"
    )  # fmt: skip
    live_window_days: float = option(
        "recent window in calendar days instead", 0.0, shown="for a model whose frequency is "
        "unknown: 7"
    )  # fmt: skip
    live_margin: float = option("relative MASE worsening that counts", 0.1)
    coverage_margin: float = option(
        "points an interval level's recent live coverage may fall short of nominal", 5.0
    )
    given: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        check_choices(self)
        if not self.live_window_steps >= 0 or not self.live_window_days >= 0:
            raise ConfigError("live_window_steps and live_window_days must not be negative")
        if self.live_window_steps and self.live_window_days:
            raise ConfigError("give live_window_steps or live_window_days, not both")
        if not self.live_margin >= 0:
            raise ConfigError("live_margin must not be negative")
        if not 0 <= self.coverage_margin < 100:
            raise ConfigError(
                f"coverage_margin must be in [0, 100) (points), not {self.coverage_margin}"
            )
        if not 0.0 <= self.margin < 1.0:
            raise ConfigError(
                f"margin must be in [0, 1) (a relative improvement), not {self.margin}"
            )
