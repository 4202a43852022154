"""Short histories on M4 Hourly: the served answer vs seasonal naive and Naive2 on the same cuts.

    python -m benchmarks.short_history [--model DIR] [--data DIR]

Every training series is cut to its last N points (N = 24, 48, 96, 168, and the full history) and
its 48-point test horizon forecast three ways: (a) the answer the service gives for that history
with the model in ``--model`` (an artifact directory, or a registry model directory whose
production version is used; default ``models/m4-hourly``): the model when the cut holds at least
its ``min_input`` points, else the statistical fallback, decided and computed by the same library
functions the service calls (:func:`forecaster.fallback.answering_method`,
:meth:`Predictor.windows` + :meth:`Predictor.predict_windows`,
:func:`forecaster.fallback.fallback_forecast`); (b) seasonal naive; (c) Naive2. Scores are test
sMAPE, MASE (scaled by the cut history, m = 24, lag 1 where a cut is too short for the seasonal
scale: :func:`forecaster.metrics.scale`) and OWA against M4's published Naive2 figures.

The fallback's rule is chosen from ``fallback_choice``: naive, seasonal naive and Naive2 at cuts of
1, 6, 12, 24, 48, 72 and 96 points (OWA, and the coverage of the fallback's 80% interval).

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from forecaster import data, metrics
from forecaster.artifacts import LoadedModel, load_model
from forecaster.fallback import answering_method, choose_method, fallback_forecast
from forecaster.predict import Predictor
from forecaster.registry import Registry

HORIZON, SEASON = 48, 24
SERVED_CUTS: tuple[int | None, ...] = (24, 48, 96, 168, None)
CHOICE_CUTS = (1, 6, 12, 24, 48, 72, 96)
ROOT = Path(__file__).resolve().parents[1]
M4 = ROOT.parent / "shared" / "data" / "m4"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=ROOT / "models" / "m4-hourly")
    p.add_argument("--data", type=Path, default=M4, help="folder with Hourly-{train,test}.csv")
    return p.parse_args(argv)


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
    predictor: Predictor, histories: Sequence[np.ndarray], season: int
) -> tuple[np.ndarray, dict[str, int]]:
    """The service's answer [n, HORIZON] for each history, and how many each method gave."""
    methods = [answering_method(len(h), predictor.min_history, season) for h in histories]
    out = np.zeros((len(histories), HORIZON))
    rows = [i for i, m in enumerate(methods) if m == "model"]
    if rows:
        x, lengths = predictor.windows([histories[i] for i in rows])
        out[rows] = predictor.predict_windows(x, lengths, HORIZON).point
    for i, method in enumerate(methods):
        if method != "model":
            out[i] = fallback_forecast(histories[i], HORIZON, season, (), method).point  # type: ignore[arg-type]
    return out, {m: methods.count(m) for m in sorted(set(methods))}


def fallback_choice(train: Sequence[np.ndarray], y: np.ndarray) -> dict[str, dict]:
    """Scores of each statistical method per cut, and the coverage of the rule's 80% band."""
    out = {}
    for cut in CHOICE_CUTS:
        hist = [h[-cut:] for h in train]
        row: dict[str, object] = {
            "naive": scores(hist, y, metrics.naive(hist, HORIZON)),
            "seasonal_naive": scores(hist, y, metrics.seasonal_naive(hist, HORIZON, SEASON)),
            "naive2": scores(hist, y, metrics.naive2(hist, HORIZON, SEASON)),
        }
        bands = [fallback_forecast(h, HORIZON, SEASON, (0.1, 0.9)).quantiles for h in hist]
        lo, hi = np.stack([b[0.1] for b in bands]), np.stack([b[0.9] for b in bands])
        row["rule"] = choose_method(cut, SEASON)
        row["rule_coverage_80"] = round(metrics.coverage(y, lo, hi), 3)
        out[str(cut)] = row
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    train = data.load_series(args.data / "Hourly-train.csv", freq="h").values
    y = np.stack(data.load_series(args.data / "Hourly-test.csv").values)
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
        "min_history": {"model": loaded.config.min_input, "window": loaded.config.input_size},
        "cuts": cuts,
        "fallback_choice": fallback_choice(train, y),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
