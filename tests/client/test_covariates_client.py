"""``forecast()`` of one series with covariates, sync and async, over a real server: the history
frame's covariate columns, the horizon's values from ``future_df``, the statics from a dict or a
one-row frame; the forecast is the library's. The model has random weights (plumbing only)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecaster.client import AsyncForecastClient, ForecastClient, InvalidRequest
from forecaster.covariates import Column, CovariateSpec, SeriesInputs
from forecaster.model import ModelConfig, init_params
from forecaster.predict import Predictor
from forecaster.registry import Registry
from tests.service.conftest import server

SPEC = CovariateSpec(
    (Column("load", "past", mean=2.0, std=3.0), Column("x", "future", mean=1.0, std=0.5),
     Column("region", "static", "categorical", categories=("north", "south"))),
    calendar=("hour", "weekday"), freq="h",
)  # fmt: skip
CONFIG = ModelConfig(ensemble=1, cell="gru", hidden=8, input_size=24, horizon=6, step=24,
                     **SPEC.widths())  # fmt: skip
POINTS, H = 40, 6


def frames(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    stamps = pd.date_range("2024-03-01", periods=POINTS + H, freq="h")
    history = pd.DataFrame({
        "timestamp": stamps[:POINTS], "value": 50 + rng.normal(0, 5, POINTS),
        "load": rng.normal(2, 3, POINTS), "x": rng.uniform(0, 2, POINTS),
    })  # fmt: skip
    future = pd.DataFrame({"timestamp": stamps[POINTS:], "x": rng.uniform(0, 2, H)})
    return history, future


def test_one_series_forecast_reads_its_covariates_from_frames(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    params = init_params(CONFIG)
    Registry(root).publish("cov", CONFIG, params, promote=True, freq="h", covariates=SPEC)
    history, future = frames()
    inputs = SeriesInputs(
        past={"load": history["load"].to_numpy(), "x": history["x"].to_numpy()},
        future={"x": future["x"].to_numpy()},
        static={"region": "south"},
        end=history["timestamp"].iloc[-1],
    )
    expected = (
        Predictor(CONFIG, params, covariates=SPEC)
        .predict([history["value"].to_numpy()], inputs=[inputs])
        .point[0]
    )
    with server(root, tmp_path) as s:
        with ForecastClient(s.url) as client:
            frame = client.forecast(history, model="cov", future_df=future,
                                    past_covariates=["load"],
                                    static_df={"region": "south"})  # fmt: skip
            # A one-row static frame and a history frame with its id column read the same.
            keyed = client.forecast(history.assign(id="s1"), H, model="cov",
                                    future_df=future.assign(id="s1"), past_covariates=["load"],
                                    static_df=pd.DataFrame({"region": ["south"]}))  # fmt: skip
            # A covariate the model needs and the call lacks is the service's error naming it.
            with pytest.raises(Exception, match="static covariate 'region' is missing"):
                client.forecast(history, model="cov", future_df=future, past_covariates=["load"])
            with pytest.raises(InvalidRequest, match="a DataFrame of the history"):
                client.forecast(history["value"].to_numpy(), model="cov", future_df=future)

        async def one() -> pd.DataFrame:
            async with AsyncForecastClient(s.url) as client:
                return await client.forecast(history, H, model="cov", future_df=future,
                                             past_covariates=["load"],
                                             static_df={"region": "south"})  # fmt: skip

        other = asyncio.run(one())
    assert list(frame.index) == list(future["timestamp"])
    for got in (frame, keyed, other):
        np.testing.assert_allclose(got["forecast"].to_numpy(), expected, rtol=1e-5, atol=1e-5)
