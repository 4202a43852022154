"""The FastAPI application: ``create_app(settings)``, and ``app`` for ``uvicorn service.app:app``.

Start-up and shutdown live in :mod:`service.lifespan`; the routes in :mod:`service.routes`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from forecaster.registry import Registry
from forecaster.schemas import ForecastRequest
from service import errors
from service.catalog import required_models
from service.deps import Services
from service.lifespan import OneLineStartupFailure, lifespan
from service.limits import BodyLimitMiddleware
from service.metrics import ServiceMetrics
from service.monitoring import Monitor
from service.routes import admin, console, forecast, health, models, monitoring
from service.settings import Settings
from service.store import ModelStore

log = logging.getLogger(__name__)
REF_TEMPLATE = "#/components/schemas/{model}"
# Swagger UI's files, vendored (see its README): /docs works offline, without a CDN.
SWAGGER_UI = Path(__file__).resolve().parent / "static" / "swagger-ui"
SWAGGER_PATH = "/docs/static"


def _add_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from the files beside this module. (FastAPI's own page and ReDoc
    load theirs from a CDN: a blank page offline, so both are off.)"""
    app.mount(SWAGGER_PATH, StaticFiles(directory=SWAGGER_UI), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url=f"{SWAGGER_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_PATH}/favicon-32x32.png",
        )


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus ForecastRequest, whose body the forecast route parses itself."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        request = ForecastRequest.model_json_schema(ref_template=REF_TEMPLATE)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(request.pop("$defs", {}), ForecastRequest=request)
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app serving the models of ``settings.registry`` (settings from the env if None)."""
    settings = settings or Settings()
    app = FastAPI(
        title="forecaster",
        summary="Multi-horizon forecasts from recurrent (LSTM/GRU/RNN) models.",
        version="0.1.0",
        lifespan=lifespan,
        # Prometheus metrics below cover what we need; FastAPI's OpenTelemetry hooks would
        # otherwise check for providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url=None,
        redoc_url=None,
    )
    _add_docs(app)
    metrics = ServiceMetrics()
    store = ModelStore(
        Registry(settings.registry),
        settings.batch_sizes,
        settings.models,
        required_models(settings),
        on_swap=lambda name, version: metrics.model_version.labels(name).set(version),
        on_failure=lambda name: metrics.load_failures.labels(name).inc(),
    )
    app.state.services = Services(settings, metrics, store, Monitor(settings, metrics))
    for router in (forecast.router, models.router, monitoring.router, health.router):
        app.include_router(router)
    if settings.admin_api_key is not None:
        app.include_router(admin.router)
    if settings.console:
        console.mount(app)
    errors.install(app, settings.retry_after_s)
    # FastAPI's documented way to extend the document: replace the app's openapi method.
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    # Added last = outermost. One layer for the body limits and the metrics (each ASGI layer
    # costs every request): it refuses oversize or non-JSON bodies before anything parses them,
    # and the metrics see every answer, those refusals included.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        timeout_s=settings.body_timeout_s,
        retry_after_s=settings.retry_after_s,
        on_answer=metrics.observe_request,
    )
    app.add_middleware(OneLineStartupFailure)
    return app


app = create_app()
