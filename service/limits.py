"""What one client may hold: body size, body time, content type, header time and size, and a
share of the connections. Every refusal is a small JSON body, never uvicorn's plain text.

Two layers, because an ASGI app only sees a request once its headers are complete:

- :class:`BodyLimitMiddleware` (any ASGI server): 415 for a body that is not JSON, 413 for one
  over the size limit (counted while it streams), 408 for one not complete in time, and a JSON
  503 for a request that shutdown cut short; it also reports every answer to the metrics.
- :func:`http_protocol`: uvicorn's HTTP protocol plus what ASGI cannot see: a deadline and a size
  limit for request headers (408, 431), a connection cap (503), JSON for malformed requests (400),
  a send deadline (a client that stops reading its responses is cut off once they have waited
  ``send_timeout_s`` in the server's write buffer, which it would otherwise hold for good), and,
  at shutdown, an immediate 503 for requests whose body is still arriving (a stalled client
  would otherwise hold shutdown for the whole grace period). ``forecaster serve`` uses it;
  ``uvicorn service.app:app --http service.limits:protocol`` does too.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.settings import Settings

log = logging.getLogger(__name__)

JSON_MEDIA_TYPE = "application/json"
HEALTH_PATH = "/healthz"  # liveness is answered even over the connection cap
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_UTF8 = frozenset({"utf-8", "utf8"})

Headers = Sequence[tuple[bytes, bytes]]


def problem(loc: list[str], msg: str, kind: str) -> bytes:
    """The JSON error body (``ErrorResponse``) naming one field."""
    return json.dumps({"detail": [{"loc": loc, "msg": msg, "type": kind}]}).encode()


def notice(msg: str) -> bytes:
    """The JSON error body for a refusal that is about the server, not a field."""
    return json.dumps({"detail": msg}).encode()


def _closing_headers(body: bytes, extra: Headers = ()) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", JSON_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        # Sent before the request was read to its end, so the connection cannot be reused.
        (b"connection", b"close"),
        *extra,
    ]


async def send_json(send: Send, status: int, body: bytes, extra: Headers = ()) -> None:
    """Send ``body`` as a complete JSON response that closes the connection."""
    headers = _closing_headers(body, extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@functools.lru_cache(maxsize=32)  # a client repeats one value: parse it once (≤ 32 kept)
def content_type_problem(value: bytes | None) -> str | None:
    """Why a body with this Content-Type is refused, or None for JSON (UTF-8, any case)."""
    if value is None:
        return f"missing; send content-type: {JSON_MEDIA_TYPE}"
    text = value.decode("latin-1")
    media, *params = (part.strip() for part in text.split(";"))
    if media.lower() != JSON_MEDIA_TYPE:
        return f"{_cut(media)!r} is not supported; send {JSON_MEDIA_TYPE}"
    for param in params:
        key, _, charset = param.partition("=")
        if key.strip().lower() == "charset" and charset.strip().strip('"').lower() not in _UTF8:
            return f"charset {_cut(charset.strip())!r} is not supported; JSON is UTF-8"
    return None


def _cut(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


OnAnswer = Callable[[Scope, int, float], None]
"""Told of every HTTP answer: the scope, the status sent (500 if none) and the seconds taken."""


class BodyLimitMiddleware:
    """Reads each request body whole before the app runs, refusing what it should not parse,
    and reports every answer to ``on_answer`` (the metrics).

    * 415 when a POST/PUT/PATCH carries a body whose Content-Type is not ``application/json``.
    * 413 for a body over ``max_bytes``: at once when Content-Length announces it, else as soon as
      the streamed count passes the limit, without reading the rest.
    * 408 when the body is not complete ``timeout_s`` after the headers (a slow client).
    * 503 with Retry-After for a request cancelled before it answered (uvicorn cancels what is
      still running when the graceful-shutdown period ends; it would send a plain-text 500).

    One layer for limits and metrics because every ASGI layer costs each request a coroutine and
    a ``send`` wrapper; the report covers the refusals above too.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        timeout_s: float | None = None,
        retry_after_s: int = 1,
        on_answer: OnAnswer | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.retry_after = [(b"retry-after", str(retry_after_s).encode())]
        self.on_answer = on_answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0  # none sent yet

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._handle(scope, receive, send_status)
        except asyncio.CancelledError:
            if not status:
                body = notice("the server is shutting down; retry the request")
                await send_json(send_status, 503, body, self.retry_after)
            raise
        finally:
            if self.on_answer is not None:
                self.on_answer(scope, status or 500, time.perf_counter() - start)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])  # one pass in C; a repeated header keeps its last value
        length = _declared_length(headers.get(b"content-length"))
        has_body = length > 0 or b"transfer-encoding" in headers
        if refusal := self._refuse_by_headers(scope["method"], headers, has_body, length):
            await send_json(send, *refusal)
            return
        try:
            body = await self._read_in_time(receive, has_body)
        except TimeoutError:
            msg = f"request body not complete within {self.timeout_s:g} s"
            await send_json(send, 408, problem(["body"], msg, "timeout"))
            return
        if body is None:  # the client went away
            return
        if len(body) > self.max_bytes:
            await send_json(send, 413, self._too_large())
            return
        await self.app(scope, _replay(body, receive), send)

    def _refuse_by_headers(
        self, method: str, headers: dict[bytes, bytes], has_body: bool, length: int
    ) -> tuple[int, bytes] | None:
        if has_body and method in _BODY_METHODS:
            why = content_type_problem(headers.get(b"content-type"))
            if why is not None:
                msg = f"content-type {why}"
                return 415, problem(["header", "content-type"], msg, "unsupported_media_type")
        if length > self.max_bytes:
            return 413, self._too_large()
        return None

    async def _read_in_time(self, receive: Receive, has_body: bool) -> bytes | None:
        """The body, or TimeoutError once ``timeout_s`` has passed.

        A bare timer that cancels this task, not ``asyncio.timeout``: a third of the cost per
        request (about 1.5 µs against 5), and nearly every body is complete on arrival.
        """
        if not has_body or self.timeout_s is None:
            return await self._read(receive)  # nothing to wait for: no timer
        task = asyncio.current_task()
        assert task is not None
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        timer = asyncio.get_running_loop().call_later(self.timeout_s, expire)
        try:
            return await self._read(receive)
        except asyncio.CancelledError:
            # Ours alone (no shutdown cancel on top of it): a timeout, as asyncio.timeout does.
            if expired and task.uncancel() == 0:
                raise TimeoutError from None
            raise
        finally:
            timer.cancel()

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body; stops early (returning what it has) once past the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)
            if size > self.max_bytes or not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self) -> bytes:
        return problem(["body"], f"request body exceeds {self.max_bytes} bytes", "too_large")


def _declared_length(value: bytes | None) -> int:
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0  # the server itself rejects a malformed Content-Length


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the buffered body once, then defers to the server's."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


# ------------------------------------------------------------------ connection level (uvicorn)


@dataclass(frozen=True)
class ConnectionLimits:
    """Per-connection limits enforced by :func:`http_protocol`."""

    header_timeout_s: float = 10.0
    max_header_bytes: int = 16 * 1024
    max_connections: int | None = None
    retry_after_s: int = 1
    send_timeout_s: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            send_timeout_s=settings.send_timeout_s,
            header_timeout_s=settings.header_timeout_s,
            max_header_bytes=settings.max_header_bytes,
            max_connections=settings.max_connections,
            retry_after_s=settings.retry_after_s,
        )


class _OverCapacity:
    """Wraps the app for a connection accepted over the cap: 503 while the server stays over it.

    Liveness (``/healthz``) is still answered, so an orchestrator does not restart a busy server.
    """

    def __init__(self, app: ASGIApp, connections: set[Any], limits: ConnectionLimits) -> None:
        self.app, self.connections, self.limits = app, connections, limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cap = self.limits.max_connections
        over = cap is not None and len(self.connections) > cap
        if over and scope["type"] == "http" and scope["path"] != HEALTH_PATH:
            body = notice(f"too many connections (at most {cap}); retry later")
            retry = [(b"retry-after", str(self.limits.retry_after_s).encode())]
            await send_json(send, 503, body, retry)
            return
        await self.app(scope, receive, send)


class _Limited:
    """Mixed in before a uvicorn HTTP protocol class (httptools or h11; both keep ``cycle``,
    ``transport``, ``loop``, ``connections`` and ``app`` and call ``send_400_response``).

    The header deadline runs from the connection's start, or from the first byte of each later
    request, to the end of that request's headers: it is a total, so trickling bytes does not
    extend it. Idle keep-alive connections are left to uvicorn's keep-alive timeout.

    The send deadline runs while the transport's write buffer is over its high-water mark
    (between asyncio's ``pause_writing`` and ``resume_writing``): a client that reads its
    responses brings the buffer down and stops it; one that does not is cut off after
    ``send_timeout_s``, the buffer dropped (``abort``: ``close`` would wait to send it first).
    """

    limits: ClassVar[ConnectionLimits]
    cycle: Any
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    connections: set[Any]
    server_state: Any
    app: ASGIApp

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._head_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._send_deadline: asyncio.TimerHandle | None = None
        cap = self.limits.max_connections
        if cap is not None and len(self.connections) > cap:
            self.app = _OverCapacity(self.app, self.connections, self.limits)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._awaiting_head():
            self._head_bytes += len(data)
        super().data_received(data)  # type: ignore[misc]
        if self.transport.is_closing():
            return
        if not self._awaiting_head():
            self._disarm()
        elif self._head_bytes > self.limits.max_header_bytes:
            msg = f"request headers exceed {self.limits.max_header_bytes} bytes"
            self._answer(431, problem(["header"], msg, "too_large"))
        elif self._deadline is None:
            # Armed only for a head still incomplete, at the moment its first bytes came: a
            # head that arrives whole (nearly all) costs no timer.
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._stop_send_deadline()
        super().connection_lost(exc)  # type: ignore[misc]

    def pause_writing(self) -> None:
        super().pause_writing()  # type: ignore[misc]
        if self._send_deadline is None:
            timeout = self.limits.send_timeout_s
            self._send_deadline = self.loop.call_later(timeout, self._send_expired)

    def resume_writing(self) -> None:
        self._stop_send_deadline()
        super().resume_writing()  # type: ignore[misc]

    def _stop_send_deadline(self) -> None:
        if self._send_deadline is not None:
            self._send_deadline.cancel()
        self._send_deadline = None

    def _send_expired(self) -> None:
        self._send_deadline = None
        unsent = self.transport.get_write_buffer_size()
        client = self.transport.get_extra_info("peername")
        log.warning(
            "closed the connection of %s: it left %d bytes of responses unread for %g s",
            _address(client),
            unsent,
            self.limits.send_timeout_s,
        )
        # The app's pending send() returns (connection_lost marks the cycle disconnected).
        self.transport.abort()

    def send_400_response(self, msg: str) -> None:
        self._answer(400, notice("invalid HTTP request"))  # uvicorn's own is plain text

    def shutdown(self) -> None:
        """Graceful shutdown: requests still receiving their body (or headers) are answered
        503 now instead of holding the process until the grace period ends."""
        cycle = self.cycle
        mid_body = (
            cycle is not None
            and not cycle.response_started
            and not cycle.response_complete
            and cycle.more_body
        )
        if mid_body or (self._awaiting_head() and self._head_bytes):
            body = notice("the server is shutting down; retry the request")
            self._answer(503, body, [(b"retry-after", str(self.limits.retry_after_s).encode())])
            return
        super().shutdown()  # type: ignore[misc]

    def _awaiting_head(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(self.limits.header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._head_bytes = 0

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or not self._awaiting_head():
            return
        if not self._head_bytes:  # nothing sent: nothing to answer
            self.transport.close()
            return
        msg = f"request headers not complete within {self.limits.header_timeout_s:g} s"
        self._answer(408, problem(["header"], msg, "timeout"))

    def _answer(self, status: int, body: bytes, extra: Headers = ()) -> None:
        """Write a whole JSON response straight to the socket and close the connection."""
        self._disarm()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # As connection_lost would: the app's receive() returns a disconnect and its
            # send() is dropped, so nothing else is written after this answer.
            cycle.disconnected = True
            cycle.message_event.set()
        head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}".encode()]
        headers = [*self.server_state.default_headers, *_closing_headers(body, extra)]
        head += [name + b": " + value for name, value in headers]
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.transport.close()


def _address(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return "a client"


def http_protocol(
    limits: ConnectionLimits, base: type[asyncio.Protocol] | None = None
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class (``base``: httptools when installed, else h11) with
    ``limits``; pass it as ``uvicorn.run(..., http=...)``."""
    base = base or _default_base()
    return type(f"Limited{base.__name__}", (_Limited, base), {"limits": limits})


def _default_base() -> type[asyncio.Protocol]:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol
    return HttpToolsProtocol


def protocol(**kwargs: Any) -> asyncio.Protocol:
    """For ``uvicorn service.app:app --http service.limits:protocol``: the limited protocol,
    its limits read from ``FORECASTER_*`` variables."""
    return _protocol_from_env()(**kwargs)


@functools.cache
def _protocol_from_env() -> type[asyncio.Protocol]:
    return http_protocol(ConnectionLimits.from_settings(Settings()))
