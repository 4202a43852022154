"""Command-line options shared by ``train``, ``evaluate``, ``retrain`` and the benchmarks: one
flag per option field of :class:`ModelConfig`, :class:`TrainConfig` and :class:`DataSource`
(:func:`forecaster.options.add_flags`: the dataclasses are the only list). Only light modules
are imported here: ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
from typing import Any

from forecaster.configs import ModelConfig, TrainConfig, build_configs, data_facts
from forecaster.options import add_flags, options
from forecaster.sources import SOURCE_OPTIONS, DataSource


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--<field>`` for every model and training setting (defaults left to the caller)."""
    for cls in (ModelConfig, TrainConfig):
        add_flags(parser.add_argument_group(cls.__name__), cls)


def add_data_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--data`` and the options that say how to read it (see :class:`DataSource`)."""
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data", required=required,
        help="CSV or Parquet, path or fsspec URL, or a local folder of Parquet parts",
    )  # fmt: skip
    add_reading_arguments(group)


def add_reading_arguments(group: Any) -> None:
    """How a data file is read: a flag per reading option of :class:`DataSource`."""
    add_flags(group, DataSource)


def given(args: argparse.Namespace, names: Any) -> dict[str, Any]:
    """The options among ``names`` that were given on the command line."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def config_flags(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """``{"model": {...}, "train": {...}}`` of the config flags that were given."""
    return {
        "model": given(args, [f.name for f in options(ModelConfig)]),
        "train": given(args, [f.name for f in options(TrainConfig)]),
    }


def configs_from_args(
    args: argparse.Namespace, series: Any = None
) -> tuple[ModelConfig, TrainConfig]:
    """Both configs from the flags, the rest derived by :func:`build_configs` from the data's
    frequency, lengths and lowest value (a :class:`~forecaster.data.SeriesSet`, when loaded)."""
    flags = config_flags(args)
    facts = {} if series is None else data_facts(series)
    return build_configs(flags["model"], flags["train"], "the command line", **facts)


def data_source(args: argparse.Namespace, data: str | None = None) -> DataSource:
    """The :class:`DataSource` of ``--data`` (or ``data``) and the reading options given."""
    return DataSource(data or args.data, **given(args, SOURCE_OPTIONS))


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
