"""``GET /v1/models`` and ``GET /v1/models/{name}``."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Request

from forecaster.registry import ModelNotFoundError
from forecaster.schemas import NAME_PATTERN, ErrorResponse, ModelDetail, ModelSummary
from service.store import ModelStore

router = APIRouter(tags=["models"])

Name = Annotated[str, Path(pattern=NAME_PATTERN, description="Model name.")]


@router.get("/v1/models", response_model=list[ModelSummary], summary="Every model in the registry.")
async def list_models(request: Request) -> list[ModelSummary]:
    store: ModelStore = request.app.state.store
    names = await asyncio.to_thread(store.registry.names)
    return [await _summary(store, name) for name in names]


@router.get(
    "/v1/models/{name}",
    response_model=ModelDetail,
    responses={404: {"model": ErrorResponse}},
    summary="One model: versions, alias, and the served version's config and metrics.",
)
async def get_model(name: Name, request: Request) -> ModelDetail:
    store: ModelStore = request.app.state.store
    summary = await _summary(store, name)
    served = store.get(name)
    if served is None:
        return ModelDetail(**summary.model_dump())
    manifest = served.loaded.manifest
    return ModelDetail(
        **summary.model_dump(),
        config=served.config.to_dict(),
        metrics=manifest.metrics,
        created_at=manifest.created_at.isoformat(),
    )


async def _summary(store: ModelStore, name: str) -> ModelSummary:
    """Raises ModelNotFoundError (404) for unknown names, without the registry's location."""
    try:
        versions, production = await _versions_and_alias(store, name)
    except ModelNotFoundError:
        raise ModelNotFoundError(f"no model named {name!r}") from None
    served = store.get(name)
    return ModelSummary(
        name=name,
        versions=versions,
        production=production,
        loaded_version=served.version if served else None,
    )


async def _versions_and_alias(store: ModelStore, name: str) -> tuple[list[int], int | None]:
    return await asyncio.gather(
        asyncio.to_thread(store.registry.versions, name),
        asyncio.to_thread(store.registry.alias, name),
    )
