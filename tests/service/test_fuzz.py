"""Property-based fuzzing of the OpenAPI schema against a real server: no 5xx, ever."""

from __future__ import annotations

from pathlib import Path

import schemathesis
from conftest import make_settings
from hypothesis import HealthCheck, settings

from service.app import create_app

# The document only depends on the routes (admin included when a key is set), not on the models.
schema = schemathesis.openapi.from_dict(create_app(make_settings(Path("unused"))).openapi())


@schema.parametrize()
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_server_errors(case, live_server):
    response = case.call(base_url=live_server.url, timeout=10)
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    assert "Traceback" not in response.text
