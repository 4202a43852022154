"""EPF day-ahead prices: train once before the test period, score every test day's forecast.

By the paper's protocol and by fev-bench's; one JSON line per market.

    python -m benchmarks.epf [--markets NP PJM BE] [--steps N] [--in-process]
        [--validation-days N] [--no-covariates] [--no-calendar] [model and training flags]

- The paper's protocol (Lago et al. 2021): the last ``TEST_DAYS`` days of each file are the test
  period; each test day's 24 prices are forecast from everything before that day; MAE and sMAPE
  over all 728 x 24 hours. The naive of the data's README (the same hour of the day before, of
  the week before on Mondays, Saturdays and Sundays) is scored alongside as a check against its
  published figures.
- fev-bench's: the last ``FEV_DAYS`` days, MASE scaled by the in-sample mean |y_t - y_{t-24}|
  before each day (the seasonal naive d-1 alongside, as a check).

The model is trained once, on the data before the test period (its validation split: the last
horizon of that data); the paper's models were recalibrated daily. Forecasts are asked over HTTP
from a real ``forecaster serve`` on 127.0.0.1 (``benchmarks.soak.start_server``), or with
``--in-process`` through :class:`forecaster.predict.Predictor`; the line's ``"via"`` says which.

``--validation-days N`` scores the last N days before the test period instead, training on the
data before them: the test period is never read. That is how the scaling rule was chosen
(``--scaling log|standard|arcsinh``). What it measured: ``docs/results/epf.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecaster import data
from forecaster.cli import add_config_arguments, config_flags
from forecaster.configs import ModelConfig, build_configs, data_facts
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

Forecaster = Callable[[list[np.ndarray]], np.ndarray]  # histories -> [n, DAY]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=EPF, help="folder holding NP.csv, PJM.csv, BE.csv")
    p.add_argument("--markets", nargs="+", default=list(MARKETS), choices=MARKETS)
    p.add_argument("--in-process", action="store_true",
                   help="forecast through forecaster.predict, not over HTTP")  # fmt: skip
    p.add_argument("--validation-days", type=int, default=0,
                   help="score the last N days before the test period instead (the test "
                   "period is not read)")  # fmt: skip
    # The covariate model is not in the library yet: these record the ablation asked for, and
    # the run is univariate whatever they say (see ``train_market``).
    p.add_argument("--no-covariates", action="store_true", help="ablation: the target alone")
    p.add_argument("--no-calendar", action="store_true", help="ablation: no calendar features")
    add_config_arguments(p)  # --steps, --scaling, --ensemble, ... (the library's flags)
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def load_market(path: Path) -> pd.DataFrame:
    """The market's rows, indexed by timestamp: ``value`` and its covariate columns."""
    frame = pd.read_csv(path, parse_dates=["timestamp"]).set_index("timestamp")
    if len(frame) % DAY:
        sys.exit(f"{path}: {len(frame)} rows is not a whole number of days")
    return frame


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
    market: str, frame: pd.DataFrame, end: int, args: argparse.Namespace
) -> tuple[ModelConfig, Any, dict[str, Any]]:
    """Train on ``frame``'s first ``end`` rows; returns the config, weights and the run's facts.

    Univariate for now. Once the covariate model lands (issue 31), the covariates enter here and
    nowhere else: read the history with its covariate columns (``frame.columns[1:]``, the day's
    values being known the day before) unless ``args.no_covariates``, pass them to the series'
    loading and to ``build_configs`` as the train command's ``--future-covariates`` does, and
    calendar features unless ``args.no_calendar``.
    """
    series = data.SeriesSet([market], [frame["value"].to_numpy()[:end]], freq="h",
                            end=[frame.index[end - 1]])  # fmt: skip
    flags = config_flags(args)
    model_cfg, train_cfg = build_configs(
        {"horizon": DAY, **flags["model"]}, flags["train"], f"market {market}",
        **data_facts(series),
    )  # fmt: skip
    cpu, wall = time.process_time(), time.perf_counter()
    result = fit(series, model_cfg, train_cfg, progress=not args.no_progress)
    facts = {
        "model": result.config.to_dict() | {"scaling": result.config.scaling},
        "train": asdict(train_cfg),
        "best_step": result.best_step,
        "val": {k: round(result.val_metrics[k], 4) for k in ("mae", "smape", "mase")},
        "train_cpu_s": round(time.process_time() - cpu, 1),
        "train_wall_s": round(time.perf_counter() - wall, 1),
    }
    return result.config, result.params, facts


def in_process(config: ModelConfig, params: Any) -> Forecaster:
    predictor = Predictor(config, params)
    return lambda histories: predictor.predict(histories).point


def forecast_days(forecaster: Forecaster, values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Each day's forecast [days, DAY] from the ``CONTEXT`` points before it."""
    histories = [values[max(0, s - CONTEXT) : s] for s in starts]
    return np.asarray(forecaster(histories), np.float64)[:, :DAY]


def run_market(market: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    frame = load_market(args.data / f"{market}.csv")
    values, times = frame["value"].to_numpy(np.float64), frame.index
    test_start = len(values) - TEST_DAYS * DAY
    if args.validation_days:  # score the days before the test period; train before them
        end = test_start - args.validation_days * DAY
        starts = np.arange(end, test_start, DAY)
    else:
        end = test_start
        starts = np.arange(test_start, len(values), DAY)
    config, params, facts = train_market(market, frame, end, args)
    line: dict[str, Any] = {"benchmark": "epf", "market": market, "period": "validation"
                  if args.validation_days else "test", "days": len(starts),
                  "covariates": "none (univariate: the covariate model has not landed)",
                  "train_until": str(times[end - 1]), **facts}  # fmt: skip
    if args.in_process:
        line["via"] = "in-process (forecaster.predict.Predictor)"
        forecast = forecast_days(in_process(config, params), values, starts)
    else:
        line["via"] = "HTTP (forecaster serve on 127.0.0.1)"
        forecast = over_http(market, config, params, values, starts, tmp)
    actual = np.stack([values[s : s + DAY] for s in starts])
    naive_days = np.stack([naive(values, times, s) for s in starts])
    line["paper"] = {"model": paper_scores(actual, forecast),
                     "naive": paper_scores(actual, naive_days)}  # fmt: skip
    if not args.validation_days:
        fev = starts[-FEV_DAYS:]
        d1 = np.stack([values[s - DAY : s] for s in fev])
        line["fev_mase"] = {"model": fev_mase(values, fev, forecast[-FEV_DAYS:]),
                            "seasonal_naive_d1": fev_mase(values, fev, d1)}  # fmt: skip
    return line


def over_http(
    market: str, config: ModelConfig, params: Any, values: np.ndarray, starts: np.ndarray,
    tmp: Path,
) -> np.ndarray:  # fmt: skip
    """Publish the model to a throwaway registry, serve it, and ask for every day's forecast."""
    from benchmarks.soak import start_server, stop_server
    from forecaster.client import ForecastClient
    from forecaster.registry import Registry

    name = f"epf-{market.lower()}"
    registry = tmp / "registry"
    Registry(registry).publish(name, config, params, promote=True, freq="h", seasonality=DAY)
    server, url, _log = start_server(registry, name, tmp, name=f"server-{market}")
    try:
        with ForecastClient(url, model=name, timeout=300) as client:
            histories = {i: values[max(0, s - CONTEXT) : s] for i, s in enumerate(starts)}
            frame = client.forecast_many(histories, horizon=DAY)
    finally:
        stop_server(server)
    frame = frame.sort_values(["id", "step"])
    return frame["forecast"].to_numpy(np.float64).reshape(len(starts), DAY)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="epf-") as tmp:
        for market in args.markets:
            line = run_market(market, args, Path(tmp))
            line["ablation"] = {"no_covariates": args.no_covariates,
                                "no_calendar": args.no_calendar}  # fmt: skip
            print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
