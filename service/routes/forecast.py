"""``POST /v1/forecast``: one FastAPI route that both serves and documents the endpoint.

The body is read as bytes and parsed in one pass by pydantic-core (several times faster than
FastAPI's ``json.loads`` + validation; :mod:`service.requests`); its schema is declared for the
OpenAPI document below.
A bare ASGI twin of this route once saved event-loop time; measured without it (issue 10) the
saving was under 10% of server CPU per forecast, so there is one declaration: whatever is added
to this router (auth, rate limits) applies to the requests it documents.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from forecaster.schemas import (
    BatchForecastResponse,
    ErrorResponse,
    ForecastResponse,
)
from service.deps import services
from service.forecasting import forecast
from service.requests import parse_request

router = APIRouter(tags=["forecast"])

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Unknown model or version."},
    413: {"model": ErrorResponse, "description": "Body over the size limit."},
    422: {
        "model": ErrorResponse,
        "description": "Invalid input; `loc` names the field (and `id`, `index` the series). "
        "Per-series problems of a `series` request come back with 200 in `errors` instead, "
        "unless the request is `strict`.",
    },
    503: {"model": ErrorResponse, "description": "Overloaded or not ready; see Retry-After."},
}
# The body is parsed by hand (below), so its schema is declared here for the OpenAPI document;
# service.app adds ForecastRequest and its parts to the components.
REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ForecastRequest"}}
        },
    }
}


@router.post(
    "/v1/forecast",
    response_model=ForecastResponse | BatchForecastResponse,
    responses=ERRORS,
    openapi_extra=REQUEST_BODY,
    summary="Forecast one series (`history`) or many (`series`).",
)
async def post_forecast(request: Request) -> Response:
    """Forecast one series (`history`) or many (`series`)."""
    found = services(request.app)  # not dependencies: see service.deps
    assert found.batcher is not None  # requests come after start-up
    parsed = parse_request(await request.body(), found.settings.max_series)
    monitor = found.monitor
    body = await forecast(
        parsed, found.store, found.batcher, found.settings, monitor.record, monitor.adjustments.of
    )
    return Response(body, media_type="application/json")
