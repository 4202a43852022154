"""Servers for the client tests: the real service, in-process or as a uvicorn process."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.from_thread
import httpx
from fastapi import FastAPI

from forecaster.model import ModelConfig, init_params
from forecaster.registry import Registry
from service.settings import Settings
from tests.helpers.polling import wait_until

MODEL = "tiny"
CONFIG = ModelConfig(
    ensemble=1, cell="gru", hidden=8, input_size=48, step=24, horizon=12, quantiles=(0.1, 0.9)
)
REPO = Path(__file__).resolve().parents[2]


def publish_tiny(root: Path) -> Path:
    """A registry at ``root`` whose hourly ``tiny`` model (untrained, but finite) is in
    production."""
    Registry(root).publish(
        MODEL, CONFIG, init_params(CONFIG), promote=True, freq="h", seasonality=24
    )
    return root


def service_settings(root: Path, **overrides: object) -> Settings:
    """Settings for a quick test service: few batch shapes to compile, no watcher, no cache."""
    values: dict[str, object] = {
        "registry": root,
        "default_model": MODEL,
        "batch_sizes": (1, 4, 16),
        "alias_watch_interval_s": 0,
        "compilation_cache_dir": None,
    }
    return Settings(**(values | overrides))


@contextlib.contextmanager
def running_app(app: FastAPI) -> Iterator[anyio.from_thread.BlockingPortal]:
    """Run ``app``'s lifespan on an event loop in a helper thread, for as long as the block.

    Every in-process call (sync through :class:`SyncASGITransport`, async through
    ``portal.call``) must run on this one loop: the app's batcher lives on it.
    """
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
    ):
        yield portal


class SyncASGITransport(httpx.BaseTransport):
    """Calls an ASGI app in-process from synchronous code, on the loop of ``portal``.

    httpx's own ASGITransport is async only; this is what lets ``ForecastClient`` (sync) talk to
    the app without a socket.
    """

    def __init__(self, app: FastAPI, portal: anyio.from_thread.BlockingPortal) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._portal = portal

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._portal.call(self._handle, request)

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        content = await response.aread()
        return httpx.Response(response.status_code, headers=response.headers, content=content)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def uvicorn_server(
    app: str, env: dict[str, str], *, app_dir: Path = REPO, factory: bool = False
) -> Iterator[str]:
    """Run ``uvicorn <app>`` on a free loopback port; yields its base URL, stops it after."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--app-dir", str(app_dir), "--log-level", "warning", "--no-access-log"]
    command += ["--factory"] if factory else []
    proc = subprocess.Popen(command, cwd=REPO, env=os.environ | env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_listening(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_listening(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    def listening() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {proc.returncode}")
        httpx.get(f"{url}/healthz", timeout=1.0)  # any answer will do
        return True

    wait_until(
        listening,
        timeout=timeout,
        message=f"uvicorn did not start listening on {url}",
        ignoring=(httpx.TransportError,),
    )
