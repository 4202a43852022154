"""Short histories on M4 Hourly: the served answer vs seasonal naive and Naive2 on the same cuts.

    python -m benchmarks.short_history [--model DIR] [--data DIR] [--split validation]
                                       [--m3-monthly] [--m3 DIR] [--m3-model DIR]

What it measures, how, and what it found: ``docs/results/short-histories.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np

from forecaster import data, metrics
from forecaster.fallback import Method, answering_method, choose_method, fallback_forecast
from forecaster.predict import Predictor
from forecaster.registry import LoadedModel, Registry, load_model

HORIZON, SEASON = 48, 24
SERVED_CUTS: tuple[int | None, ...] = (24, 48, 96, 168, None)
CHOICE_CUTS = (1, 6, 12, 24, 48, 72, 96, 144)
M3_HORIZON, M3_SEASON = 18, 12
M3_CUTS: tuple[int | None, ...] = (12, 24, 36, None)
ROOT = Path(__file__).resolve().parents[1]
M4 = ROOT.parent / "shared" / "data" / "m4"
M3 = ROOT.parent / "shared" / "data" / "m3"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=ROOT / "models" / "m4-hourly")
    p.add_argument("--data", type=Path, default=M4, help="folder with Hourly-{train,test}.csv")
    p.add_argument("--split", choices=("test", "validation"), default="test")
    p.add_argument("--m3-monthly", action="store_true", help="add the M3 Monthly comparison")
    p.add_argument("--m3", type=Path, default=M3, help="folder with Monthly-{train,test}.csv")
    p.add_argument(
        "--m3-model", type=Path, help="an M3 Monthly model (benchmarks.m3 --out): its answers too"
    )
    return p.parse_args(argv)


def split(
    folder: Path, name: str, horizon: int, which: str, freq: str | None = None
) -> tuple[list[np.ndarray], np.ndarray]:
    """Training histories and the ``[n, horizon]`` values to score: the test file's, or on the
    validation split each training series' last ``horizon`` points (then cut from its history)."""
    train = data.load_series(folder / f"{name}-train.csv", freq=freq).values
    if which == "validation":
        return [h[:-horizon] for h in train], np.stack([h[-horizon:] for h in train])
    return train, np.stack(data.load_series(folder / f"{name}-test.csv").values)


def load(where: Path) -> LoadedModel:
    """An artifact directory, or a registry model directory (its production version)."""
    if (where / "manifest.json").exists():
        return load_model(where)
    return Registry(where.parent).load(where.name)


def scores(histories: Sequence[np.ndarray], y: np.ndarray, forecast: np.ndarray) -> dict:
    """Test sMAPE, MASE and OWA (M4's published Naive2 reference), rounded; None where
    undefined (no history has a MASE scale: one-point cuts)."""
    s = metrics.evaluate(histories, y, forecast, SEASON)
    return {k: round(s[k], 4) if np.isfinite(s[k]) else None for k in ("smape", "mase", "owa")}


def served(
    predictor: Predictor, histories: Sequence[np.ndarray], season: int, horizon: int = HORIZON
) -> tuple[np.ndarray, dict[str, int]]:
    """The service's answer [n, horizon] for each history, and how many each method gave."""
    methods = [answering_method(len(h), predictor.min_history, season) for h in histories]
    out = np.zeros((len(histories), horizon))
    rows = [i for i, m in enumerate(methods) if m == "model"]
    if rows:  # as the service: windows, the batcher's call, then the classical blend
        modelled = [histories[i] for i in rows]
        x, lengths = predictor.windows(modelled)
        out[rows] = predictor.blend(modelled, predictor.predict_windows(x, lengths, horizon)).point
    for i, method in enumerate(methods):
        if method != "model":
            out[i] = fallback_forecast(
                histories[i], horizon, season, (), cast(Method, method)
            ).point
    return out, {m: methods.count(m) for m in sorted(set(methods))}


def rule(
    histories: Sequence[np.ndarray], horizon: int, season: int, method: Method | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``method``'s (None: the rule's) forecasts ``[n, horizon]`` of each history, and the
    bounds ``[n, horizon]`` of their 80% bands (levels 0.1 and 0.9)."""
    found = [fallback_forecast(h, horizon, season, (0.1, 0.9), method) for h in histories]
    point = np.stack([f.point for f in found])
    lo, hi = (np.stack([f.quantiles[q] for f in found]) for q in (0.1, 0.9))
    return point, lo, hi


def fallback_choice(train: Sequence[np.ndarray], y: np.ndarray) -> dict[str, dict]:
    """Scores of each statistical method per cut, and the coverage of the rule's 80% band."""
    out = {}
    for cut in CHOICE_CUTS:
        hist = [h[-cut:] for h in train]
        blend = rule(hist, HORIZON, SEASON, "seasonal_blend")[0]
        _, lo, hi = rule(hist, HORIZON, SEASON)
        out[str(cut)] = {
            "naive": scores(hist, y, metrics.naive(hist, HORIZON)),
            "seasonal_naive": scores(hist, y, metrics.seasonal_naive(hist, HORIZON, SEASON)),
            "seasonal_blend": scores(hist, y, blend),
            "naive2": scores(hist, y, metrics.naive2(hist, HORIZON, SEASON)),
            "rule": choose_method(cut, SEASON),
            "rule_coverage_80": round(metrics.coverage(y, lo, hi), 3),
        }
    return out


def m3_monthly(
    train: Sequence[np.ndarray], y: np.ndarray, model: Path | None = None
) -> dict[str, dict]:
    """sMAPE of the rule, seasonal naive and Naive2 on M3 Monthly per cut, and the coverage
    of the rule's 80% band; with ``model`` (an M3 Monthly model), the served answer too."""
    out = {}
    predictor = None
    if model is not None:
        loaded = load(model)
        predictor = Predictor(loaded.config, loaded.params)
    for cut in M3_CUTS:
        hist = [h[-cut:] if cut else h for h in train]
        point, lo, hi = rule(hist, M3_HORIZON, M3_SEASON)
        methods = [choose_method(len(h), M3_SEASON) for h in hist]
        key = "full" if cut is None else str(cut)
        out[key] = {
            "rule": round(metrics.smape(y, point), 2),
            "methods": {m: methods.count(m) for m in sorted(set(methods))},
            "seasonal_naive": round(
                metrics.smape(y, metrics.seasonal_naive(hist, M3_HORIZON, M3_SEASON)), 2
            ),
            "naive2": round(metrics.smape(y, metrics.naive2(hist, M3_HORIZON, M3_SEASON)), 2),
            "rule_coverage_80": round(metrics.coverage(y, lo, hi), 3),
        }
        if predictor is not None:
            answer, answered = served(predictor, hist, M3_SEASON, M3_HORIZON)
            out[key]["served"] = {"smape": round(metrics.smape(y, answer), 2), "methods": answered}
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    train, y = split(args.data, "Hourly", HORIZON, args.split, freq="h")
    loaded = load(args.model)
    predictor = Predictor(loaded.config, loaded.params)
    season = loaded.manifest.seasonality or 1
    cuts = {}
    for cut in SERVED_CUTS:
        hist = [h[-cut:] if cut else h for h in train]
        answer, methods = served(predictor, hist, season)
        cuts["full" if cut is None else str(cut)] = {
            "served": scores(hist, y, answer) | {"methods": methods},
            "seasonal_naive": scores(hist, y, metrics.seasonal_naive(hist, HORIZON, SEASON)),
            "naive2": scores(hist, y, metrics.naive2(hist, HORIZON, SEASON)),
        }
    line = {
        "benchmark": "short_history",
        "model": str(args.model),
        "split": args.split,
        "min_history": {"model": loaded.config.min_input, "window": loaded.config.input_size},
        "cuts": cuts,
        "fallback_choice": fallback_choice(train, y),
    }
    if args.m3_monthly:
        m3 = split(args.m3, "Monthly", M3_HORIZON, args.split)
        line["m3_monthly"] = m3_monthly(*m3, args.m3_model)
    line["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
