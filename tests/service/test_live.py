"""A real uvicorn on 127.0.0.1: forecasts, 413 for chunked bodies, SIGTERM, hot swap under load."""

from __future__ import annotations

import select
import signal
import socket
import threading
import time

import httpx

from forecaster.model import ModelConfig
from tests.helpers.polling import wait_until
from tests.service.conftest import TINY, publish, server

BODY = {"history": [float(i % 24) + 1 for i in range(96)], "horizon": 4}


def test_forecast(live_server):
    r = httpx.post(live_server.url + "/v1/forecast", json=BODY, timeout=10)
    assert r.status_code == 200, r.text
    assert len(r.json()["forecast"]) == 4 and r.json()["version"] == 1


def test_declared_oversize_body_is_413(live_server):
    r = httpx.post(
        live_server.url + "/v1/forecast",
        content=b"[" + b"1," * 40_000 + b"1]",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["detail"][0]["type"] == "too_large"


def test_chunked_oversize_body_is_413(live_server):
    """No Content-Length: the server must count the streamed bytes and stop reading."""
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as sock:
        head = (
            "POST /v1/forecast HTTP/1.1\r\nHost: localhost\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sock.sendall(head.encode())
        chunk = b"2000\r\n" + b" " * 0x2000 + b"\r\n"
        reply = b""
        for _ in range(256):  # up to 2 MiB, far past the 64 KiB limit, until the answer comes
            sock.sendall(chunk)
            # Read the answer as soon as it is there: once the server closes with our unread
            # bytes in its buffer, its kernel resets the connection.
            if select.select([sock], [], [], 0.01)[0]:
                reply = _read_reply(sock)
                break
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"too_large" in reply


def _read_reply(sock: socket.socket) -> bytes:
    """Head and body of one response (they may come in separate segments)."""
    reply = b""
    while b"too_large" not in reply:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        reply += data
    return reply


def test_sigterm_finishes_the_request_in_flight(registry_root, tmp_path):
    # A long batch wait keeps the request in flight while the signal arrives.
    with server(registry_root, tmp_path, FORECASTER_MAX_BATCH_WAIT_MS="1500") as s:
        result: dict = {}

        def call() -> None:
            result["response"] = httpx.post(s.url + "/v1/forecast", json=BODY, timeout=20)

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.5)  # not a poll: nothing outside shows a request in the batch wait
        s.terminate()
        caller.join(20)
        assert result["response"].status_code == 200
        # uvicorn re-raises the signal once it has shut down gracefully, as init systems expect.
        assert s.process.wait(timeout=20) in (0, -signal.SIGTERM)
        log = s.log.read_text()
        assert "Traceback" not in log and "Finished server process" in log


def test_hot_swap_under_load(tmp_path):
    root = tmp_path / "registry"
    publish(root, "m4-hourly")
    with server(root, tmp_path, FORECASTER_ALIAS_WATCH_INTERVAL_S="0.2") as s:
        seen: list[list[int]] = [[] for _ in range(4)]
        failures: list[str] = []
        stop = threading.Event()

        def load(versions: list[int]) -> None:
            with httpx.Client(base_url=s.url, timeout=10) as client:
                for _ in range(2000):  # bounded, whatever happens
                    if stop.is_set():
                        return
                    try:
                        r = client.post("/v1/forecast", json=BODY)
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))
                        continue
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text}")
                    else:
                        versions.append(r.json()["version"])

        threads = [threading.Thread(target=load, args=(v,)) for v in seen]
        for t in threads:
            t.start()
        wait_until(lambda: all(seen), message="not every client was answered by version 1")
        # A different architecture, so the new version must also compile while v1 serves.
        publish(root, "m4-hourly", ModelConfig(**{**TINY.to_dict(), "hidden": 16}), seed=1)
        wait_until(
            lambda: all(v[-1] == 2 for v in seen),
            message="not every client was answered by version 2",
        )
        swapped = [len(v) for v in seen]  # the load goes on a little after the swap
        wait_until(
            lambda: all(len(v) >= n + 3 for v, n in zip(seen, swapped, strict=True)),
            message="the load stopped after the swap",
        )
        stop.set()
        for t in threads:
            t.join(30)

    assert failures == []
    for versions in seen:
        assert versions[0] == 1 and versions[-1] == 2
        assert versions == sorted(versions)  # never back to the old version once swapped
