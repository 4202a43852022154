"""Request and response bodies of the forecast service, shared by ``service/`` and the client.

Requests are strict: a history value must be a JSON number (not a string or a boolean) and finite,
unknown fields are refused, and every error names its field. Limits that depend on the service's
settings (series per request, points per history, largest magnitude) are checked by the service.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Value = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Quantile = Annotated[float, Field(strict=True, gt=0.0, lt=1.0)]
# A model name: one safe path component (the registry compiles its NAME_RE from this).
NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
NAME_PATTERN = rf"^{NAME}$"
# What a request may name: ``name`` or ``name@version``.
MODEL_PATTERN = rf"^{NAME}(@[0-9]{{1,9}})?$"


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class SeriesInput(_Strict):
    """One series of a many-series request."""

    id: str | None = Field(None, max_length=256, description="Echoed back; defaults to the index.")
    history: list[Value] = Field(..., min_length=1, description="Observations, oldest first.")
    timestamps: list[str] | None = Field(
        None, description="ISO 8601 time of each observation (same length as history)."
    )


class ForecastRequest(_Strict):
    """Either one series (``history``) or many (``series``), forecast ``horizon`` steps ahead.

    Histories longer than the model's input window are cut to their last ``input_size`` points;
    shorter ones are refused with a 422 naming the minimum.
    """

    history: list[Value] | None = Field(
        None, min_length=1, description="One series' observations, oldest first."
    )
    timestamps: list[str] | None = Field(
        None, description="ISO 8601 time of each observation of `history` (same length)."
    )
    series: list[SeriesInput] | None = Field(
        None, min_length=1, description="Many series, answered in request order."
    )
    horizon: int = Field(..., ge=1, description="Steps to forecast; at most the model's horizon.")
    model: str | None = Field(
        None,
        pattern=MODEL_PATTERN,
        description="`name` or `name@version`. Absent: the served model whose frequency "
        "matches the timestamps when exactly one does, else the default model.",
    )
    quantiles: list[Quantile] | None = Field(
        None, description="Quantile levels wanted; only those the model was trained with."
    )

    @model_validator(mode="after")
    def _one_form(self) -> ForecastRequest:
        if (self.history is None) == (self.series is None):
            raise ValueError("give exactly one of `history` (one series) or `series` (many)")
        if self.series is not None and self.timestamps is not None:
            raise ValueError("`timestamps` belongs inside each entry of `series`")
        return self


class SeriesForecast(BaseModel):
    """The forecast of one series of a many-series request."""

    id: str
    forecast: list[float]
    timestamps: list[str] | None = None
    quantiles: dict[str, list[float]] | None = None


class ForecastResponse(BaseModel):
    """The answer to a one-series request; optional keys appear only when asked for."""

    forecast: list[float]
    model: str
    version: int
    timestamps: list[str] | None = None
    quantiles: dict[str, list[float]] | None = None


class BatchForecastResponse(BaseModel):
    """The answer to a many-series request, in request order."""

    forecasts: list[SeriesForecast]
    model: str
    version: int


class ModelSummary(BaseModel):
    """One model as the service sees it, with what a client needs to check a request first.

    The frequency, seasonal period, window, horizon and quantiles describe the served version;
    they are None while no version is served.
    """

    name: str
    versions: list[int]
    production: int | None = Field(None, description="Version the production alias points at.")
    loaded_version: int | None = Field(None, description="Version being served, if any.")
    default: bool = Field(False, description="Whether requests that name no model get this one.")
    frequency: str | None = Field(
        None, description="pandas alias of the training data's frequency, e.g. `h`; None: unknown."
    )
    seasonal_period: int | None = Field(None, description="Points per seasonal cycle.")
    window: int | None = Field(None, description="Points of history the model reads.")
    min_history: int | None = Field(None, description="Fewest points a history may have.")
    horizon: int | None = Field(None, description="Most steps it forecasts.")
    quantiles: list[float] | None = Field(None, description="Quantile levels it offers.")
    problem: str | None = Field(
        None, description="Why the production version is not the one served, if it is not."
    )


class ModelDetail(ModelSummary):
    """A model with the configuration and metrics of its served version."""

    config: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    created_at: str | None = None


class Readiness(BaseModel):
    """The body of ``GET /readyz``: 200 when ready, else 503, naming what is missing."""

    status: Literal["ready", "loading", "not_ready"]
    detail: str = Field(..., description="What the service is waiting for, in words.")
    models: dict[str, int] = Field(..., description="Served version of each model.")
    default_model: str | None = Field(None, description="Model for requests that name none.")
    missing: dict[str, str] = Field(
        default_factory=dict, description="Models not served, and why (asked for or found)."
    )


class PromoteRequest(_Strict):
    """Move the production alias to ``version``."""

    version: int = Field(..., ge=1)


class AdminResult(BaseModel):
    """What an admin call left serving."""

    model: str
    version: int
    previous: int | None = None


class ErrorDetail(BaseModel):
    """One problem with a request: where (``loc``), what (``msg``) and its kind (``type``)."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body."""

    detail: list[ErrorDetail] | str
