"""``GET /v1/models`` and ``GET /v1/models/{name}``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from forecaster.schemas import NAME_PATTERN, ErrorResponse, ModelDetail, ModelSummary
from service import catalog

router = APIRouter(tags=["models"])

Name = Annotated[str, Path(pattern=NAME_PATTERN, description="Model name.")]


@router.get(
    "/v1/models",
    response_model=list[ModelSummary],
    summary="Every model in the registry: versions, alias, and the served version's frequency, "
    "window, horizon and quantiles.",
)
async def list_models(request: Request) -> list[ModelSummary]:
    return await catalog.summaries(request.app.state.store, request.app.state.settings)


@router.get(
    "/v1/models/{name}",
    response_model=ModelDetail,
    responses={404: {"model": ErrorResponse}},
    summary="One model: its summary plus the served version's config and metrics.",
)
async def get_model(name: Name, request: Request) -> ModelDetail:
    return await catalog.detail(request.app.state.store, request.app.state.settings, name)
