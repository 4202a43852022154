"""The Python client against the real service (a uvicorn process on 127.0.0.1, and in-process),
and against tiny stand-ins that answer 503 first, answer late, or refuse.

The model has random weights: these tests check plumbing (shapes, indexes, ordering, errors,
retries), never forecast quality.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import anyio.from_thread
import httpx
import numpy as np
import pandas as pd
import pytest

from forecaster.client import (
    AsyncForecastClient,
    ForecastAPIError,
    ForecastClient,
    ForecastTimeout,
    InvalidRequest,
    ModelNotFound,
    RetryPolicy,
    SeriesFailed,
    ServiceUnavailable,
    Unauthorized,
    parse_retry_after,
)
from forecaster.client.bodies import as_input
from forecaster.client.facts import check_frequencies, service_default
from forecaster.schemas import MinHistory, ModelDetail, ModelSummary
from service.app import create_app
from tests.client.helpers import (
    CONFIG,
    MODEL,
    SyncASGITransport,
    free_port,
    publish_tiny,
    running_app,
    service_settings,
    uvicorn_server,
)
from tests.client.stand_ins import Counter, fixed_app, flaky_app

TESTS = Path(__file__).resolve().parents[1]
H = CONFIG.horizon
N = CONFIG.input_size
LIVE_BODY_LIMIT = 64 * 1024
QUICK = RetryPolicy(retries=3, backoff=0.01, jitter=0.0)


def hourly(n: int = 60, start: str = "2024-01-01", seed: int = 0, tz: str | None = None):
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    values = 100 + 10 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1, n)
    return pd.Series(values, index=pd.date_range(start, periods=n, freq="h", tz=tz), name="load")


class Requests:
    """An httpx event hook that records each request's method and path."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, request: httpx.Request) -> None:
        self.seen.append(f"{request.method} {request.url.path}")

    def count(self, what: str) -> int:
        return sum(s == what for s in self.seen)


def counted(base_url: str, **kwargs: object) -> tuple[ForecastClient, Requests]:
    hook = Requests()
    http = httpx.Client(base_url=base_url, event_hooks={"request": [hook]})
    return ForecastClient(http_client=http, **kwargs), hook  # type: ignore[arg-type]


# --- fixtures: the real service -----------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return publish_tiny(tmp_path_factory.mktemp("client-registry"))


@pytest.fixture(scope="module")
def live(registry: Path) -> Iterator[str]:
    """``uvicorn service.app:app`` on a free port, ready; a 64 KiB body limit."""
    env = {
        "FORECASTER_REGISTRY": str(registry),
        "FORECASTER_DEFAULT_MODEL": MODEL,
        "FORECASTER_BATCH_SIZES": "[1, 4, 16]",
        "FORECASTER_ALIAS_WATCH_INTERVAL_S": "0",
        "FORECASTER_COMPILATION_CACHE_DIR": str(registry.parent / "jax-cache"),
        "FORECASTER_MAX_BODY_BYTES": str(LIVE_BODY_LIMIT),
    }
    with uvicorn_server("service.app:app", env) as url:
        with ForecastClient(url) as client:
            client.wait_ready(timeout=120)
        yield url


@pytest.fixture()
def client(live: str) -> Iterator[ForecastClient]:
    with ForecastClient(live, max_body_bytes=LIVE_BODY_LIMIT) as c:
        yield c


@pytest.fixture(scope="module")
def inproc(registry: Path) -> Iterator[tuple[object, anyio.from_thread.BlockingPortal]]:
    """The service in this process (no socket): its app and the loop it runs on."""
    app = create_app(service_settings(registry))
    with running_app(app) as portal:
        yield app, portal


# --- the real service over HTTP ----------------------------------------------------------------


def test_forecast_accepts_list_array_and_series_and_indexes_by_step(client: ForecastClient):
    values = hourly().to_numpy()
    frames = [
        client.forecast(values.tolist(), horizon=5),
        client.forecast(values, horizon=5),
        client.forecast(pd.Series(values), horizon=5),
    ]
    for frame in frames:
        # The model's heads bound an 80% interval: every answer carries it (uncalibrated here).
        assert list(frame.columns) == ["forecast", "lower_80", "upper_80"]
        assert frame.attrs["calibrated"] is False
        assert frame.index.name == "step"
        assert frame.index.tolist() == [1, 2, 3, 4, 5]
        assert np.isfinite(frame["forecast"]).all()
        pd.testing.assert_frame_equal(frame, frames[0])


def test_horizon_defaults_to_the_models_and_quantiles_become_columns(client: ForecastClient):
    frame = client.forecast(hourly(), quantiles=[0.1, 0.9])
    assert len(frame) == H
    assert list(frame.columns) == ["forecast", "q0.1", "q0.9", "lower_80", "upper_80"]
    assert np.isfinite(frame.to_numpy()).all()
    np.testing.assert_allclose(frame["lower_80"], frame["q0.1"])
    assert list(client.forecast(hourly(), quantiles=[0.9], levels=[]).columns) == [
        "forecast", "q0.9"
    ]  # fmt: skip


def test_a_horizon_beyond_the_models_is_sent_and_rolled_forward_by_the_service(
    client: ForecastClient,
):
    """The client refuses no horizon locally: the service rolls the model forward (issue 34,
    item 5) up to its limit, which it names beyond."""
    assert client.model(MODEL).max_horizon == 10 * H
    history = hourly(n=72)
    frame = client.forecast(history, horizon=3 * H, quantiles=[0.1, 0.9])
    assert len(frame) == 3 * H and frame.attrs["extended"] is True
    assert frame.index[0] == history.index[-1] + pd.Timedelta(hours=1)
    plain = client.forecast(history, horizon=H, quantiles=[0.1, 0.9])
    assert plain.attrs["extended"] is False
    np.testing.assert_allclose(frame.iloc[:H].to_numpy(), plain.to_numpy())
    many = client.forecast_many({"a": history, "b": history.iloc[-5:]}, horizon=2 * H)
    assert many.groupby("id").size().to_dict() == {"a": 2 * H, "b": 2 * H}
    assert many.attrs["extended"] is True
    with pytest.raises(InvalidRequest) as e:
        client.forecast(history, horizon=10 * H + 1)
    assert e.value.errors[0].loc == ["body", "horizon"]
    assert f"limit of {10 * H}" in e.value.errors[0].msg


def test_datetime_index_round_trip(client: ForecastClient):
    history = hourly(n=72, start="2024-02-28 05:00")
    frame = client.forecast(history, horizon=6)
    # 72 hours from 28 February 2024 run through the leap day.
    expected = pd.date_range("2024-03-02 05:00", periods=6, freq="h", name="timestamp")
    pd.testing.assert_index_equal(frame.index, expected)
    assert frame.index.freq == pd.tseries.frequencies.to_offset("h")
    same = client.forecast(history.to_numpy(), horizon=6)
    np.testing.assert_allclose(frame["forecast"], same["forecast"])


def test_timezone_aware_index_across_daylight_saving(client: ForecastClient):
    # Local offsets change on 2024-03-31 in Berlin; the client must still get Berlin times back.
    history = hourly(n=50, start="2024-03-29 12:00", tz="Europe/Berlin")
    frame = client.forecast(history, horizon=4)
    expected = pd.date_range(history.index[-1], periods=5, freq="h")[1:]
    assert str(frame.index.tz) == "Europe/Berlin"
    assert (frame.index == expected).all()


def test_forecast_many_dict_matches_single_forecasts(client: ForecastClient):
    data = {f"s{i}": hourly(seed=i) for i in range(3)}
    frame = client.forecast_many(data, horizon=4, quantiles=[0.9])
    assert list(frame.columns) == [
        "id", "step", "timestamp", "forecast", "q0.9", "lower_80", "upper_80", "calibrated",
        "method", "filled", "gap"
    ]  # fmt: skip
    assert (frame["method"] == "model").all() and frame.attrs["errors"] == []
    assert frame["id"].tolist() == [k for k in data for _ in range(4)]
    for key, history in data.items():
        one = client.forecast(history, horizon=4, quantiles=[0.9])
        rows = frame[frame["id"] == key]
        np.testing.assert_allclose(rows["forecast"], one["forecast"], rtol=1e-5)
        assert (rows["timestamp"].to_numpy() == one.index.to_numpy()).all()


def test_forecast_many_long_frame_with_own_column_names(client: ForecastClient):
    parts = [
        pd.DataFrame({"unique_id": key, "ds": s.index, "y": s.to_numpy()})
        for key, s in {7: hourly(seed=1), 3: hourly(seed=2)}.items()
    ]
    # Shuffled rows: the client must order each series by time itself.
    long = pd.concat(parts).sample(frac=1.0, random_state=0)
    frame = client.forecast_many(long, horizon=3, id_col="unique_id", time_col="ds", value_col="y")
    assert list(frame.columns) == [
        "unique_id", "step", "ds", "forecast", "lower_80", "upper_80", "calibrated", "method",
        "filled", "gap"
    ]  # fmt: skip
    first_seen = pd.unique(long["unique_id"]).tolist()
    assert frame["unique_id"].tolist() == [k for k in first_seen for _ in range(3)]
    seven = frame[frame["unique_id"] == 7]
    expected = client.forecast(hourly(seed=1), horizon=3)
    np.testing.assert_allclose(seven["forecast"], expected["forecast"], rtol=1e-5)


def test_forecast_many_splits_by_series_count(live: str):
    client, hook = counted(live, max_series_per_request=3)
    data = {i: hourly(seed=i).to_numpy() for i in range(7)}
    with client:
        frame = client.forecast_many(data, horizon=2)
        singles = [client.forecast(data[i], horizon=2)["forecast"].tolist() for i in (0, 6)]
    assert hook.count("POST /v1/forecast") == 3 + 2
    assert frame["id"].tolist() == [i for i in range(7) for _ in range(2)]
    np.testing.assert_allclose(frame["forecast"][:2], singles[0], rtol=1e-5)
    np.testing.assert_allclose(frame["forecast"][-2:], singles[1], rtol=1e-5)


def test_forecast_many_splits_by_body_size_under_the_servers_limit(live: str):
    # 12 series of 1,500 points are ~250 KB, four times the live server's 64 KiB body limit.
    data = {f"s{i}": np.random.default_rng(i).normal(100, 5, 1500) for i in range(12)}
    client, hook = counted(live, max_body_bytes=LIVE_BODY_LIMIT)
    with client:
        frame = client.forecast_many(data, horizon=H)
    assert hook.count("POST /v1/forecast") >= 4
    assert len(frame) == 12 * H and frame["forecast"].notna().all()
    # One request with everything is what the split avoids: the server refuses it.
    with ForecastClient(live, max_body_bytes=10**9) as greedy, pytest.raises(InvalidRequest) as e:
        greedy.forecast_many(data, horizon=H)
    assert e.value.status_code == 413


def test_models_and_model(client: ForecastClient):
    (summary,) = client.models()
    assert (summary.name, summary.versions, summary.loaded_version) == (MODEL, [1], 1)
    detail = client.model(MODEL)
    assert detail.config is not None and detail.config["horizon"] == H
    with pytest.raises(ModelNotFound) as e:
        client.model("nope")
    assert e.value.status_code == 404


def test_models_say_what_to_send(client: ForecastClient):
    (summary,) = client.models()
    assert (summary.frequency, summary.seasonal_period, summary.default) == ("h", 24, True)
    assert (summary.window, summary.horizon) == (N, H)
    assert summary.min_history == MinHistory(model=N, fallback=1, after_gap=24)
    assert summary.quantiles == [0.1, 0.9]


def test_a_series_of_another_frequency_is_refused_before_sending(live: str):
    daily = pd.Series(np.arange(60.0), index=pd.date_range("2024-01-01", periods=60, freq="D"))
    client, hook = counted(live)
    with client:
        with pytest.raises(InvalidRequest, match=r"'D'.*'tiny'.*'h'") as e:
            client.forecast(daily, horizon=3)
        assert e.value.status_code is None
        long = pd.DataFrame({"id": "d", "timestamp": daily.index, "value": daily.to_numpy()})
        long = pd.concat([pd.DataFrame({"id": "h", "timestamp": hourly().index,
                                        "value": hourly().to_numpy()}), long])  # fmt: skip
        with pytest.raises(InvalidRequest, match="series 'd'"):
            client.forecast_many(long, horizon=3)
        # Hourly data passes; the model's facts were fetched once and kept.
        assert len(client.forecast(hourly(), horizon=3)) == 3
    assert hook.count("POST /v1/forecast") == 1
    assert hook.count("GET /v1/models/tiny") == 1


def test_frequency_and_default_checks_without_a_server():
    detail = ModelDetail(name="m", versions=[1], frequency="h", horizon=5, loaded_version=1)
    as_of = lambda freq: [("k", as_input(hourly_like(freq)))]  # noqa: E731
    check_frequencies(as_of("h"), detail)
    check_frequencies(as_of("60min"), detail)
    with pytest.raises(InvalidRequest, match="'k'"):
        check_frequencies(as_of("D"), detail)
    check_frequencies([("k", as_input([1.0, 2.0]))], detail)  # no timestamps: nothing to check
    unknown = detail.model_copy(update={"frequency": None})
    check_frequencies(as_of("D"), unknown)  # the model's frequency is unknown: no check
    summary = lambda name, **kw: ModelSummary(name=name, versions=[1], **kw)  # noqa: E731
    two = [summary("a", loaded_version=1), summary("b", loaded_version=1)]
    assert service_default(two) is None
    assert service_default([*two[:1], summary("b", loaded_version=1, default=True)]) == "b"
    assert service_default(two[:1]) == "a"  # a service that does not mark its default


def hourly_like(freq: str) -> pd.Series:
    return pd.Series(np.ones(10), index=pd.date_range("2024-01-01", periods=10, freq=freq))


def test_service_errors_are_typed_and_422_is_not_retried(live: str):
    client, hook = counted(live, retry=QUICK)
    with client, pytest.raises(InvalidRequest) as e:
        client.forecast([None] * (N - 1), horizon=3)
    assert hook.count("POST /v1/forecast") == 1
    assert e.value.status_code == 422
    assert [(err.loc, err.type) for err in e.value.errors] == [(["body", "history"], "no_values")]

    with ForecastClient(live) as c:
        with pytest.raises(InvalidRequest) as e:
            c.forecast(hourly(), horizon=3, quantiles=[0.5])
        assert e.value.errors[0].loc == ["body", "quantiles", 0]
        with pytest.raises(InvalidRequest, match="exceeds"):
            c.forecast(hourly(), horizon=10 * H + 1)  # beyond H is rolled forward, up to 10 H
        with pytest.raises(ModelNotFound):
            c.forecast(hourly(), horizon=3, model="absent")


def test_bad_input_is_refused_before_sending():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing should have been sent")

    with ForecastClient(transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(InvalidRequest) as e:
            client.forecast([1.0, float("-inf"), 3.0], horizon=2)
        assert e.value.status_code is None
        assert e.value.errors[0].loc == ["body", "history", 1]
        with pytest.raises(InvalidRequest) as e:
            client.forecast_many({"a": [1.0, 2.0], "b": [1.0, float("inf")]}, horizon=2)
        assert e.value.errors[0].loc[:3] == ["body", "series", 1]
        with pytest.raises(InvalidRequest, match="one-dimensional"):
            client.forecast(np.ones((3, 2)), horizon=2)
        with pytest.raises(ValueError):  # InvalidRequest is a ValueError too
            client.forecast(["a", "b"], horizon=2)
        with pytest.raises(InvalidRequest, match="numbers"):
            client.forecast(pd.Series(["a", "b"]), horizon=2)


# --- short histories, missing values, per-series errors (issue 13) ------------------------------


def two_days_missing() -> pd.DataFrame:
    """tests/data/hourly_long.csv with two days of rows of s3 gone and two values of s1 empty."""
    frame = pd.read_csv(TESTS / "data" / "hourly_long.csv", parse_dates=["timestamp"])
    gone = (frame["id"] == "s3") & frame["timestamp"].between("2024-01-10", "2024-01-11 23:00")
    frame.loc[frame.index[(frame["id"] == "s1").to_numpy()][100:102], "value"] = np.nan
    return frame[~gone]


def test_forecast_many_on_a_file_with_missing_days_answers_every_series(client: ForecastClient):
    data = two_days_missing()
    frame = client.forecast_many(data, horizon=H)
    assert frame["id"].unique().tolist() == [f"s{i}" for i in range(6)]
    assert frame.attrs["errors"] == [] and frame["forecast"].notna().all()
    assert (frame["method"] == "model").all()
    for key, rows in frame.groupby("id"):
        last = data.loc[data["id"] == key, "timestamp"].max()
        assert rows["timestamp"].iloc[0] == last + pd.Timedelta(hours=1)
    # How each history was read stays with its rows, as a single forecast's attrs say it.
    filled = frame.groupby("id")["filled"].first()
    assert filled.to_dict() == {"s0": 0, "s1": 2, "s2": 0, "s3": 0, "s4": 0, "s5": 0}
    gaps = frame.groupby("id")["gap"].first()
    assert gaps.drop("s3").isna().all()
    assert gaps["s3"]["missing"] == 48 and gaps["s3"]["timestamps"][1].startswith("2024-01-12")


def test_nan_is_sent_as_null():
    expected = [1.0, None, 3.0]
    assert as_input(pd.Series([1.0, np.nan, 3.0])).values == expected
    assert as_input(pd.Series([1.0, pd.NA, 3.0], dtype="Float64")).values == expected
    assert as_input(np.array([1.0, np.nan, 3.0])).values == expected
    assert as_input([1.0, None, 3.0]).values == expected


def test_single_forecasts_say_how_they_were_made(client: ForecastClient):
    frame = client.forecast([3.0], horizon=4)
    assert frame["forecast"].tolist() == [3.0] * 4
    assert frame.attrs == {
        "method": "naive",
        "classical_share": None,
        "extended": False,
        "filled": 0,
        "gap": None,
        "calibrated": False,  # the model's heads' 80% interval, from a model saved without one
    }
    history = hourly(n=72)
    history.iloc[[30, 31]] = np.nan
    assert client.forecast(history, horizon=2).attrs == {
        "method": "model",
        "classical_share": None,
        "extended": False,
        "filled": 2,
        "gap": None,
        "calibrated": False,
    }


MIXED = {"ok": hourly(), "inf": [1.0, float("inf")], "short": [3.0], "empty": [np.nan] * 5}


def test_errors_return_gives_the_forecasts_and_lists_the_errors(live: str):
    client, hook = counted(live, max_series_per_request=2)
    with client:
        frame = client.forecast_many(MIXED | {"ok2": hourly(seed=2)}, horizon=3, errors="return")
    # "inf" is refused before sending; the others go as [ok, short], [empty, ok2].
    assert hook.count("POST /v1/forecast") == 2
    assert frame["id"].unique().tolist() == ["ok", "short", "ok2"]
    assert frame.groupby("id", sort=False)["method"].first().tolist() == ["model", "naive", "model"]
    errors = frame.attrs["errors"]
    assert [(e["id"], e["index"], e["loc"], e["type"]) for e in errors] == [
        ("inf", 1, ["body", "series", 1, "history", 1], "finite_number"),
        ("empty", 3, ["body", "series", 3, "history"], "no_values"),
    ]


def test_errors_raise_after_collecting_the_forecasts(client: ForecastClient):
    with pytest.raises(SeriesFailed, match="'empty'") as e:
        client.forecast_many({k: MIXED[k] for k in ("ok", "empty", "short")}, horizon=3)
    assert isinstance(e.value, InvalidRequest)
    assert [(err.id, err.index, err.type) for err in e.value.errors] == [("empty", 1, "no_values")]
    assert e.value.frame["id"].unique().tolist() == ["ok", "short"]
    with pytest.raises(InvalidRequest, match="finite"):  # refused before sending, as before
        client.forecast_many(MIXED, horizon=3)
    with pytest.raises(ValueError, match="errors"):
        client.forecast_many(MIXED, horizon=3, errors="ignore")  # type: ignore[arg-type]


def test_async_forecast_many_returns_errors_too(live: str):
    async def scenario() -> pd.DataFrame:
        async with AsyncForecastClient(live) as c:
            return await c.forecast_many({"a": [1.0, 2.0], "b": [None]}, horizon=2, errors="return")

    frame = asyncio.run(scenario())
    assert frame["forecast"].tolist() == [2.0, 2.0]
    assert [e["id"] for e in frame.attrs["errors"]] == ["b"]


def test_health_and_ready(client: ForecastClient):
    assert client.health() and client.ready()
    with ForecastClient(f"http://127.0.0.1:{free_port()}") as down:
        assert not down.health() and not down.ready()


def test_async_client_against_the_live_server(live: str):
    async def scenario() -> tuple[pd.DataFrame, pd.DataFrame, int]:
        hook = Requests()

        async def record(request: httpx.Request) -> None:
            hook(request)

        http = httpx.AsyncClient(base_url=live, event_hooks={"request": [record]})
        async with http, AsyncForecastClient(http_client=http, max_series_per_request=2) as c:
            one = await c.forecast(hourly(), horizon=4)
            many = await c.forecast_many({i: hourly(seed=i) for i in range(5)}, horizon=4)
            assert await c.ready()
        return one, many, hook.count("POST /v1/forecast")

    one, many, posts = asyncio.run(scenario())
    assert posts == 1 + 3
    with ForecastClient(live) as sync:
        pd.testing.assert_frame_equal(one, sync.forecast(hourly(), horizon=4))
    assert len(many) == 5 * 4


# --- the real service in-process ----------------------------------------------------------------


def test_sync_client_in_process(inproc):
    app, portal = inproc
    with ForecastClient(transport=SyncASGITransport(app, portal), retry=None) as client:
        client.wait_ready(timeout=60)
        frame = client.forecast(hourly(), quantiles=[0.1])
        many = client.forecast_many({"a": hourly(), "b": hourly(seed=1)}, horizon=2)
        assert client.model(MODEL).config["horizon"] == H
    assert frame.index[0] == hourly().index[-1] + pd.Timedelta(hours=1)
    assert list(frame.columns) == ["forecast", "q0.1", "lower_80", "upper_80"] and len(frame) == H
    assert many["id"].tolist() == ["a", "a", "b", "b"]


def test_async_client_in_process(inproc):
    app, portal = inproc

    async def scenario() -> tuple[pd.DataFrame, pd.DataFrame]:
        transport = httpx.ASGITransport(app=app)
        async with AsyncForecastClient("http://service", transport=transport) as client:
            await client.wait_ready(timeout=60)
            with pytest.raises(InvalidRequest):
                await client.forecast([None] * 3, horizon=2)
            with pytest.raises(ModelNotFound):
                await client.model("nope")
            one = await client.forecast(hourly(), horizon=3)
            many = await client.forecast_many({"x": hourly()}, horizon=3)
            return one, many

    one, many = portal.call(scenario)
    assert len(one) == 3 and one.index.freq == "h"
    np.testing.assert_allclose(many["forecast"], one["forecast"], rtol=1e-5)


# --- retries, errors and timeouts against stand-ins -------------------------------------------


@pytest.mark.parametrize("status", [503, 429])
def test_retries_honour_retry_after_then_succeed(status: int):
    seen = Counter()
    app = flaky_app(seen, failures=2, status=status, retry_after="0.2")
    with running_app(app) as portal:
        client = ForecastClient(transport=SyncASGITransport(app, portal), retry=QUICK)
        with client:
            frame = client.forecast([1.0, 2.0], horizon=3)
    assert frame["forecast"].tolist() == [1.0, 1.0, 1.0]
    assert len(seen.paths) == 3
    gaps = np.diff(seen.times)
    assert (gaps >= 0.2).all(), gaps  # QUICK's own backoff (0.01 s) would be far shorter


def test_async_retries_then_succeeds():
    seen = Counter()
    app = flaky_app(seen, failures=2, retry_after="0")

    async def scenario() -> pd.DataFrame:
        transport = httpx.ASGITransport(app=app)
        async with AsyncForecastClient(transport=transport, retry=QUICK) as client:
            return await client.forecast([1.0], horizon=2)

    assert asyncio.run(scenario())["forecast"].tolist() == [1.0, 1.0]
    assert len(seen.paths) == 3


def test_still_unavailable_after_the_retries():
    seen = Counter()
    app = flaky_app(seen, failures=100, retry_after=None)
    with running_app(app) as portal:
        client = ForecastClient(transport=SyncASGITransport(app, portal), retry=QUICK)
        with client, pytest.raises(ServiceUnavailable) as e:
            client.forecast([1.0], horizon=2)
    assert e.value.status_code == 503 and "overloaded" in str(e.value)
    assert len(seen.paths) == 1 + QUICK.retries


def test_retry_after_beyond_max_delay_gives_up_at_once():
    seen = Counter()
    app = flaky_app(seen, failures=100, retry_after="3600")
    with running_app(app) as portal:
        client = ForecastClient(transport=SyncASGITransport(app, portal), retry=QUICK)
        with client, pytest.raises(ServiceUnavailable):
            client.forecast([1.0], horizon=2)
    assert len(seen.paths) == 1


@pytest.mark.parametrize(
    ("status", "detail", "error"),
    [
        (
            422,
            [{"loc": ["body", "horizon"], "msg": "too big", "type": "value_error"}],
            InvalidRequest,
        ),
        (400, "bad", InvalidRequest),
        (401, "missing or wrong API key", Unauthorized),
        (403, "forbidden", Unauthorized),
        (404, "no model named 'x'", ModelNotFound),
        (500, "internal server error", ForecastAPIError),
    ],
)
def test_other_statuses_map_to_typed_errors_without_retries(status, detail, error):
    seen = Counter()
    app = fixed_app(seen, status, detail)
    with running_app(app) as portal:
        client = ForecastClient(transport=SyncASGITransport(app, portal), retry=QUICK)
        with client, pytest.raises(ForecastAPIError) as e:
            client.forecast([1.0], horizon=2)
    assert type(e.value) is error
    assert e.value.status_code == status
    assert len(seen.paths) == 1
    if status == 422:
        assert e.value.errors[0].loc == ["body", "horizon"]
        assert "body.horizon: too big" in str(e.value)


def test_connection_errors_are_retried_then_unavailable():
    client, hook = counted(f"http://127.0.0.1:{free_port()}", retry=QUICK)
    with client, pytest.raises(ServiceUnavailable) as e:
        client.models()
    assert len(hook.seen) == 1 + QUICK.retries
    assert isinstance(e.value.__cause__, httpx.ConnectError)


@pytest.fixture(scope="module")
def slow_url() -> Iterator[str]:
    """A stand-in that takes 2 s over every answer, behind a real socket (timeouts need one)."""
    env = {"STAND_IN_DELAY_S": "2"}
    with uvicorn_server("tests.client.stand_ins:slow", env, factory=True) as url:
        yield url


def test_timeouts_raise_forecast_timeout_without_retrying(slow_url: str):
    client, hook = counted(slow_url, timeout=httpx.Timeout(0.3), retry=QUICK)
    started = time.monotonic()
    with client, pytest.raises(ForecastTimeout) as e:
        client.forecast([1.0], horizon=1)
    assert time.monotonic() - started < 1.5
    assert len(hook.seen) == 1
    assert isinstance(e.value, TimeoutError)

    async def scenario() -> None:
        async with AsyncForecastClient(slow_url, timeout=0.3) as c:
            await c.models()

    with pytest.raises(ForecastTimeout):
        asyncio.run(scenario())


# --- the retry policy and client plumbing ------------------------------------------------------


def test_backoff_grows_exponentially_up_to_the_cap():
    policy = RetryPolicy(retries=10, backoff=0.5, max_delay=3.0, jitter=0.0)
    refused = httpx.ConnectError("refused")
    assert [policy.delay(a, refused) for a in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.delay(10, refused) is None


def test_jitter_shortens_delays_within_bounds():
    policy = RetryPolicy(backoff=1.0, jitter=0.5)
    delays = [policy.backoff_delay(1) for _ in range(200)]
    assert all(1.0 <= d <= 2.0 for d in delays)
    assert len(set(delays)) > 100


def test_retry_decisions_by_outcome():
    policy = RetryPolicy(retries=3, backoff=0.1, jitter=0.0, max_delay=10)
    answer = lambda status, **h: httpx.Response(status, headers=h)  # noqa: E731
    assert policy.delay(0, answer(503, **{"Retry-After": "2"})) == 2.0
    assert policy.delay(0, answer(429)) == 0.1
    assert policy.delay(0, answer(503, **{"Retry-After": "60"})) is None
    for status in (400, 401, 404, 413, 422, 500):
        assert policy.delay(0, answer(status)) is None
    assert policy.delay(0, httpx.ReadTimeout("slow")) is None
    assert policy.delay(0, httpx.ConnectTimeout("down")) == 0.1


def test_retry_after_parsing():
    now = datetime(2024, 1, 1, tzinfo=UTC)
    assert parse_retry_after("3", now) == 3.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=5), usegmt=True), now) == 5.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None) is None


def test_context_managers_close_only_what_they_own():
    own = ForecastClient()
    with own:
        pass
    assert own._http.is_closed
    shared = httpx.Client()
    with ForecastClient(http_client=shared):
        pass
    assert not shared.is_closed
    shared.close()

    async def scenario() -> bool:
        async with AsyncForecastClient() as c:
            pass
        return c._http.is_closed

    assert asyncio.run(scenario())


def test_sync_and_async_clients_have_the_same_methods():
    def public(cls: type) -> set[str]:
        return {n for n in vars(cls) if not n.startswith("_")}

    assert public(ForecastClient) == public(AsyncForecastClient)
