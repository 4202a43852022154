"""``GET /healthz`` (alive), ``GET /readyz`` (models loaded and warm), ``GET /metrics``."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import PlainTextResponse, Response

from forecaster.schemas import Readiness
from service.catalog import readiness
from service.deps import MetricsDep, MonitorDep, SettingsDep, StoreDep

router = APIRouter(tags=["health"])

ALIVE = b'{"status":"ok"}'


@router.get("/healthz", summary="The process is up.")
async def healthz() -> Response:
    return Response(ALIVE, media_type="application/json")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="200 once the models asked for are loaded and compiled, else 503; the body names "
    "what is missing, and whether forecasts are being recorded.",
    responses={503: {"model": Readiness, "description": "Not ready; `detail` says why."}},
)
async def readyz(monitor: MonitorDep, store: StoreDep, settings: SettingsDep) -> Response:
    ready = monitor.readiness(readiness(store, settings))
    status = 200 if ready.status == "ready" else 503
    return Response(ready.model_dump_json(), status, media_type="application/json")


@router.get(
    "/metrics",
    summary="Prometheus metrics.",
    response_class=PlainTextResponse,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}},
)
async def metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
