"""Train on M4 Hourly, select on the validation split, score once on the official test set.

    python -m benchmarks.m4_hourly [--cell gru] [--ensemble 5] [--steps 12000] [--out DIR]

What it measures, how, and what it found: ``docs/results/m4-hourly.md``.
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

# The file has no timestamps: the frequency and M4's horizon are the only settings given; the
# rest are the library's hourly defaults (chosen on validation: docs/results/m4-hourly.md).
FREQ, HORIZON = "h", 48
SEASONALITY = 24  # the period M4 scores hourly data with (MASE, Naive2), whatever was trained
M4 = Path(__file__).resolve().parents[2] / "shared" / "data" / "m4"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=M4, help="folder with Hourly-{train,test}.csv")
    add_config_arguments(p)
    p.add_argument("--out", type=Path, help="save the selected model to this directory")
    p.add_argument(
        "--parts", type=Path, help="train from this folder of Parquet parts (memory-mapped, "
        "forecaster.parts), written from Hourly-train.csv in 4 parts when it does not exist"
    )  # fmt: skip
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.parts is None:
        train_series = data.load_series(args.data / "Hourly-train.csv", freq=FREQ)
    else:
        if not args.parts.exists():
            write_parts(args.data / "Hourly-train.csv", args.parts)
        train_series = data.load_series(str(args.parts), freq=FREQ)
    test = data.load_series(args.data / "Hourly-test.csv")
    y_test = np.stack(test.values)
    flags = config_flags(args)
    model_cfg, train_cfg = build_configs(
        {"horizon": HORIZON, **flags["model"]},
        flags["train"],
        freq=train_series.freq,
        lengths=train_series.lengths.tolist(),
    )
    result = fit(train_series, model_cfg, train_cfg, progress=not args.no_progress)
    model_cfg = result.config  # with the classical shares chosen on validation
    forecast = Predictor(model_cfg, result.params).predict(train_series.values)
    lower, upper = interval_bounds(forecast.quantiles)
    scores = metrics.evaluate(
        train_series.values, y_test, forecast.point, SEASONALITY, lower=lower, upper=upper
    )
    line = {
        "benchmark": "m4_hourly",
        "model": model_cfg.to_dict(),
        "train": asdict(train_cfg),
        "best_step": result.best_step,
        "val": {k: round(result.val_metrics[k], 4) for k in ("smape", "mase", "owa")},
        "test": {k: round(v, 4) for k, v in scores.items() if k not in ("mae", "rmse")},
        "train_seconds": round(result.seconds, 1),
    }
    if args.out:
        from forecaster.registry import save_model

        save_model(args.out, model_cfg, result.params, freq=FREQ, seasonality=train_cfg.seasonality,
                   metrics={"validation": result.val_metrics, "test": scores},
                   data_fingerprint=data.fingerprint(train_series))  # fmt: skip
        line["saved"] = str(args.out)
    print(json.dumps(line), flush=True)
    return 0


def write_parts(csv: Path, folder: Path, parts: int = 4) -> None:
    """The wide file as ``parts`` Parquet parts of consecutive rows (series)."""
    import pandas as pd

    frame = pd.read_csv(csv)
    folder.mkdir(parents=True)
    for k, rows in enumerate(np.array_split(np.arange(len(frame)), parts)):
        frame.iloc[rows].to_parquet(folder / f"part-{k}.parquet", index=False)


def interval_bounds(
    quantiles: dict[float, np.ndarray],
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The 95% interval M4 scores (MSIS, coverage) when the model has its quantiles."""
    if 0.025 in quantiles and 0.975 in quantiles:
        return quantiles[0.025], quantiles[0.975]
    return None, None


if __name__ == "__main__":
    sys.exit(main())
