"""Connections a client holds with a real server on 127.0.0.1 (issue 29): a client that sends
requests and never reads the answers is cut off once its responses have waited
``FORECASTER_SEND_TIMEOUT_S`` in the server's write buffer, instead of holding that memory for as
long as it keeps the socket open."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.helpers.polling import wait_until
from tests.service.conftest import ROOT, free_port, wait_ready

# Pipelined requests for a ~29 kB answer each: ~11 MB in all, far more than the socket buffers
# of both ends hold, so the rest waits in the server's own write buffer.
REQUESTS = b"GET /openapi.json HTTP/1.1\r\nHost: test\r\n\r\n" * 400
CUT_OFF = "of responses unread for 1 s"


def test_a_client_that_never_reads_is_cut_off(registry_root: Path, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "FORECASTER_REGISTRY": str(registry_root),
        "FORECASTER_BATCH_SIZES": "[1, 4, 16]",
        "FORECASTER_COMPILATION_CACHE_DIR": str(tmp_path / "jax-cache"),
        "FORECASTER_NO_TCMALLOC": "1",
        "FORECASTER_SEND_TIMEOUT_S": "1",
    }
    log = tmp_path / "server.log"
    cmd = [sys.executable, "-m", "forecaster.cli", "serve", "--port", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(lambda: httpx.get(url + "/readyz", timeout=2).status_code)
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window
            sock.connect(("127.0.0.1", port))
            sock.sendall(REQUESTS)
            wait_until(
                lambda: CUT_OFF in log.read_text(),
                timeout=60,
                interval=0.1,
                message="the server kept the non-reader's buffer",
            )
            # Gone: what the kernel had already taken can still be read, then the stream ends
            # (or is reset); a connection left open would block here until the timeout.
            sock.settimeout(30)
            try:
                while sock.recv(1 << 20):
                    pass
            except ConnectionResetError:
                pass
        # The server itself is unharmed.
        assert httpx.get(url + "/healthz", timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text()
    assert text.count(CUT_OFF) == 1 and "closed the connection of 127.0.0.1:" in text
