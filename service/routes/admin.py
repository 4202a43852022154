"""Admin routes (mounted only when an API key is configured): reload, promote, rollback."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.security import APIKeyHeader

from forecaster.schemas import AdminResult, ErrorResponse, PromoteRequest
from service.deps import Name, SettingsDep, StoreDep
from service.errors import UNPARSED_BODY
from service.store import Swap

API_KEY_HEADER = "X-API-Key"
key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)
Key = Annotated[str | None, Depends(key_header)]


async def require_admin(settings: SettingsDep, key: Key) -> None:
    """401 unless the header holds the configured key (compared in constant time)."""
    assert settings.admin_api_key is not None  # this router is mounted only with one
    expected = settings.admin_api_key.get_secret_value().encode()
    if key is None or not hmac.compare_digest(key.encode(), expected):
        raise HTTPException(401, "missing or wrong API key", {"WWW-Authenticate": API_KEY_HEADER})


router = APIRouter(
    prefix="/v1/models/{name}",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses={
        401: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        409: {
            "model": ErrorResponse,
            "description": "Load failed (the old version serves), or another writer holds the "
            "model (a retraining job publishing, another admin call): the body names it; "
            "nothing was done.",
        },
        415: {"model": ErrorResponse, "description": "A body that is not application/json."},
        **UNPARSED_BODY,
    },
)


@router.post("/reload", response_model=AdminResult, summary="Load the production version now.")
async def reload(name: Name, store: StoreDep) -> AdminResult:
    return _result(name, await store.reload(name))


@router.post(
    "/promote",
    response_model=AdminResult,
    summary="Load and check a version, then point the production alias at it and serve it.",
)
async def promote(name: Name, body: PromoteRequest, store: StoreDep) -> AdminResult:
    return _result(name, await store.promote(name, body.version))


@router.post(
    "/rollback",
    response_model=AdminResult,
    summary="Move the production alias back to its previous version and serve that.",
)
async def rollback(name: Name, store: StoreDep) -> AdminResult:
    return _result(name, await store.rollback(name))


def _result(name: str, swap: Swap) -> AdminResult:
    """``previous`` comes from the store's swap itself, not a read before waiting for its lock
    (two concurrent promotes would otherwise both report the same predecessor)."""
    previous = None if swap.previous is None else swap.previous.version
    return AdminResult(model=name, version=swap.served.version, previous=previous)
