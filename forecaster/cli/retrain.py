"""``forecaster retrain``: retrain on the latest data and promote the result only if it is better.

Exit status: 0 when every job reached a decision (promoted, or champion kept), 1 when a job
failed (including a challenger that failed its sanity checks, or another job holding the
model's lock), 2 for invalid options or config files.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from forecaster.cli._options import add_config_arguments, model_and_train_configs

POLICIES = ("if-better", "always", "never")
SOURCE_FLAGS = ("format", "id_col", "time_col", "value_col", "freq")
POLICY_FLAGS = ("registry", "promote", "margin", "warm_start", "plot_series")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "retrain",
        help="retrain a model (or several from --config); promote it only if it is better",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    job = p.add_argument_group("job (flags given here override the --config file)")
    job.add_argument("--config", type=Path, help="TOML or JSON file listing models to retrain")
    job.add_argument("--data", help="CSV or Parquet, path or fsspec URL")
    job.add_argument("--registry", help="registry root (path or fsspec URL)")
    job.add_argument("--name", help="model name (with --config: retrain only this one)")
    job.add_argument("--promote", choices=POLICIES, help="promotion policy (default if-better)")
    job.add_argument(
        "--margin", type=float, help="relative OWA improvement needed (0.01 = 1%%; default 0)"
    )
    job.add_argument(
        "--warm-start",
        action=argparse.BooleanOptionalAction,
        help="start from the production weights when the model config is unchanged",
    )
    job.add_argument("--plot-series", type=int, help="series drawn in plot.png (default 4)")
    job.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    source = p.add_argument_group("data format")
    source.add_argument("--format", choices=["auto", "long", "wide"])
    source.add_argument("--id-col")
    source.add_argument("--time-col")
    source.add_argument("--value-col")
    source.add_argument("--freq", help="pandas frequency alias, if it cannot be inferred")
    add_config_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from forecaster import parallel, retrain

    parallel.initialize_distributed()  # must precede any use of a device
    try:
        jobs = _jobs(args)
    except (retrain.ConfigError, ValueError) as err:
        print(f"forecaster retrain: error: {err}", file=sys.stderr)
        return 2
    outcomes = [_run_one(job, args.no_progress) for job in jobs]
    print()
    print(retrain.summary_table(outcomes))
    return 0 if all(o.ok for o in outcomes) else 1


def _given(args: argparse.Namespace, names: tuple[str, ...] | list[str]) -> dict[str, Any]:
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _jobs(args: argparse.Namespace) -> list[Any]:
    """The jobs to run: one from the flags, or those of the --config file."""
    import dataclasses

    from forecaster import retrain

    if args.config is not None:
        overrides = _given(args, [*SOURCE_FLAGS, *POLICY_FLAGS, "data"])
        overrides["model"] = _given(args, [f.name for f in dataclasses.fields(retrain.ModelConfig)])
        overrides["train"] = _given(args, [f.name for f in dataclasses.fields(retrain.TrainConfig)])
        return retrain.load_jobs(args.config, overrides, only=args.name)
    missing = [f"--{f}" for f in ("data", "registry", "name") if getattr(args, f) is None]
    if missing:
        raise retrain.ConfigError(f"{', '.join(missing)} required (or give --config FILE)")
    model_cfg, train_cfg = model_and_train_configs(args)
    source = retrain.DataSource(args.data, **_given(args, SOURCE_FLAGS))
    policy = _given(args, POLICY_FLAGS)
    return [retrain.Job(name=args.name, data=source, model=model_cfg, train=train_cfg, **policy)]


def _run_one(job: Any, no_progress: bool) -> Any:
    """Run one job; a failure is reported and recorded, and the next job still runs."""
    from forecaster import retrain
    from forecaster.registry import PublishLockedError

    started = time.perf_counter()
    print(f"{job.name}: training a challenger on {job.data.url}", file=sys.stderr, flush=True)
    try:
        outcome = retrain.run_job(job, progress=not no_progress)
    except PublishLockedError as err:
        print(f"forecaster retrain: {job.name}: refused: {err}", file=sys.stderr)
        outcome = retrain.failed(job.name, err, started)
    except Exception as err:  # one model's failure must not stop the others
        if not isinstance(err, _user_errors()):
            traceback.print_exc()
        print(f"forecaster retrain: {job.name}: error: {err}", file=sys.stderr)
        outcome = retrain.failed(job.name, err, started)
    print(retrain.describe(outcome), flush=True)
    if outcome.report_path:
        print(f"  report: {outcome.report_path}", flush=True)
    return outcome


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors whose message says it all; anything else also gets its traceback."""
    from forecaster.artifacts import ArtifactError
    from forecaster.data import DataError
    from forecaster.registry import RegistryError
    from forecaster.retrain import RetrainError
    from forecaster.train import TrainingDivergedError

    return (ArtifactError, DataError, RegistryError, RetrainError, TrainingDivergedError,
            FileNotFoundError)  # fmt: skip
