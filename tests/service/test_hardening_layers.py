"""The limit layers in-process, where timing and state can be seen exactly (issue 16, and the
per-request cost of issue 15): the body deadline of :class:`BodyLimitMiddleware`, its report of
every answer to the metrics, and the header deadline of :func:`service.protocol.http_protocol`,
which arms a timer only for a head that did not arrive whole.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from service.limits import BodyLimitMiddleware
from service.protocol import ConnectionLimits, http_protocol
from tests.service.conftest import make_settings, running_client

BODY = b'{"history": [1, 2, 3], "horizon": 1}'
JSON_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"37")]


def _scope(headers: list[tuple[bytes, bytes]] = JSON_HEADERS) -> dict:
    return {"type": "http", "method": "POST", "path": "/v1/forecast", "headers": headers}


async def _drive(app, messages: list[tuple[float, dict]], scope: dict | None = None):
    """Run ``app`` on one request whose body ``messages`` arrive after their delays (s); returns
    the messages it sent."""
    pending = list(messages)

    async def receive() -> dict:
        if not pending:
            await asyncio.Event().wait()  # as a server does until the client goes away
        delay, message = pending.pop(0)
        await asyncio.sleep(delay)
        return message

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope or _scope(), receive, send)
    return sent


def _chunk(body: bytes, more: bool = False) -> dict:
    return {"type": "http.request", "body": body, "more_body": more}


class _Inner:
    """The app behind the middleware: records the body it got and whether its task still
    carries a cancellation (a timer left armed, or an uncancel forgotten, would show here)."""

    def __init__(self) -> None:
        self.body: bytes | None = None
        self.cancelling: int | None = None

    async def __call__(self, scope, receive, send) -> None:
        self.body = (await receive())["body"]
        self.cancelling = asyncio.current_task().cancelling()
        await asyncio.sleep(0.15)  # past the deadline: a timer left armed would cancel us here
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def test_a_body_in_time_reaches_the_app_and_leaves_no_timer_behind():
    inner, answers = _Inner(), []
    app = BodyLimitMiddleware(inner, 1000, timeout_s=0.1, on_answer=lambda *a: answers.append(a))
    half = len(BODY) // 2
    sent = asyncio.run(
        _drive(app, [(0.03, _chunk(BODY[:half], True)), (0.03, _chunk(BODY[half:]))])
    )
    assert sent[0]["status"] == 200
    assert inner.body == BODY and inner.cancelling == 0
    ((scope, status, seconds),) = answers
    assert scope["path"] == "/v1/forecast" and status == 200 and 0.2 < seconds < 5


def test_a_body_past_its_deadline_is_a_json_408_reported_to_the_metrics():
    inner, answers = _Inner(), []
    app = BodyLimitMiddleware(inner, 1000, timeout_s=0.1, on_answer=lambda *a: answers.append(a))

    async def run() -> tuple[list[dict], int]:
        sent = await _drive(app, [(0.01, _chunk(b'{"his', True)), (5, _chunk(b'tory"'))])
        return sent, asyncio.current_task().cancelling()

    sent, cancelling = asyncio.run(asyncio.wait_for(run(), 3))
    assert sent[0]["status"] == 408 and cancelling == 0
    detail = json.loads(sent[1]["body"])["detail"][0]
    assert detail["loc"] == ["body"] and detail["type"] == "timeout"
    assert inner.body is None and answers[0][1] == 408


def test_a_cancel_from_outside_is_a_json_503_not_a_timeout():
    """Shutdown cancelling a request whose body is still arriving stays a cancellation: the
    client gets a 503 to retry, and the task ends cancelled, not answered 408."""
    answers: list = []
    app = BodyLimitMiddleware(_Inner(), 1000, timeout_s=0.2, on_answer=lambda *a: answers.append(a))

    async def run() -> list[dict]:
        sent: list[dict] = []

        async def receive() -> dict:
            await asyncio.sleep(5)
            raise AssertionError("unreachable")

        async def send(message: dict) -> None:
            sent.append(message)

        task = asyncio.ensure_future(app(_scope(), receive, send))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.3)  # past the deadline: its timer must be gone
        return sent

    sent = asyncio.run(run())
    assert [m.get("status") for m in sent if "status" in m] == [503]
    assert "shutting down" in json.loads(sent[1]["body"])["detail"]
    assert [a[1] for a in answers] == [503]


@pytest.mark.parametrize(
    ("content_type", "status"),
    [(b"application/json", 200), (b"text/plain", 415), (b"Application/JSON; charset=UTF-8", 200)],
)
def test_content_type_answers_do_not_depend_on_what_came_before(content_type, status):
    """The parse of a Content-Type is cached: the same value twice, and after others, gives the
    same answer."""
    for _ in range(2):
        headers = [(b"content-type", content_type), (b"content-length", b"37")]
        sent = asyncio.run(
            _drive(BodyLimitMiddleware(_Inner(), 1000), [(0, _chunk(BODY))], _scope(headers))
        )
        assert sent[0]["status"] == status


def test_refusals_are_counted_in_the_metrics(registry_root):
    with running_client(make_settings(registry_root, max_body_bytes=100)) as c:
        headers = {"content-type": "text/plain"}
        assert c.post("/v1/forecast", content=b"{}", headers=headers).status_code == 415
        big = b'{"history": [' + b"1, " * 100 + b'1], "horizon": 1}'
        r = c.post("/v1/forecast", content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert c.get("/healthz").status_code == 200
        text = c.get("/metrics").text
    assert 'forecaster_requests_total{method="POST",route="unmatched",status="415"} 1.0' in text
    assert 'forecaster_requests_total{method="POST",route="unmatched",status="413"} 1.0' in text
    assert 'forecaster_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text


# ------------------------------------------------------------------ the protocol


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written, self.closed, self.aborted = b"", False, False

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 1 << 20

    def get_extra_info(self, name: str, default: object = None) -> object:
        addresses = {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 5555)}
        return addresses.get(name, default)


async def _ok(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _protocol(base: type, max_header_bytes: int = 100, send_timeout_s: float = 30):
    config = Config(app=_ok, ws="none", lifespan="off", access_log=False)
    config.load()
    limits = ConnectionLimits(
        header_timeout_s=30,
        max_header_bytes=max_header_bytes,
        max_connections=None,
        retry_after_s=1,
        send_timeout_s=send_timeout_s,
    )
    cls = http_protocol(limits, base)
    proto = cls(config=config, server_state=ServerState(), app_state={})
    transport = _Transport()
    proto.connection_made(transport)
    return proto, transport


@pytest.mark.parametrize("base", [HttpToolsProtocol, H11Protocol])
def test_a_whole_head_arms_no_timer_and_a_partial_one_keeps_counting(base):
    async def run() -> None:
        proto, transport = _protocol(base)
        assert proto._deadline is not None  # from the connection's start
        proto.data_received(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert proto._deadline is None  # the head came whole: nothing to time
        while b"200" not in transport.written:
            await asyncio.sleep(0)
        transport.written = b""
        await asyncio.sleep(0.01)  # uvicorn finishes the cycle
        proto.data_received(b"GET /healthz HTTP/1.1\r\nX-A: " + b"a" * 40)  # 68 bytes
        first = proto._deadline
        assert first is not None  # a partial head: timed from its first byte
        proto.data_received(b"a" * 20)
        assert proto._deadline is first and not transport.closed  # 88: the same deadline
        proto.data_received(b"a" * 20)  # 108 bytes of head in all, over 100: 431
        assert transport.written.startswith(b"HTTP/1.1 431") and transport.closed
        proto.connection_lost(None)

    asyncio.run(run())


@pytest.mark.parametrize("base", [HttpToolsProtocol, H11Protocol])
def test_the_send_deadline_runs_only_while_the_client_leaves_the_buffer_full(base):
    """A client that reads (the buffer drops below its low-water mark) stops the deadline; one
    that does not is cut off, its buffer dropped (abort, not close: close would wait for it)."""

    async def run() -> None:
        proto, transport = _protocol(base, send_timeout_s=0.05)
        proto.pause_writing()
        assert proto._send_deadline is not None
        proto.resume_writing()  # the client read
        assert proto._send_deadline is None
        await asyncio.sleep(0.1)  # past the deadline: no timer was left behind
        assert not transport.closed
        proto.pause_writing()
        deadline = asyncio.get_running_loop().time() + 5
        while not transport.aborted and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert transport.aborted
        proto.connection_lost(None)
        assert proto._send_deadline is None

    asyncio.run(run())
