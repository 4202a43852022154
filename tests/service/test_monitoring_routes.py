"""Forecast monitoring through the service: forecasts recorded, actuals in, accuracy out;
bad actuals refused naming the field; in-process apps and real servers (SQLite and PostgreSQL).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from forecaster import calibration
from forecaster.model import ModelConfig, init_params
from forecaster.monitoring import tables
from forecaster.monitoring.store import MonitoringStore
from forecaster.predict import Predictor
from forecaster.registry import Registry
from tests.helpers.polling import wait_until
from tests.service.conftest import API_KEY, make_settings, running_client, server

KEY = {"X-API-Key": API_KEY}
START = datetime(2024, 5, 1)


def stamps(n: int, start: datetime = START) -> list[str]:
    return [(start + timedelta(hours=k)).isoformat() for k in range(n)]


def series(sid: str | None, n: int = 72, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    history = (100 + 10 * np.sin(np.arange(n) * 2 * np.pi / 24) + rng.normal(size=n)).tolist()
    out = {"history": history, "timestamps": stamps(n)}
    return out | ({"id": sid} if sid is not None else {})


def metric(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{name}{{{re.escape(want)}}} (\S+)$" if labels else rf"^{name} (\S+)$"
    found = re.search(pattern, text, re.M)
    return float(found[1]) if found else None


@pytest.fixture
def monitored(registry_root: Path, tmp_path: Path):
    settings = make_settings(
        registry_root,
        database_url=f"sqlite:///{tmp_path / 'monitoring.sqlite3'}",
        record_flush_s=0.05,
    )
    with running_client(settings) as client:
        yield client


RECORDED = "forecaster_forecasts_recorded_total"


def recorded(client) -> float:
    return metric(client.get("/metrics").text, RECORDED) or 0.0


def test_forecasts_are_recorded_scored_and_exposed(monitored) -> None:
    body = {"series": [series("a", seed=1), series("b", seed=2), series(None, seed=3)],
            "horizon": 12, "quantiles": [0.1, 0.9]}  # fmt: skip
    answer = monitored.post("/v1/forecast", json=body).json()
    wait_until(
        lambda: recorded(monitored) == 2,
        timeout=20,
        message="the two forecasts with an id were not recorded",  # the one without is not
    )

    rng = np.random.default_rng(9)
    actuals, errors, inside = [], [], []
    for f in answer["forecasts"][:2]:
        y = np.array(f["forecast"]) + rng.normal(scale=5, size=12)
        actuals.append({"id": f["id"], "timestamps": f["timestamps"], "values": y.tolist()})
        errors.append(np.abs(y - f["forecast"]))
        lo, hi = np.array(f["quantiles"]["0.1"]), np.array(f["quantiles"]["0.9"])
        inside.append((y >= lo) & (y <= hi))
    actuals.append({"id": "never-forecast", "timestamps": stamps(2), "values": [1.0, 2.0]})
    r = monitored.post("/v1/actuals", json={"series": actuals}, headers=KEY)
    assert r.status_code == 200, r.text
    assert r.json() == {"stored": 24, "matched": 24, "unknown_series": 1,
                        "unknown_ids": ["never-forecast"]}  # fmt: skip

    acc = monitored.get("/v1/models/m4-hourly/accuracy").json()
    [v1] = acc["versions"]
    assert v1["version"] == 1 and v1["interval"] == [0.1, 0.9]
    assert v1["overall"]["points"] == 24
    assert v1["overall"]["model"]["mae"] == pytest.approx(np.mean(errors))
    assert v1["overall"]["coverage"] == pytest.approx(np.mean(inside))
    assert v1["overall"]["seasonal_naive"]["mase"] > 0
    assert [s["step"] for s in v1["steps"]] == list(range(1, 13))
    assert v1["steps"][0]["points"] == 2
    until = monitored.get(
        "/v1/models/m4-hourly/accuracy", params={"until": answer["forecasts"][0]["timestamps"][3]}
    ).json()
    assert until["versions"][0]["overall"]["points"] == 6

    def gauge() -> float | None:
        text = monitored.get("/metrics").text
        return metric(text, "forecaster_live_mae", model="m4-hourly", version="1")

    wait_until(lambda: gauge() is not None, timeout=20, message="no live MAE gauge for version 1")
    assert gauge() == pytest.approx(np.mean(errors))
    text = monitored.get("/metrics").text
    assert metric(text, "forecaster_actuals_total", outcome="unknown_series") == 2


def test_each_series_is_recorded_as_it_was_answered(monitored) -> None:
    """Model and fallback answers interleaved (the fallback's series shifts the model's rows)
    are recorded as sent: with each answer's upper band as its actuals, the live error is the
    answers' own distance from point to band, and every actual lies inside the recorded band."""
    short = series("short", n=10, seed=4)  # under the model's window: the fallback answers it
    body = {"series": [series("a", seed=1), short, series("b", seed=2)], "horizon": 6,
            "quantiles": [0.1, 0.9]}  # fmt: skip
    answer = monitored.post("/v1/forecast", json=body).json()["forecasts"]
    assert [f["method"] == "model" for f in answer] == [True, False, True]
    wait_until(
        lambda: recorded(monitored) == 3, timeout=20, message="the three answers were not recorded"
    )
    actuals = [{"id": f["id"], "timestamps": f["timestamps"], "values": f["quantiles"]["0.9"]}
               for f in answer]  # fmt: skip
    r = monitored.post("/v1/actuals", json={"series": actuals}, headers=KEY)
    assert r.json()["matched"] == 18, r.text
    [v1] = monitored.get("/v1/models/m4-hourly/accuracy").json()["versions"]
    gaps = np.concatenate([np.subtract(f["quantiles"]["0.9"], f["forecast"]) for f in answer])
    assert v1["overall"]["model"]["mae"] == pytest.approx(np.abs(gaps).mean(), rel=1e-12)
    assert v1["overall"]["coverage"] == 1.0


def _calibrated_registry(root: Path, *names: str) -> Path:
    """``root`` holding the same calibrated model under each of ``names``."""
    config = ModelConfig(cell="gru", hidden=8, input_size=48, horizon=12, step=24)
    params = init_params(config, 0)
    histories = [np.asarray(series(None, n=120, seed=k)["history"]) for k in range(40)]
    cal = calibration.calibrate(Predictor(config, params), histories, 24, origins=2)
    for name in names:
        Registry(root).publish(name, config, params, promote=True, calibration=cal,
                               freq="h", seasonality=24)  # fmt: skip
    return root


@pytest.fixture(scope="module")
def calibrated_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry whose m4-hourly is calibrated: it answers any interval level."""
    return _calibrated_registry(tmp_path_factory.mktemp("calibrated-registry"), "m4-hourly")


def test_live_coverage_per_level_and_step_over_a_real_server(
    calibrated_root: Path, tmp_path: Path
) -> None:
    """Each level answered is scored on its own, overall and per step, in the accuracy body and
    as a Prometheus gauge per level."""
    env = {"FORECASTER_DATABASE_URL": f"sqlite:///{tmp_path / 'monitoring.sqlite3'}",
           "FORECASTER_RECORD_FLUSH_S": "0.05"}  # fmt: skip
    with server(calibrated_root, tmp_path, **env) as s:
        body = {"series": [series(f"s{k}", seed=k) for k in range(4)], "horizon": 6,
                "levels": [50, 80, 95]}  # fmt: skip
        r = httpx.post(s.url + "/v1/forecast", json=body, timeout=30)
        assert r.status_code == 200, r.text
        answer = r.json()["forecasts"]

        def count(name: str, **labels: str) -> float | None:
            return metric(httpx.get(s.url + "/metrics", timeout=10).text, name, **labels)

        wait_until(lambda: count("forecaster_forecasts_recorded_total") == 4)
        rng = np.random.default_rng(5)
        actuals, inside = [], {"50": [], "80": [], "95": []}
        for f in answer:
            half = np.subtract(f["intervals"]["80"]["upper"], f["intervals"]["80"]["lower"]) / 2
            y = np.array(f["forecast"]) + rng.normal(scale=1.5, size=6) * half
            actuals.append({"id": f["id"], "timestamps": f["timestamps"], "values": y.tolist()})
            for key, band in inside.items():
                lo, hi = f["intervals"][key]["lower"], f["intervals"][key]["upper"]
                band.append((y >= lo) & (y <= hi))
        r = httpx.post(s.url + "/v1/actuals", json={"series": actuals}, headers=KEY, timeout=30)
        assert r.json()["matched"] == 24, r.text
        [v1] = httpx.get(s.url + "/v1/models/m4-hourly/accuracy", timeout=30).json()["versions"]
        levels = v1["overall"]["levels"]
        assert list(levels) == ["50", "80", "95"]
        for key, band in inside.items():
            got = np.stack(band)
            assert levels[key]["points"] == 24 and levels[key]["level"] == float(key)
            assert levels[key]["coverage"] == pytest.approx(got.mean())
            assert levels[key]["shortfall"] == pytest.approx(float(key) - 100 * got.mean())
            for k, step in enumerate(v1["steps"]):
                assert step["levels"][key]["coverage"] == pytest.approx(got[:, k].mean())
        assert v1["overall"]["coverage"] == pytest.approx(levels["95"]["coverage"])

        def gauge(level: str) -> float | None:
            # The exposition orders labels by name.
            return count("forecaster_interval_coverage", level=level, model="m4-hourly",
                         version="1")  # fmt: skip

        wait_until(lambda: gauge("80") is not None)
        for key, band in inside.items():
            assert gauge(key) == pytest.approx(np.mean(band))


def _width(answer: dict, key: str) -> np.ndarray:
    band = answer["intervals"][key]
    return np.subtract(band["upper"], band["lower"])


def test_adaptive_intervals_widen_a_band_that_covered_too_rarely(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A model listed in FORECASTER_ADAPTIVE_INTERVALS whose bands missed every actual is served
    wider bands once the actuals are in, within the bounds, saying so and logging each change;
    the recorded forecast keeps the probabilities served. Another model sharing the store, the
    same actuals included, is served as before."""
    root = _calibrated_registry(tmp_path / "registry", "m4-hourly", "steady")
    url = f"sqlite:///{tmp_path / 'monitoring.sqlite3'}"
    settings = make_settings(root, database_url=url, record_flush_s=0.05,
                             adaptive_intervals=["m4-hourly"], adaptive_gamma=0.005)  # fmt: skip

    def body(model: str) -> dict:
        return {"model": model, "horizon": 6,
                "series": [series(f"{model}-{k}", seed=k) for k in range(4)]}  # fmt: skip

    with caplog.at_level(logging.INFO, "service.monitoring"), running_client(settings) as client:
        before = {m: client.post("/v1/forecast", json=body(m)).json()["forecasts"]
                  for m in ("m4-hourly", "steady")}  # fmt: skip
        assert not any("adjusted" in f for answer in before.values() for f in answer)
        wait_until(lambda: recorded(client) == 8)
        actuals = []
        for answer in before.values():
            for f in answer:  # above every band: each 80% and 95% band misses, 24 per level
                top = np.array(f["intervals"]["95"]["upper"]) + _width(f, "95")
                actuals.append({"id": f["id"], "timestamps": f["timestamps"],
                                "values": top.tolist()})  # fmt: skip
        r = client.post("/v1/actuals", json={"series": actuals}, headers=KEY)
        assert r.json()["matched"] == 48, r.text

        def adjusted() -> list[dict]:
            return client.post("/v1/forecast", json=body("m4-hourly")).json()["forecasts"]

        wait_until(lambda: "adjusted" in adjusted()[0], message="the bands were not adjusted")
        # 24 misses move 80% up 24 * 0.4 and 95% up 24 * 0.475 points: both held at the bound.
        for old, new in zip(before["m4-hourly"], adjusted(), strict=True):
            assert new["adjusted"] == {"80": 84.5, "95": 99.5}
            assert new["forecast"] == old["forecast"]
            for key in ("80", "95"):
                assert (_width(new, key) > _width(old, key)).all()
        one = client.post("/v1/forecast", json=body("m4-hourly") | {"levels": [80, 50]}).json()
        assert one["forecasts"][0]["adjusted"] == {"80": 84.5}  # 50 has no record: nominal
        # The model not listed is answered exactly as before.
        steady = client.post("/v1/forecast", json=body("steady")).json()["forecasts"]
        assert steady == before["steady"]
    # Recorded as served (the app's shutdown writes what is queued): the live coverage and the
    # next replay score the bands the clients got.
    f = tables.forecasts
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        query = sa.select(f.c.model, f.c.intervals).order_by(f.c.id)
        served: dict[str, list] = {"m4-hourly": [], "steady": []}
        for model, intervals in conn.execute(query):
            served[model].append(intervals)
    engine.dispose()
    nominal = [[80.0, 0.1, 0.9], [95.0, 0.025, 0.975]]
    assert served["m4-hourly"][0] == nominal
    assert served["m4-hourly"][-1] == [[50.0, 0.25, 0.75], [80.0, 0.0775, 0.9225]]
    assert served["steady"] == [nominal] * 8
    lines = [r.getMessage() for r in caplog.records if "adaptive" in r.getMessage()]
    assert lines == [
        "adaptive intervals: model m4-hourly version 1 level 80%: 80 -> 84.5",
        "adaptive intervals: model m4-hourly version 1 level 95%: 95 -> 99.5",
    ]


@pytest.mark.parametrize(
    ("entry", "loc"),
    [
        ({"id": "a", "timestamps": ["2024-01-01T00:00"], "values": [1.0, 2.0]}, ["series", 0]),
        ({"id": "a", "timestamps": ["2024-01-01T00:00", "soon"], "values": [1.0, 2.0]},
         ["series", 0, "timestamps", 1]),
        ({"id": "a", "timestamps": ["2024-01-01T00:00"], "values": ["1"]},
         ["series", 0, "values", 0]),
        ({"id": "a", "timestamps": ["2024-01-01T00:00"], "values": [None]},
         ["series", 0, "values", 0]),
        ({"timestamps": ["2024-01-01T00:00"], "values": [1.0]}, ["series", 0, "id"]),
        ({"id": "", "timestamps": ["2024-01-01T00:00"], "values": [1.0]}, ["series", 0, "id"]),
        ({"id": "a", "timestamps": [], "values": []}, ["series", 0, "timestamps"]),
    ],
)  # fmt: skip
def test_malformed_actuals_are_refused_naming_the_field(monitored, entry, loc) -> None:
    r = monitored.post("/v1/actuals", json={"series": [entry]}, headers=KEY)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][1:] == loc


def test_malformed_actual_bodies(monitored) -> None:
    for body in ({}, {"series": []}, {"series": "x"}):
        r = monitored.post("/v1/actuals", json=body, headers=KEY)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "series"]
    r = monitored.post("/v1/actuals", content=b'{"series": [{"id": "a", "values": [Infinity]',
                       headers=KEY | {"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 422


def test_actuals_need_the_admin_key_when_one_is_set(monitored) -> None:
    body = {"series": [{"id": "a", "timestamps": ["2024-01-01T00:00"], "values": [1.0]}]}
    assert monitored.post("/v1/actuals", json=body).status_code == 401
    assert monitored.post("/v1/actuals", json=body, headers={"X-API-Key": "no"}).status_code == 401
    assert monitored.post("/v1/actuals", json=body, headers=KEY).status_code == 200


def test_actuals_are_open_without_an_admin_key(registry_root: Path, tmp_path: Path) -> None:
    settings = make_settings(registry_root, admin_api_key=None,
                             database_url=f"sqlite:///{tmp_path / 'm.sqlite3'}")  # fmt: skip
    with running_client(settings) as client:
        body = {"series": [{"id": "a", "timestamps": ["2024-01-01T00:00"], "values": [1.0]}]}
        assert client.post("/v1/actuals", json=body).json()["unknown_series"] == 1


def test_accuracy_query_errors_name_the_parameter(monitored) -> None:
    r = monitored.get("/v1/models/m4-hourly/accuracy", params={"since": "last week"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "since"]
    for version in (0, 2**63):
        r = monitored.get("/v1/models/m4-hourly/accuracy", params={"version": version})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "version"]
    r = monitored.get("/v1/models/m4-hourly/accuracy", params={"until": "NaT"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "until"]
    window = {"since": "2024-05-02T00:00", "until": "2024-05-01T00:00"}
    r = monitored.get("/v1/models/m4-hourly/accuracy", params=window)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "since"]
    assert "since must be before until" in r.json()["detail"][0]["msg"]
    window["since"] = window["until"]  # [t, t) holds nothing either
    assert monitored.get("/v1/models/m4-hourly/accuracy", params=window).status_code == 422


def test_accuracy_of_an_unknown_model_is_404_like_the_other_model_routes(monitored) -> None:
    r = monitored.get("/v1/models/nothing-here/accuracy")
    assert r.status_code == 404 and "nothing-here" in r.json()["detail"]
    assert monitored.get("/v1/models/nothing-here").status_code == 404
    r = monitored.get("/v1/models/other/accuracy")  # in the registry, nothing recorded yet
    assert r.status_code == 200 and r.json()["versions"] == []


def test_recording_off_records_nothing(registry_root: Path, tmp_path: Path) -> None:
    settings = make_settings(registry_root, recording=False,
                             database_url=f"sqlite:///{tmp_path / 'm.sqlite3'}")  # fmt: skip
    with running_client(settings) as client:
        f = client.post("/v1/forecast", json={"series": [series("a")], "horizon": 3}).json()
        time.sleep(0.3)  # the behaviour under test: a pause in which nothing may be recorded
        body = {"series": [{"id": "a", "timestamps": f["forecasts"][0]["timestamps"],
                            "values": [1.0, 2.0, 3.0]}]}  # fmt: skip
        assert client.post("/v1/actuals", json=body, headers=KEY).json()["unknown_series"] == 1


# ------------------------------------------------------------------------ real servers


def forecast_one(url: str, sid: str) -> httpx.Response:
    body = {"series": [series(sid, seed=hash(sid) % 1000)], "horizon": 12}
    return httpx.post(url + "/v1/forecast", json=body, timeout=30)


def test_sigkill_loses_at_most_the_unflushed_queue(registry_root: Path, tmp_path: Path) -> None:
    db = tmp_path / "monitoring.sqlite3"
    env = {"FORECASTER_DATABASE_URL": f"sqlite:///{db}", "FORECASTER_RECORD_FLUSH_S": "0.2"}
    with server(registry_root, tmp_path, **env) as s:
        for k in range(20):
            assert forecast_one(s.url, f"s{k}").status_code == 200
        wait_until(
            lambda: metric(httpx.get(s.url + "/metrics").text, RECORDED) == 20,
            message="the first 20 forecasts were not written",
        )
        for k in range(20, 25):  # these may still be queued when the process dies
            assert forecast_one(s.url, f"s{k}").status_code == 200
        os.kill(s.process.pid, signal.SIGKILL)
        s.process.wait(timeout=10)
    store = MonitoringStore(f"sqlite:///{db}")
    ids = {i for i in store.engine.connect().exec_driver_sql("SELECT series_id FROM forecasts")
           .scalars()}  # fmt: skip
    assert {f"s{k}" for k in range(20)} <= ids <= {f"s{k}" for k in range(25)}
    assert store.accuracy("m4-hourly") == []  # the database opens and answers after the kill
    store.close()


def test_database_restarted_mid_run_loses_no_forecast(
    registry_root: Path, tmp_path: Path, pg_cluster
) -> None:
    """PostgreSQL stopped for a few seconds, then started again (issue 29): every forecast
    answered meanwhile is recorded once it is back, none dropped. Meanwhile the service stays
    ready, /readyz says recording is down (without the database's address), the gauge says 0,
    and accuracy answers 503."""
    url = pg_cluster.database()
    env = {"FORECASTER_DATABASE_URL": url, "FORECASTER_RECORD_FLUSH_S": "0.1"}
    with server(registry_root, tmp_path, **env) as s:

        def count(name: str, **labels: str) -> float:
            text = httpx.get(s.url + "/metrics", timeout=10).text
            return metric(text, name, **labels) or 0.0

        def readiness() -> httpx.Response:
            return httpx.get(s.url + "/readyz", timeout=10)

        def dropped() -> float:
            text = httpx.get(s.url + "/metrics", timeout=10).text
            found = re.findall(r"^forecaster_forecasts_record_dropped_total\S* (\S+)$", text, re.M)
            return sum(float(v) for v in found)

        assert forecast_one(s.url, "before").status_code == 200
        wait_until(
            lambda: count("forecaster_forecasts_recorded_total") == 1,
            timeout=20,
            message="the first forecast was not recorded",
        )
        assert readiness().json()["recording"] == "ok" and count("forecaster_recording_up") == 1
        pg_cluster.stop()
        try:
            assert forecast_one(s.url, "down0").status_code == 200
            wait_until(
                lambda: readiness().json()["recording"] == "down",
                timeout=20,
                message="readiness never said recording is down",
            )
            ready = readiness()
            assert ready.status_code == 200
            assert "recording is down: monitoring database unavailable" in ready.json()["detail"]
            assert str(pg_cluster.port) not in ready.text
            assert count("forecaster_recording_up") == 0
            for k in range(1, 5):
                assert forecast_one(s.url, f"down{k}").status_code == 200
            r = httpx.get(s.url + "/v1/models/m4-hourly/accuracy", timeout=30)
            assert r.status_code == 503 and "unavailable" in r.json()["detail"]
            assert count("forecaster_forecasts_recorded_total") == 1 and dropped() == 0
        finally:
            pg_cluster.start()
        assert forecast_one(s.url, "after").status_code == 200
        wait_until(
            lambda: count("forecaster_forecasts_recorded_total") == 7,
            timeout=60,
            message="the forecasts queued in the outage were not recorded",
        )
        assert dropped() == 0
        assert readiness().json()["recording"] == "ok" and count("forecaster_recording_up") == 1
        log = s.log.read_text()
    assert "dropping records" not in log
    assert log.count("retrying (forecasts stay queued") == 1
    assert "resumed; no forecast was dropped" in log
    store = MonitoringStore(url)
    with store.engine.connect() as conn:
        ids = conn.exec_driver_sql("SELECT series_id FROM forecasts ORDER BY id").scalars()
        assert list(ids) == ["before", *[f"down{k}" for k in range(5)], "after"]
    store.close()


# The client sets per-request timeouts, which Starlette's TestClient (passed in) ignores.
@pytest.mark.filterwarnings("ignore:You should not use the 'timeout' argument")
def test_the_client_sends_actuals_and_reads_accuracy(monitored) -> None:
    import pandas as pd

    from forecaster.client import ForecastClient, InvalidRequest

    body = {"series": [series("c", seed=4)], "horizon": 12}
    answer = monitored.post("/v1/forecast", json=body).json()["forecasts"][0]
    wait_until(
        lambda: recorded(monitored) == 1, timeout=20, message="the forecast was not recorded"
    )
    index = pd.DatetimeIndex(answer["timestamps"])
    truth = pd.Series(np.array(answer["forecast"]) + 1.0, index=index)
    truth.iloc[3] = np.nan  # left out, not sent as a value
    monitored.headers.update(KEY)  # a client passed in keeps its own headers
    with ForecastClient(http_client=monitored, max_series_per_request=1) as c:
        done = c.send_actuals({"c": truth, "ghost": truth})
        assert (done.stored, done.matched, done.unknown_series) == (11, 11, 1)
        assert done.unknown_ids == ["ghost"]
        acc = c.accuracy("m4-hourly", version=1)
        assert acc.versions[0].overall.points == 11
        assert acc.versions[0].overall.model.mae == pytest.approx(1.0)
        assert (
            c.accuracy("m4-hourly", since=answer["timestamps"][6]).versions[0].overall.points == 6
        )
        with pytest.raises(InvalidRequest, match="need timestamps"):
            c.send_actuals({"c": [1.0, 2.0]})


def test_the_async_client_over_a_real_server(registry_root: Path, tmp_path: Path) -> None:
    import asyncio

    import pandas as pd

    from forecaster.client import AsyncForecastClient

    env = {"FORECASTER_DATABASE_URL": f"sqlite:///{tmp_path / 'm.sqlite3'}",
           "FORECASTER_RECORD_FLUSH_S": "0.05"}  # fmt: skip
    with server(registry_root, tmp_path, **env) as s:
        answer = forecast_one(s.url, "d").json()["forecasts"][0]
        truth = pd.Series(
            np.array(answer["forecast"]) + 2.0, index=pd.DatetimeIndex(answer["timestamps"])
        )

        async def scenario() -> tuple:
            async with AsyncForecastClient(s.url, api_key=API_KEY) as c:
                for _ in range(100):  # the forecast is written within a flush interval
                    done = await c.send_actuals({"d": truth})
                    if done.matched:
                        break
                    await asyncio.sleep(0.05)
                return done, await c.accuracy("m4-hourly", until=answer["timestamps"][4])

        done, acc = asyncio.run(scenario())
    assert (done.stored, done.matched) == (12, 12)
    assert acc.versions[0].overall.points == 4
    assert acc.versions[0].overall.model.mae == pytest.approx(2.0)
