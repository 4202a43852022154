"""The service's monitoring under faults: settings out of range and unusable database URLs
refused in one line, a schema newer than the code, recording down shown by /readyz and a gauge,
accuracy queries bounded (their own threads, a statement timeout, 503 when full), the database's
address kept from clients. Real servers on 127.0.0.1, real SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import psycopg
import pytest
import sqlalchemy as sa

from forecaster.monitoring.store import MonitoringStore
from tests.helpers.polling import wait_until
from tests.service.conftest import ROOT, free_port, server
from tests.service.test_monitoring_routes import forecast_one, metric


def _cli(*argv: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "forecaster.cli", *argv],
        cwd=ROOT,
        env={**os.environ, "FORECASTER_NO_TCMALLOC": "1", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _one_line_error(done: subprocess.CompletedProcess, *words: str) -> str:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("variable", "value"),
    [("FORECASTER_RETENTION_DAYS", "1000000"), ("FORECASTER_RECORD_FLUSH_S", "1e300"),
     ("FORECASTER_RECORD_QUEUE", "0"), ("FORECASTER_ACCURACY_CONCURRENCY", "0"),
     ("FORECASTER_ADAPTIVE_GAMMA", "0"), ("FORECASTER_ADAPTIVE_GAMMA", "0.5"),
     ("FORECASTER_ADAPTIVE_INTERVALS", '["m4-hourly", ""]'),
     ("FORECASTER_ADAPTIVE_INTERVALS", "m4-hourly")],
)  # fmt: skip
def test_serve_refuses_a_setting_out_of_range_in_one_line(
    registry_root: Path, variable: str, value: str
) -> None:
    done = _cli("serve", "--registry", str(registry_root), "--port", "0", **{variable: value})
    _one_line_error(done, "forecaster serve: error:", variable)


def test_an_unusable_database_url_is_one_line_and_keeps_its_password(
    registry_root: Path,
) -> None:
    for url in ("not a url: hunter2", "nosuchdb://user:hunter2@host/db"):
        for argv in (["serve", "--registry", str(registry_root), "--port", "0"], ["monitor"]):
            done = _cli(*argv, FORECASTER_DATABASE_URL=url)
            line = _one_line_error(done, "monitoring database URL")
            assert "hunter2" not in line


def test_a_schema_newer_than_the_code_fails_start_up_in_one_line(
    registry_root: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    store = MonitoringStore(url)
    store.migrate()
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'ffff'"))
    store.close()
    done = _cli("serve", "--registry", str(registry_root), "--port", str(free_port()),
                FORECASTER_DATABASE_URL=url, FORECASTER_COMPILATION_CACHE_DIR="")  # fmt: skip
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "revision ffff, newer than this forecaster knows" in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]


def test_recording_down_shows_in_readyz_and_a_gauge_and_the_address_stays_in_the_log(
    registry_root: Path, tmp_path: Path, pg_cluster
) -> None:
    url = pg_cluster.database()
    env = {"FORECASTER_DATABASE_URL": url, "FORECASTER_RECORD_FLUSH_S": "0.1"}
    with server(registry_root, tmp_path, **env) as s:

        def readyz() -> dict:
            r = httpx.get(s.url + "/readyz", timeout=10)
            assert r.status_code == 200  # forecasts are still served: ready all along
            return r.json()

        def up() -> float | None:
            return metric(httpx.get(s.url + "/metrics", timeout=10).text, "forecaster_recording_up")

        assert forecast_one(s.url, "before").status_code == 200
        wait_until(lambda: up() == 1.0, timeout=20, message="recording never (again) up")
        assert readyz()["recording"] == "ok"
        pg_cluster.stop()
        try:
            assert forecast_one(s.url, "down").status_code == 200
            wait_until(lambda: up() == 0.0, timeout=60, message="recording never down")
            body = readyz()
            assert body["recording"] == "down" and "recording is down" in body["detail"]
            r = httpx.get(s.url + "/v1/models/m4-hourly/accuracy", timeout=30)
            assert r.status_code == 503 and "unavailable" in r.json()["detail"]
            assert str(pg_cluster.port) not in r.text + body["detail"]
            assert "127.0.0.1" not in r.text + body["detail"]
        finally:
            pg_cluster.start()
        assert forecast_one(s.url, "after").status_code == 200
        wait_until(lambda: up() == 1.0, timeout=60, message="recording never (again) up")
        assert readyz()["recording"] == "ok"
        log = s.log.read_text()
    assert str(pg_cluster.port) in log  # the operator still learns where it failed


def test_accuracy_queries_are_bounded_and_never_starve_the_other_routes(
    registry_root: Path, tmp_path: Path, pg_cluster
) -> None:
    """Two accuracy queries stuck on a locked table fill their threads: a third is refused
    at once (503, Retry-After), the model list and forecasts answer meanwhile, and the stuck
    ones end at the statement timeout rather than never."""
    url = pg_cluster.database()
    env = {"FORECASTER_DATABASE_URL": url, "FORECASTER_ACCURACY_CONCURRENCY": "2",
           "FORECASTER_DATABASE_TIMEOUT_S": "10"}  # fmt: skip
    with server(registry_root, tmp_path, **env) as s:
        accuracy = s.url + "/v1/models/m4-hourly/accuracy"
        assert httpx.get(accuracy, timeout=30).status_code == 200
        with psycopg.connect(url.replace("postgresql://", "postgresql://", 1)) as locker:
            locker.execute("LOCK TABLE scores IN ACCESS EXCLUSIVE MODE")  # held until rollback
            answers: list[httpx.Response] = []
            stuck = [threading.Thread(target=lambda: answers.append(httpx.get(accuracy,
                     timeout=60))) for _ in range(2)]  # fmt: skip
            for t in stuck:
                t.start()
            wait_until(
                lambda: _waiting_on_locks(url) == 2,
                timeout=20,
                message="the two accuracy queries never waited on the lock",
            )
            extra = httpx.get(accuracy, timeout=30)
            assert extra.status_code == 503 and extra.headers["Retry-After"]
            assert "accuracy queries are running" in extra.json()["detail"]
            assert httpx.get(s.url + "/v1/models", timeout=30).status_code == 200
            assert forecast_one(s.url, "meanwhile").status_code == 200
            assert not answers and all(t.is_alive() for t in stuck)
            for t in stuck:
                t.join(timeout=60)
            locker.rollback()
        assert [r.status_code for r in answers] == [503, 503]
        assert all("timed out" in r.json()["detail"] for r in answers)
        assert httpx.get(accuracy, timeout=30).status_code == 200  # slots given back


def _waiting_on_locks(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        return conn.execute(query).fetchone()[0]
