"""The synchronous client: :class:`ForecastClient`."""

from __future__ import annotations

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
        self._cfg = ClientConfig(model, timeout, retry, max_series_per_request, max_body_bytes)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            base_url=base_url,
            headers=merged_headers(headers, api_key),
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
        """Forecast one series ``horizon`` steps ahead (the model's full horizon if None).

        Returns a DataFrame with a ``forecast`` column, a ``q<level>`` column per quantile and
        ``lower_<level>``/``upper_<level>`` columns per interval level (``levels`` in percent;
        None: the service's default, 80 and 95; ``[]``: none), indexed by timestamp when
        ``history`` is a Series with a DatetimeIndex or a DataFrame with ``time_col``, else by
        step; ``frame.attrs["calibrated"]`` says whether the intervals are calibrated.

        For a model that reads covariates, ``history`` is a DataFrame of the series
        (``time_col``, ``value_col`` and a column per past and future covariate), ``future_df``
        holds the horizon's values of the future ones (``time_col`` and a column each),
        ``past_covariates`` names the history's columns that are past-only, and ``static_df``
        its statics (a dict, or a one-row DataFrame): :meth:`forecast_many`'s layout, for one
        series (no ``id_col`` needed).
        """
        covariates = Covariates(future_df, past_covariates, static_df)
        series = one_input(history, id_col, time_col, value_col, covariates)
        horizon = self._checked_horizon([(None, series)], horizon, model)
        ((_, series),) = ahead([(None, series)], horizon)
        body = single_body(series, horizon, model or self._cfg.model, quantiles, levels)
        answer = parse(ForecastResponse, self._send("POST", FORECAST_PATH, body))
        return single_frame(answer, series)

    def forecast_many(
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
        """Forecast many series: a dict ``{id: history}`` or a long DataFrame (NaN: missing).

        Work beyond the per-request limits is sent as several requests, one after another.
        Returns a long DataFrame with a ``method`` column (see :func:`many_frame`). A series the
        service cannot forecast (only missing values, say) does not stop the others: with
        ``errors="raise"`` (the default) :class:`SeriesFailed` is raised once every request is
        answered, listing each error and holding the other forecasts in ``.frame``; with
        ``errors="return"`` the frame is returned and the errors are in
        ``frame.attrs["errors"]`` (one dict per error: ``id`` your key, ``index``, ``loc``,
        ``msg``, ``type``).
        """
        covariates = Covariates(future_df, past_covariates, static_df)
        inputs = inputs_of(data, id_col, time_col, value_col, covariates)
        horizon = self._checked_horizon(inputs, horizon, model)
        plan = self._cfg.plan(ahead(inputs, horizon), horizon, model, quantiles, errors, levels)
        answers = [
            parse(BatchForecastResponse, self._send("POST", FORECAST_PATH, c.body))
            for c in plan.chunks
        ]
        return many_frame(plan, answers, inputs, id_col, time_col, errors)

    def send_actuals(
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
            [parse(ActualsResponse, self._send("POST", ACTUALS_PATH, b)) for b in bodies]
        )

    def accuracy(
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
        return parse(AccuracyResponse, self._send("GET", path))

    def models(self) -> list[ModelSummary]:
        """Every model in the service's registry."""
        return parse(ModelList, self._send("GET", "/v1/models")).root

    def model(self, name: str) -> ModelDetail:
        """One model: versions, production alias, and its served version's config and metrics."""
        return parse(ModelDetail, self._send("GET", f"/v1/models/{name}"))

    def health(self) -> bool:
        """Whether the service process answers (no retries; never raises)."""
        return is_ok(self._attempt("GET", "/healthz"))

    def ready(self) -> bool:
        """Whether the service is ready: ``/readyz`` is 200, every model it was asked for is loaded
        and warm (no retries; never raises)."""
        return is_ok(self._attempt("GET", "/readyz"))

    def wait_ready(
        self, timeout: float = 60.0, interval: float = 0.1, *, model: str | None = None
    ) -> None:
        """Block until :meth:`ready` and no model is loading (one published since the service
        started, say), and, when ``model`` (``name`` or ``name@version``) is given, until it is
        served; :class:`ForecastTimeout` after ``timeout`` seconds, saying what it waited for."""
        deadline = time.monotonic() + timeout
        while (waiting := still_waiting(self._attempt("GET", "/readyz"), model)) is not None:
            if time.monotonic() > deadline:
                raise ForecastTimeout(f"the service was not ready within {timeout} s: {waiting}")
            time.sleep(interval)

    def _checked_horizon(
        self, inputs: Sequence[tuple[Any, Input]], horizon: int | None, model: str | None
    ) -> int:
        """The horizon to ask for, once the inputs' frequencies match the target model's."""
        if not needs_facts(inputs, horizon):
            return horizon  # type: ignore[return-value]  # needs_facts: horizon is set
        name = model or self._cfg.model or self._cfg.default
        if name is None:
            models = self.models()
            name = self._cfg.default = service_default(models)
            if name is None:  # the service picks a model by the timestamps' frequency
                if horizon is None:
                    raise no_default(models)
                return horizon
        name = name.partition("@")[0]
        if name not in self._cfg.details:
            self._cfg.details[name] = self.model(name)
        detail = self._cfg.details[name]
        check_frequencies(inputs, detail)
        return model_horizon(detail) if horizon is None else horizon

    def _send(self, method: str, path: str, body: bytes | None = None) -> httpx.Response:
        """One call, retried as the policy says; the response, or the typed exception."""
        for attempt in itertools.count():
            result = self._attempt(method, path, body)
            delay = self._cfg.retry.delay(attempt, result)
            if delay is None:
                return checked(result)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _attempt(self, method: str, path: str, body: bytes | None = None) -> AttemptResult:
        try:
            return self._http.request(
                method,
                path,
                content=body,
                headers=JSON_HEADERS if body else None,
                timeout=self._cfg.timeout,
            )
        except httpx.TransportError as exc:
            return exc
