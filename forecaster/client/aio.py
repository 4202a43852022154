"""The asynchronous client: :class:`AsyncForecastClient`, :class:`ForecastClient` awaited."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import httpx
import pandas as pd

from forecaster.client._config import (
    ACTUALS_PATH,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_SERIES,
    DEFAULT_TIMEOUT,
    FORECAST_PATH,
    JSON_HEADERS,
    ClientConfig,
    ModelList,
    accuracy_path,
    is_ok,
    merged_headers,
    still_waiting,
)
from forecaster.client.bodies import (
    Covariates,
    History,
    Input,
    OnErrors,
    actuals_bodies,
    ahead,
    inputs_of,
    merged_actuals,
    one_input,
    single_body,
)
from forecaster.client.errors import AttemptResult, ForecastTimeout, checked, parse
from forecaster.client.facts import (
    check_frequencies,
    model_horizon,
    needs_facts,
    no_default,
    service_default,
)
from forecaster.client.frames import many_frame, single_frame
from forecaster.client.retry import DEFAULT_RETRY, RetryPolicy
from forecaster.schemas import (
    AccuracyResponse,
    ActualsResponse,
    BatchForecastResponse,
    ForecastResponse,
    ModelDetail,
    ModelSummary,
)


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
        self._cfg = ClientConfig(model, timeout, retry, max_series_per_request, max_body_bytes)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            base_url=base_url,
            headers=merged_headers(headers, api_key),
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
        history: History | pd.DataFrame,
        horizon: int | None = None,
        model: str | None = None,
        quantiles: Sequence[float] | None = None,
        *,
        levels: Sequence[float] | None = None,
        future_df: pd.DataFrame | None = None,
        past_covariates: Sequence[str] = (),
        static_df: pd.DataFrame | Mapping[str, float | str] | None = None,
        id_col: str = "id",
        time_col: str = "timestamp",
        value_col: str = "value",
    ) -> pd.DataFrame:
        """See :meth:`ForecastClient.forecast`."""
        covariates = Covariates(future_df, past_covariates, static_df)
        series = one_input(history, id_col, time_col, value_col, covariates)
        horizon = await self._checked_horizon([(None, series)], horizon, model)
        ((_, series),) = ahead([(None, series)], horizon)
        body = single_body(series, horizon, model or self._cfg.model, quantiles, levels)
        answer = parse(ForecastResponse, await self._send("POST", FORECAST_PATH, body))
        return single_frame(answer, series)

    async def forecast_many(
        self,
        data: Mapping[Any, History] | pd.DataFrame,
        horizon: int | None = None,
        model: str | None = None,
        quantiles: Sequence[float] | None = None,
        *,
        levels: Sequence[float] | None = None,
        id_col: str = "id",
        time_col: str = "timestamp",
        value_col: str = "value",
        errors: OnErrors = "raise",
        future_df: pd.DataFrame | None = None,
        past_covariates: Sequence[str] = (),
        static_df: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """See :meth:`ForecastClient.forecast_many` (requests go one after another here too,
        so a big job never floods the service's queue into 503s)."""
        covariates = Covariates(future_df, past_covariates, static_df)
        inputs = inputs_of(data, id_col, time_col, value_col, covariates)
        horizon = await self._checked_horizon(inputs, horizon, model)
        plan = self._cfg.plan(ahead(inputs, horizon), horizon, model, quantiles, errors, levels)
        answers = [
            parse(BatchForecastResponse, await self._send("POST", FORECAST_PATH, c.body))
            for c in plan.chunks
        ]
        return many_frame(plan, answers, inputs, id_col, time_col, errors)

    async def send_actuals(
        self,
        data: Mapping[Any, pd.Series] | pd.DataFrame,
        *,
        id_col: str = "id",
        time_col: str = "timestamp",
        value_col: str = "value",
    ) -> ActualsResponse:
        """Send observed values (a dict of Series with a DatetimeIndex, or a long DataFrame) to
        be matched with the forecasts the service recorded; NaN values are left out. Needs the
        admin key (``api_key``) when the service has one."""
        inputs = inputs_of(data, id_col, time_col, value_col)
        bodies = actuals_bodies(inputs, self._cfg.max_series_per_request)
        return merged_actuals(
            [parse(ActualsResponse, await self._send("POST", ACTUALS_PATH, b)) for b in bodies]
        )

    async def accuracy(
        self,
        model: str,
        *,
        version: int | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> AccuracyResponse:
        """Live accuracy of ``model`` per version and horizon step (target times in
        ``[since, until)``, ISO 8601), with seasonal naive on the same points."""
        path = accuracy_path(model, version, since, until)
        return parse(AccuracyResponse, await self._send("GET", path))

    async def models(self) -> list[ModelSummary]:
        """See :meth:`ForecastClient.models`."""
        return parse(ModelList, await self._send("GET", "/v1/models")).root

    async def model(self, name: str) -> ModelDetail:
        """See :meth:`ForecastClient.model`."""
        return parse(ModelDetail, await self._send("GET", f"/v1/models/{name}"))

    async def health(self) -> bool:
        """See :meth:`ForecastClient.health`."""
        return is_ok(await self._attempt("GET", "/healthz"))

    async def ready(self) -> bool:
        """See :meth:`ForecastClient.ready`."""
        return is_ok(await self._attempt("GET", "/readyz"))

    async def wait_ready(
        self, timeout: float = 60.0, interval: float = 0.1, *, model: str | None = None
    ) -> None:
        """See :meth:`ForecastClient.wait_ready`."""
        deadline = time.monotonic() + timeout
        while (waiting := still_waiting(await self._attempt("GET", "/readyz"), model)) is not None:
            if time.monotonic() > deadline:
                raise ForecastTimeout(f"the service was not ready within {timeout} s: {waiting}")
            await asyncio.sleep(interval)

    async def _checked_horizon(
        self, inputs: Sequence[tuple[Any, Input]], horizon: int | None, model: str | None
    ) -> int:
        """The horizon to ask for, once the inputs' frequencies match the target model's."""
        if not needs_facts(inputs, horizon):
            return horizon  # type: ignore[return-value]  # needs_facts: horizon is set
        name = model or self._cfg.model or self._cfg.default
        if name is None:
            models = await self.models()
            name = self._cfg.default = service_default(models)
            if name is None:  # the service picks a model by the timestamps' frequency
                if horizon is None:
                    raise no_default(models)
                return horizon
        name = name.partition("@")[0]
        if name not in self._cfg.details:
            self._cfg.details[name] = await self.model(name)
        detail = self._cfg.details[name]
        check_frequencies(inputs, detail)
        return model_horizon(detail) if horizon is None else horizon

    async def _send(self, method: str, path: str, body: bytes | None = None) -> httpx.Response:
        for attempt in itertools.count():
            result = await self._attempt(method, path, body)
            delay = self._cfg.retry.delay(attempt, result)
            if delay is None:
                return checked(result)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _attempt(self, method: str, path: str, body: bytes | None = None) -> AttemptResult:
        try:
            return await self._http.request(
                method,
                path,
                content=body,
                headers=JSON_HEADERS if body else None,
                timeout=self._cfg.timeout,
            )
        except httpx.TransportError as exc:
            return exc
