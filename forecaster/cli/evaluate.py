"""``forecaster evaluate``: score a saved model on held-out data (sMAPE, MASE, OWA, intervals)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from forecaster.cli._options import add_data_arguments, data_source


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a model on a test file", description=__doc__)
    p.add_argument(
        "--model", required=True, help="model directory, or NAME[@VERSION] with --registry"
    )
    p.add_argument("--registry", help="registry root holding the model")
    add_data_arguments(p)
    p.add_argument(
        "--test", required=True, help="the actual values that follow each series (same format)"
    )
    p.add_argument("--seasonality", type=int, help="for MASE (default: the model's)")
    p.set_defaults(func=run)


def load_model(args: argparse.Namespace):
    from forecaster.registry import Registry, load_model

    if not args.registry:
        return load_model(args.model)
    name, _, version = args.model.partition("@")
    return Registry(args.registry).load(name, int(version) if version else None)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from forecaster.covariates import CovariateError, series_inputs
    from forecaster.data import DataError
    from forecaster.horizons import RULE, horizon_limit
    from forecaster.predict import HistoryTooShort, Predictor, score_model

    model = load_model(args)
    spec = model.covariates
    # The model's covariates, whatever the flags name: future values come from the test file.
    source = dataclasses.replace(
        data_source(args),
        past_covariates=tuple(spec.names("past")),
        future_covariates=tuple(spec.names("future")),
        static_covariates=tuple(spec.names("static")),
    )
    history = source.load()
    test = dataclasses.replace(
        source, url=args.test, past_covariates=(), static_covariates=()
    ).load()
    print(f"forecaster evaluate: data: {history.reading}", file=sys.stderr)
    print(f"forecaster evaluate: test: {test.reading}", file=sys.stderr)
    missing = sorted(set(test.ids) - set(history.ids))
    if missing:
        raise DataError(f"no history for test series {missing[:5]}")
    history = history.select(test.ids)
    check_no_overlap(history, test, args.data)
    trained = model.config.horizon
    # A model with covariates is not rolled forward beyond its horizon (forecaster.extend).
    limit = trained if spec else horizon_limit(trained)
    horizon = min(limit, *(len(v) for v in test.values))
    longest = max(len(v) for v in test.values)
    if longest > horizon:
        why = f"the most this model forecasts, {RULE}" if horizon == limit else "the shortest's"
        print(
            f"forecaster evaluate: note: scoring the first {horizon} points of each test series "
            f"({why}); the test file holds up to {longest} a series, the rest are not scored",
            file=sys.stderr,
        )
    if horizon > trained:
        print(
            f"forecaster evaluate: note: the model forecasts {trained} steps at once; the "
            f"{horizon} scored are made by rolling it forward on its own forecasts",
            file=sys.stderr,
        )
    actual = np.stack([v[:horizon] for v in test.values])
    seasonality = args.seasonality or model.manifest.seasonality or model.config.step
    predictor = Predictor(model.config, model.params, covariates=spec)
    inputs = None
    if spec:
        inputs = series_inputs(len(history), history.covariates, history.end,
                               test.covariates.future, horizon)  # fmt: skip
    try:
        _, scores = score_model(predictor, history.values, actual, seasonality, inputs)
    except HistoryTooShort as err:
        raise DataError(
            f"series {history.ids[err.index]!r} has {err.length} points in {args.data}; the "
            f"model needs at least {err.minimum} to forecast"
        ) from None
    except CovariateError as err:
        where = f"series {history.ids[err.index]!r}: " if err.index is not None else ""
        raise DataError(f"{where}{err.detail}") from None
    extended = {"extended": True} if horizon > trained else {}
    print(json.dumps({"series": len(test), "horizon": horizon, **extended, **scores}))
    return 0


def check_no_overlap(history: Any, test: Any, where: str) -> None:
    """Refuse a history that already holds the test period: its timestamps reach the test's
    first one, or (without timestamps) it ends with the test values themselves."""
    import numpy as np
    import pandas as pd

    from forecaster.data import DataError

    timed = history.end is not None and test.end is not None and history.freq
    step = pd.tseries.frequencies.to_offset(history.freq) if timed else None
    for i, sid in enumerate(test.ids):
        past, future = history.values[i], test.values[i]
        if step is not None:
            first = test.end[i] - (len(future) - 1) * step
            if history.end[i] >= first:
                raise DataError(
                    f"{where} already contains the test period: series {sid!r} runs to "
                    f"{history.end[i]}, and its test values start at {first}; give --data the "
                    "history before the test period"
                )
        elif len(past) >= len(future) and np.array_equal(past[-len(future) :], future):
            raise DataError(
                f"{where} already contains the test period: series {sid!r} ends with its "
                f"{len(future)} test values; give --data the history before the test period"
            )
