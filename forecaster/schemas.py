"""Request and response bodies of the forecast service, shared by ``service/`` and the client.

Requests are strict: a history value must be a finite JSON number or ``null`` (a missing value; not
a string or a boolean), unknown fields are refused, and every error names its field. Limits that
depend on the service's settings (series per request, points per history, largest magnitude) are
checked by the service.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from forecaster.horizons import RULE

Value = Annotated[float, Field(strict=True, allow_inf_nan=False)]
# A history point: a finite number, or null for a missing one.
Point = Value | None
Quantile = Annotated[float, Field(strict=True, gt=0.0, lt=1.0)]
# An interval's level in percent: 80 is the interval between the quantiles 0.1 and 0.9.
Level = Annotated[float, Field(strict=True, gt=0.0, lt=100.0)]
#: Most interval levels one request may ask for (and most quantiles: 99, the percentiles).
MAX_LEVELS = 20
MAX_QUANTILES = 99


def _distinct(values: list[float] | None) -> list[float] | None:
    if values is not None and len(set(values)) < len(values):
        repeated = sorted({v for v in values if values.count(v) > 1})
        raise ValueError(f"each value may appear once; repeated: {repeated}")
    return values


# A model name: one safe path component (the registry compiles its NAME_RE from this).
NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
NAME_PATTERN = rf"^{NAME}$"
# What a request may name: ``name`` or ``name@version``.
MODEL_PATTERN = rf"^{NAME}(@[0-9]{{1,9}})?$"
# A series id: at most this many characters, none of them a control character (C0, DEL, C1) or
# a lone surrogate. Every backend stores what passes (PostgreSQL refuses NUL and text that is
# not UTF-8, SQLite takes anything), so the rule is checked here, not found out by one of them.
ID_MAX_LENGTH = 256
_ID_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def id_problem(text: str) -> str | None:
    """Why ``text`` cannot be a series id, or None when it can (length aside)."""
    found = _ID_FORBIDDEN.search(text)
    if found is None:
        return None
    return f"id must not contain control characters: {found.group()!r} at position {found.start()}"


def _series_id(text: str) -> str:
    problem = id_problem(text)
    if problem is not None:
        raise ValueError(problem)
    return text


#: The id rule of every request that names series (forecasts and actuals).
SeriesId = Annotated[
    str,
    Field(
        max_length=ID_MAX_LENGTH,
        json_schema_extra={"pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"},
    ),
    AfterValidator(_series_id),
]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


# Covariates a series brings (docs/guide/covariates.md): each name's values, finite numbers.
PastCovariates = dict[str, list[Value]]
FutureCovariates = dict[str, list[Value]]
# A static covariate: a number, or text for a category.
StaticCovariates = dict[str, Value | str]
PAST_DESCRIPTION = (
    "Covariate name -> one value per history point, for every past and every future "
    "covariate the model reads (`GET /v1/models/{name}` lists them)."
)
FUTURE_DESCRIPTION = (
    "Future covariate name -> one value per horizon step; each also appears in `past_covariates`."
)
STATIC_DESCRIPTION = "Static covariate name -> its value (a number, or text for a category)."


def _future_has_past(past: dict[str, Any] | None, future: dict[str, Any] | None) -> None:
    missing = sorted(set(future or {}) - set(past or {}))
    if missing:
        raise ValueError(
            f"future covariate {missing[0]!r} has no `past_covariates` values: give one per "
            "history point there too"
        )


class SeriesInput(_Strict):
    """One series of a many-series request."""

    id: SeriesId | None = Field(None, description="Echoed back; defaults to the index.")
    history: list[Point] = Field(
        ...,
        min_length=1,
        description="Observations, oldest first; null marks a missing one (see `ForecastRequest`).",
    )
    timestamps: list[str] | None = Field(
        None, description="ISO 8601 time of each observation (same length as history)."
    )
    past_covariates: PastCovariates | None = Field(None, description=PAST_DESCRIPTION)
    future_covariates: FutureCovariates | None = Field(None, description=FUTURE_DESCRIPTION)
    static_covariates: StaticCovariates | None = Field(None, description=STATIC_DESCRIPTION)

    @model_validator(mode="after")
    def _futures_have_pasts(self) -> SeriesInput:
        _future_has_past(self.past_covariates, self.future_covariates)
        return self


class ForecastRequest(_Strict):
    """Either one series (``history``) or many (``series``), forecast ``horizon`` steps ahead.

    Any history with at least one value is forecast: by the model when it holds at least the
    model's ``min_history.model`` points (longer ones are cut to its window), else by a
    statistical method (the answer's ``method`` says which). Missing values (``null``, or a
    timestamp skipped on the series' grid) are trimmed at the ends and interpolated inside when at
    most 3 in a row; after a longer gap the forecast is made from the points after it (at least
    ``min_history.after_gap`` of them, else that series gets an error naming the gap).

    In a ``series`` request each series gets its forecast or its own error (both lists come back
    with HTTP 200) unless ``strict`` is true: then any error refuses the whole request (422).
    """

    history: list[Point] | None = Field(
        None,
        min_length=1,
        description="One series' observations, oldest first; null marks a missing one.",
    )
    timestamps: list[str] | None = Field(
        None, description="ISO 8601 time of each observation of `history` (same length)."
    )
    past_covariates: PastCovariates | None = Field(None, description=PAST_DESCRIPTION)
    future_covariates: FutureCovariates | None = Field(None, description=FUTURE_DESCRIPTION)
    static_covariates: StaticCovariates | None = Field(None, description=STATIC_DESCRIPTION)
    series: list[SeriesInput] | None = Field(
        None, min_length=1, description="Many series, answered in request order."
    )
    horizon: int = Field(
        ...,
        ge=1,
        description="Steps to forecast. Beyond the model's `horizon` the model is rolled forward "
        "on its own forecasts (the answer says `extended`), up to the model's `max_horizon`.",
    )
    model: str | None = Field(
        None,
        pattern=MODEL_PATTERN,
        description="`name` or `name@version`. Absent: the served model whose frequency "
        "matches the timestamps when exactly one does, else the default model.",
    )
    levels: Annotated[list[Level] | None, AfterValidator(_distinct)] = Field(
        None,
        max_length=MAX_LEVELS,
        description="Interval levels wanted, in percent, each in (0, 100), e.g. `[50, 80, 95]` "
        "(absent: 80 and 95; `[]`: none). A calibrated model serves any level; an uncalibrated "
        "one only those its trained quantiles bound.",
    )
    quantiles: Annotated[list[Quantile] | None, AfterValidator(_distinct)] = Field(
        None,
        max_length=MAX_QUANTILES,
        description="Quantile levels wanted, each in (0, 1). A calibrated model serves any; an "
        "uncalibrated one only those it was trained with.",
    )
    strict: bool = Field(
        False,
        description="Refuse the whole `series` request (422) when any series has an error, "
        "instead of answering the others.",
    )

    @model_validator(mode="after")
    def _one_form(self) -> ForecastRequest:
        if (self.history is None) == (self.series is None):
            raise ValueError("give exactly one of `history` (one series) or `series` (many)")
        if self.series is not None and self.timestamps is not None:
            raise ValueError("`timestamps` belongs inside each entry of `series`")
        covariates = (self.past_covariates, self.future_covariates, self.static_covariates)
        if self.series is not None and any(c is not None for c in covariates):
            raise ValueError("covariates belong inside each entry of `series`")
        _future_has_past(self.past_covariates, self.future_covariates)
        return self


#: How a forecast was made: by the model (and how much of it the classical methods made), or by
#: the statistical fallback named.
METHOD_DESCRIPTION = (
    "`model` (the network), `model+classical` (the network blended with Theta and damped "
    "trend; `classical_share` says how much), `classical` (validation gave Theta and damped "
    "trend the whole forecast), each followed by `+naive` when the model pulls the forecasts "
    "of volatile series toward Naive2 (chosen on validation, for short series without a "
    "season), or the statistical method that answered a history shorter than the model reads: "
    "`seasonal_blend` (two seasons or more), `seasonal_naive` (one), `naive` (or `naive2`)."
)
EXTENDED_DESCRIPTION = (
    "True when the model forecast beyond its trained `horizon`: the steps after it were made by "
    "rolling the model forward on its own forecasts, one trained horizon at a time, and their "
    "intervals widened at least like a random walk of whole blocks (absent otherwise; the "
    "statistical fallbacks forecast any horizon directly)."
)
SHARE_DESCRIPTION = (
    "Share of the classical forecast (Theta and damped trend) in the point forecast, chosen on "
    "validation; present with `model+classical` and `classical` (and with `+naive` after them)."
)


class Gap(BaseModel):
    """A run of more than 3 missing points that cut the history: the forecast was made from the
    points after it."""

    before: int = Field(..., description="Index in the history of the last point before it.")
    after: int = Field(..., description="Index in the history of the first point after it.")
    missing: int = Field(..., description="Points missing (nulls and skipped timestamps).")
    timestamps: list[str] | None = Field(
        None, description="The timestamps of those two points, when the history had some."
    )


CALIBRATED_DESCRIPTION = (
    "Whether `intervals` and `quantiles` are calibrated: from the model's conformal "
    "calibration on backtests of its training data, at every horizon step. False: the model's "
    "trained quantile heads or the fallback's own bands, served as they are (a model saved "
    "without calibration). Absent when the answer carries neither."
)


class Interval(BaseModel):
    """One interval's bounds at each forecast step."""

    lower: list[float]
    upper: list[float]


class _Answer(BaseModel):
    """What every forecast says (optional keys appear only when they apply)."""

    forecast: list[float]
    method: str | None = Field(None, description=METHOD_DESCRIPTION)
    classical_share: float | None = Field(None, description=SHARE_DESCRIPTION)
    extended: bool | None = Field(None, description=EXTENDED_DESCRIPTION)
    filled: int = Field(0, description="Missing points interpolated in the history used.")
    timestamps: list[str] | None = None
    quantiles: dict[str, list[float]] | None = None
    intervals: dict[str, Interval] | None = Field(
        None, description="Each asked level's interval, keyed by the level in percent (`80`)."
    )
    calibrated: bool | None = Field(None, description=CALIBRATED_DESCRIPTION)
    adjusted: dict[str, float] | None = Field(
        None,
        description="Levels whose intervals were adjusted online from the actuals (the model "
        "is listed in `FORECASTER_ADAPTIVE_INTERVALS`): the level asked (`80`) -> the "
        "calibrated level served for it (`83.1`). Absent when none was.",
    )
    gap: Gap | None = None
    warnings: list[str] | None = Field(
        None, description="What the forecast did not use of the request, and why (e.g. "
        "covariates sent to a model that reads none; a short history answered without them)."
    )  # fmt: skip


class SeriesForecast(_Answer):
    """The forecast of one series of a many-series request."""

    id: str
    index: int | None = Field(None, description="The series' position in the request.")


class ForecastResponse(_Answer):
    """The answer to a one-series request."""

    model: str
    version: int


class MinHistory(BaseModel):
    """Fewest history points for each way a forecast is made."""

    model: int = Field(..., description="For the model itself to answer (its `min_input`).")
    fallback: int = Field(1, description="For any forecast: shorter ones get a statistical one.")
    after_gap: int = Field(
        ..., description="After a gap of more than 3 missing points (enough for the model or "
        "a seasonal fallback); fewer is an error naming the gap."
    )  # fmt: skip


class CovariateInfo(BaseModel):
    """One covariate a model reads."""

    name: str
    role: Literal["past", "future", "static"] = Field(
        ..., description="`past`: one value per history point; `future`: per history point "
        "and per horizon step; `static`: one value per series."
    )  # fmt: skip
    kind: Literal["numeric", "categorical"]
    categories: list[str] | None = Field(None, description="A categorical one's training values.")


class ModelCovariates(BaseModel):
    """What a model reads besides the target: the covariates a request must carry, and the
    calendar features it computes from the history's timestamps (which it then needs)."""

    columns: list[CovariateInfo]
    calendar: list[str] = Field(default_factory=list)
    holidays: str | None = Field(None, description="Country whose public holidays it reads.")
    needs_timestamps: bool = False


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
    min_history: MinHistory | None = Field(None, description="Fewest points per path.")
    horizon: int | None = Field(
        None, description="Steps it forecasts at once (its trained horizon, the default)."
    )
    max_horizon: int | None = Field(
        None,
        description="Most steps a request may ask: beyond `horizon` the model is rolled forward "
        f"on its own forecasts, {RULE}.",
    )
    quantiles: list[float] | None = Field(None, description="Quantile levels of its trained heads.")
    calibrated: bool | None = Field(
        None, description="Whether its intervals are calibrated: then any level or quantile "
        "may be asked; else only `quantiles`."
    )  # fmt: skip
    method: str | None = Field(
        None, description="What makes its forecasts: `model`, `model+classical` or `classical`."
    )
    classical_share: float | None = Field(None, description=SHARE_DESCRIPTION)
    covariates: ModelCovariates | None = Field(
        None, description="What a request must carry besides the history; None: nothing."
    )
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
    recording: Literal["ok", "down", "off"] = Field(
        "ok", description="Whether forecasts are being recorded (down: `detail` says why)."
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
    """One problem with a request: where (``loc``), what (``msg``) and its kind (``type``); a
    problem of one series of a ``series`` request also names it (``id``, ``index``)."""

    loc: list[str | int]
    msg: str
    type: str
    id: str | None = Field(None, description="The series' id (its index when it has none).")
    index: int | None = Field(None, description="The series' position in the request.")


class SeriesError(ErrorDetail):
    """Why one series of a ``series`` request got no forecast."""

    id: str
    index: int


class BatchForecastResponse(BaseModel):
    """The answer to a many-series request: the forecasts and the errors, each in request order."""

    forecasts: list[SeriesForecast]
    errors: list[SeriesError] = Field(default_factory=list)
    model: str
    version: int


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body."""

    detail: list[ErrorDetail] | str


# ------------------------------------------------------------------------------- monitoring


class ActualSeries(_Strict):
    """The observed values of one series at its timestamps."""

    id: SeriesId = Field(..., min_length=1, description="The forecast series' id.")
    timestamps: list[str] = Field(..., min_length=1, description="ISO 8601, one per value.")
    values: list[Value] = Field(..., min_length=1, description="Finite numbers.")

    @model_validator(mode="after")
    def _same_length(self) -> ActualSeries:
        if len(self.timestamps) != len(self.values):
            raise ValueError(f"{len(self.timestamps)} timestamps for {len(self.values)} values")
        return self


class ActualsRequest(_Strict):
    """Actuals to score recorded forecasts against (``POST /v1/actuals``)."""

    series: list[ActualSeries] = Field(..., min_length=1)


class ActualsResponse(BaseModel):
    """What became of the actuals: values stored (new or replaced: sending the same again is
    harmless), recorded forecast points they scored (a value forecast by several recorded
    forecasts scores each), and the series ignored because no forecast of theirs is recorded."""

    stored: int
    matched: int
    unknown_series: int
    unknown_ids: list[str] = Field(default_factory=list, description="The first few of them.")


class ErrorFigures(BaseModel):
    """Mean errors over matched points (null where undefined, e.g. MASE of constant histories)."""

    points: int
    smape: float | None = Field(None, description="M4's sMAPE, in percent.")
    mase: float | None = Field(
        None, description="Absolute error over the history's seasonal-naive in-sample error."
    )
    mae: float | None = None


class LevelCoverage(BaseModel):
    """Live coverage of one interval level: the share of actuals inside its band."""

    level: float = Field(..., description="The nominal level, in percent.")
    points: int = Field(..., description="Matched points recorded with this level's interval.")
    coverage: float | None = Field(None, description="Share of them inside the interval.")
    shortfall: float | None = Field(
        None, description="Nominal level less the measured coverage, in points (negative: above)."
    )


class AccuracyFigures(BaseModel):
    """Accuracy over some matched points, with the seasonal naive forecast of the same
    histories on the same points as the reference."""

    points: int
    model: ErrorFigures
    seasonal_naive: ErrorFigures
    coverage: float | None = Field(
        None, description="Share of actuals inside the widest interval recorded."
    )
    interval_points: int = Field(0, description="Matched points recorded with an interval.")
    levels: dict[str, LevelCoverage] = Field(
        default_factory=dict,
        description="Coverage per interval level answered, keyed by the level in percent (`80`).",
    )


class StepAccuracy(AccuracyFigures):
    step: int = Field(..., description="Horizon step, 1 = the first forecast point.")


class VersionAccuracy(BaseModel):
    version: int
    overall: AccuracyFigures
    interval: list[float] | None = Field(
        None, description="Quantile levels bounding the interval scored for coverage."
    )
    steps: list[StepAccuracy]


class AccuracyResponse(BaseModel):
    """Live accuracy of a model's versions (``GET /v1/models/{name}/accuracy``), newest first,
    over the recorded forecasts whose target time is in ``[since, until)``."""

    model: str
    since: str | None = None
    until: str | None = None
    versions: list[VersionAccuracy]


#: The lengths of an accuracy timeline's windows.
Every = Literal["hour", "day", "week"]


class AccuracyWindow(BaseModel):
    """Live accuracy of each version over the target times in ``[start, end)``."""

    start: str
    end: str
    versions: list[VersionAccuracy] = Field(
        ..., description="Versions with matched points in the window, newest first."
    )


class AccuracyTimeline(BaseModel):
    """``GET /v1/models/{name}/accuracy/timeline``: live accuracy window by window."""

    model: str
    every: Every
    windows: list[AccuracyWindow]


class RetrainDecision(BaseModel):
    """What the retraining job that published a version decided (from its ``report.json``)."""

    action: str = Field(..., description="`promote` or `keep`.")
    status: str | None = None
    reason: str | None = None
    improvement: float | None = None
    production_before: int | None = None
    production_after: int | None = None
    challenger: dict[str, float | None] | None = Field(
        None, description="The challenger's backtest scores."
    )
    champion: dict[str, float | None] | None = Field(
        None, description="The champion's scores on the same backtest."
    )


class ModelVersion(BaseModel):
    """One version of a model (``GET /v1/models/{name}/versions``), from its manifest."""

    version: int
    aliases: list[str] = Field(default_factory=list, description="Aliases pointing at it.")
    served: bool = Field(False, description="Whether this service answers with it now.")
    created_at: str | None = None
    frequency: str | None = None
    seasonal_period: int | None = None
    window: int | None = None
    horizon: int | None = None
    method: str | None = None
    metrics: dict[str, Any] | None = Field(None, description="Scores recorded at training.")
    decision: RetrainDecision | None = Field(
        None, description="The retraining job's decision, when a job published it."
    )
    error: str | None = Field(None, description="Why its manifest or report cannot be read.")


class SeriesSummary(BaseModel):
    """A series the service has forecast and recorded (``GET /v1/series``)."""

    id: str
    model: str
    version: int = Field(..., description="Latest version that forecast it.")
    forecasts: int = Field(..., description="Forecasts recorded.")
    last_made_at: str
    last_target: str = Field(..., description="Latest target time of its forecasts.")


class PastForecast(BaseModel):
    """A recorded forecast, as answered."""

    model: str
    version: int
    made_at: str
    method: str
    timestamps: list[str]
    forecast: list[float]
    intervals: dict[str, Interval] = Field(
        default_factory=dict, description="Level (percent) -> band, as answered."
    )


class SeriesRecord(BaseModel):
    """``GET /v1/series/{id}``: the actuals that arrived for a series and its recorded
    forecasts, both oldest first; times naive UTC as stored."""

    id: str
    timestamps: list[str] = Field(..., description="Times of the actuals.")
    actuals: list[float]
    forecasts: list[PastForecast]
