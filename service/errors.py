"""Error handlers: every failure becomes a small JSON body naming the field, never a traceback.
Every refusal's body, the handlers' and those sent before the app answers (:mod:`service.limits`,
:mod:`service.protocol`), is made by :func:`error_body`.

Pydantic's errors carry the offending ``input`` (which may be NaN, unserialisable as JSON, or a
10,000-point history) and a ``ctx``; only ``loc``, ``msg`` and ``type`` are sent back. Every
message goes through :func:`brief` (one line, echoed values cut short: a 4 MB bad timestamp must
not come back as a 4 MB error), and registry errors never show where the registry lives.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Send

from forecaster.monitoring.store import StoreError
from forecaster.registry import ModelNotFoundError, RegistryError, hide_root
from forecaster.schemas import ErrorResponse
from service.batcher import Overloaded
from service.deps import services
from service.requests import RequestErrors
from service.store import LoadFailed

log = logging.getLogger(__name__)

Headers = Sequence[tuple[bytes, bytes]]

JSON_MEDIA_TYPE = "application/json"
MAX_ECHO = 100  # characters of one word (an echoed value, a path) sent back in a message
MAX_MESSAGE = 400  # characters of a whole message
_LONG_WORD = re.compile(rf"\S{{{MAX_ECHO + 1},}}")
_LEAD_IN = re.compile(r"(?:^|(?<=[.;]))\s*[^.;]*:$")  # the last sentence, ending in ':'


def brief(message: str) -> str:
    """``message`` fit to send back: its first line, without a trailing lead-in to the lines
    dropped (pandas' "You might want to try:"), each word over MAX_ECHO characters cut (an
    echoed 4 MB value), and at most MAX_MESSAGE characters in all."""
    first, _, rest = message.strip().partition("\n")
    if rest and first.endswith(":"):
        first = _LEAD_IN.sub("", first) or first
    first = _LONG_WORD.sub(lambda m: m[0][:MAX_ECHO] + "…", first)
    return first if len(first) <= MAX_MESSAGE else first[:MAX_MESSAGE] + "…"


def error_body(
    detail: list[dict[str, Any]] | str, loc: list[str] | None = None, kind: str = "value_error"
) -> bytes:
    """The JSON body of every refusal (``ErrorResponse``), each message through :func:`brief`:
    ``detail`` is a list of entries (``loc``, ``msg``, ``type``), the message of an entry for
    the field ``loc``, or without ``loc`` a message about the server rather than a field."""
    if isinstance(detail, str) and loc is not None:
        detail = [{"loc": loc, "msg": detail, "type": kind}]
    if isinstance(detail, str):
        detail = brief(detail)
    else:
        detail = [{**d, "msg": brief(str(d.get("msg", "")))} for d in detail]
    return json.dumps({"detail": detail}, allow_nan=False, default=str).encode()


SHUTTING_DOWN = error_body("the server is shutting down; retry the request")
# For the document: every route whose JSON body FastAPI parses answers 400 to bytes it cannot
# decode ("There was an error parsing the body"), through the handlers below.
UNPARSED_BODY: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "A body that is not JSON text."}
}


def error_response(
    status: int, detail: list[dict[str, Any]] | str, headers: dict[str, str] | None = None
) -> Response:
    return Response(error_body(detail), status, headers=headers, media_type=JSON_MEDIA_TYPE)


def closing_headers(body: bytes, extra: Headers = ()) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", JSON_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        # Sent before the request was read to its end, so the connection cannot be reused.
        (b"connection", b"close"),
        *extra,
    ]


async def send_json(send: Send, status: int, body: bytes, extra: Headers = ()) -> None:
    """Send ``body`` as a complete JSON response that closes the connection (a refusal made
    before the app, or instead of it)."""
    headers = closing_headers(body, extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def without_registry_path(request: Request, message: str) -> str:
    """``message`` with the registry's location replaced: clients learn names, not paths."""
    return hide_root(message, services(request.app).store.registry.root)


def _details(errors: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "loc": [p if isinstance(p, int) else str(p) for p in e["loc"]],
            "msg": e["msg"],
            "type": e["type"],
        }
        for e in errors
    ]


async def _validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, _details(exc.errors()))


async def _refused(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestErrors)
    return error_response(exc.status, exc.details)


async def _http(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))


async def _registry(request: Request, exc: Exception) -> Response:
    """404 for an unknown model; 409 for a load that failed (the old version serves on) or a
    registry refusal (nothing to undo)."""
    status = 404 if isinstance(exc, ModelNotFoundError) else 409
    return error_response(status, without_registry_path(request, str(exc)))


async def _internal(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal server error")


def install(app: FastAPI, retry_after_s: int) -> None:
    """Register the handlers on ``app``."""

    async def _store_down(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StoreError)
        # The driver's words name the database's host and port: the log's, not the client's.
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return error_response(503, exc.public, {"Retry-After": str(retry_after_s)})

    async def _overloaded(request: Request, exc: Exception) -> Response:
        services(request.app).metrics.rejected.inc()
        return error_response(503, f"overloaded: {exc}", {"Retry-After": str(retry_after_s)})

    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(RequestErrors, _refused)  # RequestError among them
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(LoadFailed, _registry)
    app.add_exception_handler(RegistryError, _registry)  # ModelNotFoundError among them
    app.add_exception_handler(Overloaded, _overloaded)
    app.add_exception_handler(StoreError, _store_down)
    app.add_exception_handler(Exception, _internal)
