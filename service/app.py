"""The FastAPI application: ``create_app(settings)``, and ``app`` for ``uvicorn service.app:app``.

Start-up (lifespan) begins answering at once: ``/healthz`` is 200 immediately, ``/readyz`` turns
200 once the models are loaded and compiled for every batch shape, which happens in the
background so orchestrators can tell "starting" from "dead". Then the production aliases are
watched. Shutdown stops the watcher and the batcher after uvicorn has drained in-flight requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

import jax
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from forecaster.registry import Registry
from forecaster.schemas import ForecastRequest
from forecaster.settings import Settings
from service import errors
from service.batcher import MicroBatcher
from service.limits import BodyLimitMiddleware
from service.metrics import MetricsMiddleware, ServiceMetrics
from service.routes import admin, forecast, health, models
from service.store import ModelStore

log = logging.getLogger(__name__)
REF_TEMPLATE = "#/components/schemas/{model}"


def configure_compilation_cache(settings: Settings) -> None:
    """Persist compiled shapes on disk so a restart skips most of XLA's work."""
    if settings.compilation_cache_dir is None:
        return
    jax.config.update("jax_compilation_cache_dir", str(settings.compilation_cache_dir))
    # The defaults cache only compilations over a second; ours take a fraction each.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


async def _load_then_watch(store: ModelStore, interval_s: float) -> None:
    await store.load_all()
    # Hundreds of thousands of long-lived objects (JAX, Flax, pandas, the models) would otherwise
    # be rescanned by every full collection under load, pausing requests for tens of ms.
    gc.collect()
    gc.freeze()
    if interval_s > 0:
        await store.watch(interval_s)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    metrics: ServiceMetrics = app.state.metrics
    configure_compilation_cache(settings)
    app.state.batcher = MicroBatcher(
        max_wait_s=settings.max_batch_wait_ms / 1000,
        max_batch_series=settings.max_batch_series,
        max_queued_series=settings.max_queued_series,
        on_batch=metrics.batch_size.observe,
    )
    app.state.batcher.start()
    loader = asyncio.create_task(
        _load_then_watch(app.state.store, settings.alias_watch_interval_s), name="model-loader"
    )
    try:
        yield
    finally:
        loader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loader
        await app.state.batcher.stop()


def _openapi(app: FastAPI) -> dict:
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
    )
    metrics = ServiceMetrics()
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.store = ModelStore(
        Registry(settings.registry),
        settings.batch_sizes,
        settings.models,
        on_swap=lambda name, version: metrics.model_version.labels(name).set(version),
    )
    forecast.install(app)
    for router in (models.router, health.router):
        app.include_router(router)
    if settings.admin_api_key is not None:
        app.include_router(admin.router)
    errors.install(app, settings.retry_after_s)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    # Added last = outermost: the limit refuses oversize bodies before anything else runs,
    # and the metrics see every answer, 413s included.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


app = create_app()
