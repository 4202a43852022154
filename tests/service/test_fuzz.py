"""Property-based fuzzing against a real server: no 5xx, ever. The OpenAPI schema's operations
(schemathesis), then hostile bodies drawn from a grammar of timestamps, ids and floats."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.app import create_app
from tests.helpers.fuzzing import (
    accuracy_queries,
    actuals_bodies,
    forecast_bodies,
    recordable,
    server_error,
)
from tests.helpers.polling import wait_until
from tests.service.conftest import API_KEY, Server, make_settings, server

# What an answer is checked for beyond "no 5xx" (schemathesis' own checks).
CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


# The document only depends on the routes (admin included when a key is set), not on the models.
schema = schemathesis.openapi.from_dict(create_app(make_settings(Path("unused"))).openapi())


@schema.parametrize()
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_server_errors(case, live_server):
    """No 5xx, and every answer is one the document declares: its status, content type, headers
    and body (validated against the response model of that status)."""
    response = case.call(base_url=live_server.url, timeout=10)
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    assert "Traceback" not in response.text
    case.validate_response(response, checks=CONFORMANCE)


# ------------------------------------------------- hostile bodies from a grammar (issue 29)
#
# tests/helpers/fuzzing.py draws the bodies (benchmarks/fuzz.py runs the same for longer). A server
# of its own records into its own SQLite file, so the forecasts recorded can be counted: every
# forecast answered for a series with an id and timestamps must be recorded, and nothing dropped.

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,  # the same draws each run: a failure here is a regression, not luck
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)


@pytest.fixture(scope="module")
def fuzzed(registry_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    tmp = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{tmp / 'monitoring.sqlite3'}"
    env = {"FORECASTER_DATABASE_URL": url, "FORECASTER_RECORD_FLUSH_S": "0.05"}
    with (
        server(registry_root, tmp, **env) as s,
        httpx.Client(base_url=s.url, headers={"X-API-Key": API_KEY}, timeout=30) as client,
    ):
        yield Fuzzed(s, client, url)


class Fuzzed:
    """The fuzzing server, a client of it, its database, and the forecasts it should hold."""

    def __init__(self, live: Server, client: httpx.Client, database_url: str) -> None:
        self.live, self.client, self.database_url = live, client, database_url
        self.answered = 0  # recordable forecasts answered

    def post(self, path: str, body: object) -> httpx.Response:
        content = json.dumps(body).encode()  # ensure_ascii: lone surrogates travel as escapes
        r = self.client.post(path, content=content, headers={"content-type": "application/json"})
        problem = server_error(r.status_code, r.text)
        assert problem is None, (path, body, problem)
        return r


@given(body=forecast_bodies())
@FUZZ
def test_forecast_bodies_never_get_a_server_error(fuzzed: Fuzzed, body: dict) -> None:
    r = fuzzed.post("/v1/forecast", body)
    if r.status_code == 200:
        fuzzed.answered += recordable(body, r.json())


@given(body=actuals_bodies())
@FUZZ
def test_actuals_bodies_never_get_a_server_error(fuzzed: Fuzzed, body: dict) -> None:
    fuzzed.post("/v1/actuals", body)


@given(query=accuracy_queries())
@FUZZ
def test_accuracy_queries_never_get_a_server_error(fuzzed: Fuzzed, query: dict) -> None:
    r = fuzzed.client.get("/v1/models/m4-hourly/accuracy", params=query)
    assert server_error(r.status_code, r.text) is None, (query, r.text[:300])


def test_every_recordable_forecast_answered_was_recorded(fuzzed: Fuzzed) -> None:
    """Runs after the fuzzing above (file order): the store holds exactly the forecasts answered
    for series with an id and timestamps, and the recorder dropped none."""
    if fuzzed.answered == 0:
        pytest.skip("run with the fuzzing tests before it")
    engine = sa.create_engine(fuzzed.database_url)

    def stored() -> int:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM forecasts")).scalar_one()

    try:
        wait_until(
            lambda: stored() >= fuzzed.answered,
            timeout=20,
            message=lambda: f"{stored()} of the {fuzzed.answered} forecasts answered are stored",
        )
        rows = stored()
    finally:
        engine.dispose()
    metrics = fuzzed.client.get("/metrics").text
    dropped = re.findall(r"^forecaster_forecasts_record_dropped_total\{.*\} (\S+)$", metrics, re.M)
    assert (rows, sum(map(float, dropped))) == (fuzzed.answered, 0.0)
