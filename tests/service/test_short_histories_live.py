"""Never turn a real series away (issue 13), end to end on one real uvicorn on 127.0.0.1: short
histories, nulls and skipped timestamps, and per-series answers, in small requests and in one
request big enough to be prepared off the event loop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from forecaster.model import ModelConfig
from tests.service.conftest import Server, publish, server

MASKED = ModelConfig(
    cell="gru",
    ensemble=1,
    hidden=8,
    input_size=48,
    step=24,
    horizon=6,
    min_input=12,
    quantiles=(0.1, 0.9),
)


def stamps(n: int, start: str = "2024-01-01") -> list[str]:
    return [t.isoformat() for t in pd.date_range(start, periods=n, freq="h")]


def wave(n: int) -> list[float]:
    return (100 + 10 * np.sin(2 * np.pi * np.arange(n) / 24)).round(3).tolist()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("short-live")
    publish(root, "hourly", MASKED, freq="h", seasonality=24)
    with server(root, tmp_path_factory.mktemp("short-live-tmp")) as s:
        yield s


def post(live: Server, body: dict) -> httpx.Response:
    return httpx.post(live.url + "/v1/forecast", json=body, timeout=60)


def test_every_path_of_one_series(live):
    cases = [([7.0], "naive"), (wave(30)[:11], "naive"), (wave(30), "model")]
    for history, method in cases:
        r = post(live, {"history": history, "horizon": 6, "quantiles": [0.1, 0.9]})
        assert r.status_code == 200, r.text
        assert r.json()["method"] == method
    facts = httpx.get(live.url + "/v1/models/hourly").json()
    assert facts["min_history"] == {"model": 12, "fallback": 1, "after_gap": 12}


def test_nulls_and_skipped_timestamps_over_http(live):
    times = stamps(40)
    history = wave(40)
    history[5] = None  # type: ignore[call-overload]
    kept = [i for i in range(40) if i not in (20, 21)]
    body = {"history": [history[i] for i in kept], "timestamps": [times[i] for i in kept]}
    r = post(live, body | {"horizon": 2})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert (answer["method"], answer["filled"]) == ("model", 3)
    assert answer["timestamps"] == stamps(42)[40:]


def test_per_series_answers_and_strict_over_http(live):
    series = [
        {"id": "good", "history": wave(30)},
        {"id": "text", "history": [1.0, "2"]},
        {"id": "empty", "history": [None]},
        {"id": "gap", "history": [*wave(30), None, None, None, None, 1.0, 2.0]},
    ]
    r = post(live, {"series": series, "horizon": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [f["id"] for f in body["forecasts"]] == ["good"]
    assert [(e["id"], e["index"], e["type"]) for e in body["errors"]] == [
        ("text", 1, "float_type"),
        ("empty", 2, "no_values"),
        ("gap", 3, "gap_too_long"),
    ]
    strict = post(live, {"series": series, "horizon": 3, "strict": True})
    assert strict.status_code == 422
    assert [(e["id"], e["index"]) for e in strict.json()["detail"]] == [
        ("text", 1), ("empty", 2), ("gap", 3)
    ]  # fmt: skip
    malformed = httpx.post(
        live.url + "/v1/forecast",
        content=b'{"series": [',
        headers={"content-type": "application/json"},
    )
    assert malformed.status_code == 422 and malformed.json()["detail"][0]["loc"] == ["body"]


def test_a_big_mixed_request_is_answered_series_by_series(live):
    """1,000 series of 168 stamped points (prepared off the event loop), some short, some with
    nulls or gaps, some bad: every good one answered, every bad one named, in order."""
    times, values = stamps(168), wave(168)
    series = []
    for i in range(1000):
        entry: dict = {"id": f"s{i}", "history": list(values), "timestamps": times}
        if i % 10 == 1:
            entry = {"id": f"s{i}", "history": values[-(i % 50 + 1) :]}  # short: no stamps
        elif i % 10 == 2:
            entry["history"] = [None, *values[1:100], None, None, *values[102:]]
        elif i % 100 == 3:
            entry["history"] = [None] * 168
        elif i % 100 == 4:
            entry["timestamps"] = list(reversed(times))
        series.append(entry)
    r = post(live, {"series": series, "horizon": 6, "quantiles": [0.9]})
    assert r.status_code == 200, r.text[:500]
    body = r.json()
    bad = {i for i in range(1000) if i % 100 in (3, 4)}
    assert [f["index"] for f in body["forecasts"]] == [i for i in range(1000) if i not in bad]
    assert [e["index"] for e in body["errors"]] == sorted(bad)
    methods = {f["index"]: f["method"] for f in body["forecasts"]}
    assert (methods[0], methods[1], methods[11], methods[41]) == (
        "model",
        "naive",
        "model",
        "model",
    )
    filled = {f["index"]: f["filled"] for f in body["forecasts"]}
    assert filled[2] == 2 and filled[0] == 0
    assert all(np.isfinite(f["quantiles"]["0.9"]).all() for f in body["forecasts"])


def test_the_server_logged_no_error(live):
    assert "Traceback" not in Path(live.log).read_text()
