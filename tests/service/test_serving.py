"""Serving any registry honestly (issue 12), each case on a real uvicorn on 127.0.0.1: a new
registry with one non-default model, two models of different frequencies, a configured default
that is absent (start-up fails in one line, or /readyz says what it waits for), and corrupt files
of one model at start-up and at run time that never take the others down."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from forecaster.model import ModelConfig, init_params
from forecaster.registry import Registry
from tests.helpers.polling import wait_until
from tests.service.conftest import ROOT, TINY, free_port, publish, server

DAILY = ModelConfig(ensemble=1, cell="gru", hidden=8, input_size=28, horizon=7, step=7)
WATCH = {"FORECASTER_ALIAS_WATCH_INTERVAL_S": "0.2"}
JSON = {"content-type": "application/json"}


def stamps(n: int, freq: str, start: str = "2024-01-01") -> list[str]:
    return [t.isoformat() for t in pd.date_range(start, periods=n, freq=freq)]


def lines(log: Path, pattern: str) -> list[str]:
    return [line for line in log.read_text().splitlines() if re.search(pattern, line)]


@pytest.fixture(scope="module")
def jax_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One compilation cache for every server here: they serve the same shapes."""
    return tmp_path_factory.mktemp("serving-jax-cache")


def start(root: Path, tmp: Path, jax_cache: Path, ready: bool = True, **env: str):
    """A real server sharing the module's compilation cache."""
    return server(root, tmp, ready=ready, FORECASTER_COMPILATION_CACHE_DIR=str(jax_cache), **env)


# ------------------------------------------------------------------ one non-default model


@pytest.fixture(scope="module")
def daily_only(tmp_path_factory: pytest.TempPathFactory, jax_cache: Path) -> Iterator[str]:
    """A new registry whose only model is a daily one (not m4-hourly); no default configured."""
    tmp = tmp_path_factory.mktemp("daily-only")
    publish(tmp / "reg", "shop-daily", DAILY, freq="D", seasonality=7)
    with start(tmp / "reg", tmp, jax_cache) as s:
        yield s.url


def test_the_only_model_is_the_default_and_readyz_says_so(daily_only):
    ready = httpx.get(daily_only + "/readyz").json()
    assert ready["status"] == "ready" and ready["default_model"] == "shop-daily"
    assert ready["models"] == {"shop-daily": 1} and ready["missing"] == {}
    r = httpx.post(daily_only + "/v1/forecast", json={"history": [5.0] * 28, "horizon": 3})
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "shop-daily"


def test_models_show_frequency_season_window_horizon_quantiles(daily_only):
    (summary,) = httpx.get(daily_only + "/v1/models").json()
    expected = {"name": "shop-daily", "default": True, "frequency": "D", "seasonal_period": 7,
                "window": 28, "horizon": 7, "quantiles": [],
                "min_history": {"model": 28, "fallback": 1, "after_gap": 7},
                "problem": None}  # fmt: skip
    assert summary.items() >= expected.items()
    detail = httpx.get(daily_only + "/v1/models/shop-daily").json()
    assert detail.items() >= expected.items() and detail["config"]["input_size"] == 28


def test_timestamps_of_another_frequency_are_422_naming_both(daily_only):
    body = {"history": [5.0] * 28, "timestamps": stamps(28, "h"), "horizon": 3}
    r = httpx.post(daily_only + "/v1/forecast", json=body)
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["loc"] == ["body", "timestamps"] and error["type"] == "frequency_mismatch"
    assert "'h'" in error["msg"] and "'D'" in error["msg"] and "shop-daily" in error["msg"]
    body["timestamps"] = stamps(28, "D")
    r = httpx.post(daily_only + "/v1/forecast", json=body)
    assert r.status_code == 200 and r.json()["timestamps"][0] == "2024-01-29T00:00:00"


def test_newest_first_timestamps_are_refused(daily_only):
    body = {"history": [5.0] * 28, "timestamps": stamps(28, "D")[::-1], "horizon": 3}
    r = httpx.post(daily_only + "/v1/forecast", json=body)
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["loc"][:2] == ["body", "timestamps"] and "oldest first" in error["msg"]


def test_forecast_timestamps_past_the_calendar_are_422(daily_only):
    body = {"history": [5.0] * 28, "timestamps": stamps(28, "D", "9999-12-01"), "horizon": 7}
    r = httpx.post(daily_only + "/v1/forecast", json=body)
    assert r.status_code == 422, r.text
    assert "9999-12-31" in r.json()["detail"][0]["msg"] and "10000" not in r.text
    body["horizon"] = 3  # ends on 9999-12-31: writable, but no forecast is made for year 9999
    r = httpx.post(daily_only + "/v1/forecast", json=body)
    assert r.status_code == 422 and "1900 to 2199" in r.json()["detail"][0]["msg"], r.text


def test_forecasts_are_made_up_to_the_last_day_of_2199(daily_only):
    body = {"history": [5.0] * 28, "timestamps": stamps(28, "D", "2199-12-01"), "horizon": 3}
    r = httpx.post(daily_only + "/v1/forecast", json=body)
    assert r.status_code == 200 and r.json()["timestamps"][-1] == "2199-12-31T00:00:00", r.text
    body["horizon"] = 4  # 2200-01-01
    r = httpx.post(daily_only + "/v1/forecast", json=body)
    assert r.status_code == 422 and "2200-01-01" in r.json()["detail"][0]["msg"], r.text


# ------------------------------------------------------------------ two frequencies


@pytest.fixture(scope="module")
def two_frequencies(tmp_path_factory: pytest.TempPathFactory, jax_cache: Path) -> Iterator[str]:
    """An hourly and a daily model, neither called m4-hourly: no default model."""
    tmp = tmp_path_factory.mktemp("two")
    publish(tmp / "reg", "load-hourly", TINY, freq="h", seasonality=24)
    publish(tmp / "reg", "sales-daily", DAILY, freq="D", seasonality=7)
    with start(tmp / "reg", tmp, jax_cache) as s:
        yield s.url


def test_requests_without_a_model_go_to_the_model_of_their_frequency(two_frequencies):
    url = two_frequencies + "/v1/forecast"
    daily = {"history": [5.0] * 60, "timestamps": stamps(60, "D"), "horizon": 2}
    hourly = {"history": [5.0] * 60, "timestamps": stamps(60, "h"), "horizon": 2}
    assert httpx.post(url, json=daily).json()["model"] == "sales-daily"
    assert httpx.post(url, json=hourly).json()["model"] == "load-hourly"
    many = {"series": [{"history": [1.0] * 60, "timestamps": stamps(60, "D")}] * 3, "horizon": 2}
    assert httpx.post(url, json=many).json()["model"] == "sales-daily"


def test_without_model_or_timestamps_the_422_lists_the_served_models(two_frequencies):
    ready = httpx.get(two_frequencies + "/readyz")
    assert ready.status_code == 200 and ready.json()["default_model"] is None
    r = httpx.post(two_frequencies + "/v1/forecast", json={"history": [5.0] * 60, "horizon": 2})
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["loc"] == ["body", "model"]
    assert "load-hourly" in error["msg"] and "sales-daily" in error["msg"]
    models = httpx.get(two_frequencies + "/v1/models").json()
    assert [(m["name"], m["frequency"], m["default"]) for m in models] == [
        ("load-hourly", "h", False),
        ("sales-daily", "D", False),
    ]


# ------------------------------------------------------------------ an absent default


def test_an_absent_default_fails_start_up_in_one_line(tmp_path):
    publish(tmp_path / "reg", "shop-daily", DAILY, freq="D", seasonality=7)
    cmd = [sys.executable, "-m", "forecaster.cli", "serve", "--registry", str(tmp_path / "reg")]
    cmd += ["--port", str(free_port()), "--default-model", "nope"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORECASTER_")}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    (line,) = lines_of(output, "'nope'")
    assert "not in the registry" in line and "shop-daily" in line and "WAIT_FOR_MODELS" in line


def lines_of(text: str, pattern: str) -> list[str]:
    return [line for line in text.splitlines() if re.search(pattern, line)]


def test_waiting_for_an_absent_default_names_it_until_it_arrives(tmp_path, jax_cache):
    root = tmp_path / "reg"
    publish(root, "shop-daily", DAILY, freq="D", seasonality=7)
    env = {"FORECASTER_DEFAULT_MODEL": "later", "FORECASTER_WAIT_FOR_MODELS": "true", **WATCH}
    with start(root, tmp_path, jax_cache, ready=False, **env) as s:
        wait_until(
            lambda: httpx.get(s.url + "/readyz").json()["status"] != "loading",
            message="the service never finished loading",
        )
        r = httpx.get(s.url + "/readyz")
        assert r.status_code == 503
        body = r.json()
        assert body["missing"] == {"later": "not in the registry"}
        assert "'later'" in body["detail"] and "not in the registry" in body["detail"]
        assert body["models"] == {"shop-daily": 1}
        publish(root, "later", DAILY, freq="D", seasonality=7)
        wait_until(
            lambda: httpx.get(s.url + "/readyz").status_code == 200,
            message="the service never became ready",
        )
        r = httpx.post(s.url + "/v1/forecast", json={"history": [1.0] * 28, "horizon": 1})
        assert r.json()["model"] == "later"


# ------------------------------------------------------------------ one bad model


def replace(path: Path, data: bytes) -> None:
    """Write ``path`` atomically, so the watcher never reads it half written."""
    temp = path.with_name(path.name + ".tmp")
    temp.write_bytes(data)
    os.replace(temp, path)


def corrupt_aliases(root: Path, name: str) -> bytes:
    """Overwrite ``name``'s aliases.json with garbage; return what it held."""
    path = root / name / "aliases.json"
    good = path.read_bytes()
    replace(path, b"{not json")
    return good


def move_alias(root: Path, name: str, version: int) -> None:
    """Point production at ``version`` by hand, as an operator (or a broken tool) might."""
    path = root / name / "aliases.json"
    data = json.loads(path.read_text())
    data["aliases"]["production"] = version
    replace(path, json.dumps(data).encode())


def failures(url: str, model: str) -> float:
    text = httpx.get(url + "/metrics").text
    found = re.search(rf'forecaster_model_load_failures_total{{model="{model}"}} (\S+)', text)
    return float(found.group(1)) if found else 0.0


def forecast_version(url: str, model: str) -> int:
    r = httpx.post(url + "/v1/forecast", json={"history": [1.0] * 48, "horizon": 1, "model": model})
    assert r.status_code == 200, r.text
    return r.json()["version"]


def test_a_corrupt_alias_file_at_start_up_is_skipped_then_picked_up(tmp_path, jax_cache):
    root = tmp_path / "reg"
    publish(root, "good", TINY, freq="h")
    publish(root, "bad", TINY, freq="h")
    good_aliases = corrupt_aliases(root, "bad")
    with start(root, tmp_path, jax_cache, **WATCH) as s:
        ready = httpx.get(s.url + "/readyz").json()  # 200: nobody asked for "bad" by name
        assert ready["models"] == {"good": 1} and set(ready["missing"]) == {"bad"}
        assert (
            "aliases.json" in ready["missing"]["bad"] and str(root) not in ready["missing"]["bad"]
        )
        assert forecast_version(s.url, "good") == 1
        models = {m["name"]: m for m in httpx.get(s.url + "/v1/models").json()}
        assert models["bad"]["production"] is None and "aliases.json" in models["bad"]["problem"]
        # The behaviour under test: five watcher polls meet the same broken file, one line.
        time.sleep(1.0)
        (line,) = lines(s.log, r"model bad:")
        assert "aliases.json" in line and "corrupt" in line
        assert failures(s.url, "bad") == 1.0

        replace(root / "bad" / "aliases.json", good_aliases)
        wait_until(
            lambda: httpx.get(s.url + "/readyz").json()["models"] == {"good": 1, "bad": 1},
            message="the mended model was never picked up",
        )
        assert httpx.get(s.url + "/readyz").json()["missing"] == {}
        assert lines(s.log, r"model bad: serving version 1")
        assert "Traceback" not in s.log.read_text()


def test_corrupt_files_at_run_time_and_their_retries(tmp_path, jax_cache):
    root = tmp_path / "reg"
    publish(root, "good", TINY, freq="h")
    publish(root, "other", TINY, freq="h")
    registry = Registry(root)
    with start(root, tmp_path, jax_cache, FORECASTER_DEFAULT_MODEL="other", **WATCH) as s:
        # An unreadable alias file: the version already loaded serves on; nothing else moves.
        saved = corrupt_aliases(root, "good")
        wait_until(
            lambda: bool(lines(s.log, r"model good: .*aliases")),
            message="the broken aliases file was never logged",
        )
        assert forecast_version(s.url, "good") == 1 and forecast_version(s.url, "other") == 1
        model = httpx.get(s.url + "/v1/models/good").json()
        assert model["loaded_version"] == 1 and "aliases.json" in model["problem"]
        assert httpx.get(s.url + "/readyz").status_code == 200
        replace(root / "good" / "aliases.json", saved)

        # A version with corrupt weights: logged once, the old version serves, ...
        v2 = registry.publish("good", TINY, init_params(TINY, 2))
        weights = root / "good" / str(v2) / "weights.safetensors"
        intact = weights.read_bytes()
        replace(weights, b"corrupt")
        move_alias(root, "good", v2)
        wait_until(
            lambda: bool(lines(s.log, rf"model good: version {v2} failed to load")),
            message="the broken version was never logged",
        )
        time.sleep(1.0)  # the behaviour under test: more polls, and still that one line
        assert len(lines(s.log, rf"model good: version {v2} failed")) == 1
        assert forecast_version(s.url, "good") == 1
        # ... tried again when the alias moves again (here to a good version, v3) ...
        v3 = registry.publish("good", TINY, init_params(TINY, 3), promote=True)
        wait_until(
            lambda: forecast_version(s.url, "good") == v3, message="version 3 was never served"
        )
        move_alias(root, "good", v2)  # back to the broken one: a new attempt, a new line
        wait_until(
            lambda: len(lines(s.log, rf"model good: version {v2} failed")) == 2,
            message="the second attempt was never logged",
        )
        assert forecast_version(s.url, "good") == v3
        # ... and when its files change: repaired, it is picked up without a restart.
        replace(weights, intact)
        wait_until(
            lambda: forecast_version(s.url, "good") == v2,
            message="the mended version 2 was never served",
        )
        assert failures(s.url, "good") == 3.0  # the alias file once, version 2 twice
        assert lines(s.log, rf"model good: serving version {v2} \(was version {v3}\)")
        assert "Traceback" not in s.log.read_text()


def test_readyz_waits_for_a_broken_model_only_when_asked_for(tmp_path, jax_cache):
    root = tmp_path / "reg"
    publish(root, "good", TINY, freq="h")
    publish(root, "bad", TINY, freq="h")
    corrupt_aliases(root, "bad")
    env = {"FORECASTER_MODELS": '["good", "bad"]'}
    with start(root, tmp_path, jax_cache, ready=False, **env) as s:
        wait_until(
            lambda: httpx.get(s.url + "/readyz").json()["status"] != "loading",
            message="the service never finished loading",
        )
        r = httpx.get(s.url + "/readyz")
        assert r.status_code == 503
        assert "'bad'" in r.json()["detail"] and "aliases.json" in r.json()["detail"]
        assert forecast_version(s.url, "good") == 1


# ------------------------------------------------------------------ a big timestamped request


def loop_cpu_ms(pid: int) -> float:
    """CPU time of the server's main thread, which runs the event loop."""
    return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[0]) / 1e6


def process_cpu_ms(pid: int) -> float:
    """CPU time of every thread of the server."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def test_a_big_timestamped_request_leaves_the_loop_to_others(tmp_path, jax_cache):
    """1,000 series x 168 timestamps are parsed, continued and rendered mostly off the event
    loop, and another client's one-series requests keep being answered while such requests are
    sent back to back. (The speed goals themselves, under 100 ms of event-loop time per big
    request and a one-series p99 under 50 ms beside them, are measured by
    ``benchmarks/load_test.py --big-request``: timings belong in benchmarks, not tests.)"""
    root = tmp_path / "reg"
    publish(root, "load", TINY, freq="h", seasonality=24)
    series = [{"history": [float(i % 24) + s for i in range(168)], "timestamps": stamps(168, "h")}
              for s in range(1000)]  # fmt: skip
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"series": series, "horizon": TINY.horizon}))
    one = {"history": [float(i % 24) for i in range(48)], "horizon": 4}
    with start(root, tmp_path, jax_cache) as s:
        curl = ["curl", "-sf", "-o", "/dev/null", "-H", "content-type: application/json"]
        curl += ["--data-binary", f"@{big}", s.url + "/v1/forecast"]
        answer = httpx.post(s.url + "/v1/forecast", content=big.read_bytes(), headers=JSON)
        assert answer.status_code == 200 and len(answer.json()["forecasts"]) == 1000
        assert answer.json()["forecasts"][999]["timestamps"][0] == "2024-01-08T00:00:00"
        pid = s.process.pid
        loop, total = loop_cpu_ms(pid), process_cpu_ms(pid)
        for _ in range(3):
            subprocess.run(curl, check=True, timeout=60)
        loop, total = loop_cpu_ms(pid) - loop, process_cpu_ms(pid) - total
        # Done on the loop, the whole request would cost the loop most of its CPU.
        assert loop < 0.5 * total, f"event loop {loop:.0f} ms of {total:.0f} ms"
        answered = answered_beside(s.url, curl, one)
        assert answered >= 10, f"only {answered} one-series forecasts answered in 3 s"


def answered_beside(url: str, curl: list[str], one: dict) -> int:
    """One-series forecasts answered (each must succeed) over 3 s while ``curl`` sends big
    requests back to back from another process (which takes no GIL from this client)."""
    stop = threading.Event()

    def flood() -> None:
        for _ in range(100):  # bounded, whatever happens
            if stop.is_set():
                return
            subprocess.run(curl, check=True, timeout=60)

    flooder = threading.Thread(target=flood)
    flooder.start()
    answered = 0
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                assert client.post("/v1/forecast", json=one).status_code == 200
                answered += 1
    finally:
        stop.set()
        flooder.join(120)
    return answered
