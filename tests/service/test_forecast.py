"""POST /v1/forecast: both request forms, model selection, quantiles, timestamps, finiteness."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from forecaster.predict import Predictor
from forecaster.registry import Registry
from tests.service.conftest import OTHER, TINY, make_settings, publish, running_client

HISTORY = [100 + 10 * math.sin(2 * math.pi * t / 24) for t in range(72)]


def _finite(values: list[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def test_one_series(client):
    r = client.post("/v1/forecast", json={"history": HISTORY, "horizon": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "m4-hourly" and body["version"] == 1
    assert len(body["forecast"]) == 5 and _finite(body["forecast"])
    assert (body["method"], body["filled"]) == ("model", 0)
    assert "quantiles" not in body and "timestamps" not in body and "gap" not in body


def test_many_series_in_request_order(client):
    series = [{"id": f"s{i}", "history": [float(i + 1)] * (48 + i)} for i in range(7)]
    r = client.post("/v1/forecast", json={"series": series, "horizon": 3})
    assert r.status_code == 200, r.text
    forecasts = r.json()["forecasts"]
    assert [f["id"] for f in forecasts] == [s["id"] for s in series]
    # A constant series forecasts (close to) its constant, which tells the rows apart.
    for i, f in enumerate(forecasts):
        assert np.allclose(f["forecast"], i + 1, rtol=0.5)


def test_series_without_id_get_their_index(client):
    r = client.post("/v1/forecast", json={"series": [{"history": HISTORY}] * 2, "horizon": 1})
    assert [f["id"] for f in r.json()["forecasts"]] == ["0", "1"]


def test_one_series_answer_matches_many_series_answer(client):
    one = client.post("/v1/forecast", json={"history": HISTORY, "horizon": 4}).json()
    many = client.post("/v1/forecast", json={"series": [{"history": HISTORY}], "horizon": 4}).json()
    assert np.allclose(one["forecast"], many["forecasts"][0]["forecast"])


def test_quantiles_offered_by_the_model(client):
    body = {"history": HISTORY, "horizon": 4, "quantiles": [0.1, 0.9]}
    r = client.post("/v1/forecast", json=body)
    assert r.status_code == 200, r.text
    q = r.json()["quantiles"]
    assert set(q) == {"0.1", "0.9"}
    assert all(lo <= hi for lo, hi in zip(q["0.1"], q["0.9"], strict=True))


def test_quantile_not_offered_names_the_available_ones(client):
    r = client.post("/v1/forecast", json={"history": HISTORY, "horizon": 4, "quantiles": [0.5]})
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["loc"] == ["body", "quantiles", 0]
    assert "0.1" in error["msg"] and "0.9" in error["msg"]


def test_timestamps_give_forecast_timestamps(client):
    stamps = pd.date_range("2024-03-01", periods=len(HISTORY), freq="h")
    body = {"history": HISTORY, "horizon": 3, "timestamps": [t.isoformat() for t in stamps]}
    r = client.post("/v1/forecast", json=body)
    assert r.status_code == 200, r.text
    expected = pd.date_range(stamps[-1], periods=4, freq="h")[1:]
    assert r.json()["timestamps"] == [t.isoformat() for t in expected]


def test_calendar_frequency_is_inferred(client):
    stamps = pd.date_range("2020-01-31", periods=48, freq="ME")
    body = {"series": [{"history": [1.0] * 48, "timestamps": [str(t.date()) for t in stamps]}]}
    r = client.post("/v1/forecast", json=body | {"horizon": 2})
    assert r.status_code == 200, r.text
    assert r.json()["forecasts"][0]["timestamps"] == ["2024-01-31T00:00:00", "2024-02-29T00:00:00"]


@pytest.mark.parametrize(
    "stamps",
    [
        ["2024-01-01T00:00:00"] * 72,  # not increasing
        ["yesterday"] * 72,  # not ISO 8601
        [f"2024-01-01T{h:02d}:00:00" for h in range(24)],  # wrong length
    ],
)
def test_bad_timestamps_are_422(client, stamps):
    r = client.post("/v1/forecast", json={"history": HISTORY, "horizon": 1, "timestamps": stamps})
    assert r.status_code == 422
    # The position of the offending stamp follows when there is one.
    assert r.json()["detail"][0]["loc"][:2] == ["body", "timestamps"]


def test_named_model_and_pinned_version(client):
    r = client.post("/v1/forecast", json={"history": HISTORY, "horizon": 2, "model": "other@1"})
    assert r.status_code == 200, r.text
    assert (r.json()["model"], r.json()["version"]) == ("other", 1)


@pytest.mark.parametrize("model", ["nope", "other@7", "m4-hourly@2"])
def test_unknown_model_or_version_is_404(client, model):
    r = client.post("/v1/forecast", json={"history": HISTORY, "horizon": 2, "model": model})
    assert r.status_code == 404
    assert r.json()["detail"][0]["loc"] == ["body", "model"]


def test_horizon_above_the_limit_names_it(client):
    # Beyond the trained horizon the model is rolled forward, up to ten horizons (issue 34, 5).
    r = client.post("/v1/forecast", json={"history": HISTORY, "horizon": 10 * TINY.horizon + 1})
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["loc"] == ["body", "horizon"]
    assert f"limit of {10 * TINY.horizon}" in error["msg"] and str(TINY.horizon) in error["msg"]


def test_short_history_gets_the_statistical_fallback(client):
    # Below the model's window (48): naive, as this model's manifest records no seasonal period.
    r = client.post("/v1/forecast", json={"history": [1.0] * 9 + [4.0], "horizon": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["forecast"], body["method"], body["filled"]) == ([4.0] * 3, "naive", 0)
    assert (
        client.post("/v1/forecast", json={"history": HISTORY, "horizon": 1}).json()["method"]
        == "model"
    )


def test_short_history_in_many_series_is_answered_with_the_others(client):
    series = [{"history": HISTORY}, {"history": [1.0] * 3}]
    r = client.post("/v1/forecast", json={"series": series, "horizon": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(f["index"], f["method"]) for f in body["forecasts"]] == [(0, "model"), (1, "naive")]
    assert body["errors"] == []


@pytest.mark.parametrize(
    "history",
    [
        [0.0] * 48,
        [5.0] * 48,
        [-3.0] * 48,
        [1e15] * 48,
        [-1e15, 1e15] * 24,
        [1e-300] * 48,
        [0.0] * 47 + [1e15],
    ],
    ids=["zeros", "constant", "negative", "huge", "huge-alternating", "tiny", "spike"],
)
def test_awkward_series_give_finite_forecasts(client, history):
    r = client.post("/v1/forecast", json={"history": history, "horizon": 12, "quantiles": [0.1]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert _finite(body["forecast"]) and _finite(body["quantiles"]["0.1"])


def test_other_model_has_its_own_limits(client):
    r = client.post(
        "/v1/forecast", json={"history": [1.0] * 24, "horizon": OTHER.horizon, "model": "other"}
    )
    assert r.status_code == 200, r.text
    # Its limit is ten of its own horizons (60), not the default model's (120).
    body = {"history": [1.0] * 24, "horizon": 61, "model": "other"}
    r = client.post("/v1/forecast", json=body)
    assert r.status_code == 422 and "limit of 60" in r.json()["detail"][0]["msg"]


def test_a_blended_model_answers_as_the_library_does(tmp_path):
    """The blend needs whole histories, not the model's windows: the service applies it after
    the batcher, to the cleaned histories, for one series and many alike."""
    blended = dataclasses.replace(TINY, theta_weight=0.2, damped_weight=0.2, theta_season=24)
    publish(tmp_path, "blended", blended)
    loaded = Registry(tmp_path).load("blended")
    histories = [HISTORY, [v * 2 + t for t, v in enumerate(HISTORY[:60])]]
    expected = Predictor(loaded.config, loaded.params).predict([np.array(h) for h in histories])
    network = dataclasses.replace(loaded.config, theta_weight=0.0, damped_weight=0.0)
    unblended = Predictor(network, loaded.params).predict([np.array(histories[0])]).point[0]
    with running_client(make_settings(tmp_path)) as client:
        body = {"history": HISTORY, "horizon": 12, "quantiles": [0.9]}
        one = client.post("/v1/forecast", json=body).json()
        series = [{"history": h} for h in histories]
        many = client.post("/v1/forecast", json={"series": series, "horizon": 12}).json()
    np.testing.assert_allclose(one["forecast"], expected.point[0], rtol=1e-5)
    np.testing.assert_allclose(one["quantiles"]["0.9"], expected.quantiles[0.9][0], rtol=1e-5)
    assert not np.allclose(one["forecast"], unblended, rtol=1e-3)
    for answer, point in zip(many["forecasts"], expected.point, strict=True):
        np.testing.assert_allclose(answer["forecast"], point, rtol=1e-5)
