"""What one request's body may be: its size, time and content type (:class:`BodyLimitMiddleware`,
any ASGI server), each refusal a small JSON body. What ASGI cannot see (headers, connections,
sends) is limited by uvicorn's protocol (:mod:`service.protocol`)."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import JSON_MEDIA_TYPE, SHUTTING_DOWN, error_body, send_json
from service.protocol import protocol  # noqa: F401 (`--http service.limits:protocol`, documented)

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_UTF8 = frozenset({"utf-8", "utf8"})


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
                await send_json(send_status, 503, SHUTTING_DOWN, self.retry_after)
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
            await send_json(send, 408, error_body(msg, ["body"], "timeout"))
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
                return 415, error_body(msg, ["header", "content-type"], "unsupported_media_type")
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
        return error_body(f"request body exceeds {self.max_bytes} bytes", ["body"], "too_large")


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
