"""``GET /v1/models``, ``GET /v1/models/{name}`` and ``GET /v1/models/{name}/versions``."""

from __future__ import annotations

from fastapi import APIRouter

from forecaster.schemas import ErrorResponse, ModelDetail, ModelSummary, ModelVersion
from service import catalog
from service.deps import Name, SettingsDep, StoreDep

router = APIRouter(tags=["models"])


@router.get(
    "/v1/models",
    response_model=list[ModelSummary],
    summary="Every model in the registry: versions, alias, and the served version's frequency, "
    "window, horizon and quantiles.",
)
async def list_models(store: StoreDep, settings: SettingsDep) -> list[ModelSummary]:
    return await catalog.summaries(store, settings)


@router.get(
    "/v1/models/{name}",
    response_model=ModelDetail,
    responses={404: {"model": ErrorResponse}},
    summary="One model: its summary plus the served version's config and metrics.",
)
async def get_model(name: Name, store: StoreDep, settings: SettingsDep) -> ModelDetail:
    return await catalog.detail(store, settings, name)


@router.get(
    "/v1/models/{name}/versions",
    response_model=list[ModelVersion],
    responses={404: {"model": ErrorResponse}},
    summary="Every version, newest first: frequency, window, horizon, training scores, the "
    "aliases pointing at it and the retraining job's decision.",
)
async def list_versions(name: Name, store: StoreDep) -> list[ModelVersion]:
    return await catalog.versions(store, name)
