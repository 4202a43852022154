"""Honest labels (issue 34, items 6 and 11): an answer's ``method`` says what made the forecast
(the network, a blend with the classical methods and its share, the classical methods alone, a
fallback), in the answer, the models routes and the client's frames; and ``wait_ready`` waits
for a model that is still loading. The real service in-process, with untrained models."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from forecaster.client import ForecastClient
from forecaster.model import init_params
from forecaster.registry import Registry
from service.app import create_app
from tests.client.helpers import CONFIG, MODEL, SyncASGITransport, running_app, service_settings
from tests.helpers.polling import wait_until

BLEND = dataclasses.replace(CONFIG, theta_weight=0.2, damped_weight=0.2, theta_season=24)
CLASSICAL = dataclasses.replace(CONFIG, theta_weight=0.5, damped_weight=0.5, theta_season=24)
# Of shapes no other model has: loading it compiles (seconds), so it is seen loading.
NEW = dataclasses.replace(CONFIG, hidden=24, input_size=72)


def hourly(n: int = 72, seed: int = 0) -> pd.Series:
    rng = np.random.default_rng(seed)
    values = 100 + 10 * np.sin(2 * np.pi * np.arange(n) / 24) + rng.normal(0, 1, n)
    return pd.Series(values, index=pd.date_range("2024-01-01", periods=n, freq="h"))


def publish(root: Path, name: str, config=CONFIG) -> None:
    Registry(root).publish(name, config, init_params(config), promote=True, freq="h",
                           seasonality=24)  # fmt: skip


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, object, Path]]:
    root = tmp_path_factory.mktemp("labels")
    publish(root, MODEL)
    publish(root, "blend", BLEND)
    publish(root, "classical", CLASSICAL)
    app = create_app(service_settings(root, alias_watch_interval_s=0.2))
    with running_app(app) as portal:
        yield app, portal, root


@pytest.fixture()
def client(service) -> Iterator[ForecastClient]:
    app, portal, _ = service
    with ForecastClient(transport=SyncASGITransport(app, portal), retry=None) as c:
        c.wait_ready(timeout=60)
        yield c


def test_the_method_says_what_made_the_forecast(client: ForecastClient) -> None:
    expected = {MODEL: ("model", None), "blend": ("model+classical", 0.4),
                "classical": ("classical", 1.0)}  # fmt: skip
    for name, (method, share) in expected.items():
        frame = client.forecast(hourly(), model=name, horizon=3)
        assert (frame.attrs["method"], frame.attrs["classical_share"]) == (method, share), name
        many = client.forecast_many({"a": hourly(), "b": hourly(seed=1)}, model=name, horizon=3)
        assert (many["method"] == method).all() and many.attrs["classical_share"] == share
        detail = client.model(name)
        assert (detail.method, detail.classical_share) == (method, share)
    summaries = {m.name: (m.method, m.classical_share) for m in client.models()}
    assert summaries == expected


def test_a_fallback_is_named_and_carries_no_share(client: ForecastClient) -> None:
    frame = client.forecast([3.0, 4.0], model="classical", horizon=2)
    assert frame.attrs["method"] == "naive" and frame.attrs["classical_share"] is None


def test_wait_ready_waits_for_a_model_that_is_still_loading(service, client) -> None:
    app, portal, root = service
    readyz = httpx.Client(transport=SyncASGITransport(app, portal), base_url="http://service")
    publish(root, "late", NEW)
    wait_until(
        lambda: readyz.get("/readyz").json()["missing"].get("late") == "loading",
        timeout=60,
        interval=0.01,  # 'loading' lasts as long as a compile: a slow poll might miss it
        message="the watcher never started loading the new model",
    )
    assert readyz.get("/readyz").status_code == 200  # ready, while 'late' still loads
    client.wait_ready(timeout=60)
    assert "late" in readyz.get("/readyz").json()["models"]
    publish(root, "later", dataclasses.replace(NEW, hidden=20))
    client.wait_ready(timeout=60, model="later@1")
    assert readyz.get("/readyz").json()["models"]["later"] == 1
