"""Admin routes (mounted only when an API key is configured): reload, promote, rollback."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.security import APIKeyHeader

from forecaster.schemas import NAME_PATTERN, AdminResult, ErrorResponse, PromoteRequest
from service.store import ModelStore

API_KEY_HEADER = "X-API-Key"
_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)

Name = Annotated[str, Path(pattern=NAME_PATTERN, description="Model name.")]


async def require_admin(request: Request, key: str | None = Depends(_key_header)) -> None:
    """401 unless the header holds the configured key (compared in constant time)."""
    expected = request.app.state.settings.admin_api_key.get_secret_value().encode()
    if key is None or not hmac.compare_digest(key.encode(), expected):
        raise HTTPException(401, "missing or wrong API key", {"WWW-Authenticate": API_KEY_HEADER})


router = APIRouter(
    prefix="/v1/models/{name}",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses={
        401: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        409: {"model": ErrorResponse, "description": "Load failed; the old version serves."},
    },
)


@router.post("/reload", response_model=AdminResult, summary="Load the production version now.")
async def reload(name: Name, request: Request) -> AdminResult:
    store: ModelStore = request.app.state.store
    previous = store.get(name)
    served = await store.refresh(name, force=True)
    return AdminResult(model=name, version=served.version, previous=_version(previous))


@router.post(
    "/promote",
    response_model=AdminResult,
    summary="Load and check a version, then point the production alias at it and serve it.",
)
async def promote(name: Name, body: PromoteRequest, request: Request) -> AdminResult:
    store: ModelStore = request.app.state.store
    previous = store.get(name)
    served = await store.promote(name, body.version)
    return AdminResult(model=name, version=served.version, previous=_version(previous))


@router.post(
    "/rollback",
    response_model=AdminResult,
    summary="Move the production alias back to its previous version and serve that.",
)
async def rollback(name: Name, request: Request) -> AdminResult:
    store: ModelStore = request.app.state.store
    previous = store.get(name)
    served = await store.rollback(name)
    return AdminResult(model=name, version=served.version, previous=_version(previous))


def _version(served: object) -> int | None:
    return getattr(served, "version", None)
