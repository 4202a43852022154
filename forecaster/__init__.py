"""forecaster: recurrent (LSTM, GRU, RNN) forecasting models in JAX, saved safely and served.

The public surface below is re-exported lazily (PEP 562), so ``import forecaster`` and the
command line stay fast and JAX loads only when a name that needs it is first used::

    from forecaster import DataSource, build_configs, fit, Registry
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ModelConfig": "forecaster.configs",
    "TrainConfig": "forecaster.configs",
    "build_configs": "forecaster.configs",
    "DataSource": "forecaster.data",
    "SeriesSet": "forecaster.data",
    "load_series": "forecaster.data",
    "CovariateError": "forecaster.covariates",
    "CovariateSpec": "forecaster.covariates",
    "SeriesInputs": "forecaster.covariates",
    "fit": "forecaster.train",
    "Predictor": "forecaster.predict",
    "load_model": "forecaster.registry",
    "save_model": "forecaster.registry",
    "Registry": "forecaster.registry",
    "ForecastClient": "forecaster.client",
    "AsyncForecastClient": "forecaster.client",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'forecaster' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
