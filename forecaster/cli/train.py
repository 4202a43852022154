"""``forecaster train``: fit a model on a data file and save it (directory or registry)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forecaster.cli._options import (
    add_config_arguments,
    add_data_arguments,
    config_flags,
    configs_from_args,
    data_source,
)
from forecaster.configs import TrainConfig

if TYPE_CHECKING:
    from forecaster.configs import ModelConfig


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
    from forecaster import data
    from forecaster.registry import Registry, save_model
    from forecaster.train import covariate_spec, fit

    if args.registry and not args.name:
        raise SystemExit("forecaster train: error: --registry needs --name")
    _, given_train = configs_from_args(args)  # bad flags fail before the data is read
    series = data_source(args).load(max_gap=given_train.max_gap)
    print(f"forecaster train: data: {series.reading}", file=sys.stderr)
    if gaps := series.gap_summary():
        print(f"forecaster train: note: {gaps}", file=sys.stderr)
    if series.freq is None:
        print(
            "forecaster train: note: the data has no timestamps and no --freq was given; "
            "it is treated as period 1 (no seasonality)",
            file=sys.stderr,
        )
    model_cfg, train_cfg = configs_from_args(args, series)
    print(f"forecaster train: {choices(model_cfg, train_cfg, args)}", file=sys.stderr, flush=True)
    reads = covariate_spec(series, train_cfg)
    if reads:
        print(f"forecaster train: covariates: {reads.described()}", file=sys.stderr)
    result = fit(series, model_cfg, train_cfg, progress=not args.no_progress)
    model_cfg = result.config  # with the classical shares chosen on validation
    if result.sampled:
        print(f"forecaster train: note: {result.sampled}", file=sys.stderr)
    saved: dict[str, Any] = {
        "covariates": result.covariates,
        "metrics": {"validation": result.val_metrics},
        "data_fingerprint": data.fingerprint(series),
        "freq": series.freq,
        "seasonality": train_cfg.seasonality,
        "training": dataclasses.asdict(train_cfg),
        "calibration": result.calibration,
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


def choices(model: ModelConfig, train: TrainConfig, args: argparse.Namespace) -> str:
    """What training will run with, in one line: the settings derived from the data, then those
    given on the command line (the manifest records the same: ``config``, ``training``)."""
    flags = config_flags(args)
    given = ["--" + name.replace("_", "-") for name in [*flags["model"], *flags["train"]]]
    window = f"window {model.input_size} ({model.step} point{'s' * (model.step > 1)} a step"
    window += f", histories from {model.min_input})" if model.masked else ")"
    facts = [
        f"seasonality {train.seasonality}",
        f"horizon {model.horizon}",
        window,
        f"{train.steps} steps (validated every {train.eval_every})",
        f"{model.ensemble} x {model.cell} of {model.hidden} units",
    ]
    if train.batch_size != TrainConfig.batch_size:  # the cost budget chose smaller batches
        facts.append(f"batches of {train.batch_size}")
    told = f"; given: {', '.join(given)}" if given else ""
    return "training with " + ", ".join(facts) + f" (derived from the data{told})"
