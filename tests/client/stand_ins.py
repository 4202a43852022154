"""Tiny stand-ins for the forecast service that misbehave on purpose.

They answer 503 before answering, answer late, or refuse, so the client's retry, timeout and
error paths meet real HTTP; forecasting itself is always tested against the real service. Nothing
here imports JAX, so ``uvicorn tests.client.stand_ins:slow`` starts in a moment.
"""

from __future__ import annotations

import os
import threading
import time

import anyio
from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, Response

MODEL = "tiny"


class Counter:
    """Requests seen by a stand-in app (thread-safe: uvicorn and the test read it apart)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.paths: list[str] = []
        self.times: list[float] = []

    def add(self, path: str) -> int:
        with self._lock:
            self.paths.append(path)
            self.times.append(time.monotonic())
            return len(self.paths)


def flaky_app(
    counter: Counter, failures: int = 2, status: int = 503, retry_after: str | None = "0.2"
) -> FastAPI:
    """Answers ``status`` (with ``Retry-After``) to the first ``failures`` calls, then like the
    service would: a one-series forecast of ``horizon`` ones."""
    app = FastAPI()

    @app.post("/v1/forecast")
    async def forecast(request: Request) -> Response:
        if counter.add(request.url.path) <= failures:
            headers = {"Retry-After": retry_after} if retry_after is not None else None
            return JSONResponse({"detail": "overloaded: try later"}, status, headers=headers)
        body = await request.json()
        ones = [1.0] * body["horizon"]
        return JSONResponse({"forecast": ones, "model": MODEL, "version": 1})

    return app


def fixed_app(counter: Counter, status: int, detail: object) -> FastAPI:
    """Answers every call with ``status`` and ``{"detail": detail}``."""
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def anything(request: Request) -> Response:
        counter.add(request.url.path)
        return JSONResponse({"detail": detail}, status)

    return app


def slow_app(delay_s: float) -> FastAPI:
    """Takes ``delay_s`` seconds over every answer but ``/healthz``."""
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def anything() -> Response:
        await anyio.sleep(delay_s)
        return JSONResponse({"forecast": [1.0], "model": MODEL, "version": 1})

    return app


def slow() -> FastAPI:
    """``slow_app`` for ``uvicorn --factory``, delay from ``STAND_IN_DELAY_S``."""
    return slow_app(float(os.environ.get("STAND_IN_DELAY_S", "2")))
