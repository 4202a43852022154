"""``POST /v1/actuals`` (behind the admin key when one is set) and
``GET /v1/models/{name}/accuracy``: the truth in, live accuracy out (:mod:`service.monitoring`)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from forecaster.schemas import (
    NAME_PATTERN,
    AccuracyResponse,
    ActualsRequest,
    ActualsResponse,
    ErrorResponse,
)
from service.routes.admin import key_header, require_admin

router = APIRouter(tags=["monitoring"])

Name = Annotated[str, Path(pattern=NAME_PATTERN, description="Model name.")]
UNAVAILABLE = {
    503: {
        "model": ErrorResponse,
        "description": "The monitoring database is down or timed out, or (accuracy) too many "
        "queries are running; Retry-After says when to try again.",
    }
}


async def admin_key_if_set(request: Request, key: str | None = Depends(key_header)) -> None:
    """401 when an admin key is configured and the request does not carry it."""
    if request.app.state.settings.admin_api_key is not None:
        await require_admin(request, key)


@router.post(
    "/v1/actuals",
    response_model=ActualsResponse,
    dependencies=[Depends(admin_key_if_set)],
    responses={401: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, **UNAVAILABLE},
    summary="Observed values, matched to recorded forecasts by series id and timestamp.",
)
async def post_actuals(body: ActualsRequest, request: Request) -> ActualsResponse:
    return await asyncio.to_thread(request.app.state.monitor.ingest, body)


@router.get(
    "/v1/models/{name}/accuracy",
    response_model=AccuracyResponse,
    responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, **UNAVAILABLE},
    summary="Live accuracy per version and horizon step, with seasonal naive as the reference.",
)
async def get_accuracy(
    name: Name,
    request: Request,
    since: Annotated[str | None, Query(description="Target times from (ISO 8601).")] = None,
    until: Annotated[str | None, Query(description="Target times before (ISO 8601).")] = None,
    version: Annotated[int | None, Query(ge=1, le=999_999_999)] = None,
) -> AccuracyResponse:
    monitor = request.app.state.monitor
    return await monitor.read(monitor.accuracy, name, version, since, until)
