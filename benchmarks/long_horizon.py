"""Forecasts beyond the trained horizon (:mod:`forecaster.extend`) against Theta and seasonal
naive over the same long hold-out.

    python -m benchmarks.long_horizon [--set m3-monthly weekly tourism] [--steps N] [--ensemble N]
        [--save DIR | --load DIR]

What it measures, how, and what it found: ``docs/results/long-horizon.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from forecaster import classical, data, extend, metrics
from forecaster.cli import add_config_arguments, config_flags
from forecaster.configs import build_configs
from forecaster.fallback import answering_method, fallback_forecast
from forecaster.predict import Forecast, Predictor
from forecaster.train import fit

M3 = Path(__file__).resolve().parents[2] / "shared" / "data" / "m3"
# set -> (asked horizons, the first cuts the hold-out)
SETS = {"m3-monthly": (36, 24), "weekly": (52,), "tourism": (24,)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", nargs="+", choices=list(SETS), default=list(SETS))
    p.add_argument("--m3", type=Path, default=M3, help="folder with Monthly-train.csv")
    add_config_arguments(p)
    p.add_argument("--save", type=Path, help="save each trained model to DIR/<set>")
    p.add_argument("--load", type=Path, help="score the models saved in DIR/<set> instead")
    p.add_argument("--note", default="", help="written into each line")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def weekly(seed: int = 0, n: int = 359) -> data.SeriesSet:
    """M4 Weekly-like series: level, slow multiplicative trend, yearly season (52.18 weeks), AR
    noise and level shifts, all relative to the level (positive but for rare dips, floored at
    1% of the level)."""
    rng = np.random.default_rng(seed)
    ids, values, ends = [], [], []
    for i in range(n):
        length = int(rng.integers(300, 1001))
        t = np.arange(length)
        level = rng.uniform(500, 20_000)
        trend = level * (np.exp(rng.normal(0, 0.0006) * t) - 1)
        amplitude = rng.uniform(0.0, 0.25) * level
        phase = rng.uniform(0, 2 * np.pi)
        season = amplitude * np.sin(2 * np.pi * t / 52.18 + phase)
        noise = np.zeros(length)
        eps = rng.normal(0, rng.uniform(0.01, 0.06) * level, length)
        for k in range(1, length):
            noise[k] = 0.7 * noise[k - 1] + eps[k]
        shifts = np.cumsum((rng.random(length) < 0.004) * rng.normal(0, 0.1 * level, length))
        values.append(np.maximum(level + trend + season + noise + shifts, 0.01 * level))
        ids.append(f"W{i + 1}")
        ends.append(pd.Timestamp("2019-12-29") - pd.Timedelta(weeks=int(rng.integers(0, 200))))
    return data.SeriesSet(ids, values, "W-SUN", ends)


def tourism(seed: int = 1, n: int = 366) -> data.SeriesSet:
    """Tourism Monthly-like series: positive, multiplicative season, growth, noise."""
    rng = np.random.default_rng(seed)
    ids, values, ends = [], [], []
    for i in range(n):
        length = int(rng.integers(91, 334))
        t = np.arange(length)
        level = rng.uniform(100, 50_000)
        growth = np.exp(rng.normal(0.002, 0.004) * t)
        shape = 1 + rng.uniform(0.1, 0.6) * np.sin(2 * np.pi * t / 12 + rng.uniform(0, 6.3))
        shape *= 1 + rng.uniform(0, 0.2) * np.cos(4 * np.pi * t / 12 + rng.uniform(0, 6.3))
        noise = np.exp(rng.normal(0, rng.uniform(0.03, 0.12), length))
        values.append(level * growth * shape * noise)
        ids.append(f"T{i + 1}")
        ends.append(pd.Timestamp("2007-12-01") - pd.DateOffset(months=int(rng.integers(0, 60))))
    return data.SeriesSet(ids, values, "MS", ends)


def load_set(args: argparse.Namespace, name: str) -> data.SeriesSet:
    if name == "m3-monthly":
        return data.load_series(args.m3 / "Monthly-train.csv")
    return weekly() if name == "weekly" else tourism()


def served(predictor: Predictor, histories: list[np.ndarray], horizon: int, m: int) -> tuple:
    """What the service answers: the model (rolled) where a history is long enough, else the
    fallback; and the model rolled on its blended forecasts instead (None for fallback rows)."""
    cfg = predictor.config
    long = [
        i
        for i, h in enumerate(histories)
        if answering_method(len(h), cfg.min_input or cfg.input_size, m) == "model"
    ]
    out = np.zeros((len(histories), horizon))
    for i, h in enumerate(histories):
        if i not in set(long):
            out[i] = fallback_forecast(h, horizon, m).point
    chosen = extend.forecast(predictor, [histories[i] for i in long], horizon).point
    out[long] = chosen
    fed = out.copy()
    fed[long] = fed_blend(predictor, [histories[i] for i in long], horizon)
    return out, fed, long


def fed_blend(predictor: Predictor, histories: list[np.ndarray], horizon: int) -> np.ndarray:
    """The variant not chosen: each block's blended point forecast read back as history."""
    block = predictor.config.horizon
    ahead = np.zeros((len(histories), 0))
    while ahead.shape[1] < horizon:
        grown = [np.concatenate([h, a]) for h, a in zip(histories, ahead, strict=True)]
        x, lengths = predictor.windows(grown)
        net = predictor.predict_windows(x, lengths).point
        # The blend of this block at its own steps: classical forecasts from the history itself.
        done = ahead.shape[1]
        full = np.concatenate([ahead, net], axis=1)
        blended = predictor.blend(histories, Forecast(full, {})).point
        ahead = np.concatenate([ahead, blended[:, done : done + block]], axis=1)
    return ahead[:, :horizon]


def intervals(
    predictor: Predictor, histories: list[np.ndarray], y: np.ndarray, horizon: int
) -> dict:
    """Coverage of the widest band over the first block and beyond it: the rolled blocks'
    bands widened (:func:`forecaster.extend.widened`, as served) and as the network gave them."""
    levels = predictor.config.quantiles
    lo, hi = levels[0], levels[-1]
    roll = extend.Roll(histories, horizon, predictor.config.horizon)
    while (pending := roll.pending()) is not None:
        roll.add(predictor.predict_windows(*predictor.windows(pending)))
    raw = Forecast(
        np.concatenate([p.point for p in roll.parts], axis=1),
        {q: np.concatenate([p.quantiles[q] for p in roll.parts], axis=1) for q in levels},
    )
    block = predictor.config.horizon
    out: dict = {"levels": [lo, hi]}
    for name, f in (("widened", roll.network()), ("unwidened", raw)):
        f = predictor.blend(histories, f)
        inside = (y >= f.quantiles[lo]) & (y <= f.quantiles[hi])
        width = np.median((f.quantiles[hi] - f.quantiles[lo]) / np.abs(f.point).clip(1e-9), 0)
        out[name] = {"coverage_first": round(float(inside[:, :block].mean()), 3),
                     "coverage_beyond": round(float(inside[:, block:].mean()), 3),
                     "relative_width_first": round(float(width[:block].mean()), 3),
                     "relative_width_beyond": round(float(width[block:].mean()), 3)}  # fmt: skip
    return out


def scores(cut: list[np.ndarray], y: np.ndarray, f: np.ndarray, m: int, block: int) -> dict:
    out = {"smape": metrics.smape(y, f), "mase": metrics.mase(cut, y, f, m)}
    if y.shape[1] > block:
        out |= {"smape_first": metrics.smape(y[:, :block], f[:, :block]),
                "mase_first": metrics.mase(cut, y[:, :block], f[:, :block], m),
                "smape_beyond": metrics.smape(y[:, block:], f[:, block:]),
                "mase_beyond": metrics.mase(cut, y[:, block:], f[:, block:], m)}  # fmt: skip
    return {k: round(float(v), 3) for k, v in out.items()}


def run_set(args: argparse.Namespace, name: str) -> list[dict]:
    from forecaster.registry import load_model, save_model

    series = load_set(args, name)
    asked = SETS[name]
    cut, holdout = data.train_val_split(series, asked[0])
    flags = config_flags(args)
    start = time.perf_counter()
    if args.load:
        model = load_model(args.load / name)
        model_cfg, params, m = model.config, model.params, model.manifest.seasonality
        train_info: dict = {"loaded": str(args.load / name)}
    else:
        model_cfg, train_cfg = build_configs(
            flags["model"], flags["train"], freq=cut.freq, lengths=cut.lengths.tolist()
        )
        result = fit(cut, model_cfg, train_cfg, progress=not args.no_progress)
        model_cfg, params, m = result.config, result.params, train_cfg.seasonality
        train_info = {"train": asdict(train_cfg), "best_step": result.best_step,
                      "train_seconds": round(result.seconds, 1)}  # fmt: skip
        if args.save:
            save_model(args.save / name, model_cfg, params, freq=cut.freq, seasonality=m,
                       metrics={"validation": result.val_metrics})  # fmt: skip
    if m is None:  # derived in training; only a manifest from before seasonal periods lacks it
        raise SystemExit(f"{name}: the model states no seasonal period")
    predictor = Predictor(model_cfg, params)
    lines = []
    for horizon in asked:
        y = holdout[:, :horizon]
        t0 = time.perf_counter()
        rolled, fed, modelled = served(predictor, cut.values, horizon, m)
        seconds = time.perf_counter() - t0
        block = model_cfg.horizon
        theta = classical.theta(cut.values, horizon, m)
        naive = metrics.seasonal_naive(cut.values, horizon, m)
        mine = [cut.values[i] for i in modelled]
        lines.append({
            "benchmark": "long_horizon", "set": name, "series": len(cut), "freq": cut.freq,
            "trained_horizon": block, "asked": horizon, "model_answers": len(modelled),
            "model": model_cfg.to_dict(), **train_info,
            "rolled": scores(cut.values, y, rolled, m, block),
            "fed_blend": scores(cut.values, y, fed, m, block),
            "theta": scores(cut.values, y, theta, m, block),
            "seasonal_naive": scores(cut.values, y, naive, m, block),
            "model_answered_only": {
                "rolled": scores(mine, y[modelled], rolled[modelled], m, block),
                "fed_blend": scores(mine, y[modelled], fed[modelled], m, block),
                "theta": scores(mine, y[modelled], theta[modelled], m, block),
                "seasonal_naive": scores(mine, y[modelled], naive[modelled], m, block)},
            "forecast_seconds": round(seconds, 2), "note": args.note,
            **({"intervals": intervals(predictor, mine, y[modelled], horizon)}
               if len(model_cfg.quantiles) >= 2 else {}),
        })  # fmt: skip
    print(f"({name}: {time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for name in args.set:
        for line in run_set(args, name):
            print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
