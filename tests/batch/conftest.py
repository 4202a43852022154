"""Small long-layout tables and tiny hourly models (of the target alone, and one reading
covariates) for the batch job's tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecaster.covariates import Column, CovariateSpec
from forecaster.model import ModelConfig, init_params
from forecaster.registry import Registry

ROOT = Path(__file__).resolve().parents[2]
# Random weights are enough: the job's behaviour does not depend on forecast quality.
TINY = ModelConfig(
    ensemble=1, cell="gru", hidden=8, input_size=48, horizon=12, step=24, quantiles=(0.1, 0.9)
)


@pytest.fixture(scope="session")
def tiny_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry holding ``tiny`` (v1, production): hourly, season 24, uncalibrated."""
    root = tmp_path_factory.mktemp("registry")
    params = init_params(TINY, 0)
    Registry(root).publish("tiny", TINY, params, promote=True, freq="h", seasonality=24)
    return root


def long_table(lengths: dict[str, int], seed: int = 0) -> pd.DataFrame:
    """Hourly series of the given lengths in the long layout, rows of each series together,
    each ending at a different hour."""
    rng = np.random.default_rng(seed)
    frames = []
    for k, (name, n) in enumerate(lengths.items()):
        t = np.arange(n)
        values = 100 + 10 * k + 20 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 2, n)
        stamps = pd.date_range("2024-03-01", periods=n, freq="h") + pd.Timedelta(hours=k)
        frames.append(pd.DataFrame({"id": name, "timestamp": stamps, "value": values}))
    return pd.concat(frames, ignore_index=True)


def read_parts(out: Path) -> pd.DataFrame:
    """Every part of an output folder, in part order (Parquet or CSV)."""
    files = sorted(out.glob("part-*.parquet")) or sorted(out.glob("part-*.csv"))
    reader = pd.read_parquet if files[0].suffix == ".parquet" else pd.read_csv
    return pd.concat([reader(f) for f in files], ignore_index=True)


SPEC = CovariateSpec(
    (Column("load", "past", mean=2.0, std=3.0), Column("x", "future", mean=1.0, std=0.5),
     Column("region", "static", "categorical", categories=("north", "south"))),
    calendar=("hour", "weekday"), freq="h",
)  # fmt: skip
CONFIG = ModelConfig(ensemble=1, cell="gru", hidden=8, input_size=24, horizon=6, step=24,
                     quantiles=(0.1, 0.9), **SPEC.widths())  # fmt: skip
H = 6


@pytest.fixture(scope="module")
def cov_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cov-registry")
    Registry(root).publish("cov", CONFIG, init_params(CONFIG, 0), promote=True, freq="h",
                           seasonality=24, covariates=SPEC)  # fmt: skip
    return root


def covariate_table(points: dict[str, tuple[int, int]], seed: int = 0) -> pd.DataFrame:
    """Hourly series in the long layout, ``points[id]`` = (values, future rows after them):
    load on the history rows, x on every row, the region on every row."""
    rng = np.random.default_rng(seed)
    frames = []
    for k, (name, (n, ahead)) in enumerate(points.items()):
        stamps = pd.date_range("2024-03-01", periods=n + ahead, freq="h") + pd.Timedelta(hours=k)
        value = np.concatenate([50 + 10 * k + rng.normal(0, 5, n), np.full(ahead, np.nan)])
        load = np.concatenate([rng.normal(2, 3, n), np.full(ahead, np.nan)])
        frames.append(pd.DataFrame({
            "id": name, "timestamp": stamps, "value": value, "load": load,
            "x": rng.uniform(0, 2, n + ahead), "region": ["north", "south"][k % 2],
        }))  # fmt: skip
    return pd.concat(frames, ignore_index=True)
