"""The web console replaying EPF's test period: NP's day-ahead prices served day by day.

    .venv/bin/python -m benchmarks.console_replay [--days 28] [--steps 600] [--shots DIR]

A small univariate model is trained on NP's prices before the test period (a short training:
``--steps`` optimiser steps, quantile heads for the 80% and 95% intervals; a demonstration, not
the tuned model of ``docs/results/epf.md``), published to a throwaway registry and served by a
real ``forecaster serve``. Then, for each of the test period's first ``--days`` days: the day's
24 prices are forecast over HTTP (series id ``NP``, eight weeks of history, intervals 80 and 95),
and the day's actual prices are posted back, so live accuracy builds up as it would in
production. Finally Debian's chromium (Selenium) opens the console and saves screenshots of its
views into ``--shots`` (``docs/results/console/`` by default; the page ``docs/guide/console.md``
shows them). Prints one JSON line: the replay's size, its CPU-seconds and the live accuracy the
console shows.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from benchmarks.soak import start_server, stop_server
from forecaster import data
from forecaster.configs import ModelConfig, build_configs, data_facts
from forecaster.registry import Registry
from forecaster.train import fit

ROOT = Path(__file__).resolve().parents[1]
NP_CSV = ROOT.parent / "shared" / "data" / "epf" / "NP.csv"
DAY, TEST_DAYS, CONTEXT = 24, 728, 8 * 7 * 24
MODEL = "epf-np"
QUANTILES = (0.025, 0.1, 0.5, 0.9, 0.975)
KEY = "replay-admin-key"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=28, help="test days replayed")
    p.add_argument("--steps", type=int, default=600, help="training steps (a short training)")
    p.add_argument("--shots", type=Path, default=ROOT / "docs" / "results" / "console")
    p.add_argument("--no-shots", action="store_true", help="replay only")
    return p.parse_args()


def train(frame: pd.DataFrame, end: int, steps: int) -> tuple[ModelConfig, Any, dict[str, Any]]:
    values = frame["value"].to_numpy(np.float64)[:end]
    series = data.SeriesSet(["NP"], [values], freq="h", end=[frame.index[end - 1]])
    model, train_cfg = build_configs(
        {"horizon": DAY, "quantiles": QUANTILES}, {"steps": steps}, "replay", **data_facts(series)
    )
    cpu = time.process_time()
    result = fit(series, model, train_cfg, progress=False)
    facts = {
        "train_steps": steps,
        "train_cpu_s": round(time.process_time() - cpu, 1),
        "val": {k: round(float(result.val_metrics[k]), 4) for k in ("mae", "smape", "mase")},
    }
    return result.config, result.params, facts | {"metrics": result.val_metrics}


def stamps(times: pd.DatetimeIndex) -> list[str]:
    return [t.strftime("%Y-%m-%dT%H:%M:%S") for t in times]


def replay(url: str, frame: pd.DataFrame, start: int, days: int) -> dict:
    """Forecast each day, then post its actuals; after the first forecast, the week before it
    is posted as actuals too (the service keeps actuals of series it has forecast), so the
    series view has some history to show."""
    values, times = frame["value"].to_numpy(np.float64), frame.index
    key = {"X-API-Key": KEY}
    with httpx.Client(base_url=url, timeout=60) as http:
        matched = 0
        for d in range(days):
            if d == 1:
                week = slice(start - 7 * DAY, start)
                week_body = {"id": "NP", "timestamps": stamps(times[week]),
                             "values": values[week].tolist()}  # fmt: skip
                http.post("/v1/actuals", headers=key, json={"series": [week_body]})
            at = start + d * DAY
            body = {
                "model": MODEL,
                "horizon": DAY,
                "levels": [80, 95],
                "series": [
                    {
                        "id": "NP",
                        "history": values[at - CONTEXT : at].tolist(),
                        "timestamps": stamps(times[at - CONTEXT : at]),
                    }
                ],
            }
            http.post("/v1/forecast", json=body).raise_for_status()
            _wait_recorded(http, d + 1)
            day = slice(at, at + DAY)
            posted = http.post(
                "/v1/actuals",
                headers=key,
                json={
                    "series": [
                        {
                            "id": "NP",
                            "timestamps": stamps(times[day]),
                            "values": values[day].tolist(),
                        }
                    ]
                },
            )
            posted.raise_for_status()
            matched += posted.json()["matched"]
        accuracy = http.get(f"/v1/models/{MODEL}/accuracy").json()["versions"][0]["overall"]
    return {
        "days": days,
        "forecasts": days,
        "matched_points": matched,
        "first_day": str(times[start].date()),
        "live": {
            "points": accuracy["points"],
            "mase": accuracy["model"]["mase"],
            "seasonal_naive_mase": accuracy["seasonal_naive"]["mase"],
            "smape": accuracy["model"]["smape"],
            "coverage": {k: v["coverage"] for k, v in accuracy["levels"].items()},
        },
    }


def _wait_recorded(http: httpx.Client, count: int) -> None:
    """Until the service's recorder has written ``count`` forecasts of NP (it writes in the
    background; actuals posted before their forecast is stored would match nothing)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listed = http.get("/v1/series", params={"model": MODEL}).json()
        if listed and listed[0]["forecasts"] >= count:
            return
        time.sleep(0.05)
    sys.exit("the service did not record the forecast within 30 s")


def screenshots(url: str, out: Path) -> list[str]:
    """The console's views as PNGs (a 1280-pixel-wide window; palette PNGs to keep them small)."""
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1280,1000",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    out.mkdir(parents=True, exist_ok=True)
    saved = []

    def view(fragment: str, ready: str) -> None:
        driver.get("about:blank")
        driver.get(f"{url}/#{fragment}")
        _until(lambda: driver.execute_script(ready), f"the view {fragment} did not load")

    def save(name: str, height: int = 1000) -> None:
        driver.set_window_size(1280, height)
        time.sleep(0.3)  # uPlot redraws on resize
        path = out / f"{name}.png"
        driver.save_screenshot(str(path))
        Image.open(path).convert("RGB").quantize(64).save(path, optimize=True)
        saved.append(path.name)

    try:
        view(f"models?model={MODEL}", "return document.body.dataset.view === 'models'")
        save("models", 520)
        view(f"forecast?model={MODEL}", "return document.body.dataset.view === 'forecast'")
        driver.execute_script(
            "const s = document.getElementById('fc-recent');"
            "s.value = 'NP'; s.dispatchEvent(new Event('change'));"
        )
        _until(
            lambda: driver.execute_script(
                "return document.getElementById('fc-csv').value.length > 0"
            ),
            "no CSV filled in",
        )
        driver.find_element("id", "fc-submit").click()
        _until(
            lambda: driver.execute_script("return !!window.consoleCharts['fc-chart']"),
            "no forecast chart",
        )
        save("forecast", 900)
        view(f"accuracy?model={MODEL}", "return !!window.consoleCharts['acc-series-chart']")
        save("accuracy", 1000)
        driver.execute_script("document.getElementById('acc-coverage').scrollIntoView()")
        save("accuracy-series", 1000)
    finally:
        driver.quit()
    return saved


def _until(check, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            sys.exit(what)
        time.sleep(0.1)


def main() -> int:
    args = parse_args()
    if not NP_CSV.exists():
        sys.exit(f"{NP_CSV} is missing (the EPF data set, ../shared/data/epf)")
    frame = pd.read_csv(NP_CSV, parse_dates=["timestamp"]).set_index("timestamp")
    start = len(frame) - TEST_DAYS * DAY
    wall, cpu = time.perf_counter(), time.process_time()
    config, params, facts = train(frame, start, args.steps)
    metrics = facts.pop("metrics")
    with tempfile.TemporaryDirectory(prefix="console-replay-") as tmp:
        registry = Path(tmp) / "registry"
        Registry(registry).publish(
            MODEL,
            config,
            params,
            promote=True,
            freq="h",
            seasonality=DAY,
            metrics=metrics,
        )
        server, url, _ = start_server(
            registry,
            MODEL,
            Path(tmp),
            FORECASTER_ADMIN_API_KEY=KEY,
            FORECASTER_RECORD_FLUSH_S="0.05",
        )
        try:
            line = {"benchmark": "console_replay", "market": "NP", **facts}
            line |= replay(url, frame, start, args.days)
            if not args.no_shots:
                line["screenshots"] = screenshots(url, args.shots)
        finally:
            stop_server(server)
    line |= {
        "client_cpu_s": round(time.process_time() - cpu, 1),
        "wall_s": round(time.perf_counter() - wall, 1),
    }
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
