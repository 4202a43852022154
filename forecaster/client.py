"""Python client of the forecast service: pandas in, pandas out, sync and async.

Example::

    from forecaster.client import ForecastClient

    with ForecastClient("http://127.0.0.1:8000") as client:
        frame = client.forecast(series, horizon=24, quantiles=[0.1, 0.9])

:class:`ForecastClient` and :class:`AsyncForecastClient` have the same methods. The HTTP exchange
is the only thing they do differently, so everything else lives in plain functions both call:
turning inputs into :mod:`forecaster.schemas` requests, splitting many-series work into requests
the server accepts, parsing answers into DataFrames, mapping status codes to exceptions, and
deciding whether (and how long) to wait before a retry.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import math
import random
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
import numpy as np
import pandas as pd
import pydantic

from forecaster.schemas import (
    BatchForecastResponse,
    ErrorDetail,
    ErrorResponse,
    ForecastRequest,
    ForecastResponse,
    ModelDetail,
    ModelSummary,
    SeriesForecast,
    SeriesInput,
)

__all__ = [
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT",
    "AsyncForecastClient",
    "ForecastAPIError",
    "ForecastClient",
    "ForecastTimeout",
    "InvalidRequest",
    "ModelNotFound",
    "RetryPolicy",
    "ServiceUnavailable",
    "Unauthorized",
]

# Connecting to a healthy service takes milliseconds, so a slow connect means it is down;
# a forecast of a thousand series may legitimately take seconds.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# The service's own defaults (Settings.max_series, Settings.max_body_bytes).
DEFAULT_MAX_SERIES = 1000
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
# Room for the envelope of a many-series body (horizon, model, quantiles, brackets).
_ENVELOPE_BYTES = 1024
_FORECAST = "/v1/forecast"
_JSON = {"content-type": "application/json"}

History = Sequence[float] | np.ndarray | pd.Series
Model = TypeVar("Model", bound=pydantic.BaseModel)


# --- exceptions --------------------------------------------------------------------------------


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


def _client_side(exc: pydantic.ValidationError) -> InvalidRequest:
    """A request that fails the shared schema is refused before it is sent, like a 422."""
    errors = [
        ErrorDetail(loc=["body", *e["loc"]], msg=e["msg"], type=e["type"])
        for e in exc.errors(include_input=False, include_url=False)
    ]
    text = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in errors[:5])
    return InvalidRequest(f"invalid request: {text}", detail=errors)


# --- retries -----------------------------------------------------------------------------------

Outcome = httpx.Response | httpx.TransportError


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a request again, and how long to wait first.

    Every call the client makes is idempotent (reads, and forecasts that change nothing), so a
    retry never does anything twice. Delays grow as ``backoff * 2**attempt`` up to ``max_delay``,
    each shortened by a random fraction up to ``jitter`` so that clients refused together do not
    come back together. A ``Retry-After`` header is honoured: the wait is at least that long, and
    when it is longer than ``max_delay`` the client gives up at once rather than wait.

    Attributes:
      retries: retries after the first attempt (0 turns retrying off).
      backoff: seconds before the first retry.
      max_delay: longest single wait, in seconds.
      jitter: fraction of each delay that is randomised, in [0, 1].
      statuses: answers worth retrying (the service is overloaded or starting up).
      exceptions: transport errors worth retrying (connection refused or reset, connect timeout).
        Read timeouts are not among them by default: a slow service gets
        slower if every late answer is asked for again.
      rng: source of the jitter (seed it for reproducible delays).
    """

    retries: int = 3
    backoff: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.5
    statuses: frozenset[int] = frozenset({429, 503})
    exceptions: tuple[type[Exception], ...] = (
        httpx.NetworkError,
        httpx.ConnectTimeout,
        httpx.RemoteProtocolError,
    )
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0 or self.max_delay < 0:
            raise ValueError("retries, backoff and max_delay must not be negative")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must lie in [0, 1], got {self.jitter}")

    def delay(self, attempt: int, outcome: Outcome) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``, or None to stop here."""
        if attempt >= self.retries:
            return None
        if isinstance(outcome, Exception):
            return self.backoff_delay(attempt) if isinstance(outcome, self.exceptions) else None
        if outcome.status_code not in self.statuses:
            return None
        after = parse_retry_after(outcome.headers.get("retry-after"))
        if after is None:
            return self.backoff_delay(attempt)
        if after > self.max_delay:
            return None
        return after + self.jitter * self.rng.random() * self.backoff

    def backoff_delay(self, attempt: int) -> float:
        """The exponential delay for ``attempt``, with jitter."""
        base = min(self.max_delay, self.backoff * 2.0**attempt)
        return base * (1.0 - self.jitter * self.rng.random())


DEFAULT_RETRY = RetryPolicy()


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date; None if unusable."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def checked(outcome: Outcome) -> httpx.Response:
    """The successful response, or the typed exception for what happened instead."""
    if isinstance(outcome, httpx.TimeoutException):
        raise ForecastTimeout(f"no answer in time: {outcome}") from outcome
    if isinstance(outcome, Exception):
        raise ServiceUnavailable(f"could not reach the service: {outcome!r}") from outcome
    if outcome.is_success:
        return outcome
    raise error_for(outcome)


def parse(model: type[Model], response: httpx.Response) -> Model:
    """``response``'s body as ``model``; a body of another shape is a :class:`ForecastAPIError`."""
    try:
        return model.model_validate_json(response.content)
    except pydantic.ValidationError as exc:
        raise ForecastAPIError(
            f"unexpected answer from {response.request.url}: {exc}",
            status_code=response.status_code,
        ) from exc


# --- inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Input:
    """One history ready to send: values, ISO timestamps if it has them, and its original index."""

    values: list[float]
    timestamps: list[str] | None
    index: pd.DatetimeIndex | None


def as_input(history: History) -> Input:
    """A list, NumPy array or pandas Series of observations, oldest first."""
    if isinstance(history, pd.DataFrame):
        raise InvalidRequest("history must be one series; use forecast_many for a DataFrame")
    is_series = isinstance(history, pd.Series)
    try:
        if is_series:
            values = history.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            values = np.asarray(history, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"history must be numbers: {exc}") from None
    if values.ndim != 1:
        raise InvalidRequest(f"history must be one-dimensional, got shape {values.shape}")
    index = history.index if is_series else None
    if not isinstance(index, pd.DatetimeIndex):
        return Input(values.tolist(), None, None)
    return Input(values.tolist(), _iso(index), index)


def _iso(index: pd.DatetimeIndex) -> list[str]:
    # Offsets change across daylight saving; UTC keeps one offset the server can parse.
    if index.tz is not None:
        index = index.tz_convert("UTC")
    return [t.isoformat() for t in index]


def inputs_of(
    data: Mapping[Any, History] | pd.DataFrame, id_col: str, time_col: str, value_col: str
) -> list[tuple[Any, Input]]:
    """``(id, input)`` per series of a dict of series or a long DataFrame, in first-seen order."""
    if not isinstance(data, pd.DataFrame):
        return [(key, as_input(history)) for key, history in data.items()]
    missing = [c for c in (id_col, value_col) if c not in data.columns]
    if missing:
        raise InvalidRequest(f"the DataFrame has no column {missing[0]!r}")
    return [
        (key, as_input(series)) for key, series in _split_long(data, id_col, time_col, value_col)
    ]


def _split_long(
    frame: pd.DataFrame, id_col: str, time_col: str, value_col: str
) -> Iterator[tuple[Any, pd.Series]]:
    timed = time_col in frame.columns
    for key, group in frame.groupby(id_col, sort=False):
        if timed:
            group = group.sort_values(time_col, kind="stable")
            index = pd.DatetimeIndex(pd.to_datetime(group[time_col]))
            yield key, pd.Series(group[value_col].to_numpy(), index=index)
        else:
            yield key, group[value_col].reset_index(drop=True)


# --- requests ----------------------------------------------------------------------------------


def single_body(
    series: Input, horizon: int, model: str | None, quantiles: Sequence[float] | None
) -> bytes:
    """The JSON body forecasting one series, checked against the shared schema first."""
    try:
        request = ForecastRequest(
            history=series.values,
            timestamps=series.timestamps,
            horizon=horizon,
            model=model,
            quantiles=_levels(quantiles),
        )
    except pydantic.ValidationError as exc:
        raise _client_side(exc) from None
    return request.model_dump_json(exclude_none=True).encode()


def _levels(quantiles: Sequence[float] | None) -> list[float] | None:
    return None if quantiles is None else [float(q) for q in quantiles]


def _series_input(key: Any, series: Input, position: int) -> SeriesInput:
    try:
        return SeriesInput(id=str(key)[:256], history=series.values, timestamps=series.timestamps)
    except pydantic.ValidationError as exc:
        error = _client_side(exc)
        for e in error.errors:
            e.loc = ["body", "series", position, *e.loc[1:]]
        raise error from None


@dataclass(frozen=True)
class Chunk:
    """One request's worth of a many-series call: the positions it covers and its body."""

    positions: range
    body: bytes


def plan_chunks(
    inputs: Sequence[tuple[Any, Input]],
    horizon: int,
    model: str | None,
    quantiles: Sequence[float] | None,
    *,
    max_series: int,
    max_body_bytes: int,
) -> list[Chunk]:
    """Bodies of at most ``max_series`` series and about ``max_body_bytes`` each, in order.

    A single series too big for one body still gets a body of its own: the server's 413 then
    says exactly what is wrong, which a client-side guess at its limit could not.
    """
    entries = [_series_input(key, series, i) for i, (key, series) in enumerate(inputs)]
    sizes = [len(e.model_dump_json(exclude_none=True)) + 1 for e in entries]
    chunks, start = [], 0
    for stop in _boundaries(sizes, max_series, max_body_bytes - _ENVELOPE_BYTES):
        body = _many_body(entries[start:stop], horizon, model, quantiles)
        chunks.append(Chunk(range(start, stop), body))
        start = stop
    return chunks


def _boundaries(sizes: Sequence[int], max_series: int, max_bytes: int) -> Iterator[int]:
    """Exclusive ends of consecutive groups within both limits (greedy; never empty)."""
    count, total = 0, 0
    for i, size in enumerate(sizes):
        if count and (count == max_series or total + size > max_bytes):
            yield i
            count, total = 0, 0
        count, total = count + 1, total + size
    if count:
        yield len(sizes)


def _many_body(
    entries: list[SeriesInput],
    horizon: int,
    model: str | None,
    quantiles: Sequence[float] | None,
) -> bytes:
    try:
        request = ForecastRequest(
            series=entries, horizon=horizon, model=model, quantiles=_levels(quantiles)
        )
    except pydantic.ValidationError as exc:
        raise _client_side(exc) from None
    return request.model_dump_json(exclude_none=True).encode()


def served_default(models: Iterable[ModelSummary]) -> str:
    """The one served model, whose horizon a request naming neither horizon nor model gets."""
    served = [m.name for m in models if m.loaded_version is not None]
    if len(served) != 1:
        raise InvalidRequest(
            f"give horizon or model: the service serves {len(served)} models ({served})"
        )
    return served[0]


def model_horizon(detail: ModelDetail) -> int:
    """The longest horizon ``detail``'s served version forecasts."""
    horizon = (detail.config or {}).get("horizon")
    if not isinstance(horizon, int):
        raise ForecastAPIError(f"model {detail.name!r} is not being served; give horizon")
    return horizon


# --- answers -----------------------------------------------------------------------------------


def quantile_column(level: str) -> str:
    """Column name of a quantile level as the service spells it: ``"0.1"`` -> ``"q0.1"``."""
    return f"q{level}"


def single_frame(answer: ForecastResponse, series: Input) -> pd.DataFrame:
    """One forecast as a DataFrame: ``forecast`` and ``q<level>`` columns.

    Indexed by the forecast timestamps when the history had a DatetimeIndex, else by step 1..h.
    """
    columns = {"forecast": answer.forecast}
    for level, values in (answer.quantiles or {}).items():
        columns[quantile_column(level)] = values
    index = _future_index(answer.timestamps, series.index, len(answer.forecast))
    return pd.DataFrame(columns, index=index)


def _future_index(
    stamps: list[str] | None, like: pd.DatetimeIndex | None, horizon: int
) -> pd.Index:
    if stamps is None or like is None:
        return pd.RangeIndex(1, horizon + 1, name="step")
    index = _parse_stamps(stamps, like)
    try:
        # Give the result the history's frequency so it lines up with it in pandas arithmetic.
        return pd.DatetimeIndex(index, freq=like.freq or "infer")
    except ValueError:
        return index


def _parse_stamps(stamps: list[str], like: pd.DatetimeIndex) -> pd.DatetimeIndex:
    if like.tz is None:
        parsed = pd.to_datetime(stamps, format="ISO8601")
    else:
        parsed = pd.to_datetime(stamps, format="ISO8601", utc=True).tz_convert(like.tz)
    return pd.DatetimeIndex(parsed, name=like.name or "timestamp")


def many_frame(
    answers: Sequence[BatchForecastResponse],
    inputs: Sequence[tuple[Any, Input]],
    id_col: str,
    time_col: str,
) -> pd.DataFrame:
    """Every series' forecast as one long DataFrame.

    Columns: ``id_col``, ``step`` (1..h), ``time_col`` when any history had timestamps, then
    ``forecast`` and one ``q<level>`` per quantile. Answers come in request order, so rows are
    matched to inputs by position (ids are echoed only for the server's logs).
    """
    forecasts = [f for answer in answers for f in answer.forecasts]
    if len(forecasts) != len(inputs):
        raise ForecastAPIError(f"{len(forecasts)} forecasts came back for {len(inputs)} series")
    parts = [
        _series_rows(f, key, series) for f, (key, series) in zip(forecasts, inputs, strict=True)
    ]
    if not parts:
        return pd.DataFrame(columns=[id_col, "step", "forecast"])
    frame = pd.concat(parts, ignore_index=True)
    return frame.rename(columns={"id": id_col, "timestamp": time_col})


def _series_rows(answer: SeriesForecast, key: Any, series: Input) -> pd.DataFrame:
    horizon = len(answer.forecast)
    columns: dict[str, Any] = {"id": [key] * horizon, "step": np.arange(1, horizon + 1)}
    if answer.timestamps is not None and series.index is not None:
        columns["timestamp"] = _parse_stamps(answer.timestamps, series.index)
    columns["forecast"] = answer.forecast
    for level, values in (answer.quantiles or {}).items():
        columns[quantile_column(level)] = values
    return pd.DataFrame(columns)


# --- clients -----------------------------------------------------------------------------------


class _Config:
    """What both clients are configured with; see :class:`ForecastClient` for the arguments."""

    def __init__(
        self,
        model: str | None,
        timeout: httpx.Timeout | float | None,
        retry: RetryPolicy | int | None,
        max_series_per_request: int,
        max_body_bytes: int,
    ) -> None:
        if max_series_per_request < 1 or max_body_bytes < 1:
            raise ValueError("max_series_per_request and max_body_bytes must be positive")
        self.model = model
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        if retry is None:
            retry = RetryPolicy(retries=0)
        self.retry = RetryPolicy(retries=retry) if isinstance(retry, int) else retry
        self.max_series_per_request = max_series_per_request
        self.max_body_bytes = max_body_bytes
        self.horizons: dict[str, int] = {}  # model name -> its horizon, for horizon=None

    def plan(
        self,
        inputs: Sequence[tuple[Any, Input]],
        horizon: int,
        model: str | None,
        quantiles: Sequence[float] | None,
    ) -> list[Chunk]:
        return plan_chunks(
            inputs,
            horizon,
            model or self.model,
            quantiles,
            max_series=self.max_series_per_request,
            max_body_bytes=self.max_body_bytes,
        )


def _headers(headers: Mapping[str, str] | None, api_key: str | None) -> dict[str, str]:
    merged = dict(headers or {})
    if api_key is not None:
        merged["X-API-Key"] = api_key
    return merged


class ForecastClient:
    """Synchronous client of the forecast service.

    Args:
      base_url: where the service listens, e.g. ``"http://127.0.0.1:8000"``.
      model: model (``name`` or ``name@version``) for calls that name none; None leaves the choice
        to the service's default model.
      timeout: an :class:`httpx.Timeout` or seconds for every phase (None waits forever).
      retry: a :class:`RetryPolicy`, a number of retries, or None for no retries.
      max_series_per_request: most series per request (the service's ``max_series``).
      max_body_bytes: most bytes per request body (the service's ``max_body_bytes``).
      headers: sent with every request.
      api_key: sent as ``X-API-Key``.
      transport: an httpx transport (e.g. :class:`httpx.MockTransport`), for tests.
      http_client: an httpx client to use instead of making one; it is not closed by this one,
        and its base URL, headers and hooks apply (``base_url`` is then ignored).
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        model: str | None = None,
        timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy | int | None = DEFAULT_RETRY,
        max_series_per_request: int = DEFAULT_MAX_SERIES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        headers: Mapping[str, str] | None = None,
        api_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._cfg = _Config(model, timeout, retry, max_series_per_request, max_body_bytes)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            base_url=base_url,
            headers=_headers(headers, api_key),
            timeout=self._cfg.timeout,
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections (those of a client passed in are left to its owner)."""
        if self._owns_http:
            self._http.close()

    def forecast(
        self,
        history: History,
        horizon: int | None = None,
        model: str | None = None,
        quantiles: Sequence[float] | None = None,
    ) -> pd.DataFrame:
        """Forecast one series ``horizon`` steps ahead (the model's full horizon if None).

        Returns a DataFrame with a ``forecast`` column and a ``q<level>`` column per quantile,
        indexed by timestamp when ``history`` is a Series with a DatetimeIndex, else by step.
        """
        series = as_input(history)
        horizon = self._horizon(horizon, model)
        body = single_body(series, horizon, model or self._cfg.model, quantiles)
        answer = parse(ForecastResponse, self._send("POST", _FORECAST, body))
        return single_frame(answer, series)

    def forecast_many(
        self,
        data: Mapping[Any, History] | pd.DataFrame,
        horizon: int | None = None,
        model: str | None = None,
        quantiles: Sequence[float] | None = None,
        *,
        id_col: str = "id",
        time_col: str = "timestamp",
        value_col: str = "value",
    ) -> pd.DataFrame:
        """Forecast many series: a dict ``{id: history}`` or a long DataFrame.

        Work beyond the per-request limits is sent as several requests, one after another.
        Returns a long DataFrame (see :func:`many_frame`).
        """
        inputs = inputs_of(data, id_col, time_col, value_col)
        horizon = self._horizon(horizon, model)
        chunks = self._cfg.plan(inputs, horizon, model, quantiles)
        answers = [
            parse(BatchForecastResponse, self._send("POST", _FORECAST, c.body)) for c in chunks
        ]
        return many_frame(answers, inputs, id_col, time_col)

    def models(self) -> list[ModelSummary]:
        """Every model in the service's registry."""
        return parse(_ModelList, self._send("GET", "/v1/models")).root

    def model(self, name: str) -> ModelDetail:
        """One model: versions, production alias, and its served version's config and metrics."""
        return parse(ModelDetail, self._send("GET", f"/v1/models/{name}"))

    def health(self) -> bool:
        """Whether the service process answers (no retries; never raises)."""
        return _ok(self._attempt("GET", "/healthz"))

    def ready(self) -> bool:
        """Whether the service has its default model loaded and warm (no retries; never raises)."""
        return _ok(self._attempt("GET", "/readyz"))

    def wait_ready(self, timeout: float = 60.0, interval: float = 0.1) -> None:
        """Block until :meth:`ready`; :class:`ForecastTimeout` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise ForecastTimeout(f"the service was not ready within {timeout} s")
            time.sleep(interval)

    def _horizon(self, horizon: int | None, model: str | None) -> int:
        if horizon is not None:
            return horizon
        name = (model or self._cfg.model or served_default(self.models())).partition("@")[0]
        if name not in self._cfg.horizons:
            self._cfg.horizons[name] = model_horizon(self.model(name))
        return self._cfg.horizons[name]

    def _send(self, method: str, path: str, body: bytes | None = None) -> httpx.Response:
        """One call, retried as the policy says; the response, or the typed exception."""
        for attempt in itertools.count():
            outcome = self._attempt(method, path, body)
            delay = self._cfg.retry.delay(attempt, outcome)
            if delay is None:
                return checked(outcome)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _attempt(self, method: str, path: str, body: bytes | None = None) -> Outcome:
        try:
            return self._http.request(
                method,
                path,
                content=body,
                headers=_JSON if body else None,
                timeout=self._cfg.timeout,
            )
        except httpx.TransportError as exc:
            return exc


class AsyncForecastClient:
    """Asynchronous client of the forecast service: :class:`ForecastClient`'s methods, awaited.

    Takes the same arguments, with an :class:`httpx.AsyncBaseTransport` (e.g.
    :class:`httpx.ASGITransport` to call an app in-process) or :class:`httpx.AsyncClient`.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        model: str | None = None,
        timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy | int | None = DEFAULT_RETRY,
        max_series_per_request: int = DEFAULT_MAX_SERIES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        headers: Mapping[str, str] | None = None,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._cfg = _Config(model, timeout, retry, max_series_per_request, max_body_bytes)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            base_url=base_url,
            headers=_headers(headers, api_key),
            timeout=self._cfg.timeout,
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections (those of a client passed in are left to its owner)."""
        if self._owns_http:
            await self._http.aclose()

    async def forecast(
        self,
        history: History,
        horizon: int | None = None,
        model: str | None = None,
        quantiles: Sequence[float] | None = None,
    ) -> pd.DataFrame:
        """See :meth:`ForecastClient.forecast`."""
        series = as_input(history)
        horizon = await self._horizon(horizon, model)
        body = single_body(series, horizon, model or self._cfg.model, quantiles)
        answer = parse(ForecastResponse, await self._send("POST", _FORECAST, body))
        return single_frame(answer, series)

    async def forecast_many(
        self,
        data: Mapping[Any, History] | pd.DataFrame,
        horizon: int | None = None,
        model: str | None = None,
        quantiles: Sequence[float] | None = None,
        *,
        id_col: str = "id",
        time_col: str = "timestamp",
        value_col: str = "value",
    ) -> pd.DataFrame:
        """See :meth:`ForecastClient.forecast_many` (requests go one after another here too,
        so a big job never floods the service's queue into 503s)."""
        inputs = inputs_of(data, id_col, time_col, value_col)
        horizon = await self._horizon(horizon, model)
        chunks = self._cfg.plan(inputs, horizon, model, quantiles)
        answers = [
            parse(BatchForecastResponse, await self._send("POST", _FORECAST, c.body))
            for c in chunks
        ]
        return many_frame(answers, inputs, id_col, time_col)

    async def models(self) -> list[ModelSummary]:
        """See :meth:`ForecastClient.models`."""
        return parse(_ModelList, await self._send("GET", "/v1/models")).root

    async def model(self, name: str) -> ModelDetail:
        """See :meth:`ForecastClient.model`."""
        return parse(ModelDetail, await self._send("GET", f"/v1/models/{name}"))

    async def health(self) -> bool:
        """See :meth:`ForecastClient.health`."""
        return _ok(await self._attempt("GET", "/healthz"))

    async def ready(self) -> bool:
        """See :meth:`ForecastClient.ready`."""
        return _ok(await self._attempt("GET", "/readyz"))

    async def wait_ready(self, timeout: float = 60.0, interval: float = 0.1) -> None:
        """See :meth:`ForecastClient.wait_ready`."""
        deadline = time.monotonic() + timeout
        while not await self.ready():
            if time.monotonic() > deadline:
                raise ForecastTimeout(f"the service was not ready within {timeout} s")
            await asyncio.sleep(interval)

    async def _horizon(self, horizon: int | None, model: str | None) -> int:
        if horizon is not None:
            return horizon
        name = (model or self._cfg.model or served_default(await self.models())).partition("@")[0]
        if name not in self._cfg.horizons:
            self._cfg.horizons[name] = model_horizon(await self.model(name))
        return self._cfg.horizons[name]

    async def _send(self, method: str, path: str, body: bytes | None = None) -> httpx.Response:
        for attempt in itertools.count():
            outcome = await self._attempt(method, path, body)
            delay = self._cfg.retry.delay(attempt, outcome)
            if delay is None:
                return checked(outcome)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _attempt(self, method: str, path: str, body: bytes | None = None) -> Outcome:
        try:
            return await self._http.request(
                method,
                path,
                content=body,
                headers=_JSON if body else None,
                timeout=self._cfg.timeout,
            )
        except httpx.TransportError as exc:
            return exc


def _ok(outcome: Outcome) -> bool:
    return isinstance(outcome, httpx.Response) and outcome.status_code == 200


class _ModelList(pydantic.RootModel[list[ModelSummary]]):
    """The body of ``GET /v1/models``."""
