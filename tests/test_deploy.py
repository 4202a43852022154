"""Deployment: the compose file and Dockerfile, and a retrain that a live service picks up.

Images cannot be built here, so the Dockerfile is checked as text and the compose file through
``docker-compose config`` (which validates and resolves it without a Docker engine).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from forecaster.model import ModelConfig, init_params
from forecaster.registry import Registry
from tests.helpers.polling import wait_until

ROOT = Path(__file__).resolve().parents[1]
# Subprocesses share the project's persistent compilation cache (the service's default
# FORECASTER_COMPILATION_CACHE_DIR), so programs compiled by one test's process are reused.
JAX_CACHE_ENV = {
    "JAX_COMPILATION_CACHE_DIR": str(ROOT / ".jax_cache"),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
}
REGISTRY_PATH = "/data/models"
TINY = ModelConfig(ensemble=1, cell="gru", hidden=8, input_size=24, horizon=6, step=6)
FLAGS = ["--hidden", "8", "--seasonality", "6", "--input-size", "24", "--horizon", "6",
         "--steps", "60", "--batch-size", "16", "--eval-every", "60",
         "--warmup-steps", "5"]  # fmt: skip


# ---------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict:
    """docker-compose.yml as ``docker-compose config`` resolves it, with default settings."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (Debian: apt-get install docker-compose)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FORECASTER_", "RETRAIN_"))}
    proc = subprocess.run(
        [binary, "-f", str(ROOT / "docker-compose.yml"), "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def _mounts(service: dict) -> dict[str, str]:
    """{target: source} of a service's volumes (short or long syntax)."""
    out = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            out[volume["target"]] = volume.get("source", "")
        else:
            source, target = volume.split(":")[:2]
            out[target] = source
    return out


def test_compose_defines_api_and_on_demand_retrain(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"api", "retrain"}
    api, job = services["api"], services["retrain"]
    assert api["image"] == job["image"]
    assert "profiles" not in api  # `docker-compose up` starts the api only
    assert job["profiles"] == ["retrain"]
    assert job.get("restart", "no") == "no"
    assert job["command"][:2] == ["forecaster", "retrain"]


def test_compose_shares_the_model_volume(compose: dict) -> None:
    assert "models" in compose["volumes"]
    api, job = compose["services"]["api"], compose["services"]["retrain"]
    assert _mounts(api)[REGISTRY_PATH] == _mounts(job)[REGISTRY_PATH] == "models"
    assert api["environment"]["FORECASTER_REGISTRY"] == REGISTRY_PATH
    command = job["command"]
    assert command[command.index("--registry") + 1] == REGISTRY_PATH


def test_compose_healthcheck_probes_readyz(compose: dict) -> None:
    check = compose["services"]["api"]["healthcheck"]
    assert any("/readyz" in part for part in check["test"])
    assert {"interval", "timeout", "retries", "start_period"} <= set(check)


# ---------------------------------------------------------------------------- Dockerfile


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_runtime_stage() -> None:
    steps = _instructions()
    final = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    runtime = steps[final:]
    assert runtime[0] == ("FROM", "python:3.11-slim")
    run = " ".join(arg for op, arg in runtime if op == "RUN")
    env = " ".join(arg for op, arg in runtime if op == "ENV")
    assert "libtcmalloc-minimal4" in run
    assert "LD_PRELOAD=/usr/local/lib/libtcmalloc_minimal.so.4" in env
    assert f"FORECASTER_REGISTRY={REGISTRY_PATH}" in env
    assert any(
        op == "COPY" and arg.split()[-2:] == ["models/", f"{REGISTRY_PATH}/"] for op, arg in runtime
    )
    users = [arg for op, arg in runtime if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert ("CMD", '["forecaster", "serve", "--host", "0.0.0.0"]') in runtime
    assert any(op == "HEALTHCHECK" and "/readyz" in arg for op, arg in runtime)


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", "tests", ".jax_cache"} <= ignored
    assert not {"models", "forecaster", "service", "pyproject.toml", "README.md"} & ignored


# ---------------------------------------------------------------------------- hot swap


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real uvicorn serving a registry whose production model is v1 of ``demo``."""
    root = tmp_path / "models"
    Registry(root).publish("demo", TINY, init_params(TINY, 3), promote=True)
    port = _free_port()
    env = {
        **os.environ,
        "FORECASTER_REGISTRY": str(root),
        "FORECASTER_DEFAULT_MODEL": "demo",
        "FORECASTER_ALIAS_WATCH_INTERVAL_S": "0.2",
        "FORECASTER_BATCH_SIZES": "[1, 4]",
        "FORECASTER_COMPILATION_CACHE_DIR": str(ROOT / ".jax_cache"),
    }
    log = tmp_path / "server.log"
    cmd = [sys.executable, "-m", "uvicorn", "service.app:app", "--no-access-log"]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("w") as out:
        server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, server, log)
        yield url, root
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_ready(url: str, server: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    def ready() -> bool:
        if server.poll() is not None:
            pytest.fail(f"the server exited:\n{log.read_text()[-3000:]}")
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200

    wait_until(
        ready,
        timeout=timeout,
        interval=0.2,
        message=lambda: f"the server was not ready:\n{log.read_text()[-3000:]}",
        ignoring=(httpx.TransportError,),
    )


class Load:
    """Clients sending forecast requests back to back, recording every answer."""

    def __init__(self, url: str, clients: int = 2) -> None:
        self.url, self.stop = url, threading.Event()
        self.versions: list[int] = []
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        body = {"history": [50.0 + (i % 6) * 3 for i in range(30)], "horizon": 3}
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                try:
                    response = client.post("/v1/forecast", json=body)
                except httpx.HTTPError as err:
                    self.failures.append(repr(err))
                    continue
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code}: {response.text[:200]}")
                else:
                    self.versions.append(response.json()["version"])
                time.sleep(0.005)  # leave the two CPUs some room for the training job

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


def test_retrain_is_picked_up_by_the_running_service(
    live: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = live
    csv = tmp_path / "hourly.csv"
    rows = [
        (f"s{i}", t, (20 + 10 * i) * (1.3 + np.sin(k * np.pi / 3)))
        for i in range(4)
        for k, t in enumerate(pd.date_range("2024-01-01", periods=90, freq="h"))
    ]
    pd.DataFrame(rows, columns=["id", "timestamp", "value"]).to_csv(csv, index=False)
    load = Load(url)
    try:
        argv = ["--data", str(csv), "--registry", str(root), "--name", "demo"]
        argv += ["--promote", "always", "--no-progress", *FLAGS]
        job = subprocess.run(
            [sys.executable, "-m", "forecaster.cli", "retrain", *argv],
            cwd=ROOT,
            env={**os.environ, **JAX_CACHE_ENV},
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert job.returncode == 0, job.stderr[-3000:]
        assert "demo: promoted v2 to production" in job.stdout
        wait_until(
            lambda: 2 in load.versions[-5:], timeout=60, message="version 2 was never served"
        )
        swapped = len(load.versions)  # the load goes on a little after the swap
        wait_until(lambda: len(load.versions) >= swapped + 10, message="the load stopped")
    finally:
        load.finish()

    assert load.failures == []
    assert load.versions[0] == 1 and load.versions[-1] == 2
    assert len(load.versions) > 20
    assert httpx.get(f"{url}/readyz").json()["models"] == {"demo": 2}
