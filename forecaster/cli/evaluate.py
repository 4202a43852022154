"""``forecaster evaluate``: score a saved model on held-out data (sMAPE, MASE, OWA, intervals)."""

from __future__ import annotations

import argparse
import json

import numpy as np

from forecaster import data


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a model on a test file", description=__doc__)
    p.add_argument(
        "--model", required=True, help="model directory, or NAME[@VERSION] with --registry"
    )
    p.add_argument("--registry", help="registry root holding the model")
    p.add_argument("--data", required=True, help="history the forecasts start from")
    p.add_argument("--test", required=True, help="the actual values that follow each series")
    p.add_argument("--seasonality", type=int, help="for MASE (default: the model's)")
    p.set_defaults(func=run)


def load_model(args: argparse.Namespace):
    from forecaster.artifacts import load_model
    from forecaster.registry import Registry

    if not args.registry:
        return load_model(args.model)
    name, _, version = args.model.partition("@")
    return Registry(args.registry).load(name, int(version) if version else None)


def run(args: argparse.Namespace) -> int:
    from forecaster import metrics
    from forecaster.predict import Predictor

    model = load_model(args)
    history, test = data.load_series(args.data), data.load_series(args.test)
    missing = sorted(set(test.ids) - set(history.ids))
    if missing:
        raise SystemExit(f"forecaster evaluate: error: no history for test series {missing[:5]}")
    history = history.select(test.ids)
    horizon = min(model.config.horizon, *(len(v) for v in test.values))
    actual = np.stack([v[:horizon] for v in test.values])
    forecast = Predictor(model.config, model.params).predict(history.values, horizon)
    m = args.seasonality or model.manifest.seasonality or model.config.step
    bounds = {}
    if model.config.quantiles:
        lo, hi = model.config.quantiles[0], model.config.quantiles[-1]
        bounds = {"lower": forecast.quantiles[lo], "upper": forecast.quantiles[hi],
                  "alpha": round(1 - (hi - lo), 6)}  # fmt: skip
    scores = metrics.evaluate(history.values, actual, forecast.point, m, **bounds)
    scores["owa"] = metrics.owa_vs_naive2(history.values, actual, forecast.point, m)
    print(json.dumps({"series": len(test), "horizon": horizon, **scores}))
    return 0
