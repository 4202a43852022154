"""From a validated :class:`ForecastRequest` to a JSON-ready answer.

The checks that depend on the model or the settings live here (pydantic has already refused
non-numbers, non-finite numbers and missing fields); each failure is a :class:`RequestError` naming
the field, which the error handlers turn into a 4xx body.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from forecaster.predict import Forecast
from forecaster.schemas import ForecastRequest
from forecaster.settings import Settings
from service.batcher import MicroBatcher
from service.store import ModelStore, ServedModel

Loc = tuple[str | int, ...]


class RequestError(Exception):
    """A request the service refuses: HTTP ``status``, the field ``loc`` and a message."""

    def __init__(self, status: int, loc: Loc, msg: str, kind: str = "value_error") -> None:
        super().__init__(msg)
        self.status, self.loc, self.msg, self.kind = status, loc, msg, kind


@dataclass(frozen=True)
class _Series:
    id: str | None
    window: np.ndarray  # [input_size] float64
    future: list[str] | None  # timestamps of the forecast steps, when history had them


def resolve_model(store: ModelStore, ref: str | None, default: str) -> ServedModel:
    """The served model for ``name`` or ``name@version`` (404 when it is not served)."""
    name, _, pinned = (ref or default).partition("@")
    served = store.get(name)
    if served is None:
        raise RequestError(404, ("body", "model"), f"model {name!r} is not served", "not_found")
    if pinned and int(pinned) != served.version:
        msg = f"version {int(pinned)} of {name!r} is not served (serving {served.version})"
        raise RequestError(404, ("body", "model"), msg, "not_found")
    return served


async def forecast(
    request: ForecastRequest, store: ModelStore, batcher: MicroBatcher, settings: Settings
) -> dict[str, Any]:
    """The response body for ``request``: one series' forecast, or every series' in order."""
    served = resolve_model(store, request.model, settings.default_model)
    cfg = served.config
    if request.horizon > cfg.horizon:
        msg = f"horizon {request.horizon} exceeds the model's maximum of {cfg.horizon}"
        raise RequestError(422, ("body", "horizon"), msg)
    quantiles = _pick_quantiles(request.quantiles, cfg.quantiles)
    series = _collect(request, cfg.input_size, settings)  # every check before the model runs
    result = await batcher.submit(served.predictor, np.stack([s.window for s in series]))
    answers = [_answer(result, i, s, request.horizon, quantiles) for i, s in enumerate(series)]
    head = {"model": served.name, "version": served.version}
    if request.history is not None:
        return answers[0] | head
    return {
        "forecasts": [
            {"id": str(i) if s.id is None else s.id} | a
            for i, (s, a) in enumerate(zip(series, answers, strict=True))
        ]
    } | head


def _pick_quantiles(wanted: list[float] | None, offered: tuple[float, ...]) -> list[float]:
    """The model's quantile levels matching ``wanted``; 422 naming what is offered otherwise."""
    picked = []
    for i, q in enumerate(wanted or ()):
        match = next((o for o in offered if math.isclose(o, q, abs_tol=1e-9)), None)
        if match is None:
            msg = f"quantile {q} is not offered; the model offers {list(offered) or 'none'}"
            raise RequestError(422, ("body", "quantiles", i), msg)
        picked.append(match)
    return picked


def _collect(request: ForecastRequest, size: int, settings: Settings) -> list[_Series]:
    """Each series' checked input window, in request order."""
    if request.history is not None:
        return [
            _check(
                ("body",),
                None,
                request.history,
                request.timestamps,
                request.horizon,
                size,
                settings,
            )
        ]
    assert request.series is not None  # the schema guarantees one of the two forms
    if len(request.series) > settings.max_series:
        msg = f"{len(request.series)} series given; at most {settings.max_series} per request"
        raise RequestError(422, ("body", "series"), msg, "too_long")
    return [
        _check(
            ("body", "series", i), s.id, s.history, s.timestamps, request.horizon, size, settings
        )
        for i, s in enumerate(request.series)
    ]


def _check(
    loc: Loc,
    series_id: str | None,
    history: list[float],
    timestamps: list[str] | None,
    horizon: int,
    size: int,
    settings: Settings,
) -> _Series:
    values = np.asarray(history, dtype=np.float64)
    here = (*loc, "history")
    if len(values) > settings.max_history:
        msg = f"{len(values)} points given; at most {settings.max_history}"
        raise RequestError(422, here, msg, "too_long")
    if len(values) < size:
        msg = f"{len(values)} points given; the model needs at least {size}"
        raise RequestError(422, here, msg, "too_short")
    too_big = np.flatnonzero(np.abs(values) > settings.max_abs_value)
    if len(too_big):
        msg = f"|value| must be at most {settings.max_abs_value:g}"
        raise RequestError(422, (*here, int(too_big[0])), msg)
    if timestamps is not None and len(timestamps) != len(values):
        msg = f"{len(timestamps)} timestamps for {len(values)} history points"
        raise RequestError(422, (*loc, "timestamps"), msg)
    future = None if timestamps is None else future_timestamps(timestamps, horizon, loc)
    return _Series(series_id, values[-size:], future)


def _answer(
    result: Forecast, row: int, series: _Series, horizon: int, quantiles: list[float]
) -> dict[str, Any]:
    point = result.point[row, :horizon]
    bands = {q: result.quantiles[q][row, :horizon] for q in quantiles}
    if not all(np.isfinite(a).all() for a in [point, *bands.values()]):
        raise RuntimeError("the model produced non-finite forecasts")
    answer: dict[str, Any] = {"forecast": point.tolist()}
    if series.future is not None:
        answer["timestamps"] = series.future
    if quantiles:
        answer["quantiles"] = {str(q): v.tolist() for q, v in bands.items()}
    return answer


def future_timestamps(stamps: list[str], horizon: int, loc: Loc = ("body",)) -> list[str]:
    """The ``horizon`` timestamps after ``stamps`` (ISO 8601) at their inferred frequency."""
    here = (*loc, "timestamps")
    try:
        index = _parse_timestamps(stamps)
    except (ValueError, TypeError, OverflowError) as exc:
        raise RequestError(422, here, f"not ISO 8601 timestamps: {exc}") from None
    freq = _frequency(index)
    if freq is None:
        raise RequestError(422, here, "timestamps must be increasing at a regular frequency")
    try:
        future = pd.date_range(index[-1], periods=horizon + 1, freq=freq)[1:]
    except (ValueError, OverflowError) as exc:
        raise RequestError(422, here, f"forecast timestamps out of range: {exc}") from None
    return [t.isoformat() for t in future]


def _parse_timestamps(stamps: list[str]) -> pd.DatetimeIndex:
    """ISO 8601 strings; offsets that change (daylight saving) are brought to UTC."""
    try:
        return pd.DatetimeIndex(pd.to_datetime(stamps, format="ISO8601"))
    except ValueError as exc:
        if "Mixed timezones" not in str(exc):
            raise
        return pd.DatetimeIndex(pd.to_datetime(stamps, format="ISO8601", utc=True))


def _frequency(index: pd.DatetimeIndex) -> Any:
    """A pandas offset for ``index``: inferred (calendar-aware), else its constant step."""
    if len(index) >= 3:
        try:
            inferred = pd.DatetimeIndex(index, freq="infer").freq
        except (ValueError, TypeError):
            inferred = None
        if inferred is not None:
            return inferred
    steps = np.diff(index.asi8)
    if len(steps) and steps[0] > 0 and (steps == steps[0]).all():
        return pd.Timedelta(int(steps[0]), unit="ns")
    return None
