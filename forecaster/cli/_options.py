"""Command-line options shared by ``train``, ``retrain`` and the M4 benchmark: one flag per
field of :class:`ModelConfig` and :class:`TrainConfig`, so the dataclasses stay the only list."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, TypeVar

from forecaster.model import ModelConfig
from forecaster.train import TrainConfig

T = TypeVar("T")
HELP = {
    "cell": "recurrent cell: lstm, gru or rnn",
    "input_size": "history points the model reads (the window length)",
    "step": "points per recurrent step (default: the seasonality)",
    "ensemble": "independently trained members whose median is the forecast",
    "quantiles": "quantile levels to learn, e.g. 0.025 0.975 for a 95%% interval",
    "patience": "evaluations without improvement before stopping early (0: never)",
}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--<field>`` for every model and training setting (defaults left to the caller)."""
    for cls in (ModelConfig, TrainConfig):
        group = parser.add_argument_group(cls.__name__)
        for f in dataclasses.fields(cls):
            flag = "--" + f.name.replace("_", "-")
            if f.name == "quantiles":
                group.add_argument(flag, type=float, nargs="+", help=HELP[f.name])
            else:
                kind = type(f.default)
                group.add_argument(flag, type=kind, help=HELP.get(f.name, f"default {f.default}"))


def build(cls: type[T], args: argparse.Namespace, **defaults: Any) -> T:
    """``cls`` from the flags that were given, falling back to ``defaults``, then its own."""
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if getattr(args, f.name, None) is not None
    }
    return cls(**{**defaults, **given})


def model_and_train_configs(
    args: argparse.Namespace, **model_defaults: Any
) -> tuple[ModelConfig, TrainConfig]:
    """Both configs; the step and the validation seasonality follow ``--seasonality``."""
    season = args.seasonality or model_defaults.pop("seasonality", 24)
    model_defaults = {"step": season, "input_size": 7 * season, **model_defaults}
    if args.step is None and args.input_size is not None and args.input_size % season:
        model_defaults["step"] = 1  # a window that isn't whole seasons is read point by point
    model_cfg = build(ModelConfig, args, **model_defaults)
    return model_cfg, build(TrainConfig, args, seasonality=season)
