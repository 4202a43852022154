"""What both clients share: defaults, configuration, and small helpers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import httpx
import pydantic

from forecaster.client.bodies import Input, OnErrors, Plan, plan_chunks
from forecaster.client.errors import AttemptResult
from forecaster.client.retry import RetryPolicy
from forecaster.schemas import ModelDetail, ModelSummary

# Connecting to a healthy service takes milliseconds, so a slow connect means it is down;
# a forecast of a thousand series may legitimately take seconds.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# The service's own defaults (Settings.max_series, Settings.max_body_bytes).
DEFAULT_MAX_SERIES = 1000
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
FORECAST_PATH = "/v1/forecast"
ACTUALS_PATH = "/v1/actuals"
JSON_HEADERS = {"content-type": "application/json"}


class ClientConfig:
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
        # What the service said about its models, kept for the client's life (see .facts).
        self.details: dict[str, ModelDetail] = {}
        self.default: str | None = None

    def plan(
        self,
        inputs: Sequence[tuple[Any, Input]],
        horizon: int,
        model: str | None,
        quantiles: Sequence[float] | None,
        errors: OnErrors,
        levels: Sequence[float] | None = None,
    ) -> Plan:
        if errors not in ("raise", "return"):
            raise ValueError(f'errors must be "raise" or "return", got {errors!r}')
        return plan_chunks(
            inputs,
            horizon,
            model or self.model,
            quantiles,
            max_series=self.max_series_per_request,
            max_body_bytes=self.max_body_bytes,
            errors=errors,
            levels=levels,
        )


def merged_headers(headers: Mapping[str, str] | None, api_key: str | None) -> dict[str, str]:
    merged = dict(headers or {})
    if api_key is not None:
        merged["X-API-Key"] = api_key
    return merged


def is_ok(result: AttemptResult) -> bool:
    return isinstance(result, httpx.Response) and result.status_code == 200


def still_waiting(result: AttemptResult, model: str | None) -> str | None:
    """What a ``/readyz`` answer says the service is still doing, in words; None once it is
    ready, loads no model (a model published since it started reads as ready before it is
    served: ``missing`` names it ``loading``) and serves ``model`` (``name`` or
    ``name@version``) when one is given."""
    if not isinstance(result, httpx.Response):
        return f"no answer ({type(result).__name__})"
    try:
        body = result.json()
    except ValueError:
        body = {}
    if result.status_code != 200:
        return str(body.get("detail") or f"/readyz answered {result.status_code}")
    loading = sorted(n for n, why in (body.get("missing") or {}).items() if why == "loading")
    if loading:
        return f"loading {', '.join(loading)}"
    if model is not None:
        name, _, version = model.partition("@")
        served = (body.get("models") or {}).get(name)
        if served is None or (version and served != int(version)):
            why = (body.get("missing") or {}).get(name)
            return f"model {model!r} is not served yet" + (f" ({why})" if why else "")
    return None


class ModelList(pydantic.RootModel[list[ModelSummary]]):
    """The body of ``GET /v1/models``."""


def accuracy_path(model: str, version: int | None, since: str | None, until: str | None) -> str:
    """The path and query of an accuracy request (no query when nothing narrows it)."""
    params = {"version": version, "since": since, "until": until}
    given = {k: v for k, v in params.items() if v is not None}
    return f"/v1/models/{model}/accuracy" + ("?" + urlencode(given) if given else "")
