"""uvicorn's HTTP protocol plus what ASGI cannot see (:func:`http_protocol`): a deadline and a
size limit for request headers (408, 431), a connection cap (503), JSON for malformed requests
(400), a send deadline, and at shutdown an immediate 503 for requests whose body is still
arriving. ``forecaster serve`` uses it, as does ``uvicorn ... --http service.protocol:protocol``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from http import HTTPStatus
from typing import Any, ClassVar

from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import SHUTTING_DOWN, Headers, closing_headers, error_body, send_json
from service.settings import Settings

log = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"  # liveness is answered even over the connection cap


@dataclasses.dataclass(frozen=True)
class ConnectionLimits:
    """Per-connection limits enforced by :func:`http_protocol`; their defaults and docs live in
    :class:`~service.settings.Settings` (same field names)."""

    header_timeout_s: float
    max_header_bytes: int
    max_connections: int | None
    retry_after_s: int
    send_timeout_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(cls)})


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
            body = error_body(f"too many connections (at most {cap}); retry later")
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

    # The ``super()`` calls below carry ``type: ignore[misc]``: this mixin has no base of its own
    # to type them against; at run time they reach the uvicorn protocol it is mixed into.
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
            self._answer(431, error_body(msg, ["header"], "too_large"))
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
        peer = self.transport.get_extra_info("peername")
        client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) > 1 else "a client"
        log.warning(
            "closed the connection of %s: it left %d bytes of responses unread for %g s",
            client,
            unsent,
            self.limits.send_timeout_s,
        )
        # The app's pending send() returns (connection_lost marks the cycle disconnected).
        self.transport.abort()

    def send_400_response(self, msg: str) -> None:
        self._answer(400, error_body("invalid HTTP request"))  # uvicorn's own is plain text

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
            retry = [(b"retry-after", str(self.limits.retry_after_s).encode())]
            self._answer(503, SHUTTING_DOWN, retry)
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
        self._answer(408, error_body(msg, ["header"], "timeout"))

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
        headers = [*self.server_state.default_headers, *closing_headers(body, extra)]
        head += [name + b": " + value for name, value in headers]
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.transport.close()


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
    """For ``uvicorn service.app:app --http service.protocol:protocol``: the limited protocol,
    its limits read from ``FORECASTER_*`` variables."""
    return _protocol_from_env()(**kwargs)


@functools.cache
def _protocol_from_env() -> type[asyncio.Protocol]:
    return http_protocol(ConnectionLimits.from_settings(Settings()))
