"""``POST /v1/actuals`` (behind the admin key when one is set), ``GET
/v1/models/{name}/accuracy`` (and its ``/timeline``), ``GET /v1/series`` and ``GET
/v1/series/{id}``: the truth in, live accuracy and recorded forecasts out
(:mod:`service.monitoring`)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from forecaster.schemas import (
    ID_MAX_LENGTH,
    NAME_PATTERN,
    AccuracyResponse,
    AccuracyTimeline,
    ActualsRequest,
    ActualsResponse,
    ErrorResponse,
    Every,
    SeriesRecord,
    SeriesSummary,
    id_problem,
)
from service.deps import MonitorDep, Name, SettingsDep
from service.errors import UNPARSED_BODY
from service.requests import RequestError
from service.routes.admin import Key, require_admin

router = APIRouter(tags=["monitoring"])
ModelQuery = Annotated[str | None, Query(pattern=NAME_PATTERN, description="Only this model's.")]

UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {
        "model": ErrorResponse,
        "description": "The monitoring database is down or timed out, or (accuracy) too many "
        "queries are running; Retry-After says when to try again.",
    }
}


async def admin_key_if_set(settings: SettingsDep, key: Key) -> None:
    """401 when an admin key is configured and the request does not carry it."""
    if settings.admin_api_key is not None:
        await require_admin(settings, key)


@router.post(
    "/v1/actuals",
    response_model=ActualsResponse,
    dependencies=[Depends(admin_key_if_set)],
    responses={
        401: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
        **UNAVAILABLE,
        **UNPARSED_BODY,
    },
    summary="Observed values, matched to recorded forecasts by series id and timestamp.",
)
async def post_actuals(body: ActualsRequest, monitor: MonitorDep) -> ActualsResponse:
    return await asyncio.to_thread(monitor.ingest, body)


@router.get(
    "/v1/models/{name}/accuracy",
    response_model=AccuracyResponse,
    responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, **UNAVAILABLE},
    summary="Live accuracy per version and horizon step, with seasonal naive as the reference.",
)
async def get_accuracy(
    name: Name,
    monitor: MonitorDep,
    since: Annotated[str | None, Query(description="Target times from (ISO 8601).")] = None,
    until: Annotated[str | None, Query(description="Target times before (ISO 8601).")] = None,
    version: Annotated[int | None, Query(ge=1, le=999_999_999)] = None,
) -> AccuracyResponse:
    return await monitor.read(monitor.accuracy, name, version, since, until)


@router.get(
    "/v1/models/{name}/accuracy/timeline",
    response_model=AccuracyTimeline,
    responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, **UNAVAILABLE},
    summary="Live accuracy window by window (an hour, a day or a week each) per version.",
)
async def get_timeline(
    name: Name,
    monitor: MonitorDep,
    every: Annotated[Every, Query(description="Each window's length.")] = "day",
    since: Annotated[str | None, Query(description="Target times from (ISO 8601).")] = None,
    until: Annotated[str | None, Query(description="Target times before (ISO 8601).")] = None,
    version: Annotated[int | None, Query(ge=1, le=999_999_999)] = None,
) -> AccuracyTimeline:
    return await monitor.read(monitor.timeline, name, every, version, since, until)


@router.get(
    "/v1/series",
    response_model=list[SeriesSummary],
    responses={422: {"model": ErrorResponse}, **UNAVAILABLE},
    summary="The series forecast most recently (recorded ones: with an id and timestamps).",
)
async def list_series(
    monitor: MonitorDep,
    model: ModelQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[SeriesSummary]:
    return await monitor.read(monitor.recent_series, model, limit)


@router.get(
    "/v1/series/{series_id:path}",
    response_model=SeriesRecord,
    responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, **UNAVAILABLE},
    summary="A series' actuals and its latest recorded forecasts, for plotting one over the other.",
)
async def get_series(
    series_id: Annotated[str, Path(max_length=ID_MAX_LENGTH, description="The series' id.")],
    monitor: MonitorDep,
    model: ModelQuery = None,
    forecasts: Annotated[int, Query(ge=1, le=500, description="Latest forecasts given.")] = 20,
) -> SeriesRecord:
    problem = id_problem(series_id)
    if problem is not None:
        raise RequestError(422, ("path", "series_id"), problem)
    return await monitor.read(monitor.series, series_id, model, forecasts)
