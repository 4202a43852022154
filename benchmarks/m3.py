"""Train on each M3 subset with the library's defaults, select on the validation split only,
and score once on the official hold-out.

    python -m benchmarks.m3 [--subset Yearly Quarterly Monthly Other] [--steps N] [--out DIR]

What it measures, how, and what it found: ``docs/results/m3.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from forecaster import data, metrics
from forecaster.cli import add_config_arguments, config_flags
from forecaster.configs import build_configs
from forecaster.predict import Predictor
from forecaster.train import fit

M3 = Path(__file__).resolve().parents[2] / "shared" / "data" / "m3"
SUBSETS = ("Yearly", "Quarterly", "Monthly", "Other")
# The competition's horizon for the subset without timestamps (the others follow their freq).
TASK_HORIZON = {"Other": 8}


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
    forecast = Predictor(model_cfg, result.params).predict(train_series.values).point
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
    if args.out:
        from forecaster.registry import save_model

        save_model(args.out / subset, model_cfg, result.params, freq=train_series.freq,
                   seasonality=m, metrics={"validation": result.val_metrics},
                   data_fingerprint=data.fingerprint(train_series))  # fmt: skip
    return line


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for subset in args.subset:
        print(json.dumps(run_subset(args, subset)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
