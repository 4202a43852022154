"""Start-up and shutdown of the service (the ASGI lifespan).

Start-up first checks that every model asked for by name can be served (else it fails with one
line, see :class:`OneLineStartupFailure`), then begins answering at once: ``/healthz`` is 200
immediately, ``/readyz`` turns 200 once the models are loaded and compiled for every batch shape,
which happens in the background so orchestrators can tell "starting" from "dead". Then the
production aliases are watched, and forecasts recorded (:mod:`service.monitoring`). Shutdown
stops the watcher and the batcher after uvicorn has drained in-flight requests, then writes the
forecasts still queued for recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable

import jax
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.batcher import MicroBatcher
from service.catalog import StartupError, check_startup
from service.deps import services
from service.settings import Settings
from service.store import ModelStore


def configure_compilation_cache(settings: Settings) -> None:
    """Persist compiled shapes on disk so a restart skips most of XLA's work."""
    if settings.compilation_cache_dir is None:
        return
    # jax.config.update is untyped; the options are set by name, as jax documents them.
    update: Callable[[str, object], None] = jax.config.update
    update("jax_compilation_cache_dir", str(settings.compilation_cache_dir))
    # The defaults cache only compilations over a second; ours take a fraction each.
    update("jax_persistent_cache_min_compile_time_secs", 0.0)
    update("jax_persistent_cache_min_entry_size_bytes", 0)


async def _load_then_watch(store: ModelStore, interval_s: float) -> None:
    await store.load_all()
    # Hundreds of thousands of long-lived objects (JAX, Flax, pandas, the models) would otherwise
    # be rescanned by every full collection under load, pausing requests for tens of ms.
    gc.collect()
    gc.freeze()
    if interval_s > 0:
        await store.watch(interval_s)


def _ensure_logging() -> None:
    """Let the service's log lines (every swap and load failure) reach stderr when nothing
    configured logging (``uvicorn service.app:app``; ``forecaster serve`` configures it)."""
    if logging.getLogger().handlers:
        return
    logger = logging.getLogger("service")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    found = services(app)
    settings, store = found.settings, found.store
    _ensure_logging()
    await asyncio.to_thread(check_startup, store.registry, settings)
    configure_compilation_cache(settings)
    # JAX's backend starts here, on this thread, before the threads that load the models and
    # migrate the monitoring store exist: twice in CI a server hung with those two start-ups
    # running at once in two threads (its log stops between the migration and the backend's
    # first line). Not reproduced alone; starting the backend first removes the overlap. The
    # likelier cause, found later: the migration's SQLite journal vanishing while the registry
    # was listed made the listing empty, so nothing loaded (fixed in storage._list_local).
    jax.devices()
    found.batcher = batcher = MicroBatcher(
        max_wait_s=settings.max_batch_wait_ms / 1000,
        max_batch_series=settings.max_batch_series,
        max_slice_series=settings.max_slice_series,
        max_queued_series=settings.max_queued_series,
        on_batch=found.metrics.batch_size.observe,
    )
    batcher.start()
    await found.monitor.start()
    loader = asyncio.create_task(
        _load_then_watch(store, settings.alias_watch_interval_s), name="model-loader"
    )
    try:
        yield
    finally:
        loader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loader
        await batcher.stop()
        await found.monitor.stop()


class OneLineStartupFailure:
    """ASGI middleware: a :class:`StartupError` fails start-up with its message alone.

    Starlette reports a failed start-up to the server with the whole traceback, which uvicorn
    prints; for a configuration mistake the one line saying what to change is the useful part.
    Other failures keep their traceback.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def hold_failure(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                held.append(message)  # sent below, once we know what failed
            else:
                await send(message)

        try:
            await self.app(scope, receive, hold_failure)
        except StartupError as exc:
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            raise
        except BaseException:
            for message in held:
                await send(message)
            raise
