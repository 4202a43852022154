"""The client's one exception tree, and the mapping from HTTP answers to it."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
import pydantic

from forecaster.schemas import ErrorDetail, ErrorResponse

Model = TypeVar("Model", bound=pydantic.BaseModel)
# What one attempt at a call gave: the service's answer, or the transport error instead of one.
AttemptResult = httpx.Response | httpx.TransportError


class ForecastAPIError(Exception):
    """Base of every error the client raises.

    Attributes:
      status_code: the HTTP status, or None when no answer came (or the client refused first).
      detail: the ``detail`` of the service's error body: field errors or a message.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        detail: list[ErrorDetail] | str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail


class InvalidRequest(ForecastAPIError, ValueError):
    """The request was refused as invalid (400, 413, 422) or failed the client's own checks."""

    @property
    def errors(self) -> list[ErrorDetail]:
        """The field errors: where (``loc``), what (``msg``) and of what kind (``type``)."""
        return self.detail if isinstance(self.detail, list) else []


class SeriesFailed(InvalidRequest):
    """Some series of a ``forecast_many`` call got no forecast (``errors="raise"``).

    ``errors`` name each by ``id`` (its key, as a string), ``index`` (its position in the call's
    input) and ``loc``/``msg``/``type``; ``frame`` holds the forecasts of the others, as
    ``forecast_many`` would have returned them.
    """

    def __init__(self, errors: list[ErrorDetail], frame: Any) -> None:
        shown = "; ".join(f"series {e.id!r}: {e.msg}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"{len(errors)} error(s) in series: {shown}{more}", detail=errors)
        self.frame = frame


class ModelNotFound(ForecastAPIError, LookupError):
    """The model (or the pinned version) is not served (404)."""


class Unauthorized(ForecastAPIError):
    """Missing or wrong credentials (401, 403)."""


class ServiceUnavailable(ForecastAPIError):
    """Still 503 or 429 after the retries, or the service could not be reached at all."""


class ForecastTimeout(ForecastAPIError, TimeoutError):
    """No answer within the configured :class:`httpx.Timeout`."""


_STATUS_ERRORS: dict[int, type[ForecastAPIError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Unauthorized,
    404: ModelNotFound,
    413: InvalidRequest,
    422: InvalidRequest,
    429: ServiceUnavailable,
    503: ServiceUnavailable,
}


def error_for(response: httpx.Response) -> ForecastAPIError:
    """The typed exception for an unsuccessful ``response``, carrying its error body."""
    detail = _error_detail(response)
    if isinstance(detail, list):
        text = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in detail)
    else:
        text = detail
    kind = _STATUS_ERRORS.get(response.status_code, ForecastAPIError)
    message = f"{response.status_code} {response.reason_phrase}: {text}"
    return kind(message, status_code=response.status_code, detail=detail)


def _error_detail(response: httpx.Response) -> list[ErrorDetail] | str:
    try:
        return ErrorResponse.model_validate_json(response.content).detail
    except pydantic.ValidationError:
        # Not one of the service's bodies (a proxy's page, say): keep a readable excerpt.
        return response.text[:500] or response.reason_phrase


def client_side_error(exc: pydantic.ValidationError) -> InvalidRequest:
    """A request that fails the shared schema is refused before it is sent, like a 422."""
    errors = [
        ErrorDetail(loc=["body", *e["loc"]], msg=e["msg"], type=e["type"])
        for e in exc.errors(include_input=False, include_url=False)
    ]
    text = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in errors[:5])
    return InvalidRequest(f"invalid request: {text}", detail=errors)


def checked(result: AttemptResult) -> httpx.Response:
    """The successful response, or the typed exception for what happened instead."""
    if isinstance(result, httpx.TimeoutException):
        raise ForecastTimeout(f"no answer in time: {result}") from result
    if isinstance(result, Exception):
        raise ServiceUnavailable(f"could not reach the service: {result!r}") from result
    if result.is_success:
        return result
    raise error_for(result)


def parse(model: type[Model], response: httpx.Response) -> Model:
    """``response``'s body as ``model``; a body of another shape is a :class:`ForecastAPIError`."""
    try:
        return model.model_validate_json(response.content)
    except pydantic.ValidationError as exc:
        raise ForecastAPIError(
            f"unexpected answer from {response.request.url}: {exc}",
            status_code=response.status_code,
        ) from exc
