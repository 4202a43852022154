"""Three real uvicorn replicas started at the same moment on one PostgreSQL store and one
registry: the store is migrated once with no start-up error, a promotion made through one
replica is served by all three, and the monitoring tables hold each forecast once, scored
once by actuals sent to another replica than the one that answered it."""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing, contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import psycopg
import pytest
import sqlalchemy as sa

from forecaster.monitoring import tables
from forecaster.monitoring.store import MonitoringStore
from tests.helpers.polling import wait_until
from tests.service.conftest import API_KEY, ROOT, Server

MODEL = "m4-hourly"
REPLICAS = 3
WATCH_S = 1.0
# Beyond the watch interval: loading and checking the new version (its shapes come from the
# shared compilation cache) on a machine shared with the other replicas.
LOAD_ALLOWANCE_S = 60.0
HISTORY, HORIZON = 200, 24
SERIES = 3 * REPLICAS
START = datetime(2024, 5, 1)
# Three processes starting at once on a small shared machine: each may take three times as long
# as one server alone (conftest's 60 s).
START_S = 180.0
KEY = {"X-API-Key": API_KEY}
# What the service logs when it could not prepare, or later use, the monitoring store.
STORE_TROUBLE = re.compile(r"monitoring database|forecast recording|Traceback|ERROR")
# Sessions of this database waiting on a lock (a table's name, or the migration lock).
WAITING_ON_A_LOCK = (
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


def stamps(n: int, start: datetime = START) -> list[str]:
    return [(start + timedelta(hours=k)).isoformat() for k in range(n)]


def history(seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    t = np.arange(HISTORY)
    return (100 + 10 * np.sin(t * 2 * np.pi / 24) + rng.normal(size=HISTORY)).tolist()


@contextmanager
def replicas(root: Path, tmp: Path, **env: str) -> Iterator[list[Server]]:
    """:data:`REPLICAS` servers, their processes started at the same moment (each thread
    starts its own, then waits for it to be ready), all stopped after the block."""
    with ExitStack() as stack, ThreadPoolExecutor(REPLICAS) as pool:
        starting = [pool.submit(Server, root, tmp, timeout=START_S, **env) for _ in range(REPLICAS)]
        servers: list[Server] = []
        failed: Exception | None = None
        for future in starting:  # every one is waited for, so none is left running
            try:
                servers.append(stack.enter_context(_stopped_after(future.result())))
            except Exception as exc:
                failed = exc
        if failed is not None:
            raise failed
        yield servers


@contextmanager
def gate(url: str) -> Iterator[None]:
    """Make every replica reach its migration before any of them runs it.

    Start-up jitter (seconds, on a loaded machine) is far longer than a migration (a fraction
    of one), so replicas left alone rarely overlap there; the race is made certain instead.
    An uncommitted ``CREATE TABLE alembic_version`` of our own makes the first statement that
    writes the schema wait, whoever runs it; once :data:`REPLICAS` sessions are waiting on a
    lock (that one, or the migration lock in front of it), it is rolled back and they go."""
    held = psycopg.connect(url)
    held.execute("CREATE TABLE alembic_version (version_num varchar(32) NOT NULL)")
    done = threading.Event()

    def release() -> None:
        deadline = time.monotonic() + START_S
        with psycopg.connect(url, autocommit=True) as watch:
            while not done.is_set() and time.monotonic() < deadline:
                row = watch.execute(WAITING_ON_A_LOCK).fetchone()
                if row is not None and row[0] >= REPLICAS:
                    break
                time.sleep(0.05)
        held.rollback()
        held.close()

    releaser = threading.Thread(target=release, name="migration-gate")
    releaser.start()
    try:
        yield
    finally:
        done.set()
        releaser.join()


@contextmanager
def _stopped_after(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


def served_version(server: Server) -> int | None:
    return httpx.get(f"{server.url}/v1/models/{MODEL}", timeout=5).json()["loaded_version"]


def test_three_replicas_share_one_store_and_one_registry(tmp_path: Path, pg_cluster) -> None:
    root = tmp_path / "registry"
    shutil.copytree(ROOT / "models" / MODEL, root / MODEL)
    url = pg_cluster.database()
    env = {
        "FORECASTER_DATABASE_URL": url,
        "FORECASTER_ALIAS_WATCH_INTERVAL_S": str(WATCH_S),
        "FORECASTER_RECORD_FLUSH_S": "0.1",
        "FORECASTER_BATCH_SIZES": "[1, 4]",
        # The gate holds the first replica there until the last one arrives.
        "FORECASTER_DATABASE_TIMEOUT_S": str(START_S),
    }
    with (
        gate(url),
        replicas(root, tmp_path, **env) as servers,
        closing(MonitoringStore(url)) as store,
    ):
        # Migrated once: one revision row, and no replica met the store failing at start-up.
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1
        for s in servers:
            trouble = [ln for ln in s.log.read_text().splitlines() if STORE_TROUBLE.search(ln)]
            assert trouble == [], f"replica on port {s.port} logged:\n" + "\n".join(trouble)
        assert [served_version(s) for s in servers] == [1] * REPLICAS

        # A promotion through one replica's admin API is served by all of them.
        shutil.copytree(root / MODEL / "1", root / MODEL / "2")
        promoted = httpx.post(
            f"{servers[0].url}/v1/models/{MODEL}/promote", json={"version": 2},
            headers=KEY, timeout=120,
        )  # fmt: skip
        assert promoted.status_code == 200, promoted.text
        wait_until(
            lambda: all(served_version(s) == 2 for s in servers),
            timeout=WATCH_S + LOAD_ALLOWANCE_S,
            message=lambda: (
                f"not every replica serves version 2: {[served_version(s) for s in servers]}"
            ),
        )

        # Forecasts sent round-robin: each is stored once.
        ids = [f"series-{k}" for k in range(SERIES)]
        answers = {}
        for k, sid in enumerate(ids):
            body = {"series": [{"id": sid, "history": history(k), "timestamps": stamps(HISTORY)}],
                    "horizon": HORIZON, "model": MODEL}  # fmt: skip
            answer = httpx.post(f"{servers[k % REPLICAS].url}/v1/forecast", json=body, timeout=60)
            assert answer.status_code == 200, answer.text
            assert answer.json()["version"] == 2
            [answered] = answer.json()["forecasts"]
            answers[sid] = answered["forecast"]
        f = tables.forecasts

        def recorded() -> list[tuple[str, int]]:
            with store.engine.connect() as conn:
                return [(r[0], r[1]) for r in conn.execute(sa.select(f.c.series_id, f.c.version))]

        wait_until(lambda: len(recorded()) >= SERIES, timeout=30, message="forecasts unrecorded")
        assert sorted(recorded()) == [(sid, 2) for sid in sorted(ids)]

        # Actuals sent to another replica than the one that answered: each forecast is scored
        # once per step, and sending them again (to the third replica) adds no score.
        future = stamps(HORIZON, START + timedelta(hours=HISTORY))
        for attempt in (1, 2):
            for k, sid in enumerate(ids):
                values = [v + 1.0 for v in answers[sid]]
                body = {"series": [{"id": sid, "timestamps": future, "values": values}]}
                to = servers[(k + attempt) % REPLICAS]
                got = httpx.post(f"{to.url}/v1/actuals", json=body, headers=KEY, timeout=60)
                assert got.status_code == 200, got.text
                assert got.json()["matched"] == HORIZON
        sc = tables.scores
        with store.engine.connect() as conn:
            per_forecast = conn.execute(
                sa.select(f.c.series_id, sa.func.count(), sa.func.avg(sc.c.abs_error))
                .select_from(sc.join(f, f.c.id == sc.c.forecast_id))
                .group_by(f.c.series_id)
            ).all()
        assert sorted((sid, n) for sid, n, _ in per_forecast) == [(s, HORIZON) for s in sorted(ids)]
        assert all(err == pytest.approx(1.0) for _, _, err in per_forecast)
        assert sorted(recorded()) == [(sid, 2) for sid in sorted(ids)]  # still once each
