"""Slow and odd clients against a real server on 127.0.0.1 (issue 16): header and body deadlines,
header size, the connection cap, JSON on every refusal, content types, shutdown with a client
stalled mid-body, capped error echoes and the admin routes' details.

Deadlines are set to about a second here so the whole file runs in well under a minute.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request

from forecaster.model import init_params
from forecaster.registry import Registry
from service.app import create_app
from service.errors import without_registry_path
from tests.helpers.polling import wait_until
from tests.service.conftest import (
    API_KEY,
    ROOT,
    TINY,
    free_port,
    make_settings,
    publish,
    wait_ready,
)

KEY = {"X-API-Key": API_KEY}
JSON = {"content-type": "application/json"}
HISTORY = [float(i % 24) + 1 for i in range(48)]
BODY = {"history": HISTORY, "horizon": 2}
DEADLINE_S = 1.0
CAP = 10
LIMITS = {
    "FORECASTER_HEADER_TIMEOUT_S": str(DEADLINE_S),
    "FORECASTER_BODY_TIMEOUT_S": str(DEADLINE_S),
    "FORECASTER_KEEP_ALIVE_S": "1",
    "FORECASTER_MAX_HEADER_BYTES": "4096",
    "FORECASTER_MAX_CONNECTIONS": str(CAP),
}


class Proc:
    """A server process (``forecaster serve`` or ``uvicorn ... --http service.limits:protocol``)
    on a free loopback port, ready when constructed."""

    def __init__(self, root: Path, tmp: Path, cache: Path, cli: bool = True, **env: str) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # faulthandler: a server that never becomes ready dumps every thread's stack (below).
        if cli:
            cmd = ["-X", "faulthandler", "-m", "forecaster.cli", "serve", "--registry", str(root)]
        else:
            cmd = ["-X", "faulthandler", "-m", "uvicorn", "service.app:app"]
            cmd += ["--http", "service.limits:protocol"]
            cmd += ["--timeout-graceful-shutdown", env.get("FORECASTER_GRACEFUL_SHUTDOWN_S", "20")]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
        settings = {
            "FORECASTER_REGISTRY": str(root),
            "FORECASTER_BATCH_SIZES": "[1, 4, 16]",
            "FORECASTER_COMPILATION_CACHE_DIR": str(cache),
            "FORECASTER_ADMIN_API_KEY": API_KEY,
            "FORECASTER_ALIAS_WATCH_INTERVAL_S": "0",
            "FORECASTER_NO_TCMALLOC": "1",
        }
        self.log = tmp / f"server-{self.port}.log"
        self.process = subprocess.Popen(
            [sys.executable, *cmd],
            cwd=ROOT,
            env={**os.environ, **settings, **env},
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        try:
            wait_ready(self._readyz)
        except TimeoutError:
            self.process.send_signal(signal.SIGABRT)  # faulthandler writes the stacks to the log
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
            self.stop()
            raise TimeoutError(f"server not ready:\n{self.log.read_text()[-6000:]}") from None
        except BaseException:
            self.stop()
            raise

    def _readyz(self) -> int:
        if self.process.poll() is not None:
            raise RuntimeError(f"server exited:\n{self.log.read_text()[-3000:]}")
        return httpx.get(self.url + "/readyz", timeout=2).status_code

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def running(root: Path, tmp: Path, cache: Path, cli: bool = True, **env: str) -> Iterator[Proc]:
    proc = Proc(root, tmp, cache, cli, **env)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def jax_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One compilation cache for every server here: they serve the same shapes."""
    return tmp_path_factory.mktemp("hardening-jax-cache")


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory, jax_cache: Path) -> Iterator[Proc]:
    """``forecaster serve`` with one-second deadlines and a cap of 10 connections; m4-hourly v1
    in production, v2 and v3 published for the promote test."""
    tmp = tmp_path_factory.mktemp("hardened")
    root = tmp / "registry"
    publish(root, "m4-hourly")
    for seed in (1, 2):
        Registry(root).publish("m4-hourly", TINY, init_params(TINY, seed))
    with running(root, tmp, jax_cache, **LIMITS) as proc:
        yield proc


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and when it closed (s from now)."""
    start = time.monotonic()
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        except TimeoutError:
            raise AssertionError(f"still open after {timeout} s; got {data[:200]!r}") from None
        if not chunk:
            break
        data += chunk
    return data, time.monotonic() - start


def parse(reply: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body


def assert_json_refusal(reply: bytes, status: int) -> dict:
    code, headers, body = parse(reply)
    assert code == status, reply[:300]
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    return json.loads(body)


# ------------------------------------------------------------------ slow and odd clients


def test_stalled_headers_get_408_and_the_connection_closes(hardened):
    with hardened.connect() as sock:
        sock.sendall(b"POST /v1/forecast HTTP/1.1\r\nHost: localhost\r\n")
        reply, after = read_until_closed(sock, timeout=5)
    detail = assert_json_refusal(reply, 408)["detail"]
    assert detail[0]["loc"] == ["header"] and detail[0]["type"] == "timeout"
    assert DEADLINE_S * 0.8 < after < DEADLINE_S + 1.5


def test_trickled_headers_do_not_extend_the_deadline(hardened):
    """One byte every 0.1 s would keep an idle timer alive forever; the deadline is a total."""
    start = time.monotonic()
    reply = None
    with hardened.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        for _ in range(60):  # up to 6 s
            sock.sendall(b"X")
            if select.select([sock], [], [], 0.1)[0]:
                reply, _ = read_until_closed(sock, timeout=2)
                break
    assert reply is not None and time.monotonic() - start < DEADLINE_S + 1
    assert_json_refusal(reply, 408)


def test_a_silent_connection_is_closed(hardened):
    with hardened.connect() as sock:
        reply, after = read_until_closed(sock, timeout=5)
    assert reply == b"" and after < DEADLINE_S + 1.5


def test_oversized_headers_get_431(hardened):
    with hardened.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 8000)
        reply, _ = read_until_closed(sock, timeout=5)
    assert assert_json_refusal(reply, 431)["detail"][0]["type"] == "too_large"


def test_stalled_body_gets_408_and_the_connection_closes(hardened):
    with hardened.connect() as sock:
        head = (
            "POST /v1/forecast HTTP/1.1\r\nHost: localhost\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"history": [1, 2')
        reply, after = read_until_closed(sock, timeout=5)
    detail = assert_json_refusal(reply, 408)["detail"]
    assert detail[0]["loc"] == ["body"] and detail[0]["type"] == "timeout"
    assert DEADLINE_S * 0.8 < after < DEADLINE_S + 1.5


def test_malformed_request_gets_json_400(hardened):
    with hardened.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nBad Header\r\n\r\n")
        reply, _ = read_until_closed(sock, timeout=5)
    assert "invalid HTTP request" in assert_json_refusal(reply, 400)["detail"]


def test_slow_connections_are_capped_then_closed(hardened):
    """30 stalled clients: new requests get a JSON 503 (liveness still answers) until the
    deadline closes every one of them; then the server serves again."""
    socks = [hardened.connect() for _ in range(30)]
    try:
        for sock in socks:
            sock.sendall(b"POST /v1/forecast HTTP/1.1\r\nHost: localhost\r\n")
        with httpx.Client(base_url=hardened.url, timeout=5) as client:

            def refused() -> httpx.Response | None:
                r = client.post("/v1/forecast", json=BODY)
                # Served until the server has taken the 30 stalled connections, then refused.
                assert r.status_code in (200, 503), r.text
                return r if r.status_code == 503 else None

            r = wait_until(refused, timeout=DEADLINE_S, message="no refusal past the cap")
            assert r.headers["content-type"] == "application/json"
            assert "too many connections" in r.json()["detail"] and "retry-after" in r.headers
        with httpx.Client(base_url=hardened.url, timeout=5) as client:
            assert client.get("/healthz").status_code == 200
        replies = [read_until_closed(sock, timeout=DEADLINE_S + 2)[0] for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    for reply in replies:
        assert_json_refusal(reply, 408)
    r = httpx.post(hardened.url + "/v1/forecast", json=BODY, timeout=10)
    assert r.status_code == 200, r.text


# ------------------------------------------------------------------ content types


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",  # what `curl -d` sends
        "application/jsonx",
        "application/json; charset=latin-1",
        None,
    ],
)
def test_a_body_that_is_not_json_gets_415(hardened, content_type):
    headers = {} if content_type is None else {"content-type": content_type}
    r = httpx.post(
        hardened.url + "/v1/forecast", content=json.dumps(BODY), headers=headers, timeout=10
    )
    assert r.status_code == 415, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["detail"][0]["loc"] == ["header", "content-type"]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;Charset=UTF-8",
        'application/json; charset="utf-8"',
    ],
)
def test_json_with_or_without_charset_is_accepted(hardened, content_type):
    r = httpx.post(
        hardened.url + "/v1/forecast",
        content=json.dumps(BODY),
        headers={"content-type": content_type},
        timeout=10,
    )
    assert r.status_code == 200, r.text


def test_admin_bodies_are_checked_too(hardened):
    r = httpx.post(
        hardened.url + "/v1/models/m4-hourly/promote",
        content=b'{"version": 2}',
        headers={**KEY, "content-type": "text/plain"},
        timeout=10,
    )
    assert r.status_code == 415, r.text
    # Admin POSTs without a body need no content type.
    r = httpx.post(hardened.url + "/v1/models/nope/reload", headers=KEY, timeout=10)
    assert r.status_code == 404, r.text


# ------------------------------------------------------------------ messages


def test_a_huge_bad_timestamp_is_not_echoed_back(hardened):
    stamps = [f"2024-01-01T{h:02d}:00:00" for h in range(24)] * 2
    stamps[5] = "x" * (4 * 1024 * 1024)
    body = json.dumps({"history": HISTORY, "timestamps": stamps, "horizon": 2})
    r = httpx.post(hardened.url + "/v1/forecast", content=body, headers=JSON, timeout=30)
    assert r.status_code == 422, r.text[:300]
    assert len(r.content) < 1024
    (detail,) = r.json()["detail"]
    assert detail["loc"][:2] == ["body", "timestamps"]
    assert "\n" not in detail["msg"] and "x" * 101 not in detail["msg"]
    assert "You might want to try" not in detail["msg"]


def test_unknown_model_messages_keep_their_quotes(hardened):
    r = httpx.post(hardened.url + "/v1/forecast", json=BODY | {"model": "nope"}, timeout=10)
    assert r.status_code == 404 and "'nope'" in r.json()["detail"][0]["msg"]


# ------------------------------------------------------------------ admin details


@pytest.mark.parametrize("action", ["reload", "rollback"])
def test_admin_404_for_unknown_model_creates_nothing_and_hides_the_path(hardened, action):
    root: Path = hardened.root
    before = sorted(p.name for p in root.iterdir())
    r = httpx.post(f"{hardened.url}/v1/models/nope/{action}", headers=KEY, timeout=10)
    assert r.status_code == 404, r.text
    assert r.headers["content-type"] == "application/json"
    assert "'nope'" in r.json()["detail"]
    assert str(root) not in r.text and str(root.resolve()) not in r.text
    assert not (root / "nope").exists()
    assert sorted(p.name for p in root.iterdir()) == before


def test_concurrent_promotes_report_their_own_previous_version(hardened):
    """Two promotes at once are serialised by the store; each must report the version its own
    swap replaced, so the answers chain: v_before -> first -> second."""
    before = httpx.post(hardened.url + "/v1/forecast", json=BODY, timeout=10).json()["version"]
    results: dict[int, httpx.Response] = {}

    def promote(version: int) -> None:
        results[version] = httpx.post(
            f"{hardened.url}/v1/models/m4-hourly/promote",
            json={"version": version},
            headers=KEY,
            timeout=60,
        )

    threads = [threading.Thread(target=promote, args=(v,)) for v in (2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    answers = [r.json() for r in results.values()]
    assert all(r.status_code == 200 for r in results.values()), answers
    first, second = sorted(answers, key=lambda a: a["previous"] != before)
    assert first["previous"] == before
    assert second["previous"] == first["version"]
    served = httpx.post(hardened.url + "/v1/forecast", json=BODY, timeout=10).json()["version"]
    assert served == second["version"] == Registry(hardened.root).alias("m4-hourly")


# ------------------------------------------------------------------ shutdown


def test_sigterm_answers_a_client_stalled_mid_body_at_once(registry_root, tmp_path, jax_cache):
    """The stalled client gets a JSON 503 right away and shutdown does not wait out the
    20-second grace period for it (uvicorn alone waited, then sent a plain-text 500). Started
    the documented other way, ``uvicorn ... --http service.limits:protocol``."""
    env = {"FORECASTER_GRACEFUL_SHUTDOWN_S": "20", "FORECASTER_BODY_TIMEOUT_S": "60"}
    with running(registry_root, tmp_path, jax_cache, cli=False, **env) as proc:
        mid_body = proc.connect()
        head = (
            "POST /v1/forecast HTTP/1.1\r\nHost: localhost\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        )
        mid_body.sendall(head.encode() + b'{"history": [1')
        mid_head = proc.connect()
        mid_head.sendall(b"POST /v1/forecast HTTP/1.1\r\n")
        # Not a poll: nothing outside the server shows that it has read these bytes.
        time.sleep(0.3)
        start = time.monotonic()
        proc.process.terminate()
        with mid_body, mid_head:
            reply, answered = read_until_closed(mid_body, timeout=5)
            head_reply, _ = read_until_closed(mid_head, timeout=5)
        proc.process.wait(timeout=10)
        exited = time.monotonic() - start
    assert_json_refusal(reply, 503)
    assert answered < 2 and exited < 5, (answered, exited)
    assert_json_refusal(head_reply, 503)


def test_a_request_cut_off_by_the_grace_period_gets_json_503(registry_root, tmp_path, jax_cache):
    env = {"FORECASTER_GRACEFUL_SHUTDOWN_S": "1", "FORECASTER_MAX_BATCH_WAIT_MS": "8000"}
    with running(registry_root, tmp_path, jax_cache, **env) as proc:
        result: dict = {}

        def call() -> None:
            result["r"] = httpx.post(proc.url + "/v1/forecast", json=BODY, timeout=20)

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.5)  # not a poll: nothing outside shows a request in the batch wait
        proc.process.terminate()
        caller.join(timeout=15)
        proc.process.wait(timeout=10)
    r = result["r"]
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/json"
    assert "shutting down" in r.json()["detail"] and "retry-after" in r.headers


def test_a_relative_registry_root_is_hidden_but_not_scrubbed_from_words():
    """The default root is ``models``: the phrase naming it goes, the word in "(models: ...)"
    stays; an absolute path to it becomes ``<registry>``."""
    request = Request({"type": "http", "app": create_app(make_settings(Path("models")))})
    msg = "no model named 'x' in registry models (models: a, b)"
    expected = "no model named 'x' in the registry (models: a, b)"
    assert without_registry_path(request, msg) == expected
    msg = f"{os.path.abspath('models')}/a/1/weights.safetensors is corrupt"
    assert without_registry_path(request, msg) == "<registry>/a/1/weights.safetensors is corrupt"
