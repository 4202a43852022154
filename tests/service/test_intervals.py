"""Intervals by default, at any level (issue 35), in-process: a calibrated model answers every
request with its 80% and 95% intervals unless asked otherwise, serves levels and quantiles it was
not trained on (the fallback too), refuses bad ones naming the field, and a model saved without
calibration says its intervals are uncalibrated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from forecaster import calibration
from forecaster.model import ModelConfig, init_params
from forecaster.predict import Predictor
from forecaster.registry import Registry
from tests.service.conftest import TINY, make_settings, running_client

HOURLY = {"freq": "h", "seasonality": 24}
PLAIN = ModelConfig(cell="gru", hidden=8, input_size=48, horizon=12, step=24)  # no heads


def wave(n: int, seed: int = 0) -> list[float]:
    t = np.arange(n)
    noise = np.random.default_rng(seed).normal(0, 1, n)
    return (100 + 10 * np.sin(2 * np.pi * t / 24) + noise).round(3).tolist()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("intervals-registry")
    registry = Registry(root)
    params = init_params(PLAIN, 0)
    series = [np.asarray(wave(120, seed)) for seed in range(40)]
    cal = calibration.calibrate(Predictor(PLAIN, params), series, 24, origins=2)
    registry.publish("calibrated", PLAIN, params, promote=True, calibration=cal, **HOURLY)
    registry.publish("heads", TINY, init_params(TINY, 0), promote=True, **HOURLY)
    registry.publish("plain", PLAIN, params, promote=True, **HOURLY)
    return root


@pytest.fixture(scope="module")
def client(root: Path) -> Iterator[TestClient]:
    with running_client(make_settings(root, default_model="calibrated")) as c:
        yield c


def post(client: TestClient, **body: object) -> dict:
    r = client.post("/v1/forecast", json={"history": wave(96), "horizon": 12} | body)
    assert r.status_code == 200, r.text
    return r.json()


def refused(client: TestClient, **body: object) -> dict:
    r = client.post("/v1/forecast", json={"history": wave(96), "horizon": 12} | body)
    assert r.status_code == 422, r.text
    return r.json()["detail"][0]


def test_every_answer_carries_calibrated_80_and_95_intervals_by_default(client):
    body = post(client)
    assert body["calibrated"] is True
    assert set(body["intervals"]) == {"80", "95"}
    # Nested and wide; not necessarily around the point: signed errors also correct a bias
    # (this random network's is large).
    lo80, hi80 = (np.array(body["intervals"]["80"][k]) for k in ("lower", "upper"))
    lo95, hi95 = (np.array(body["intervals"]["95"][k]) for k in ("lower", "upper"))
    assert np.all(lo95 <= lo80) and np.all(lo80 < hi80) and np.all(hi80 <= hi95)
    assert client.get("/v1/models/calibrated").json()["calibrated"] is True


def test_any_level_and_any_quantile_are_served(client):
    body = post(client, levels=[50, 99.5], quantiles=[0.3, 0.7])
    assert set(body["intervals"]) == {"50", "99.5"} and set(body["quantiles"]) == {"0.3", "0.7"}
    fifty = body["intervals"]["50"]
    assert np.all(np.array(fifty["lower"]) < np.array(body["quantiles"]["0.3"]))
    assert np.all(np.array(body["quantiles"]["0.7"]) < np.array(fifty["upper"]))
    assert "intervals" not in post(client, levels=[]) and "calibrated" not in post(
        client, levels=[]
    )


def test_short_histories_get_calibrated_fallback_intervals_at_any_level(client):
    body = post(client, history=wave(30), quantiles=[0.1, 0.9], levels=[60])
    assert body["method"] == "seasonal_naive" and body["calibrated"] is True
    assert set(body["quantiles"]) == {"0.1", "0.9"} and set(body["intervals"]) == {"60"}
    many = client.post("/v1/forecast", json={"horizon": 12, "series": [
        {"id": "short", "history": wave(10)}, {"id": "long", "history": wave(96)}]})  # fmt: skip
    answers = {f["id"]: f for f in many.json()["forecasts"]}
    assert answers["short"]["method"] == "naive" and answers["short"]["calibrated"] is True
    assert answers["long"]["method"] == "model" and set(answers["long"]["intervals"]) == {
        "80",
        "95",
    }


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"levels": [0]}, ["body", "levels", 0]),
        ({"levels": [80, 100]}, ["body", "levels", 1]),
        ({"levels": [-5]}, ["body", "levels", 0]),
        ({"levels": [80, 95, 80]}, ["body", "levels"]),
        ({"levels": list(range(1, 22))}, ["body", "levels"]),
        ({"levels": ["80"]}, ["body", "levels", 0]),
        ({"quantiles": [0.0]}, ["body", "quantiles", 0]),
        ({"quantiles": [0.5, 1.0]}, ["body", "quantiles", 1]),
        ({"quantiles": [0.9, 0.9]}, ["body", "quantiles"]),
    ],
)
def test_bad_levels_and_quantiles_are_refused_naming_the_field(client, body, loc):
    assert refused(client, **body)["loc"] == loc


def test_a_model_without_calibration_serves_its_heads_and_says_so(client):
    body = post(client, model="heads")
    assert body["calibrated"] is False and set(body["intervals"]) == {"80"}  # its 0.1 and 0.9
    assert post(client, model="heads", quantiles=[0.9])["calibrated"] is False
    error = refused(client, model="heads", levels=[95])
    assert error["loc"] == ["body", "levels", 0] and "not calibrated" in error["msg"]
    assert refused(client, model="heads", quantiles=[0.3])["loc"] == ["body", "quantiles", 0]
    plain = post(client, model="plain")  # no heads, no calibration: nothing to carry
    assert "intervals" not in plain and "calibrated" not in plain
    assert client.get("/v1/models/heads").json()["calibrated"] is False


def test_beyond_the_trained_horizon_the_calibrated_intervals_keep_widening(client):
    for history in (wave(96), wave(30)):  # the model rolled forward, and the fallback
        body = post(client, history=history, horizon=36, levels=[95])
        lower, upper = (np.array(body["intervals"]["95"][k]) for k in ("lower", "upper"))
        point = np.array(body["forecast"])
        assert len(lower) == 36 and np.all(lower <= upper)
        # Each later block at least as far from the point as the block before, at each position.
        reach = np.maximum(upper - point, point - lower)
        assert np.all(reach[12:] >= reach[:-12] - 1e-9)
