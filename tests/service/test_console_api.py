"""The /v1 routes the web console reads besides the older ones: a model's versions (training
scores, aliases, the retraining job's decision), the series recently forecast, one series'
actuals and past forecasts, and live accuracy window by window. In-process app, real SQLite.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from forecaster.model import init_params
from forecaster.registry import Registry
from service.app import create_app
from tests.helpers.polling import wait_until
from tests.service.conftest import API_KEY, TINY, make_settings, running_client

KEY = {"X-API-Key": API_KEY}
START = datetime(2024, 5, 1)
DECISION = {
    "action": "promote",
    "status": "promoted",
    "reason": "sMAPE 10.1 < 11.0",
    "policy": "auto",
    "margin": 0.0,
    "improvement": 0.08,
    "production_before": 1,
    "production_after": 2,
}


def report(version: int) -> dict[str, bytes]:
    doc = {
        "decision": DECISION,
        "challenger": {"version": version, "metrics": {"smape": 10.1}},
        "champion": {"version": 1, "metrics": {"smape": 11.0}},
    }
    return {"report.json": json.dumps(doc).encode()}


def entry(sid: str, start: datetime, n: int = 72) -> dict:
    history = (100 + 10 * np.sin(np.arange(n) * 2 * np.pi / 24)).tolist()
    stamps = [(start + timedelta(hours=k)).isoformat() for k in range(n)]
    return {"id": sid, "history": history, "timestamps": stamps}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("console-api")
    registry = Registry(tmp / "reg")
    params = init_params(TINY, 0)
    registry.publish(
        "hourly", TINY, params, promote=True, freq="h", seasonality=24, metrics={"smape": 11.0}
    )
    registry.publish(
        "hourly",
        TINY,
        params,
        promote=True,
        freq="h",
        seasonality=24,
        metrics={"smape": 10.1},
        extra_files=report,
    )
    settings = make_settings(
        tmp / "reg", database_url=f"sqlite:///{tmp / 'm.sqlite3'}", record_flush_s=0.05
    )
    with running_client(settings) as c:
        yield c


def test_versions_list_scores_aliases_and_the_retrain_decision(client) -> None:
    versions = client.get("/v1/models/hourly/versions").json()
    assert [v["version"] for v in versions] == [2, 1]
    new, old = versions
    assert new["aliases"] == ["production"] and new["served"] and not old["served"]
    assert new["metrics"] == {"smape": 10.1} and old["metrics"] == {"smape": 11.0}
    assert new["frequency"] == "h" and new["horizon"] == TINY.horizon
    assert new["window"] == TINY.input_size and new["seasonal_period"] == 24
    decision = new["decision"]
    assert decision["action"] == "promote" and decision["reason"] == DECISION["reason"]
    assert decision["challenger"] == {"smape": 10.1} and decision["champion"] == {"smape": 11.0}
    assert old["decision"] is None and old["error"] is None
    missing = client.get("/v1/models/nope/versions")
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


def test_recent_series_and_a_series_record(client) -> None:
    days = [START, START + timedelta(days=1)]
    for day in days:
        body = {"series": [entry("a/1", day), entry("b", day)], "horizon": 12, "levels": [80]}
        assert client.post("/v1/forecast", json=body).status_code == 200
    wait_until(
        lambda: sum(s["forecasts"] for s in client.get("/v1/series").json()) == 4,
        timeout=20,
        message="the forecasts were not recorded",
    )
    listed = client.get("/v1/series", params={"model": "hourly"}).json()
    assert {s["id"] for s in listed} == {"a/1", "b"}
    assert all(s["forecasts"] == 2 and s["version"] == 2 for s in listed)
    assert client.get("/v1/series", params={"model": "other"}).json() == []
    assert len(client.get("/v1/series", params={"limit": 1}).json()) == 1

    target = days[1] + timedelta(hours=72)  # the second forecast's first step
    stamps = [(target + timedelta(hours=k)).isoformat() for k in range(3)]
    posted = client.post(
        "/v1/actuals",
        headers=KEY,
        json={"series": [{"id": "a/1", "timestamps": stamps, "values": [1.0, 2.0, 3.0]}]},
    )
    assert posted.json()["matched"] == 3
    record = client.get("/v1/series/a/1").json()  # an id with a slash, in the path as it is
    assert record["id"] == "a/1" and record["actuals"] == [1.0, 2.0, 3.0]
    assert record["timestamps"] == stamps
    first, second = record["forecasts"]
    assert first["made_at"] <= second["made_at"] and second["timestamps"][:3] == stamps
    answer = client.post(
        "/v1/forecast",
        json={"series": [entry("x", days[1])], "horizon": 12, "levels": [80], "model": "hourly"},
    ).json()
    again = answer["forecasts"][0]  # the same history gives the same forecast, recorded as is
    assert np.allclose(second["forecast"], again["forecast"])
    assert np.allclose(second["intervals"]["80"]["upper"], again["intervals"]["80"]["upper"])
    assert len(client.get("/v1/series/a/1", params={"forecasts": 1}).json()["forecasts"]) == 1
    control = client.get("/v1/series/bad%01id")
    assert control.status_code == 422 and "control characters" in control.text
    assert client.get("/v1/series", params={"model": "../etc"}).status_code == 422
    gone = client.get("/v1/series/never-seen")
    assert gone.status_code == 404 and "never-seen" in gone.json()["detail"]


def test_accuracy_timeline_windows_sum_to_the_whole(client) -> None:
    day = START + timedelta(days=5)
    body = {"series": [entry("t", day)], "horizon": 12, "levels": [80]}
    made = client.post("/v1/forecast", json=body).json()["forecasts"][0]
    wait_until(
        lambda: any(s["id"] == "t" for s in client.get("/v1/series").json()),
        timeout=20,
        message="not recorded",
    )
    actual = [v + 1.0 for v in made["forecast"]]
    client.post(
        "/v1/actuals",
        headers=KEY,
        json={"series": [{"id": "t", "timestamps": made["timestamps"], "values": actual}]},
    )
    since, until = (day + timedelta(hours=72)).isoformat(), (day + timedelta(days=4)).isoformat()
    hourly = client.get(
        "/v1/models/hourly/accuracy/timeline",
        params={"every": "hour", "since": since, "until": until},
    ).json()
    assert hourly["every"] == "hour"
    filled = [w for w in hourly["windows"] if w["versions"]]
    assert len(filled) == 12 and all(w["versions"][0]["overall"]["points"] == 1 for w in filled)
    assert all(w["versions"][0]["overall"]["model"]["mae"] == pytest.approx(1.0) for w in filled)
    whole = client.get("/v1/models/hourly/accuracy", params={"since": since, "until": until})
    assert whole.json()["versions"][0]["overall"]["points"] == 12
    daily = client.get("/v1/models/hourly/accuracy/timeline").json()
    assert daily["windows"][0]["start"].endswith("T00:00:00")  # aligned to midnight
    assert sum(v["overall"]["points"] for w in daily["windows"] for v in w["versions"]) == sum(
        v["overall"]["points"] for v in client.get("/v1/models/hourly/accuracy").json()["versions"]
    )
    too_many = client.get(
        "/v1/models/hourly/accuracy/timeline", params={"every": "hour", "since": "2000-01-01"}
    )
    assert too_many.status_code == 422 and "every" in str(too_many.json()["detail"])
    bad = client.get("/v1/models/hourly/accuracy/timeline", params={"every": "month"})
    assert bad.status_code == 422
    assert client.get("/v1/models/nope/accuracy/timeline").status_code == 404
    empty = client.get("/v1/models/hourly/accuracy/timeline", params={"version": 1}).json()
    assert all(not w["versions"] for w in empty["windows"])


def test_a_forged_report_is_named_and_the_console_can_be_turned_off(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    registry = Registry(root)
    registry.publish("hourly", TINY, init_params(TINY, 0), promote=True, freq="h",
                     extra_files=report)  # fmt: skip
    (Path(registry.path("hourly", 1)) / "report.json").write_bytes(b'{"decision": "forged"}')
    # (The forged file also keeps the version from loading: the app is never ready.)
    app = create_app(make_settings(root, console=False))
    with TestClient(app, raise_server_exceptions=False) as off:
        (version,) = off.get("/v1/models/hourly/versions").json()
        assert version["decision"] is None and "report.json" in version["error"]
        assert "sha256" in version["error"] and str(root) not in version["error"]
        assert off.get("/").status_code == 404
        assert off.get("/console/app.js").status_code == 404
