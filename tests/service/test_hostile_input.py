"""Issue 29's hostile input over real HTTP (uvicorn on 127.0.0.1, recording into SQLite or a real
PostgreSQL): each was a 500, a 503, a silently wrong answer or a poisoned monitoring store; each
is now a 4xx naming the field, and the good series beside a bad one are still answered."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from tests.helpers.polling import wait_until
from tests.service.conftest import API_KEY, Server, server

KEY = {"X-API-Key": API_KEY}
START = datetime(2024, 5, 1)
N = 72


def stamps(n: int = N, start: datetime = START, suffix: str = "") -> list[str]:
    return [(start + timedelta(hours=k)).isoformat() + suffix for k in range(n)]


HISTORY = (100 + 10 * np.sin(np.arange(N) * 2 * np.pi / 24)).round(3).tolist()


@pytest.fixture(scope="module")
def live(registry_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("hostile")
    url = f"sqlite:///{tmp / 'monitoring.sqlite3'}"
    with server(registry_root, tmp, FORECASTER_DATABASE_URL=url,
                FORECASTER_RECORD_FLUSH_S="0.05") as s:  # fmt: skip
        s.database_url = url  # type: ignore[attr-defined]
        yield s


def post(live: Server, path: str, body: object) -> httpx.Response:
    return httpx.post(live.url + path, json=body, headers=KEY, timeout=30)


def refused(r: httpx.Response, loc: list, words: str = "") -> dict:
    assert r.status_code == 422, r.text
    assert "Traceback" not in r.text
    (detail,) = r.json()["detail"]
    assert detail["loc"] == loc and words in detail["msg"], detail
    return detail


def with_suffixes(suffixes: list[str]) -> list[str]:
    return [s + x for s, x in zip(stamps(), suffixes, strict=True)]


def one_at(k: int, suffix: str, rest: str = "") -> list[str]:
    return with_suffixes([suffix if i == k else rest for i in range(N)])


SUFFIXES = [
    (with_suffixes(["X"] * N), 0, "not ISO 8601"),
    (with_suffixes(["z"] * N), 0, "not ISO 8601"),
    (with_suffixes([" UTC"] * N), 0, "not ISO 8601"),
    (with_suffixes(["+1"] * N), 0, "not ISO 8601"),
    (with_suffixes(["+01:00:00"] * N), 0, "not ISO 8601"),
    (with_suffixes(["\x00"] * N), 0, "not ISO 8601"),
    (one_at(7, "+01"), 7, "has a UTC offset"),
    (one_at(0, "+01:00"), 1, "has no UTC offset"),
    (one_at(N - 1, "Z"), N - 1, "has a UTC offset"),
    (with_suffixes(["+99:99"] * N), 0, "beyond ±23:59"),
    (with_suffixes(["+24:00"] * N), 0, "beyond ±23:59"),
]


@pytest.mark.parametrize(("timestamps", "index", "words"), SUFFIXES)
def test_a_bad_timestamp_is_422_naming_it(live, timestamps, index, words):
    """Each of these answered 500 (numpy's timezone warning raised as an error), or, for the
    offsets beyond a day, 200 with stamps that are not ISO 8601 (and a poisoned recorder)."""
    r = post(live, "/v1/forecast", {"history": HISTORY, "timestamps": timestamps, "horizon": 2})
    refused(r, ["body", "timestamps", index], words)


@pytest.mark.parametrize(("timestamps", "index", "words"), SUFFIXES[::3])
def test_a_bad_timestamp_is_its_series_error_and_the_others_are_answered(
    live, timestamps, index, words
):
    body = {
        "series": [
            {"id": "good", "history": HISTORY, "timestamps": stamps()},
            {"id": "bad", "history": HISTORY, "timestamps": timestamps},
        ],
        "horizon": 2,
    }
    r = post(live, "/v1/forecast", body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert [f["id"] for f in answer["forecasts"]] == ["good"]
    (error,) = answer["errors"]
    assert error["loc"] == ["body", "series", 1, "timestamps", index] and words in error["msg"]
    strict = post(live, "/v1/forecast", body | {"strict": True})
    assert strict.status_code == 422 and strict.json()["detail"][0]["loc"] == error["loc"]


def test_offsets_within_a_day_are_answered_in_that_offset(live):
    for offset in ("+23:59", "-23:59", "+05:30", "Z"):
        r = post(live, "/v1/forecast", {"history": HISTORY, "timestamps": stamps(suffix=offset),
                                        "horizon": 1})  # fmt: skip
        assert r.status_code == 200, r.text
        canonical = "+00:00" if offset == "Z" else offset
        assert r.json()["timestamps"] == [f"2024-05-04T00:00:00{canonical}"]


@pytest.mark.parametrize("bad", ["a\x00b", "\x00", "tab\there", "line\nbreak", "del\x7f", "c1\x85"])
def test_control_characters_in_ids_are_refused_on_both_routes(live, bad):
    """A NUL in an id once failed PostgreSQL's batch (every other forecast of the flush dropped)
    and made ``/v1/actuals`` answer 503, which the client retries."""
    body = {"series": [{"id": "ok", "history": HISTORY, "timestamps": stamps()},
                       {"id": bad, "history": HISTORY, "timestamps": stamps()}],
            "horizon": 2}  # fmt: skip
    r = post(live, "/v1/forecast", body)
    assert r.status_code == 200, r.text
    (error,) = r.json()["errors"]
    assert error["loc"] == ["body", "series", 1, "id"] and "control characters" in error["msg"]
    assert error["id"] == "1"  # the refused id is not echoed: its index names the series
    strict = post(live, "/v1/forecast", body | {"strict": True})
    assert strict.status_code == 422 and strict.json()["detail"][0]["loc"][:4] == [
        "body", "series", 1, "id"
    ]  # fmt: skip
    actuals = {"series": [{"id": bad, "timestamps": stamps(2), "values": [1.0, 2.0]}]}
    refused(post(live, "/v1/actuals", actuals), ["body", "series", 0, "id"], "control characters")


def test_ids_with_other_characters_are_still_fine(live):
    sid = "Zürich / Gare 1 – 東京 😀"
    body = {"series": [{"id": sid, "history": HISTORY, "timestamps": stamps()}], "horizon": 1}
    r = post(live, "/v1/forecast", body)
    assert r.status_code == 200 and r.json()["forecasts"][0]["id"] == sid
    actuals = {"series": [{"id": sid, "timestamps": stamps(1, START + timedelta(hours=N)),
                           "values": [1.0]}]}  # fmt: skip
    assert post(live, "/v1/actuals", actuals).status_code == 200


@pytest.mark.parametrize(
    ("start", "horizon"),
    [(datetime(9999, 6, 1), 2), (datetime(2199, 12, 29), 2), (datetime(1899, 12, 1), 2)],
)
def test_forecasts_outside_the_years_1900_to_2199_are_refused(live, start, horizon):
    """Year-9999 targets were recorded and, with 48 actuals, decided ``--when degraded``."""
    body = {"history": HISTORY, "timestamps": stamps(start=start), "horizon": horizon}
    refused(post(live, "/v1/forecast", body), ["body", "timestamps"], "1900 to 2199")


@pytest.mark.parametrize("word", ["now", "today", "NaT", "2024-05-04T00:00+24:00"])
def test_actuals_stamps_are_held_to_the_grammar(live, word):
    """``now`` and ``today`` were stored at the server's clock."""
    body = {"series": [{"id": "a", "timestamps": [stamps(1)[0], word], "values": [1.0, 2.0]}]}
    refused(post(live, "/v1/actuals", body), ["body", "series", 0, "timestamps", 1])


@pytest.mark.parametrize("value", [1e308, -1e308, 1e16])
def test_actual_values_are_held_to_the_histories_bound(live, value):
    """1e308 once set a version's live MASE to 1e307."""
    body = {"series": [{"id": "a", "timestamps": stamps(2), "values": [1.0, value]}]}
    refused(post(live, "/v1/actuals", body), ["body", "series", 0, "values", 1], "at most 1e+15")


def test_accuracy_until_the_last_writable_instant_is_accepted(live):
    r = httpx.get(live.url + "/v1/models/m4-hourly/accuracy",
                  params={"until": "9999-12-31T23:59:59.999999"}, timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text


def test_good_series_beside_bad_ones_are_recorded_and_none_dropped(live):
    """Everything answered with an id and timestamps reaches the store, and nothing else: the
    bad records that once failed the writer's whole batch no longer get past the request."""
    bad = [t for t, _, _ in SUFFIXES]
    series = [{"id": f"rec-g{k}", "history": HISTORY, "timestamps": stamps()} for k in range(20)]
    series += [{"id": f"rec-b{k}", "history": HISTORY, "timestamps": t} for k, t in enumerate(bad)]
    series += [{"id": "rec-\x00", "history": HISTORY, "timestamps": stamps()}]
    r = post(live, "/v1/forecast", {"series": series, "horizon": 3})
    assert r.status_code == 200 and len(r.json()["forecasts"]) == 20
    engine = sa.create_engine(live.database_url)
    query = sa.text("SELECT series_id FROM forecasts WHERE series_id LIKE 'rec-%'")

    def stored() -> list[str]:
        with engine.connect() as conn:
            return sorted(conn.execute(query).scalars())

    try:
        wait_until(
            lambda: len(stored()) >= 20,
            timeout=20,
            message=lambda: f"only {stored()} of the 20 good series are stored",
        )
        ids = stored()
    finally:
        engine.dispose()
    assert ids == sorted(f"rec-g{k}" for k in range(20))
    metrics = httpx.get(live.url + "/metrics", timeout=10).text
    assert not re.search(r"^forecaster_forecasts_record_dropped_total\{.*\} [1-9]", metrics, re.M)


# ------------------------------------------------------------------- the warnings filter


def test_concurrent_large_requests_leave_the_warnings_filter_alone(client):
    """In-process (the filter is this process' state): requests of over 20,000 points are
    prepared on helper threads; ``warnings.catch_warnings`` there once left the process-wide
    filter at "error", after which a request that passed before got 500."""
    before = list(warnings.filters)
    hourly = [{"history": [float(i % 24) for i in range(500)], "timestamps": stamps(500)}] * 50
    months = [datetime(1980 + k // 12, k % 12 + 1, 1).isoformat() for k in range(480)]
    monthly = [{"history": [float(i % 12) for i in range(480)], "timestamps": months}] * 50
    bodies = [json.dumps({"series": hourly if k % 2 else monthly, "horizon": 2})
              for k in range(24)]  # fmt: skip

    def send(body: str) -> int:
        return client.post("/v1/forecast", content=body,
                           headers={"content-type": "application/json"}).status_code  # fmt: skip

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(send, bodies)) == {200}
    assert warnings.filters == before
    later = {"history": HISTORY, "timestamps": stamps(), "horizon": 2}
    assert client.post("/v1/forecast", json=later).status_code == 200


# ------------------------------------------------------------------------- PostgreSQL


def test_a_nul_id_never_reaches_postgresql(registry_root, tmp_path, pg_cluster):
    """On PostgreSQL a NUL in an id failed the recorder's batch and made /v1/actuals 503."""
    url = pg_cluster.database()
    with server(registry_root, tmp_path, FORECASTER_DATABASE_URL=url,
                FORECASTER_RECORD_FLUSH_S="0.05") as s:  # fmt: skip
        body = {"series": [{"id": "a\x00", "timestamps": stamps(1), "values": [1.0]}]}
        refused(post(s, "/v1/actuals", body), ["body", "series", 0, "id"])
        series = [{"id": f"s{k}", "history": HISTORY, "timestamps": stamps()} for k in range(5)]
        series.insert(2, {"id": "x\x00y", "history": HISTORY, "timestamps": stamps()})
        r = post(s, "/v1/forecast", {"series": series, "horizon": 2})
        assert r.status_code == 200 and len(r.json()["forecasts"]) == 5
        actual = {"series": [{"id": f"s{k}", "timestamps": stamps(2, START + timedelta(hours=N)),
                              "values": [1.0, 2.0]} for k in range(5)]}  # fmt: skip

        def sent() -> dict | None:
            done = post(s, "/v1/actuals", actual)
            assert done.status_code == 200, done.text
            return done.json() if done.json()["matched"] == 10 else None

        answer = wait_until(  # the five are matched once the writer has flushed them
            sent, timeout=20, message="the actuals of the five series were never matched"
        )
        assert answer == {"stored": 10, "matched": 10, "unknown_series": 0,
                          "unknown_ids": []}  # fmt: skip
