"""Fixtures for the service tests: tiny random models in a temp registry, in-process apps and
real uvicorn servers on 127.0.0.1.

Random weights are enough here: the service's behaviour does not depend on forecast quality.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from forecaster.model import ModelConfig, init_params
from forecaster.registry import Registry
from service.app import create_app
from service.settings import Settings
from tests.helpers.polling import wait_until

ROOT = Path(__file__).resolve().parents[2]
TINY = ModelConfig(
    ensemble=1, cell="gru", hidden=8, input_size=48, horizon=12, step=24, quantiles=(0.1, 0.9)
)
OTHER = ModelConfig(ensemble=1, cell="lstm", hidden=8, input_size=24, horizon=6, step=12)
BATCH_SIZES = (1, 4, 16)
API_KEY = "test-admin-key"


def publish(
    root: Path, name: str, config: ModelConfig = TINY, seed: int = 0, **manifest: object
) -> int:
    """A new production version of ``name`` with random weights (``manifest``: freq, ...)."""
    params = init_params(config, seed)
    return Registry(root).publish(name, config, params, promote=True, **manifest)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def registry_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry shared by read-only tests: m4-hourly (v1) and other (v1)."""
    root = tmp_path_factory.mktemp("registry")
    publish(root, "m4-hourly")
    publish(root, "other", OTHER)
    return root


def make_settings(root: Path, **overrides: object) -> Settings:
    values = {
        "registry": root,
        "compilation_cache_dir": None,
        "batch_sizes": BATCH_SIZES,
        "alias_watch_interval_s": 0,
        "admin_api_key": API_KEY,
        "max_series": 50,
    }
    return Settings(**(values | overrides))


@contextmanager
def running_client(settings: Settings) -> Iterator[TestClient]:
    """An in-process client whose app has loaded and warmed its models."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        wait_ready(lambda: client.get("/readyz").status_code)
        yield client


def wait_ready(status: Callable[[], int], timeout: float = 60) -> None:
    """Until ``status`` (a probe's status code) is 200; TimeoutError if it never is."""
    try:
        wait_until(
            lambda: status() == 200,
            timeout=timeout,
            message="the service did not become ready",
            ignoring=(httpx.TransportError,),  # not listening yet
        )
    except AssertionError as never:
        # Never ready: a start-up hang or nothing loaded (see service/lifespan.py) tell apart
        # only by where the threads stood: their stacks go to the test's captured stderr.
        faulthandler.dump_traceback(all_threads=True)
        raise TimeoutError(str(never)) from None


@pytest.fixture(scope="module")
def client(registry_root: Path) -> Iterator[TestClient]:
    with running_client(make_settings(registry_root)) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real uvicorn process serving ``service.app:app`` on 127.0.0.1."""

    def __init__(
        self, root: Path, tmp: Path, *, ready: bool = True, timeout: float = 60, **env: str
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = {
            "FORECASTER_REGISTRY": str(root),
            "FORECASTER_BATCH_SIZES": "[1, 4, 16]",
            "FORECASTER_COMPILATION_CACHE_DIR": str(tmp / "jax-cache"),
            "FORECASTER_ADMIN_API_KEY": API_KEY,
        }
        cmd = [sys.executable, "-m", "uvicorn", "service.app:app", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--timeout-graceful-shutdown", "20", "--no-access-log"]
        self.log = tmp / f"server-{self.port}.log"
        self.process = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**os.environ, **settings, **env},
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        try:
            wait_ready(self._readyz if ready else self._healthz, timeout)
        except BaseException:
            self.stop()
            raise

    def _readyz(self) -> int:
        if self.process.poll() is not None:
            raise RuntimeError(f"server exited:\n{self.log.read_text()[-3000:]}")
        return httpx.get(self.url + "/readyz", timeout=2).status_code

    def _healthz(self) -> int:
        if self.process.poll() is not None:
            raise RuntimeError(f"server exited:\n{self.log.read_text()[-3000:]}")
        return httpx.get(self.url + "/healthz", timeout=2).status_code

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def server(root: Path, tmp: Path, *, ready: bool = True, **env: str) -> Iterator[Server]:
    """A real server, stopped after the block; ``ready=False`` yields it once it answers
    ``/healthz``, without waiting for ``/readyz``."""
    s = Server(root, tmp, ready=ready, **env)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def live_server(registry_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server for the read-only tests; a 64 KiB body limit for the 413 tests."""
    tmp = tmp_path_factory.mktemp("live")
    with server(registry_root, tmp, FORECASTER_MAX_BODY_BYTES=str(64 * 1024)) as s:
        yield s
