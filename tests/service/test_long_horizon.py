"""Any horizon (issue 34, item 5): beyond its trained horizon a served model is rolled forward on
its own forecasts, one micro-batched pass per block, up to ten horizons; the answer says
``extended`` and the later blocks' intervals widen."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from fastapi.testclient import TestClient

from forecaster import extend
from forecaster.horizons import horizon_limit
from forecaster.predict import Predictor
from forecaster.registry import Registry
from tests.service.conftest import TINY, make_settings, publish, running_client

H = TINY.horizon  # 12
HISTORY = [100 + 10 * math.sin(2 * math.pi * t / 24) + 0.05 * t for t in range(72)]
BLENDED = dataclasses.replace(TINY, theta_weight=0.2, damped_weight=0.2, theta_season=24)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("long-horizon")
    publish(root, "blended", BLENDED, freq="h", seasonality=24)
    return root


@pytest.fixture(scope="module")
def client(root) -> TestClient:
    with running_client(make_settings(root)) as c:
        yield c


def ask(client: TestClient, **body: object) -> dict:
    r = client.post("/v1/forecast", json={"quantiles": [0.1, 0.9]} | body)
    assert r.status_code == 200, r.text
    return r.json()


def batches(client: TestClient) -> float:
    """Model calls so far (the count of the batch-size histogram)."""
    text = client.get("/metrics").text
    [line] = [x for x in text.splitlines() if x.startswith("forecaster_batch_series_count")]
    return float(line.split()[-1])


def test_three_horizons_are_answered_rolled_forward_as_the_library_rolls(client, root):
    before = batches(client)
    long = ask(client, history=HISTORY, horizon=3 * H)
    assert batches(client) - before == 3  # one pass through the batcher per block
    plain = ask(client, history=HISTORY, horizon=H)
    assert len(long["forecast"]) == 3 * H and long["extended"] is True
    assert long["method"] == "model+classical" and "extended" not in plain
    # The first block is the plain forecast, bands included.
    np.testing.assert_allclose(long["forecast"][:H], plain["forecast"], rtol=1e-6)
    for q in ("0.1", "0.9"):
        np.testing.assert_allclose(long["quantiles"][q][:H], plain["quantiles"][q], rtol=1e-6)
    # One home: the service answers what forecaster.extend computes.
    loaded = Registry(root).load("blended")
    expected = extend.forecast(Predictor(loaded.config, loaded.params), [np.array(HISTORY)], 3 * H)
    np.testing.assert_allclose(long["forecast"], expected.point[0], rtol=1e-5)
    np.testing.assert_allclose(long["quantiles"]["0.9"], expected.quantiles[0.9][0], rtol=1e-5)


def test_later_blocks_intervals_are_at_least_a_random_walk_of_the_first(client):
    body = ask(client, history=HISTORY, horizon=3 * H)
    point = np.array(body["forecast"])
    for q, side in (("0.1", -1.0), ("0.9", 1.0)):
        d = side * (np.array(body["quantiles"][q]) - point)
        first = np.maximum(d[:H], 0.0)
        assert (d[H:] >= 0).all()  # never crossed beyond the first block
        for t in range(H, 3 * H):
            k, j = divmod(t, H)
            floor = math.sqrt(k * first[H - 1] ** 2 + first[j] ** 2)
            assert d[t] >= floor - 1e-9 * max(1.0, floor), (q, t)
        # So each later block is at least as wide as the first block at the same position.
        assert (d[H : 2 * H] >= first - 1e-9).all() and (d[2 * H :] >= d[H : 2 * H] - 1e-9).all()
    width = np.array(body["quantiles"]["0.9"]) - np.array(body["quantiles"]["0.1"])
    assert width[2 * H :].mean() > width[:H].mean()


def test_many_series_mix_rolled_model_answers_and_fallbacks_with_timestamps(client):
    stamps = [f"2024-01-{1 + t // 24:02d}T{t % 24:02d}:00:00" for t in range(72)]
    series = [
        {"id": "long", "history": HISTORY, "timestamps": stamps},
        {"id": "short", "history": HISTORY[-10:]},
    ]
    body = ask(client, series=series, horizon=2 * H + 5)
    long, short = body["forecasts"]
    assert len(long["forecast"]) == len(long["timestamps"]) == 2 * H + 5
    assert long["timestamps"][-1] == "2024-01-05T04:00:00" and long["extended"] is True
    # The fallback forecasts any horizon directly: nothing rolled, nothing to say.
    assert short["method"] == "naive" and "extended" not in short
    assert len(short["forecast"]) == 2 * H + 5 and len(short["quantiles"]["0.1"]) == 2 * H + 5


def test_beyond_the_limit_is_a_422_naming_horizon_and_the_limit(client):
    limit = horizon_limit(H)
    assert limit == 10 * H
    assert client.get("/v1/models/blended").json()["max_horizon"] == limit
    assert len(ask(client, history=HISTORY, horizon=limit)["forecast"]) == limit
    for horizon in (limit + 1, 10**9):
        r = client.post("/v1/forecast", json={"history": HISTORY, "horizon": horizon})
        assert r.status_code == 422
        [error] = r.json()["detail"]
        assert error["loc"] == ["body", "horizon"]
        assert f"horizon {horizon} exceeds this model's limit of {limit}" in error["msg"]
