"""``POST /v1/forecast``."""

from __future__ import annotations

from typing import Any

import pydantic_core
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from forecaster.schemas import (
    BatchForecastResponse,
    ErrorResponse,
    ForecastRequest,
    ForecastResponse,
)
from service.forecasting import forecast

router = APIRouter(tags=["forecast"])

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Unknown model or version."},
    413: {"model": ErrorResponse, "description": "Body over the size limit."},
    422: {"model": ErrorResponse, "description": "Invalid input; `loc` names the field."},
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


async def post_forecast(request: Request) -> Response:
    """Forecast one series (`history`) or many (`series`)."""
    return await _respond(request.app, await request.body())


class ForecastASGI:
    """The same endpoint as a bare ASGI app: what actually serves ``POST /v1/forecast``.

    A class, not a function, because Starlette wraps plain functions as request handlers.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:  # BodyLimitMiddleware has buffered the body: this is a single message
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        response = await _respond(scope["app"], body)
        await response(scope, receive, send)


async def _respond(app: FastAPI, body: bytes) -> Response:
    state = app.state
    answer = await forecast(parse_request(body), state.store, state.batcher, state.settings)
    # Serialised directly: the answer is plain lists of finite floats, and pydantic's response
    # validation plus the stdlib encoder would cost more than the model call for one series.
    return Response(pydantic_core.to_json(answer), media_type="application/json")


router.add_api_route(
    "/v1/forecast",
    post_forecast,
    methods=["POST"],
    response_model=ForecastResponse | BatchForecastResponse,
    responses=ERRORS,
    openapi_extra=REQUEST_BODY,
    summary="Forecast one series (`history`) or many (`series`).",
)


def install(app: FastAPI) -> None:
    """Mount the forecast route twice: a bare ASGI route that serves every request, then the
    FastAPI route (shadowed, never reached) that documents it in the OpenAPI schema.

    The bare route skips FastAPI's dependency solving and Starlette's request wrapper, which
    together cost more event-loop time than the rest of a one-series forecast. Errors still
    reach the app's exception handlers, which wrap every route.
    """
    app.router.routes.append(_LabelledRoute("/v1/forecast", ForecastASGI(), methods=["POST"]))
    app.include_router(router)


class _LabelledRoute(Route):
    """A Starlette route that, like FastAPI's, leaves itself in the scope for the metrics."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


def parse_request(body: bytes) -> ForecastRequest:
    """Parse and validate in one pass in pydantic-core (several times faster than json.loads)."""
    try:
        return ForecastRequest.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_input=False)]
        ) from None
