"""``GET /healthz`` (alive), ``GET /readyz`` (models loaded and warm), ``GET /metrics``."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

router = APIRouter(tags=["health"])

ALIVE = b'{"status":"ok"}'


@router.get("/healthz", summary="The process is up.")
async def healthz() -> Response:
    return Response(ALIVE, media_type="application/json")


@router.get(
    "/readyz",
    summary="200 once the default model is loaded and compiled for every batch shape, else 503.",
    responses={503: {"description": "Still loading."}},
)
async def readyz(request: Request) -> Response:
    state = request.app.state
    served = {name: m.version for name, m in state.store.served().items()}
    ready = state.store.started and state.settings.default_model in served
    body = {"status": "ready" if ready else "loading", "models": served}
    return Response(json.dumps(body), 200 if ready else 503, media_type="application/json")


@router.get("/metrics", summary="Prometheus metrics.")
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
