"""EPF day-ahead prices: train once before the test period, score every test day's forecast.

By the paper's protocol and by fev-bench's; one JSON line per market and variant.

    python -m benchmarks.epf [--markets NP PJM BE] [--steps N] [--in-process]
        [--validation-days N] [--no-covariates] [--no-calendar] [--ablation]
        [model and training flags]

- The paper's protocol (Lago et al. 2021): the last ``TEST_DAYS`` days of each file are the test
  period; each test day's 24 prices are forecast from everything before that day plus the
  day's covariates; MAE and sMAPE over all 728 x 24 hours. The naive of the data's README (the
  same hour of the day before, of the week before on Mondays, Saturdays and Sundays) is scored
  alongside as a check against its published figures.
- fev-bench's: the last ``FEV_DAYS`` days, MASE scaled by the in-sample mean |y_t - y_{t-24}|
  before each day (the seasonal naive d-1 alongside, as a check).

Covariates: each file's columns after ``value`` (a load and a generation forecast, known the
day before for every hour) are read as future covariates, as ``forecaster train
--future-covariates`` reads them, and calendar features (hour, weekday, day of the year) are
derived from the timestamps. ``--no-covariates`` drops the columns (the calendar stays),
``--no-calendar`` the calendar (``--no-covariates --no-calendar``: the target alone);
``--ablation`` trains all three of full, no-covariates and no-calendar on each market and
prints a line for each, then one with the changes in MAE.

The model is trained once, on the data before the test period (its validation split: the last
horizon of that data); the paper's models were recalibrated daily. Forecasts are asked over HTTP
from a real ``forecaster serve`` on 127.0.0.1 (``benchmarks.soak.start_server``; each request
carries the day's history with its timestamps and covariate values, and the day's 24 covariate
values ahead: the client's ``forecast_many(..., future_df=)``), or with ``--in-process`` through
:class:`forecaster.predict.Predictor`; the line's ``"via"`` says which.

``--validation-days N`` scores the last N days before the test period instead, training on the
data before them: the test period is never read. That is how rules were chosen (the scaling of
targets that go negative, the covariate recipe). What it measured: ``docs/results/epf.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecaster import data
from forecaster.cli import add_config_arguments, config_flags
from forecaster.configs import ModelConfig, build_configs, data_facts
from forecaster.covariates import CovariateSpec, SeriesInputs
from forecaster.predict import Predictor
from forecaster.train import fit

EPF = Path(__file__).resolve().parents[2] / "shared" / "data" / "epf"
MARKETS = ("NP", "PJM", "BE")
DAY = 24
TEST_DAYS, FEV_DAYS = 728, 20
# Points of history sent with each day's forecast (both paths send the same): eight weeks, more
# than the window and enough for the classical methods' seasonal fit when they are blended in.
CONTEXT = 8 * 7 * DAY
# The README's naive reads a week back on these days (Monday 0 ... Sunday 6).
WEEKLY_NAIVE_DAYS = (0, 5, 6)
LEVELS = (80.0, 95.0)

Forecaster = Callable[["Days"], np.ndarray]  # the days to forecast -> [days, DAY]


@dataclass(frozen=True)
class Variant:
    """What a run reads besides the target: the covariate columns and whether the calendar
    (``calendar`` None: the library's rule, on when covariates are read)."""

    name: str
    covariates: bool
    calendar: bool | None


ABLATION = (
    Variant("full", True, None),
    Variant("no_covariates", False, True),
    Variant("no_calendar", True, False),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=EPF, help="folder holding NP.csv, PJM.csv, BE.csv")
    p.add_argument("--markets", nargs="+", default=list(MARKETS), choices=MARKETS)
    p.add_argument("--in-process", action="store_true",
                   help="forecast through forecaster.predict, not over HTTP")  # fmt: skip
    p.add_argument("--validation-days", type=int, default=0,
                   help="score the last N days before the test period instead (the test "
                   "period is not read)")  # fmt: skip
    p.add_argument("--no-covariates", action="store_true",
                   help="ablation: without the file's covariate columns (the calendar stays "
                   "unless --no-calendar)")  # fmt: skip
    p.add_argument(
        "--ablation",
        action="store_true",
        help="train full, --no-covariates and --no-calendar on each market",
    )
    p.add_argument(
        "--forecasts",
        type=Path,
        help="write each run's forecasts here (a CSV per market and variant)",
    )
    # --steps, --scaling, --ensemble, --calendar/--no-calendar, ... (the library's flags)
    add_config_arguments(p)
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def variants(args: argparse.Namespace) -> tuple[Variant, ...]:
    if args.ablation:
        return ABLATION
    calendar = args.calendar if args.calendar is not None else (
        True if args.no_covariates else None
    )  # fmt: skip
    name = "no_covariates" if args.no_covariates else "full"
    if calendar is False:
        name = "univariate" if args.no_covariates else "no_calendar"
    return (Variant(name, not args.no_covariates, calendar),)


def load_market(path: Path) -> pd.DataFrame:
    """The market's rows, indexed by timestamp: ``value`` and its covariate columns."""
    frame = pd.read_csv(path, parse_dates=["timestamp"]).set_index("timestamp")
    if len(frame) % DAY:
        sys.exit(f"{path}: {len(frame)} rows is not a whole number of days")
    return frame.drop(columns=["id"], errors="ignore")


def covariate_columns(frame: pd.DataFrame) -> list[str]:
    """The file's covariates: its columns after ``value`` (both known the day before)."""
    return [c for c in frame.columns if c != "value"]


@dataclass(frozen=True)
class Days:
    """The days to forecast: each one's first row ``starts`` in ``frame``, and the covariate
    ``columns`` the model reads (none: the target alone)."""

    frame: pd.DataFrame
    starts: np.ndarray
    columns: list[str]

    def histories(self) -> list[np.ndarray]:
        values = self.frame["value"].to_numpy(np.float64)
        return [values[max(0, s - CONTEXT) : s] for s in self.starts]

    def inputs(self) -> list[SeriesInputs]:
        """Each day's covariates as the library reads them: the history's values of each
        column, the day's 24 ahead, and the last history timestamp (the calendar)."""
        cols = {c: self.frame[c].to_numpy(np.float64) for c in self.columns}
        times = self.frame.index
        return [
            SeriesInputs(
                past={c: v[max(0, s - CONTEXT) : s] for c, v in cols.items()},
                future={c: v[s : s + DAY] for c, v in cols.items()},
                end=times[s - 1],
            )
            for s in self.starts
        ]

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The client's layout: a long frame of every day's history (id: the day's position)
        with its timestamps and covariate columns, and ``future_df`` of the day's 24 hours."""
        starts = self.starts
        first = np.maximum(0, starts - CONTEXT)
        rows = np.concatenate([np.arange(a, s) for a, s in zip(first, starts, strict=True)])
        ids = np.repeat(np.arange(len(starts)), starts - first)
        past = self.frame.iloc[rows][["value", *self.columns]].reset_index()
        past.insert(0, "id", ids)
        ahead = np.concatenate([np.arange(s, s + DAY) for s in starts])
        future = self.frame.iloc[ahead][self.columns].reset_index()
        future.insert(0, "id", np.repeat(np.arange(len(starts)), DAY))
        return past, future


def naive(values: np.ndarray, times: pd.DatetimeIndex, start: int) -> np.ndarray:
    """The README's naive forecast [DAY] of the day whose first hour is ``values[start]``."""
    back = 7 * DAY if times[start].day_of_week in WEEKLY_NAIVE_DAYS else DAY
    return values[start - back : start - back + DAY]


def paper_scores(actual: np.ndarray, forecast: np.ndarray) -> dict[str, float]:
    """MAE and sMAPE (mean of 200|y-f|/(|y|+|f|); 0 where both are 0) over every hour."""
    err = np.abs(actual - forecast)
    denom = np.abs(actual) + np.abs(forecast)
    smape = np.where(denom > 0, 200 * err / np.where(denom > 0, denom, 1), 0.0)
    return {"mae": round(float(err.mean()), 4), "smape": round(float(smape.mean()), 3)}


def fev_mase(values: np.ndarray, starts: np.ndarray, forecast: np.ndarray) -> float:
    """fev-bench's MASE: each day's MAE over the in-sample mean |y_t - y_{t-24}| before it,
    averaged over the days (``forecast`` [days, DAY])."""
    ratios = []
    for start, f in zip(starts, forecast, strict=True):
        past = values[:start]
        scale = np.mean(np.abs(past[DAY:] - past[:-DAY]))
        ratios.append(np.mean(np.abs(values[start : start + DAY] - f)) / scale)
    return round(float(np.mean(ratios)), 4)


def train_market(
    market: str, frame: pd.DataFrame, end: int, variant: Variant, args: argparse.Namespace
) -> tuple[ModelConfig, Any, CovariateSpec, dict[str, Any], Any]:
    """Train on ``frame``'s first ``end`` rows as ``forecaster train`` would on that file with
    ``--future-covariates`` (the variant's columns) and the variant's calendar; returns the
    config, weights, covariate spec, the run's facts and its calibration (None: not
    calibrated), which ``forecaster train`` publishes with the model."""
    columns = covariate_columns(frame) if variant.covariates else []
    long = frame.iloc[:end][["value", *columns]].reset_index()
    long.insert(0, "id", market)
    series = data.series_from_frame(long, freq="h", future_covariates=columns)
    flags = config_flags(args)
    train_flags = dict(flags["train"])
    if variant.calendar is not None:
        train_flags["calendar"] = variant.calendar
    else:
        train_flags.pop("calendar", None)
    model_cfg, train_cfg = build_configs(
        {"horizon": DAY, **flags["model"]}, train_flags, f"market {market}",
        **data_facts(series),
    )  # fmt: skip
    load_before = _load()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu, wall = usage.ru_utime + usage.ru_stime, time.perf_counter()
    result = fit(series, model_cfg, train_cfg, progress=not args.no_progress)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    facts = {
        "model": result.config.to_dict() | {"scaling": result.config.scaling},
        "train": asdict(train_cfg),
        "reads": result.covariates.described() if result.covariates else "the target alone",
        "best_step": result.best_step,
        "val": {k: round(result.val_metrics[k], 4) for k in ("mae", "smape", "mase")},
        "train_cpu_s": round(usage.ru_utime + usage.ru_stime - cpu, 1),
        "train_wall_s": round(time.perf_counter() - wall, 1),
        "load_average": {"before": load_before, "after": _load()},
    }
    return result.config, result.params, result.covariates, facts, result.calibration


def _load() -> list[float]:
    """The machine's 1, 5 and 15-minute load averages (it is shared: wall times depend on it)."""
    return [round(x, 2) for x in os.getloadavg()]


def in_process(config: ModelConfig, params: Any, spec: CovariateSpec) -> Forecaster:
    predictor = Predictor(config, params, covariates=spec)

    def forecast(days: Days) -> np.ndarray:
        inputs = days.inputs() if spec else None
        return np.asarray(predictor.predict(days.histories(), inputs=inputs).point)

    return forecast


def run_market(
    market: str, variant: Variant, args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    frame = load_market(args.data / f"{market}.csv")
    values, times = frame["value"].to_numpy(np.float64), frame.index
    test_start = len(values) - TEST_DAYS * DAY
    if args.validation_days:  # score the days before the test period; train before them
        end = test_start - args.validation_days * DAY
        starts = np.arange(end, test_start, DAY)
    else:
        end = test_start
        starts = np.arange(test_start, len(values), DAY)
    config, params, spec, facts, _calibration = train_market(market, frame, end, variant, args)
    line: dict[str, Any] = {"benchmark": "epf", "market": market, "variant": variant.name,
                  "period": "validation" if args.validation_days else "test", "days": len(starts),
                  "train_until": str(times[end - 1]), **facts}  # fmt: skip
    days = Days(frame, starts, spec.names("future") if spec else [])
    if args.in_process:
        line["via"] = "in-process (forecaster.predict.Predictor)"
        forecast = in_process(config, params, spec)(days)[:, :DAY]
    else:
        line["via"] = "HTTP (forecaster serve on 127.0.0.1)"
        name = f"epf-{market.lower()}-{variant.name.replace('_', '-')}"
        forecast, served = over_http(name, config, params, spec, days, tmp)
        line["served"] = served
    forecast = np.asarray(forecast, np.float64)
    actual = np.stack([values[s : s + DAY] for s in starts])
    if args.forecasts:
        args.forecasts.mkdir(parents=True, exist_ok=True)
        out = pd.DataFrame({"timestamp": np.concatenate([times[s : s + DAY] for s in starts]),
                            "actual": actual.ravel(), "forecast": forecast.ravel()})  # fmt: skip
        out.to_csv(args.forecasts / f"{market}-{variant.name}.csv", index=False)
    naive_days = np.stack([naive(values, times, s) for s in starts])
    line["paper"] = {"model": paper_scores(actual, forecast),
                     "naive": paper_scores(actual, naive_days)}  # fmt: skip
    if config.theta_weight or config.damped_weight:
        # The network's weights and steps are selected alone, the classical share after them
        # (forecaster.train.fit): the same weights without it, for the rule that decides it.
        alone = replace(config, theta_weight=0.0, damped_weight=0.0)
        line["paper"]["network_alone"] = paper_scores(actual, in_process(alone, params, spec)(days))
    if not args.validation_days:
        fev = starts[-FEV_DAYS:]
        d1 = np.stack([values[s - DAY : s] for s in fev])
        line["fev_mase"] = {"model": fev_mase(values, fev, forecast[-FEV_DAYS:]),
                            "seasonal_naive_d1": fev_mase(values, fev, d1)}  # fmt: skip
    return line


def over_http(
    name: str, config: ModelConfig, params: Any, spec: CovariateSpec, days: Days, tmp: Path
) -> tuple[np.ndarray, dict[str, Any]]:
    """Publish the model to a throwaway registry, serve it, and ask for every day's forecast
    (with its covariates); returns the forecasts [days, DAY] and what the answers said."""
    from benchmarks.soak import start_server, stop_server
    from forecaster.client import ForecastClient
    from forecaster.registry import Registry

    registry = tmp / "registry"
    Registry(registry).publish(name, config, params, promote=True, freq="h", seasonality=DAY,
                               covariates=spec)  # fmt: skip
    server, url, _log = start_server(registry, name, tmp, name=f"server-{name}")
    past, future = days.frames()
    try:
        with ForecastClient(url, model=name, timeout=300) as client:
            started = time.perf_counter()
            frame = client.forecast_many(
                past, horizon=DAY, future_df=future if days.columns else None
            )
            seconds = time.perf_counter() - started
    finally:
        stop_server(server)
    frame = frame.sort_values(["id", "step"])
    served = {"seconds": round(seconds, 1), "methods": sorted(set(frame["method"]))}
    forecast = frame["forecast"].to_numpy(np.float64).reshape(len(days.starts), DAY)
    return forecast, served


def ablation_line(market: str, lines: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The MAE changes of the ablation: the full model's against each variant without a part
    (negative: the part lowers the MAE)."""
    mae = {name: line["paper"]["model"]["mae"] for name, line in lines.items()}
    full = mae["full"]
    return {
        "benchmark": "epf", "market": market, "summary": "ablation",
        "period": lines["full"]["period"], "mae": mae,
        "covariates_change_pct": round(100 * (full / mae["no_covariates"] - 1), 1),
        "calendar_change_pct": round(100 * (full / mae["no_calendar"] - 1), 1),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="epf-") as tmp:
        for market in args.markets:
            lines = {}
            for variant in variants(args):
                lines[variant.name] = run_market(market, variant, args, Path(tmp))
                print(json.dumps(lines[variant.name]), flush=True)
            if args.ablation:
                print(json.dumps(ablation_line(market, lines)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
