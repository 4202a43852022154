"""The web console in a real headless Chromium (Debian's, through its chromedriver) against a
real uvicorn server: each view loads, a pasted series is forecast and the chart plots exactly
the API's answer, bad input gets a message naming the problem, and the browser logs no error.
Screenshots go to build/console/ (CI keeps them). Skips when chromedriver is not installed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from forecaster.covariates import Column, CovariateSpec
from forecaster.model import ModelConfig, init_params
from forecaster.registry import Registry
from service.routes.console import CSP
from tests.helpers.polling import wait_until
from tests.service.conftest import API_KEY, ROOT, Server, server

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMEDRIVER is None or CHROMIUM is None,
    reason="needs Debian's chromium and chromedriver (.ci/run installs them)",
)
SHOTS = ROOT / "build" / "console"
HOURLY = ModelConfig(
    ensemble=1,
    cell="gru",
    hidden=8,
    input_size=48,
    horizon=12,
    step=24,
    quantiles=(0.025, 0.1, 0.5, 0.9, 0.975),
)
DRIVEN = ModelConfig(
    ensemble=1,
    cell="gru",
    hidden=8,
    input_size=48,
    horizon=12,
    step=24,
    past_features=1,
    future_features=1,
)


def pasted_csv(series: str = "shop-1", n: int = 96) -> str:
    stamps = np.datetime64("2024-03-01T00", "h") + np.arange(n)
    values = 100 + 10 * np.sin(np.arange(n) * 2 * np.pi / 24)
    rows = [
        f"{series},{str(t).replace('T', ' ')}:00:00,{v:.4f}"
        for t, v in zip(stamps, values, strict=True)
    ]
    return "id,timestamp,value\n" + "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("console")
    registry = Registry(tmp / "reg")
    for version, promote in ((1, True), (2, False)):  # v2 waits for the admin test
        registry.publish(
            "hourly",
            HOURLY,
            init_params(HOURLY, version),
            promote=promote,
            freq="h",
            seasonality=24,
            metrics={"smape": 12.0 - version},
        )
    spec = CovariateSpec((Column("load", "future", mean=50.0, std=10.0),))
    registry.publish(
        "driven",
        DRIVEN,
        init_params(DRIVEN, 0),
        promote=True,
        freq="h",
        seasonality=24,
        covariates=spec,
    )
    # One batch shape: every request here is one series, and start-up compiles less.
    with server(
        tmp / "reg", tmp, FORECASTER_DEFAULT_MODEL="hourly", FORECASTER_BATCH_SIZES="[1]"
    ) as s:
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1366,900",
        "--disable-dev-shm-usage",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_script_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def open_view(driver, site: Server, view: str) -> None:
    """A fresh load of the page at ``#view`` (``view?model=NAME`` too), once it has loaded."""
    driver.get("about:blank")
    driver.get(f"{site.url}/#{view}")
    name = view.split("?")[0]
    wait_until(
        lambda: driver.execute_script("return document.body.dataset.view") == name,
        timeout=20,
        message=f"the {view} view did not load",
    )


def message(driver) -> str:
    return driver.execute_script(
        "const m = document.getElementById('message'); return m.hidden ? '' : m.textContent"
    )


def console_errors(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def shot(driver, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def submit(driver, model: str, csv: str) -> None:
    driver.execute_script(
        "document.getElementById('fc-model').value = arguments[0];"
        "document.getElementById('fc-csv').value = arguments[1];"
        "window.consoleState.answer = null;",
        model,
        csv,
    )
    driver.find_element("id", "fc-submit").click()


def test_the_page_is_served_with_a_strict_policy(site: Server) -> None:
    page = httpx.get(site.url + "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert page.headers["content-security-policy"] == CSP
    assert "unsafe-inline" not in CSP and "script-src 'self'" in CSP
    assert "<script>" not in page.text and " style=" not in page.text  # nothing inline
    for path in ("/console/app.js", "/console/vendor/uPlot.iife.min.js"):
        asset = httpx.get(site.url + path)
        assert asset.status_code == 200 and asset.headers["content-security-policy"] == CSP


def test_each_view_loads_without_console_errors(browser, site: Server) -> None:
    for view in ("models", "forecast", "accuracy"):
        open_view(browser, site, view)
        assert message(browser) == "", message(browser)
        shot(browser, view)
        if view == "models":
            table = browser.find_element("id", "models-table").text
            assert "hourly" in table and "driven" in table and "load (future)" in table
    assert console_errors(browser) == []


def test_a_pasted_series_is_plotted_exactly_as_the_api_answers(browser, site: Server) -> None:
    open_view(browser, site, "forecast")
    submit(browser, "hourly", pasted_csv())
    wait_until(
        lambda: (
            browser.execute_script("return window.consoleState.answer") is not None
            or message(browser)
        ),
        timeout=20,
        message="no answer",
    )
    assert message(browser) == ""
    request = browser.execute_script("return window.consoleState.request")
    assert request["levels"] == [80, 95] and request["horizon"] == 12
    answer = httpx.post(site.url + "/v1/forecast", json=request).json()["forecasts"][0]
    plotted = browser.execute_script(
        "const u = window.consoleCharts['fc-chart'];"
        "return {data: u.data, labels: u.series.map(s => s.label)}"
    )
    data, labels = plotted["data"], plotted["labels"]
    n = len(request["series"][0]["history"])
    assert data[1][:n] == request["series"][0]["history"]
    assert np.allclose(data[2][n:], answer["forecast"], rtol=1e-6)
    for level in ("80", "95"):
        band = answer["intervals"][level]
        assert np.allclose(data[labels.index(f"upper {level}%")][n:], band["upper"], rtol=1e-6)
        assert np.allclose(data[labels.index(f"lower {level}%")][n:], band["lower"], rtol=1e-6)
    assert data[0][n] - data[0][n - 1] == 3600  # hourly stamps on the x axis, in seconds
    assert "method: model" in browser.find_element("id", "fc-info").text
    shot(browser, "forecast-pasted")
    assert console_errors(browser) == []


@pytest.mark.parametrize(
    ("model", "csv", "named"),
    [
        ("hourly", "id,when,amount,colour\na,2024-01-01,1,red\n", "no value column"),
        (
            "hourly",
            "id,timestamp,value\na,2024-01-01 00:00,1\na,2024-01-01 01:00,abc\n",
            "row 3, column 'value': 'abc' is not a number",
        ),
        ("hourly", "value,price\n1,2\n", "column 'price' is not a covariate of model hourly"),
        ("nope", "value\n1\n2\n", "no model named 'nope'"),
        ("driven", pasted_csv(), "needs the future covariate 'load'"),
    ],
    ids=["wrong-columns", "text-value", "unknown-column", "unknown-model", "missing-covariate"],
)
def test_bad_input_gets_a_message_naming_the_problem(
    browser, site: Server, model: str, csv: str, named: str
) -> None:
    open_view(browser, site, "forecast")
    submit(browser, model, csv)
    wait_until(lambda: message(browser), timeout=20, message="no message shown")
    assert named in message(browser)
    assert browser.execute_script("return window.consoleCharts['fc-chart']") is None  # no chart
    shot(browser, f"bad-{model}")
    # The only thing logged, if anything: the browser noting the API's 4xx answer.
    assert all(e["source"] == "network" for e in console_errors(browser))


def test_a_model_with_future_covariates_reads_them_from_the_rows_after_the_history(
    browser, site: Server
) -> None:
    rows = pasted_csv().strip().splitlines()
    body = [f"{r},{50 + k % 7}" for k, r in enumerate(rows[1:])]
    future = [f"shop-1,2024-03-05 {h:02d}:00:00,,{60 + h}" for h in range(6)]
    open_view(browser, site, "forecast")
    submit(browser, "driven", "\n".join([rows[0] + ",load", *body, *future]))
    wait_until(
        lambda: (
            browser.execute_script("return window.consoleState.answer") is not None
            or message(browser)
        ),
        timeout=20,
        message="no answer",
    )
    assert message(browser) == ""
    request = browser.execute_script("return window.consoleState.request")
    sent = request["series"][0]
    assert request["horizon"] == 6 and sent["future_covariates"] == {"load": list(range(60, 66))}
    assert len(sent["past_covariates"]["load"]) == len(sent["history"]) == 96
    answer = browser.execute_script("return window.consoleState.answer")
    assert (
        answer["forecasts"][0]["method"] == "model" and len(answer["forecasts"][0]["forecast"]) == 6
    )


def test_live_accuracy_plots_the_api_s_timeline_and_a_series(browser, site: Server) -> None:
    rows = [r.split(",") for r in pasted_csv("shop-2").strip().splitlines()[1:]]
    body = {
        "model": "hourly",
        "levels": [80, 95],
        "horizon": 12,
        "series": [
            {
                "id": "shop-2",
                "history": [float(r[2]) for r in rows],
                "timestamps": [r[1] for r in rows],
            }
        ],
    }
    made = httpx.post(site.url + "/v1/forecast", json=body).json()["forecasts"][0]
    wait_until(
        lambda: "shop-2" in httpx.get(site.url + "/v1/series").text,
        timeout=20,
        message="the forecast was not recorded",
    )
    truth = [y * 1.02 for y in made["forecast"]]
    posted = httpx.post(
        site.url + "/v1/actuals",
        headers={"X-API-Key": API_KEY},
        json={"series": [{"id": "shop-2", "timestamps": made["timestamps"], "values": truth}]},
    )
    assert posted.json()["matched"] == 12
    open_view(browser, site, "accuracy?model=hourly")
    wait_until(
        lambda: browser.execute_script("return !!window.consoleCharts['acc-series-chart']"),
        timeout=20,
        message="no series chart",
    )
    assert message(browser) == ""
    timeline = httpx.get(site.url + "/v1/models/hourly/accuracy/timeline?every=day").json()
    chart = browser.execute_script(
        "const u = window.consoleCharts['acc-mase'];"
        "return {data: u.data, labels: u.series.map(s => s.label)}"
    )
    mase = [
        w["versions"][0]["overall"]["model"]["mase"] if w["versions"] else None
        for w in timeline["windows"]
    ]
    naive = [
        w["versions"][0]["overall"]["seasonal_naive"]["mase"] if w["versions"] else None
        for w in timeline["windows"]
    ]
    assert chart["data"][chart["labels"].index("v1 MASE")] == mase
    assert chart["data"][chart["labels"].index("v1 seasonal naive")] == naive
    assert set(chart["data"][chart["labels"].index("MASE = 1")]) == {1}
    series = browser.execute_script(
        "const u = window.consoleCharts['acc-series-chart'];"
        "return {data: u.data, labels: u.series.map(s => s.label)}"
    )
    actual = [y for y in series["data"][series["labels"].index("actual")] if y is not None]
    assert np.allclose(actual, truth)
    shot(browser, "accuracy-live")
    assert console_errors(browser) == []


def test_admin_actions_need_the_key_typed_into_the_page(browser, site: Server) -> None:
    open_view(browser, site, "models?model=hourly")
    promote = browser.find_element("xpath", "//button[text()='Promote v2']")
    promote.click()
    wait_until(lambda: message(browser), timeout=10, message="no message")
    assert "admin key" in message(browser)
    key = browser.find_element("id", "admin-key")
    key.send_keys("wrong")
    promote.click()
    wait_until(
        lambda: "wrong API key" in message(browser), timeout=10, message=lambda: message(browser)
    )
    key.clear()
    key.send_keys(API_KEY)
    browser.find_element("xpath", "//button[text()='Promote v2']").click()
    wait_until(
        lambda: "now serving version 2" in message(browser),
        timeout=30,
        message=lambda: message(browser),
    )
    assert httpx.get(site.url + "/v1/models/hourly").json()["loaded_version"] == 2
    browser.find_element("xpath", "//button[text()='Roll hourly back']").click()
    wait_until(
        lambda: "now serving version 1" in message(browser),
        timeout=30,
        message=lambda: message(browser),
    )
    stored = browser.execute_script(
        "return JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie"
    )
    assert API_KEY not in stored
    assert API_KEY not in httpx.get(site.url + "/console/app.js").text


def test_the_views_are_reached_by_keyboard_and_fit_a_laptop_s_width(browser, site: Server) -> None:
    """Tab reaches the view links and Enter follows one; at 1280 pixels the page itself does
    not scroll sideways (wide tables scroll in their own box)."""
    from selenium.webdriver.common.keys import Keys

    browser.get_log("browser")  # what earlier tests left (the admin test's expected 401s)
    open_view(browser, site, "models")
    body = browser.find_element("tag name", "body")
    body.send_keys(Keys.TAB)
    reached = []
    for _ in range(10):
        focused = browser.switch_to.active_element
        reached.append(focused.get_attribute("id"))
        if reached[-1] == "tab-forecast":
            focused.send_keys(Keys.ENTER)
            break
        focused.send_keys(Keys.TAB)
    assert "tab-forecast" in reached, reached
    wait_until(
        lambda: browser.execute_script("return document.body.dataset.view") == "forecast",
        timeout=20,
        message="Enter on the Forecast link did not open its view",
    )
    browser.set_window_size(1280, 800)
    try:
        for view in ("models", "forecast", "accuracy"):
            open_view(browser, site, view)
            overflow = browser.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, (view, overflow)
    finally:
        browser.set_window_size(1366, 900)
    assert console_errors(browser) == []
