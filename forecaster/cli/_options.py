"""Command-line options shared by ``train``, ``evaluate``, ``retrain`` and the benchmarks: one
flag per field of :class:`ModelConfig` and :class:`TrainConfig` (so the dataclasses stay the only
list) and one set of data options. Only light modules are imported here: ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from forecaster.configs import ModelConfig, TrainConfig, build_configs
from forecaster.sources import SOURCE_OPTIONS, DataSource

HELP = {
    "cell": "recurrent cell: lstm, gru or rnn (default lstm)",
    "input_size": "history points the model reads, the window (derived from the data: the "
    "longest season and twice the horizon, cut to what half of the series hold)",
    "horizon": "points forecast (derived from the frequency: hourly 48, daily 14, weekly 13, "
    "monthly 18, quarterly 8, yearly 6; else 12)",
    "step": "points per recurrent step (derived from the data: one season when the window "
    "holds two, else 1, or coarser where batches of 64 would still cost more than the data's "
    "time budget)",
    "hidden": "units per layer (derived from the data: 128, or 64 when short series give few "
    "training windows)",
    "ensemble": "independently trained members whose median is the forecast (default 5)",
    "min_input": "fewest history points the network reads (derived from the data: the window, "
    "or about one horizon when some series are shorter)",
    "quantiles": "quantile levels to learn, e.g. 0.025 0.975 for a 95%% interval",
    "steps": "optimiser steps (derived from the data: 50 passes over the training windows, "
    "1000 to 12000)",
    "eval_every": "steps between validations (derived from the data: a twelfth of the steps)",
    "batch_size": "windows per member a step (derived from the data: 256, or 128 or 64 where "
    "256 would cost more than the data's time budget)",
    "seasonality": "seasonal period (derived from the frequency: hourly 24, daily 7, weekly 52, "
    "monthly 12, quarterly 4; else 1)",
    "patience": "evaluations without improvement before stopping early (0: never)",
    "max_gap": "longest run of missing points interpolated when reading the data; a longer gap "
    "cuts the series, training on the segments between (default 3)",
    "ema": "decay of the weight average that is evaluated and kept (0: the raw weights; "
    "derived from the data: 0.99 when short series give few training windows, else 0)",
    "refit": "train again on whole histories for the selected steps (default: by the data)",
    "theta_weights": "shares of the classical forecast (Theta and damped trend) tried on "
    "validation (0: none)",
    "naive_shrinks": "strengths of the pull toward Naive2 on volatile series tried on "
    "validation; the strongest within 1%% of the best OWA is kept (0: none)",
}
# Set by training, not by flags (``--theta-weights`` chooses among them).
OUTCOMES = ("theta_weight", "theta_season", "damped_weight", "naive_shrink")
# One flag per reading option of DataSource (its fields, with their help).
SOURCE_FLAGS = SOURCE_OPTIONS


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--<field>`` for every model and training setting (defaults left to the caller)."""
    for cls in (ModelConfig, TrainConfig):
        group = parser.add_argument_group(cls.__name__)
        for f in dataclasses.fields(cls):
            flag = "--" + f.name.replace("_", "-")
            if f.name in OUTCOMES:
                continue
            if str(f.type).startswith("tuple"):
                group.add_argument(flag, type=float, nargs="+", help=HELP[f.name])
            elif isinstance(f.default, bool):  # --x / --no-x (type=bool reads "False" as True)
                action = argparse.BooleanOptionalAction
                group.add_argument(flag, action=action, help=HELP.get(f.name))
            else:
                kind = type(f.default)
                group.add_argument(flag, type=kind, help=HELP.get(f.name, f"default {f.default}"))


def add_data_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--data`` and the options that say how to read it (see :class:`DataSource`)."""
    group = parser.add_argument_group("data")
    group.add_argument("--data", required=required, help="CSV or Parquet, path or fsspec URL")
    add_reading_arguments(group)


def add_reading_arguments(group: Any) -> None:
    """How a data file is read: a flag per field of :class:`DataSource` but its URL, with the
    help its field carries (defaults stay None: the dataclass's own apply)."""
    hints = typing.get_type_hints(DataSource)
    for f in dataclasses.fields(DataSource):
        if f.name == "url":
            continue
        flag = "--" + f.name.replace("_", "-")
        help = f.metadata["help"].replace("%", "%%")
        kinds = typing.get_args(hints[f.name])
        if bool in kinds:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, help=help)
        elif typing.get_origin(hints[f.name]) is typing.Literal:
            group.add_argument(flag, choices=kinds, help=help)
        else:
            kind = next((k for k in kinds if k is not type(None)), hints[f.name])
            group.add_argument(flag, type=kind, help=help)


def given(args: argparse.Namespace, names: Any) -> dict[str, Any]:
    """The options among ``names`` that were given on the command line."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def config_flags(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """``{"model": {...}, "train": {...}}`` of the config flags that were given."""
    return {
        "model": given(args, [f.name for f in dataclasses.fields(ModelConfig)]),
        "train": given(args, [f.name for f in dataclasses.fields(TrainConfig)]),
    }


def configs_from_args(
    args: argparse.Namespace, series: Any = None
) -> tuple[ModelConfig, TrainConfig]:
    """Both configs from the flags, the rest derived by :func:`build_configs` from the data's
    frequency and lengths (a :class:`~forecaster.data.SeriesSet`, when loaded)."""
    flags = config_flags(args)
    facts = {} if series is None else {"freq": series.freq, "lengths": series.lengths}
    return build_configs(flags["model"], flags["train"], "the command line", **facts)


def data_source(args: argparse.Namespace, data: str | None = None) -> DataSource:
    """The :class:`DataSource` of ``--data`` (or ``data``) and the reading options given."""
    return DataSource(data or args.data, **given(args, SOURCE_FLAGS))


def add_monitoring_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the monitoring database is: ``--database-url`` or the registry's SQLite file."""
    parser.add_argument(
        "--database-url",
        help="SQLAlchemy URL (default: $FORECASTER_DATABASE_URL, else monitoring.sqlite3 in "
        "the registry)",
    )
    parser.add_argument(
        "--registry", help="registry root (default: $FORECASTER_REGISTRY or models)"
    )


def store_url(args: argparse.Namespace) -> str:
    """The monitoring database of ``args`` (:func:`add_monitoring_arguments`), by the
    service's rule (:func:`~forecaster.monitoring.urls.monitoring_url`)."""
    from forecaster.environment import registry_root, setting
    from forecaster.monitoring.urls import monitoring_url

    return monitoring_url(
        args.database_url or setting("database_url"), registry_root(args.registry)
    )
