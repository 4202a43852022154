"""``forecaster retrain``: retrain on the latest data and promote the result only if it is better.

Exit status: 0 when every job reached a decision (promoted, champion kept, superseded:
production moved during the run, so the challenger was not promoted over it, or skipped: with
--when degraded, live accuracy has not degraded), 1 when a job failed (including a challenger
that failed its sanity checks, or another job holding the model's lock), 2 for invalid options
or config files, 3 when no job failed but with --when degraded one could not decide (undecided:
too few live points in the window; not retrained).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from forecaster.cli._options import add_config_arguments, add_data_arguments, config_flags, given
from forecaster.environment import setting
from forecaster.job import Job
from forecaster.options import add_flags, options
from forecaster.sources import SOURCE_OPTIONS

UNDECIDED_EXIT = 3


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "retrain",
        help="retrain a model (or several from --config); promote it only if it is better",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    job = p.add_argument_group("job (flags given here override the --config file)")
    job.add_argument("--config", type=Path, help="TOML or JSON file listing models to retrain")
    job.add_argument("--name", help="model name (with --config: retrain only this one)")
    add_flags(job, Job)
    # The environment's database counts as given by a flag (it overrides the --config file).
    p.set_defaults(database_url=setting("database_url"))
    job.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_data_arguments(p, required=False)
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
    return exit_status(outcomes)


def exit_status(outcomes: list[Any]) -> int:
    """The run's exit status (module docstring)."""
    if all(o.ok for o in outcomes):
        return 0
    return UNDECIDED_EXIT if all(o.ok or o.status == "undecided" for o in outcomes) else 1


def _jobs(args: argparse.Namespace) -> list[Any]:
    """The jobs to run: one from the flags, or those of the --config file."""
    from forecaster import retrain
    from forecaster.retrain.jobs import job_from_settings

    policy = [f.name for f in options(Job)]
    overrides = {**given(args, [*SOURCE_OPTIONS, *policy, "data"]), **config_flags(args)}
    if args.config is not None:
        return retrain.load_jobs(args.config, overrides, only=args.name)
    missing = [f"--{f}" for f in ("data", "registry", "name") if getattr(args, f) is None]
    if missing:
        raise retrain.ConfigError(f"{', '.join(missing)} required (or give --config FILE)")
    return [job_from_settings({**overrides, "name": args.name})]


def _run_one(job: Any, no_progress: bool) -> Any:
    """Run one job; a failure is reported and recorded, and the next job still runs."""
    from forecaster import retrain
    from forecaster.cli import user_errors
    from forecaster.registry import PublishLockedError

    started = time.perf_counter()
    doing = f"training a challenger on {job.data.url}"
    if job.when == "degraded":
        doing = f"{doing} if the production version's live accuracy has degraded"
    print(f"{job.name}: {doing}", file=sys.stderr, flush=True)
    try:
        outcome = retrain.run_job(job, progress=not no_progress)
    except PublishLockedError as err:
        print(f"forecaster retrain: {job.name}: refused: {err}", file=sys.stderr)
        outcome = retrain.failed(job.name, err, started)
    except Exception as err:  # one model's failure must not stop the others
        if not isinstance(err, user_errors()):
            traceback.print_exc()
        print(f"forecaster retrain: {job.name}: error: {err}", file=sys.stderr)
        outcome = retrain.failed(job.name, err, started)
    print(retrain.describe(outcome), flush=True)
    if outcome.report_path:
        print(f"  report: {outcome.report_path}", flush=True)
    return outcome
