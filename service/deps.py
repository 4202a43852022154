"""What routes and error handlers use of their app, typed (``store: StoreDep``, as in FastAPI's
full-stack template), and the parameters routes share. The forecast route calls :func:`services`
itself: each dependency costs a request 10-17 µs of CPU, about 5% of a forecast's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, cast

from fastapi import Depends, Path, Request
from starlette.applications import Starlette

from forecaster.schemas import NAME_PATTERN
from service.batcher import MicroBatcher
from service.metrics import ServiceMetrics
from service.monitoring import Monitor
from service.settings import Settings
from service.store import ModelStore

T = TypeVar("T")


@dataclass
class Services:
    """What one app's requests share (made by :func:`service.app.create_app`)."""

    settings: Settings
    metrics: ServiceMetrics
    store: ModelStore
    monitor: Monitor
    batcher: MicroBatcher | None = None  # from start-up to shutdown (service.lifespan)


def services(app: Starlette) -> Services:
    """``app``'s services (``app.state`` holds them untyped)."""
    return cast(Services, app.state.services)


def _one(pick: Callable[[Services], T]) -> Any:
    # A coroutine: FastAPI runs a plain function in its thread pool.
    async def dependency(request: Request) -> T:
        return pick(services(request.app))

    return Depends(dependency)


SettingsDep = Annotated[Settings, _one(lambda s: s.settings)]
MetricsDep = Annotated[ServiceMetrics, _one(lambda s: s.metrics)]
StoreDep = Annotated[ModelStore, _one(lambda s: s.store)]
MonitorDep = Annotated[Monitor, _one(lambda s: s.monitor)]
Name = Annotated[str, Path(pattern=NAME_PATTERN, description="Model name.")]
