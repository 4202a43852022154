"""Calibrated intervals on M4 Hourly: coverage of the 80% and 95% intervals at every step.

    python -m benchmarks.intervals [--model DIR] [--data DIR] [--origins 8] [--steps N ...]

The model is either ``--model`` (an artifact directory, or a registry model directory whose
production version is used, e.g. ``models/m4-hourly``, trained on M4 Hourly's training file with
its validation split) or, without it, trained here on the training file with the library's hourly
defaults (any ``--<setting>`` flag of ``forecaster train`` applies, e.g. a smaller ``--steps``
budget). A model without a calibration in its manifest is calibrated here on its training data
(:func:`forecaster.calibration.calibrate`, ``--origins``), and the calibration's CPU-seconds are
reported beside the training's (the goal: at most 20% more).

Served as the service serves it: the point forecast of each full training history (network,
rolled and blended), the bands from the calibration (:func:`forecaster.calibration.bands`).
Scored on the 48 test points: coverage of the 80% and 95% intervals overall and at each step,
MSIS of the 95% one (M4's definition, m = 24), and the same for the model's quantile heads when
it has heads at those levels. Goal: within 2 points of nominal overall and at every step.

Short histories: every training series cut to its last 24, 48 and 96 points and answered as the
service answers it (the model from its ``min_input``, else the fallback method with its
calibrated table, :func:`forecaster.calibration.fallback_forecast`); coverage overall, beside the
fallback's own (uncalibrated) bands. Goal: within 3 points.

Prints one JSON line; results and how to read them: docs/results/intervals.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from forecaster import calibration, data, extend, fallback, metrics
from forecaster.cli import add_config_arguments, config_flags
from forecaster.configs import build_configs
from forecaster.predict import Forecast, Predictor

FREQ, HORIZON, SEASON = "h", 48, 24
LEVELS = (80.0, 95.0)
CUTS = (24, 48, 96)
GOAL, SHORT_GOAL = 2.0, 3.0
M4 = Path(__file__).resolve().parents[2] / "shared" / "data" / "m4"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=M4, help="folder with Hourly-{train,test}.csv")
    p.add_argument("--model", type=Path, help="a trained M4 Hourly model (else train one here)")
    p.add_argument("--origins", type=int, default=calibration.ORIGINS)
    p.add_argument("--no-progress", action="store_true")
    add_config_arguments(p)
    return p.parse_args(argv)


def cpu_seconds() -> float:
    """User + system CPU-seconds of this process and its threads so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def coverage_of(y: np.ndarray, bands: dict[float, np.ndarray], level: float) -> dict:
    """Coverage (percent) of ``level``'s interval overall and per step, and its worst miss."""
    lo, hi = calibration.level_quantiles([level])[0]
    inside = (y >= bands[lo]) & (y <= bands[hi])
    steps = (100 * inside.mean(axis=0)).round(2)
    return {
        "overall": round(100 * float(inside.mean()), 2),
        "per_step": steps.tolist(),
        "worst_step_miss": round(float(np.max(np.abs(steps - level))), 2),
    }


def scored(histories: Sequence[np.ndarray], y: np.ndarray, bands: dict[float, np.ndarray]) -> dict:
    out: dict = {f"{level:g}": coverage_of(y, bands, level) for level in LEVELS}
    lo, hi = calibration.level_quantiles([95.0])[0]
    out["msis_95"] = round(metrics.msis(histories, y, bands[lo], bands[hi], SEASON), 4)
    return out


def met(result: dict, goal: float, per_step: bool) -> bool:
    for level in LEVELS:
        found = result[f"{level:g}"]
        if abs(found["overall"] - level) > goal:
            return False
        if per_step and found["worst_step_miss"] > goal:
            return False
    return True


def train_model(args: argparse.Namespace, series: data.SeriesSet) -> tuple:
    from forecaster.train import fit

    flags = config_flags(args)
    model_cfg, train_cfg = build_configs(
        {"horizon": HORIZON, **flags["model"]},
        {**flags["train"], "calibration_origins": args.origins},
        freq=series.freq,
        lengths=series.lengths.tolist(),
    )
    started, wall = cpu_seconds(), time.perf_counter()
    result = fit(series, model_cfg, train_cfg, progress=not args.no_progress)
    cost = {
        "train_cpu_s": round(cpu_seconds() - started, 1),
        "train_wall_s": round(time.perf_counter() - wall, 1),
        "steps": train_cfg.steps,
    }
    assert result.calibration is not None
    return Predictor(result.config, result.params), result.calibration, cost


def short_cuts(cal: calibration.Calibration, predictor: Predictor, train: list, y: np.ndarray):
    probs = sorted(q for pair in calibration.level_quantiles(LEVELS) for q in pair)
    out = {}
    for n in CUTS:
        cut = [h[-n:] for h in train]
        method = fallback.answering_method(n, predictor.min_history, SEASON)
        if method == "model":
            point = extend.forecast(predictor, cut, HORIZON)
            bands = calibration.bands(cal, cut, point, probs).quantiles
            own = None
        else:
            made = [calibration.fallback_forecast(cal, h, HORIZON, SEASON, probs) for h in cut]
            bands = {q: np.stack([f.quantiles[q] for f, _ in made]) for q in probs}
            plain = [fallback.fallback_forecast(h, HORIZON, SEASON, probs) for h in cut]
            own = {q: np.stack([f.quantiles[q] for f in plain]) for q in probs}
        found = scored(cut, y, bands)
        entry = {"method": method}
        for level in LEVELS:
            key = f"{level:g}"
            entry[key] = found[key]["overall"]
            if own is not None:
                entry[f"{key}_own_bands"] = coverage_of(y, own, level)["overall"]
        entry["msis_95"] = found["msis_95"]
        out[str(n)] = entry
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    series = data.load_series(args.data / "Hourly-train.csv", freq=FREQ)
    y = np.stack(data.load_series(args.data / "Hourly-test.csv").values)
    train = [np.asarray(v, np.float64) for v in series.values]
    line: dict = {"benchmark": "intervals"}
    if args.model is not None:
        from benchmarks.short_history import load

        loaded = load(args.model)
        predictor = Predictor(loaded.config, loaded.params)
        cal = loaded.manifest.calibration
        line["model"] = str(args.model)
        if cal is None or cal.origins != args.origins:
            started = cpu_seconds()
            cal = calibration.calibrate(predictor, train, SEASON, origins=args.origins)
            line["calibrated_here_cpu_s"] = round(cpu_seconds() - started, 1)
    else:
        predictor, cal, line["cost"] = train_model(args, series)
        line["model"] = predictor.config.to_dict()
    line["calibration"] = {"origins": cal.origins, "errors_per_step": cal.model.count,
                           "cpu_s": cal.seconds, "fallback": sorted(cal.fallback)}  # fmt: skip
    if "cost" in line:
        share = cal.seconds / max(line["cost"]["train_cpu_s"] - cal.seconds, 1e-9)
        line["cost"]["calibration_share_of_training"] = round(share, 4)
    point = extend.forecast(predictor, train, HORIZON)
    probs = sorted(q for pair in calibration.level_quantiles(LEVELS) for q in pair)
    served = calibration.bands(cal, train, point, probs)
    line["test"] = scored(train, y, served.quantiles)
    heads = _heads(point, probs)
    if heads is not None:
        line["heads"] = scored(train, y, heads)
    line["short"] = short_cuts(cal, predictor, train, y)
    line["goals"] = {
        "test_within_2_overall_and_every_step": met(line["test"], GOAL, True),
        "short_within_3_overall": all(
            abs(line["short"][str(n)][f"{lv:g}"] - lv) <= SHORT_GOAL for n in CUTS for lv in LEVELS
        ),
    }
    print(json.dumps(line), flush=True)
    return 0


def _heads(point: Forecast, probs: list[float]) -> dict[float, np.ndarray] | None:
    """The model's own quantile heads at ``probs``, when it has all of them."""
    found = {}
    for p in probs:
        match = next((q for q in point.quantiles if abs(q - p) < 1e-9), None)
        if match is None:
            return None
        found[p] = point.quantiles[match]
    return found


if __name__ == "__main__":
    sys.exit(main())
