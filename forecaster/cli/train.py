"""``forecaster train``: fit a model on a data file and save it (directory or registry)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from forecaster import data
from forecaster.cli._options import add_config_arguments, model_and_train_configs


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="CSV or Parquet, path or fsspec URL")
    parser.add_argument("--format", choices=["auto", "long", "wide"], default="auto")
    parser.add_argument("--id-col", default="id")
    parser.add_argument("--time-col", default="timestamp")
    parser.add_argument("--value-col", default="value")


def load(args: argparse.Namespace) -> data.SeriesSet:
    return data.load_series(
        args.data,
        format=args.format,
        id_col=args.id_col,
        time_col=args.time_col,
        value_col=args.value_col,
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on a data file", description=__doc__)
    add_data_arguments(p)
    add_config_arguments(p)
    dest = p.add_mutually_exclusive_group(required=True)
    dest.add_argument("--out", type=Path, help="save the model to this directory")
    dest.add_argument("--registry", help="publish to this registry root (with --name)")
    p.add_argument("--name", help="model name in the registry")
    p.add_argument("--promote", action="store_true", help="move 'production' to the new version")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so `forecaster --help` stays fast.
    from forecaster.artifacts import save_model
    from forecaster.registry import Registry
    from forecaster.train import fit

    if args.registry and not args.name:
        raise SystemExit("forecaster train: error: --registry needs --name")
    series = load(args)
    model_cfg, train_cfg = model_and_train_configs(args)
    result = fit(series, model_cfg, train_cfg, progress=not args.no_progress)
    saved = {
        "metrics": {"validation": result.val_metrics},
        "data_fingerprint": data.fingerprint(series),
        "freq": series.freq,
        "seasonality": train_cfg.seasonality,
    }
    if args.out:
        where = str(save_model(args.out, model_cfg, result.params, **saved))
    else:
        version = Registry(args.registry).publish(
            args.name, model_cfg, result.params, promote=args.promote, **saved
        )
        where = f"{args.registry}/{args.name}/{version}"
    summary = {"saved": where, "best_step": result.best_step, "seconds": round(result.seconds, 1)}
    print(json.dumps({**summary, "validation": result.val_metrics}))
    return 0
