"""A covariate model's forecasts are monitored like any: recorded once each, then scored when
their actuals arrive (a real server on SQLite). The model has random weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from forecaster.monitoring import tables
from forecaster.registry import Registry
from tests.client.test_covariates_client import CONFIG, SPEC, frames
from tests.helpers.polling import wait_until
from tests.service.conftest import API_KEY, make_settings, running_client
from tests.service.test_monitoring_routes import recorded

H = CONFIG.horizon


def test_a_covariate_model_s_forecasts_are_recorded_once_and_scored(tmp_path: Path) -> None:
    from forecaster.model import init_params

    root = tmp_path / "registry"
    Registry(root).publish("cov", CONFIG, init_params(CONFIG), promote=True, freq="h",
                           covariates=SPEC)  # fmt: skip
    database = tmp_path / "monitoring.sqlite3"
    settings = make_settings(root, database_url=f"sqlite:///{database}", record_flush_s=0.05,
                             default_model="cov")  # fmt: skip
    entries = []
    for k in range(2):
        history, future = frames(seed=k)
        entries.append({
            "id": f"s{k}", "history": history["value"].tolist(),
            "timestamps": [t.isoformat() for t in history["timestamp"]],
            "past_covariates": {"load": history["load"].tolist(), "x": history["x"].tolist()},
            "future_covariates": {"x": future["x"].tolist()},
            "static_covariates": {"region": "north"},
        })  # fmt: skip
    with running_client(settings) as client:
        answer = client.post("/v1/forecast", json={"model": "cov", "horizon": H,
                                                   "series": entries})  # fmt: skip
        assert answer.status_code == 200, answer.text
        forecasts = answer.json()["forecasts"]
        assert [f["method"] for f in forecasts] == ["model", "model"]
        wait_until(lambda: recorded(client) == 2, timeout=20,
                   message="the covariate model's two forecasts were not recorded")  # fmt: skip

        rng = np.random.default_rng(3)
        actuals, errors = [], []
        for f in forecasts:
            y = np.asarray(f["forecast"]) + rng.normal(scale=2, size=H)
            actuals.append({"id": f["id"], "timestamps": f["timestamps"], "values": y.tolist()})
            errors.append(np.abs(y - np.asarray(f["forecast"])))
        stored = client.post("/v1/actuals", json={"series": actuals},
                             headers={"X-API-Key": API_KEY})  # fmt: skip
        assert stored.status_code == 200, stored.text
        assert stored.json()["matched"] == 2 * H
        acc = client.get("/v1/models/cov/accuracy").json()
    (v1,) = acc["versions"]
    assert v1["overall"]["points"] == 2 * H
    assert v1["overall"]["model"]["mae"] == pytest.approx(np.mean(errors))
    # Once each: one forecast row per series, one point per step.
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sa.func.count()).select_from(tables.forecasts)).scalar()
    engine.dispose()
    assert rows == 2
    stamps = pd.to_datetime(forecasts[0]["timestamps"])
    assert stamps[0] == frames(0)[1]["timestamp"].iloc[0]
