"""Never turn a real series away (issue 13), in-process: short histories (model or fallback),
missing values (nulls and skipped timestamps, the training policy), and per-series answers in
``series`` requests. The end-to-end cases run on a real server in test_short_histories_live.py."""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from forecaster.model import ModelConfig
from forecaster.predict import Predictor
from forecaster.registry import Registry
from tests.service.conftest import make_settings, publish, running_client

# An unmasked model (the model answers from 48 points) and a masked one (from 6), both hourly.
FULL = ModelConfig(
    ensemble=1, cell="gru", hidden=8, input_size=48, horizon=12, step=24, quantiles=(0.1, 0.9)
)
MASKED = ModelConfig(
    cell="gru",
    ensemble=1,
    hidden=8,
    input_size=48,
    step=24,
    horizon=6,
    min_input=6,
    quantiles=(0.1, 0.9),
)
HOURLY = {"freq": "h", "seasonality": 24}


def wave(n: int, seed: int = 0) -> list[float]:
    t = np.arange(n)
    noise = np.random.default_rng(seed).normal(0, 1, n)
    return (100 + 10 * np.sin(2 * np.pi * t / 24) + noise).round(3).tolist()


def stamps(n: int, start: str = "2024-01-01") -> list[str]:
    return [t.isoformat() for t in pd.date_range(start, periods=n, freq="h")]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("short-registry")
    publish(root, "full", FULL, **HOURLY)
    publish(root, "masked", MASKED, **HOURLY)
    return root


@pytest.fixture(scope="module")
def client(root: Path) -> Iterator[TestClient]:
    with running_client(make_settings(root, default_model="full")) as c:
        yield c


def post(client: TestClient, **body: object) -> dict:
    r = client.post("/v1/forecast", json={"horizon": 12} | body)
    assert r.status_code == 200, r.text
    return r.json()


def refused(client: TestClient, **body: object) -> list[dict]:
    r = client.post("/v1/forecast", json={"horizon": 12} | body)
    assert r.status_code == 422, r.text
    return r.json()["detail"]


# ------------------------------------------------------------------------------ short histories


def test_models_state_the_minimum_history_of_each_path(client):
    full, masked = client.get("/v1/models/full").json(), client.get("/v1/models/masked").json()
    assert full["min_history"] == {"model": 48, "fallback": 1, "after_gap": 24}
    assert masked["min_history"] == {"model": 6, "fallback": 1, "after_gap": 6}
    listed = {m["name"]: m["min_history"] for m in client.get("/v1/models").json()}
    assert listed == {"full": full["min_history"], "masked": masked["min_history"]}


def test_one_point_is_a_naive_forecast_with_quantiles(client):
    body = post(client, history=[5.0], quantiles=[0.1, 0.9])
    assert (body["method"], body["filled"], body["model"]) == ("naive", 0, "full")
    assert body["forecast"] == [5.0] * 12
    # One point holds no error to measure: the band is the point itself.
    assert body["quantiles"] == {"0.1": [5.0] * 12, "0.9": [5.0] * 12}


@pytest.mark.parametrize(
    ("model", "points", "method"),
    [
        ("full", 10, "naive"),
        ("full", 23, "naive"),
        ("full", 24, "seasonal_naive"),
        ("full", 47, "seasonal_naive"),
        ("full", 48, "model"),
        ("masked", 5, "naive"),
        ("masked", 6, "model"),
    ],
)
def test_who_answers_depends_on_the_length(client, model, points, method):
    history = wave(points)
    body = post(client, history=history, model=model, horizon=6)
    assert body["method"] == method
    if method == "naive":
        assert body["forecast"] == [history[-1]] * 6
    if method == "seasonal_naive":
        assert body["forecast"] == history[-24:][:6]


def test_the_masked_model_answers_a_short_history_as_the_library_does(client, root):
    loaded = Registry(root).load("masked")
    history = wave(20, seed=3)
    expected = Predictor(loaded.config, loaded.params).predict([np.array(history)], 6)
    body = post(client, history=history, model="masked", horizon=6, quantiles=[0.9])
    assert body["method"] == "model"
    np.testing.assert_allclose(body["forecast"], expected.point[0], rtol=1e-5)
    np.testing.assert_allclose(body["quantiles"]["0.9"], expected.quantiles[0.9][0], rtol=1e-5)
    # Padding is not history: the same 20 points give the same answer in a batch of mixed lengths.
    series = [{"history": wave(48, seed=1)}, {"history": history}, {"history": wave(7)}]
    many = post(client, series=series, model="masked", horizon=6)["forecasts"]
    np.testing.assert_allclose(many[1]["forecast"], expected.point[0], rtol=1e-5)


def test_fallback_bands_bracket_the_point_and_widen(client):
    body = post(client, history=wave(36), quantiles=[0.1, 0.9])
    assert body["method"] == "seasonal_naive"
    point = np.array(body["forecast"])
    low, high = np.array(body["quantiles"]["0.1"]), np.array(body["quantiles"]["0.9"])
    assert (low < point).all() and (point < high).all()
    assert (np.diff(high - low) >= 0).all()
    naive = post(client, history=wave(10), quantiles=[0.1, 0.9])
    width = np.array(naive["quantiles"]["0.9"]) - np.array(naive["quantiles"]["0.1"])
    assert naive["method"] == "naive" and (np.diff(width) > 0).all()


# ------------------------------------------------------------------------------ missing values


def test_nulls_are_trimmed_at_the_ends_and_interpolated_inside(client):
    h = wave(60)
    sent = [None, None, *h[:20], None, None, None, *h[23:], None]
    body = post(client, history=sent)
    filled = h[:20] + list(np.linspace(h[19], h[23], 5)[1:-1]) + h[23:]
    same = post(client, history=filled)
    assert (body["method"], body["filled"]) == ("model", 3)
    np.testing.assert_allclose(body["forecast"], same["forecast"], rtol=1e-6)
    assert "gap" not in body


def test_after_a_long_gap_the_points_after_it_are_forecast(client):
    h = wave(80)
    sent = h[:30] + [None] * 4 + h[34:]
    body = post(client, history=sent)
    assert body["gap"] == {"before": 29, "after": 34, "missing": 4}
    assert body["method"] == "seasonal_naive"  # 46 points after the gap: fewer than 48
    assert body["forecast"] == post(client, history=h[34:])["forecast"]


def test_a_history_is_read_with_the_max_gap_its_model_was_trained_with(
    root: Path, tmp_path: Path
) -> None:
    """A model trained with ``--max-gap 8`` interpolates a gap of 5 that the default cuts."""
    shutil.copytree(root, tmp_path / "reg")
    publish(tmp_path / "reg", "gappy", FULL, **HOURLY, training={"max_gap": 8})
    with running_client(make_settings(tmp_path / "reg", default_model="full")) as client:
        _check_max_gap(client)


def _check_max_gap(client: TestClient) -> None:
    h, times = wave(80), stamps(80)
    sent = h[:30] + [None] * 5 + h[35:]
    gappy = post(client, model="gappy", history=sent, timestamps=times)
    assert (gappy["method"], gappy["filled"]) == ("model", 5) and "gap" not in gappy
    assert post(client, model="full", history=sent, timestamps=times)["gap"]["missing"] == 5
    skipped = post(
        client, model="gappy", history=h[:30] + h[35:], timestamps=times[:30] + times[35:]
    )
    assert skipped["filled"] == 5 and skipped["forecast"] == gappy["forecast"]
    (error,) = refused(client, model="gappy", history=h[:60] + [None] * 9 + h[69:75])
    assert "more than the 8 that are interpolated" in error["msg"]


def test_a_long_gap_with_too_few_points_after_it_is_named(client):
    h, times = wave(60), stamps(60)
    sent = h[:45] + [None] * 5 + h[50:]
    (error,) = refused(client, history=sent, timestamps=times)
    assert error["loc"] == ["body", "history", 50] and error["type"] == "gap_too_long"
    for words in ("5 missing", "history[44]", "history[50]", times[44], times[50], "24"):
        assert words in error["msg"]


def test_skipped_timestamps_are_missing_points(client):
    h, times = wave(72), stamps(72)
    gone = {40, 41}
    body = post(
        client,
        history=[v for i, v in enumerate(h) if i not in gone],
        timestamps=[t for i, t in enumerate(times) if i not in gone],
    )
    with_nulls = post(client, history=[None if i in gone else v for i, v in enumerate(h)],
                      timestamps=times)  # fmt: skip
    assert body["filled"] == with_nulls["filled"] == 2
    np.testing.assert_allclose(body["forecast"], with_nulls["forecast"], rtol=1e-6)
    assert body["timestamps"][0] == stamps(73)[72]


def test_a_long_run_of_skipped_timestamps_is_a_gap(client):
    h, times = wave(200), stamps(200)
    keep = [i for i in range(200) if not 100 <= i < 130]
    body = post(client, history=[h[i] for i in keep], timestamps=[times[i] for i in keep])
    assert body["gap"] == {
        "before": 99, "after": 100, "missing": 30, "timestamps": [times[99], times[130]]
    }  # fmt: skip
    assert body["method"] == "model" and body["filled"] == 0


def test_trailing_nulls_start_the_forecast_after_the_last_value(client):
    h, times = wave(60), stamps(60)
    body = post(client, history=[*h[:58], None, None], timestamps=times)
    assert body["timestamps"][0] == times[58]


def test_a_history_of_only_nulls_is_an_error(client):
    (error,) = refused(client, history=[None, None, None])
    assert (error["loc"], error["type"]) == (["body", "history"], "no_values")
    body = post(client, series=[{"id": "a", "history": [None]}, {"id": "b", "history": [1.0]}])
    assert [f["id"] for f in body["forecasts"]] == ["b"]
    assert body["errors"] == [
        {"id": "a", "index": 0, "loc": ["body", "series", 0, "history"], "type": "no_values",
         "msg": "the history holds no value, only nulls"}
    ]  # fmt: skip


# ------------------------------------------------------------------------------ per series

GOOD = wave(60)
MIXED = [
    {"id": "a", "history": GOOD},
    {"id": "b", "history": [1.0, "x", 3.0]},
    {"id": "c", "history": [None, None]},
    {"history": [1e300] * 5},
    {"id": "e", "history": GOOD[:3], "timestamps": ["2024-01-01", "nope", "2024-01-03"]},
    {"id": "f", "history": [1.0] * 10_001},
    {"id": "g", "history": [math.pi]},
]
EXPECTED_ERRORS = [
    ("b", 1, ["body", "series", 1, "history", 1], "float_type"),
    ("c", 2, ["body", "series", 2, "history"], "no_values"),
    ("3", 3, ["body", "series", 3, "history", 0], "value_error"),
    ("e", 4, ["body", "series", 4, "timestamps", 1], "value_error"),
    ("f", 5, ["body", "series", 5, "history"], "too_long"),
]


def test_each_series_gets_its_forecast_or_its_own_error(client):
    body = post(client, series=MIXED)
    assert [(f["id"], f["index"], f["method"]) for f in body["forecasts"]] == [
        ("a", 0, "model"), ("g", 6, "naive")
    ]  # fmt: skip
    assert [(e["id"], e["index"], e["loc"], e["type"]) for e in body["errors"]] == EXPECTED_ERRORS
    assert all(e["msg"] for e in body["errors"])
    assert (body["model"], body["version"]) == ("full", 1)


def test_strict_refuses_the_whole_request_naming_every_series(client):
    detail = refused(client, series=MIXED, strict=True)
    assert [(e["id"], e["index"], e["loc"], e["type"]) for e in detail] == EXPECTED_ERRORS
    # Schema problems alone are refused the same way.
    detail = refused(client, series=MIXED[:2], strict=True)
    assert [(e["id"], e["index"]) for e in detail] == [("b", 1)]


def test_a_request_whose_every_series_is_bad_is_answered_with_errors_only(client):
    body = post(client, series=[MIXED[1], MIXED[2]])
    assert body["forecasts"] == [] and [e["id"] for e in body["errors"]] == ["b", "c"]


def test_problems_of_the_whole_request_still_refuse_it(client):
    detail = refused(client, series=MIXED[:2], horizon=0)
    assert {tuple(e["loc"][:2]) for e in detail} == {("body", "horizon"), ("body", "series")}
    series_error = next(e for e in detail if e["loc"][1] == "series")
    assert (series_error["id"], series_error["index"]) == ("b", 1)
    for body in (
        {"series": MIXED[:2], "history": GOOD},  # both forms: found once the entries are set aside
        {"series": MIXED[:2] * 26},  # over max_series (50)
        {"series": MIXED[:2], "quantiles": [0.5]},  # not offered
        {"series": MIXED[:2], "model": "nope"},
    ):
        r = client.post("/v1/forecast", json={"horizon": 1} | body)
        assert r.status_code in (404, 422), r.text
        assert "forecasts" not in r.json()


def test_a_series_of_another_frequency_is_its_own_error(client):
    daily = [t.isoformat() for t in pd.date_range("2024-01-01", periods=60, freq="D")]
    body = post(client, series=[{"id": "h", "history": GOOD, "timestamps": stamps(60)},
                                {"id": "d", "history": GOOD, "timestamps": daily}])  # fmt: skip
    assert [f["id"] for f in body["forecasts"]] == ["h"]
    assert [(e["id"], e["type"]) for e in body["errors"]] == [("d", "frequency_mismatch")]
