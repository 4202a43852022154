"""``forecaster forecast``: forecast every series of a table (CSV or Parquet, however large) into a
folder of Parquet or CSV parts, streamed in chunks of series; a rerun resumes.

Exit status: 0 when every series was forecast; 1 when some part or series could not be (the
others are written, and the summary names them) or the job could not start; 2 for invalid
options. The summary is one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys

from forecaster.batch import BatchJob
from forecaster.cli._options import add_data_arguments, data_source, given
from forecaster.options import ConfigError, add_flags, options

NAME = "forecaster forecast"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "forecast",
        help="forecast every series of a file or folder into a folder of parts (streamed)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_flags(p.add_argument_group("job"), BatchJob)
    add_data_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from forecaster.batch import run as run_job
    from forecaster.batch.driver import ProgressBar

    names = [f.name for f in options(BatchJob)]
    missing = [n for n in ("model", "out") if getattr(args, n) is None]
    if missing:
        print(f"{NAME}: error: --{missing[0]} is required", file=sys.stderr)
        return 2
    try:
        job = BatchJob(data=data_source(args), **given(args, names))
    except ConfigError as err:
        print(f"{NAME}: error: {err}", file=sys.stderr)
        return 2
    bar = ProgressBar(job.progress)
    try:
        summary = run_job(job, on_progress=bar.update)
    finally:
        bar.close()
    for line in summary.lines():
        print(f"{NAME}: failed: {line}", file=sys.stderr)
    print(json.dumps(summary.figures()))
    return 0 if summary.ok else 1
