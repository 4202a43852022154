"""Train on each M3 subset with the library's defaults, select on the validation split only,
and score once on the official hold-out.

    python -m benchmarks.m3 [--subset Yearly Quarterly Monthly Other] [--steps N] [--out DIR]

Besides the point forecast's accuracy, each line scores the intervals the service would serve:
the defaults calibrate the chosen model (:func:`forecaster.calibration.calibrate`), and the 80%
and 95% bands of every series (:func:`forecaster.calibration.bands`, on the forecast scored
above) are checked against the hold-out: coverage overall and the MSIS of the 95% one (goal:
coverage within 3 points of nominal).

What it measures, how, and what it found: ``docs/results/m3.md`` (intervals:
``docs/results/intervals.md``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from forecaster import calibration, data, metrics
from forecaster.cli import add_config_arguments, config_flags
from forecaster.configs import build_configs
from forecaster.predict import Forecast, Predictor
from forecaster.train import fit

M3 = Path(__file__).resolve().parents[2] / "shared" / "data" / "m3"
SUBSETS = ("Yearly", "Quarterly", "Monthly", "Other")
# The competition's horizon for the subset without timestamps (the others follow their freq).
TASK_HORIZON = {"Other": 8}
# The interval levels scored (percent), and how far from nominal their coverage may be.
LEVELS = (80.0, 95.0)
COVERAGE_GOAL = 3.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=M3, help="folder with <Subset>-{train,test}.csv")
    p.add_argument("--subset", nargs="+", choices=SUBSETS, default=list(SUBSETS))
    add_config_arguments(p)
    p.add_argument("--out", type=Path, help="save each selected model to DIR/<subset>")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def run_subset(args: argparse.Namespace, subset: str) -> dict:
    train_series = data.load_series(args.data / f"{subset}-train.csv")
    test = data.load_series(args.data / f"{subset}-test.csv").select(train_series.ids)
    flags = config_flags(args)
    model_flags = {**({"horizon": TASK_HORIZON[subset]} if subset in TASK_HORIZON else {}),
                   **flags["model"]}  # fmt: skip
    model_cfg, train_cfg = build_configs(
        model_flags, flags["train"], freq=train_series.freq, lengths=train_series.lengths.tolist()
    )
    result = fit(train_series, model_cfg, train_cfg, progress=not args.no_progress)
    model_cfg = result.config  # with the classical shares chosen on validation
    y_test = np.stack(test.values)[:, : model_cfg.horizon]
    predicted = Predictor(model_cfg, result.params).predict(train_series.values)
    forecast = predicted.point
    m = train_cfg.seasonality
    naive2 = metrics.naive2(train_series.values, model_cfg.horizon, m)
    line = {
        "benchmark": "m3",
        "subset": subset,
        "series": len(train_series),
        "freq": train_series.freq,
        "model": model_cfg.to_dict(),
        "train": asdict(train_cfg),
        "best_step": result.best_step,
        "val": {k: round(result.val_metrics[k], 4) for k in ("smape", "mase", "owa")},
        "smape": round(metrics.smape(y_test, forecast), 3),
        "mase": round(metrics.mase(train_series.values, y_test, forecast, m), 3),
        "naive2_smape": round(metrics.smape(y_test, naive2), 3),
        "naive2_mase": round(metrics.mase(train_series.values, y_test, naive2, m), 3),
        "train_seconds": round(result.seconds, 1),
        # The selection run's validation curve: what early stopping would have seen.
        "evaluations": [[h["step"], round(h["owa"], 4)] for h in result.history],
    }
    naive = metrics.naive(train_series.values, model_cfg.horizon)
    line["naive_smape"] = round(metrics.smape(y_test, naive), 3)
    line["naive_mase"] = round(metrics.mase(train_series.values, y_test, naive, m), 3)
    for name, f in (("", forecast), ("naive_", naive), ("naive2_", naive2)):
        line |= {name + k: round(v, 3) for k, v in metrics.ape_summary(y_test, f).items()}
    line["intervals"] = interval_scores(
        result.calibration, train_series.values, predicted, y_test, m
    )
    if args.out:
        from forecaster.registry import save_model

        save_model(args.out / subset, model_cfg, result.params, freq=train_series.freq,
                   seasonality=m, metrics={"validation": result.val_metrics},
                   data_fingerprint=data.fingerprint(train_series))  # fmt: skip
    return line


def interval_scores(
    cal: calibration.Calibration | None,
    histories: list[np.ndarray],
    forecast: Forecast,
    y_test: np.ndarray,
    m: int,
) -> dict:
    """Coverage (percent) of the served 80% and 95% intervals on the hold-out, the 95% one's
    MSIS, and whether each coverage is within ``COVERAGE_GOAL`` points; empty for a model the
    training left uncalibrated."""
    if cal is None:
        return {}
    probs = sorted(q for pair in calibration.level_quantiles(LEVELS) for q in pair)
    bands = calibration.bands(cal, histories, forecast, probs).quantiles
    out: dict = {}
    for level, (lo, hi) in zip(LEVELS, calibration.level_quantiles(LEVELS), strict=True):
        out[f"coverage_{level:g}"] = round(100 * metrics.coverage(y_test, bands[lo], bands[hi]), 2)
    lo, hi = calibration.level_quantiles([95.0])[0]
    out["msis_95"] = round(metrics.msis(histories, y_test, bands[lo], bands[hi], m), 4)
    out["goal_met"] = all(abs(out[f"coverage_{lv:g}"] - lv) <= COVERAGE_GOAL for lv in LEVELS)
    out["calibration_cpu_s"] = cal.seconds
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for subset in args.subset:
        print(json.dumps(run_subset(args, subset)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
