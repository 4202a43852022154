"""GET /v1/models, /v1/models/{name}, /healthz, /readyz, /metrics, and the OpenAPI document."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from service.app import create_app
from tests.helpers.polling import wait_until
from tests.service.conftest import TINY, make_settings, publish, running_client


def test_list_models(client):
    r = client.get("/v1/models")
    assert r.status_code == 200
    served = {"versions": [1], "production": 1, "loaded_version": 1, "problem": None,
              "method": "model", "classical_share": None, "calibrated": False,
              "covariates": None}  # fmt: skip
    # Published without timestamps: frequency and seasonal period unknown.
    unknown = {"frequency": None, "seasonal_period": None}
    assert r.json() == [
        {"name": "m4-hourly", "default": True, "window": 48, "horizon": 12,
         "max_horizon": 120, "min_history": {"model": 48, "fallback": 1, "after_gap": 1},
         "quantiles": [0.1, 0.9]} | served | unknown,
        {"name": "other", "default": False, "window": 24, "horizon": 6, "max_horizon": 60,
         "min_history": {"model": 24, "fallback": 1, "after_gap": 1},
         "quantiles": []} | served | unknown,
    ]  # fmt: skip


def test_model_detail(client):
    body = client.get("/v1/models/m4-hourly").json()
    assert body["config"]["input_size"] == TINY.input_size
    assert body["config"]["quantiles"] == [0.1, 0.9]
    assert body["loaded_version"] == 1 and "created_at" in body and "metrics" in body


def test_unknown_model_is_404(client):
    assert client.get("/v1/models/nope").status_code == 404
    assert client.get("/v1/models/..%2F..").status_code in (404, 422)


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["models"] == {"m4-hourly": 1, "other": 1}


def test_metrics(client):
    client.post("/v1/forecast", json={"history": [1.0] * 48, "horizon": 1})
    client.post("/v1/forecast", json={"history": [], "horizon": 1})
    text = client.get("/metrics").text
    assert 'forecaster_requests_total{method="POST",route="/v1/forecast",status="200"}' in text
    assert 'forecaster_requests_total{method="POST",route="/v1/forecast",status="422"}' in text
    assert 'forecaster_request_duration_seconds_bucket{le="0.01",method="POST"' in text
    assert "forecaster_batch_series_count" in text
    assert 'forecaster_model_version{model="m4-hourly"} 1.0' in text


def test_openapi_documents_the_request_body(client):
    doc = client.get("/openapi.json").json()
    body = doc["paths"]["/v1/forecast"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/ForecastRequest"}
    assert {"ForecastRequest", "SeriesInput"} <= set(doc["components"]["schemas"])
    assert "/v1/models/{name}/reload" in doc["paths"]


def test_not_ready_until_a_model_is_served_then_picked_up_by_the_watcher(tmp_path):
    settings = make_settings(tmp_path, alias_watch_interval_s=0.1)
    with TestClient(create_app(settings)) as c:
        time.sleep(0.3)  # the behaviour under test: three watcher polls, and still no model
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 503
        assert "no model" in c.get("/readyz").json()["detail"]
        r = c.post("/v1/forecast", json={"history": [1.0] * 48, "horizon": 1})
        assert r.status_code == 422 and "no default model" in r.json()["detail"][0]["msg"]
        publish(tmp_path, "m4-hourly")
        wait_until(
            lambda: c.get("/readyz").status_code == 200,
            message="the watcher never picked up the published model",
        )
        assert c.post("/v1/forecast", json={"history": [1.0] * 48, "horizon": 1}).status_code == 200


def test_admin_routes_are_off_without_a_key(registry_root):
    with running_client(make_settings(registry_root, admin_api_key=None)) as c:
        assert c.post("/v1/models/m4-hourly/reload", headers={"X-API-Key": ""}).status_code == 404
        assert "/v1/models/{name}/reload" not in c.get("/openapi.json").json()["paths"]
