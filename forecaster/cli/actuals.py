"""``forecaster actuals ingest FILE``: store observed values to score recorded forecasts.

The file is long format (one row per observation: id, timestamp, value columns, named by the same
options as ``train``); values are matched to the forecasts the service recorded by series id and
timestamp. Sending the same file twice changes nothing; a corrected value replaces the old one.
"""

from __future__ import annotations

import argparse

from forecaster.cli._options import add_monitoring_arguments, add_reading_arguments, store_url


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "actuals",
        help="store actual values to score recorded forecasts against",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = p.add_subparsers(dest="actuals_command", required=True, metavar="COMMAND")
    ingest = verbs.add_parser("ingest", help="read a long-format CSV or Parquet file")
    ingest.add_argument("file", help="CSV or Parquet, path or fsspec URL")
    add_reading_arguments(ingest.add_argument_group("columns"))
    add_monitoring_arguments(ingest)
    ingest.set_defaults(func=_ingest)


def _ingest(args: argparse.Namespace) -> int:
    from forecaster.cli._options import data_source
    from forecaster.monitoring.actuals import read_actuals
    from forecaster.monitoring.store import MonitoringStore

    actuals = read_actuals(data_source(args, args.file))
    store = MonitoringStore(store_url(args))
    try:
        done = store.ingest(actuals)
    finally:
        store.close()
    points = sum(len(v) for _, _, v in actuals)
    print(f"{points} values of {len(actuals)} series: {done.stored} stored, {done.matched} "
          f"match recorded forecasts")  # fmt: skip
    if done.unknown_series:
        shown = ", ".join(done.unknown_series[:5])
        more = f" and {len(done.unknown_series) - 5} more" if len(done.unknown_series) > 5 else ""
        print(f"ignored {len(done.unknown_series)} series with no recorded forecast: {shown}{more}")
    return 0
