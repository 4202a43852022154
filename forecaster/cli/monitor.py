"""``forecaster monitor``: live accuracy of served models, per version (and horizon step).

Reads the monitoring database the service records into: each version's recorded forecasts that
have actuals, scored by sMAPE, MASE (scaled by each history's seasonal naive error), MAE and
interval coverage, beside the seasonal naive forecast on the same points.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from forecaster.cli._options import add_monitoring_arguments, store_url

if TYPE_CHECKING:
    pass

HEADER = ("model", "version", "step", "points", "sMAPE", "MASE", "MAE", "coverage",
          "naive sMAPE", "naive MASE")  # fmt: skip


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "monitor",
        help="live accuracy of served models against actuals",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", nargs="?", help="one model (default: every model recorded)")
    p.add_argument("--version", type=int, help="one version")
    p.add_argument("--since", help="target times from (ISO 8601)")
    p.add_argument("--until", help="target times before (ISO 8601)")
    p.add_argument("--by-step", action="store_true", help="a row per horizon step")
    p.add_argument("--json", action="store_true", help="JSON (the API's accuracy body) instead")
    add_monitoring_arguments(p)
    p.set_defaults(func=_monitor)


def _monitor(args: argparse.Namespace) -> int:
    from forecaster.data import DataError
    from forecaster.monitoring.accuracy import as_dict
    from forecaster.monitoring.store import MonitoringStore
    from forecaster.monitoring.times import BadTimestamp, instant

    try:
        bounds = [None if t is None else instant(t) for t in (args.since, args.until)]
    except BadTimestamp as exc:
        raise DataError(f"--since/--until: {exc}") from None
    if bounds[0] is not None and bounds[1] is not None and bounds[0] >= bounds[1]:
        raise DataError("--since must be before --until (the window is [since, until))")
    store = MonitoringStore(store_url(args))
    try:
        models = [args.model] if args.model else store.models()
        found = {
            m: store.accuracy(m, version=args.version, since=bounds[0], until=bounds[1])
            for m in models
        }
    finally:
        store.close()
    if args.json:
        print(json.dumps({m: [as_dict(v) for v in vs] for m, vs in found.items()}, indent=2))
        return 0
    rows: list[tuple[str, ...]] = [HEADER]
    for model, versions in found.items():
        for v in versions:
            rows.append(_row(model, v.version, "all", v.overall))
            if args.by_step:
                rows += [_row(model, v.version, str(k), f) for k, f in v.steps.items()]
    if len(rows) == 1:
        print("no recorded forecast has an actual yet")
        return 0
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    for r in rows:
        cells = zip(r, widths, strict=True)
        print("  ".join(c.rjust(w) if i > 2 else c.ljust(w) for i, (c, w) in enumerate(cells)))
    return 0


def _row(model: str, version: int, step: str, f) -> tuple[str, ...]:
    def num(x: float | None, fmt: str = ".3f") -> str:
        return "-" if x is None else format(x, fmt)

    return (model, f"v{version}", step, str(f.points), num(f.model.smape, ".2f"),
            num(f.model.mase), num(f.model.mae), num(f.coverage, ".1%"),
            num(f.seasonal_naive.smape, ".2f"), num(f.seasonal_naive.mase))  # fmt: skip
