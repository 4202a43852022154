"""From the service's answers to DataFrames."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from forecaster.client.bodies import Chunk, Input, OnErrors, Plan
from forecaster.client.errors import ForecastAPIError, SeriesFailed
from forecaster.schemas import (
    BatchForecastResponse,
    ErrorDetail,
    ForecastResponse,
    SeriesError,
    SeriesForecast,
)


def quantile_column(level: str) -> str:
    """Column name of a quantile level as the service spells it: ``"0.1"`` -> ``"q0.1"``."""
    return f"q{level}"


def interval_columns(level: str) -> tuple[str, str]:
    """Column names of an interval's bounds as the service names its level: ``"80"`` ->
    ``("lower_80", "upper_80")``."""
    return f"lower_{level}", f"upper_{level}"


def _band_columns(answer: SeriesForecast | ForecastResponse) -> dict[str, list[float]]:
    columns = {}
    for level, values in (answer.quantiles or {}).items():
        columns[quantile_column(level)] = values
    for level, interval in (answer.intervals or {}).items():
        lower, upper = interval_columns(level)
        columns[lower], columns[upper] = interval.lower, interval.upper
    return columns


def single_frame(answer: ForecastResponse, series: Input) -> pd.DataFrame:
    """One forecast as a DataFrame: ``forecast``, ``q<level>`` and ``lower_<level>`` /
    ``upper_<level>`` (each interval's bounds) columns.

    Indexed by the forecast timestamps when the history had a DatetimeIndex, else by step 1..h.
    How it was made is in ``frame.attrs``: ``method`` (``model``, ``model+classical``,
    ``classical``, ``seasonal_naive``, ``naive``...), ``classical_share`` (the classical
    methods' share of a model's forecast, or None), ``extended`` (whether the model was
    rolled forward on its own forecasts beyond its trained horizon), ``filled`` (missing points
    interpolated), ``gap`` (the long gap the history was cut after, as a dict, or None) and
    ``calibrated`` (whether the intervals and quantiles are calibrated; None: there are none).
    """
    columns = {"forecast": answer.forecast, **_band_columns(answer)}
    index = _future_index(answer.timestamps, series.index, len(answer.forecast))
    frame = pd.DataFrame(columns, index=index)
    gap = None if answer.gap is None else answer.gap.model_dump()
    frame.attrs.update(
        method=answer.method,
        classical_share=answer.classical_share,
        extended=bool(answer.extended),
        filled=answer.filled,
        gap=gap,
        calibrated=answer.calibrated,
    )
    return frame


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
    plan: Plan,
    answers: Sequence[BatchForecastResponse],
    inputs: Sequence[tuple[Any, Input]],
    id_col: str,
    time_col: str,
    errors: OnErrors,
) -> pd.DataFrame:
    """Every series' forecast as one long DataFrame, or :class:`SeriesFailed` when some series
    got none and ``errors="raise"``.

    Columns: ``id_col``, ``step`` (1..h), ``time_col`` when any history had timestamps,
    ``forecast``, one ``q<level>`` per quantile, ``lower_<level>`` and ``upper_<level>`` per
    interval level, ``calibrated`` (whether that series' intervals are calibrated; None: it has
    none), ``method`` (how each forecast was made:
    ``model``, ``model+classical``, ``classical``, ``seasonal_naive``, ``naive``...),
    ``filled`` (missing points interpolated in that series' history) and ``gap`` (the long gap
    its history was cut after, as a dict, or None); ``frame.attrs["classical_share"]`` is the
    classical methods' share of the model's forecasts (None: none), ``frame.attrs["extended"]``
    whether they were rolled forward beyond its trained horizon. Each forecast is matched to
    its input by the
    ``index`` the service answers with (its position in its request). With ``errors="return"``
    the errors are in ``frame.attrs["errors"]``: one dict per error, ``id`` being the series'
    key in ``data``, ``index`` its position, and ``loc``, ``msg``, ``type`` as the service said.
    """
    parts, problems = [], list(plan.refused)
    for chunk, answer in zip(plan.chunks, answers, strict=True):
        _check_count(chunk, answer)
        for k, forecast in enumerate(answer.forecasts):
            position = chunk.positions[k if forecast.index is None else forecast.index]
            key, series = inputs[position]
            parts.append(_series_rows(forecast, key, series))
        problems += [_global(e, chunk) for e in answer.errors]
    frame = _joined(parts, id_col, time_col)
    shares = [f.classical_share for a in answers for f in a.forecasts if f.classical_share]
    frame.attrs["classical_share"] = shares[0] if shares else None
    frame.attrs["extended"] = any(f.extended for a in answers for f in a.forecasts)
    problems.sort(key=lambda e: e.index or 0)
    if problems and errors == "raise":
        raise SeriesFailed(problems, frame)
    frame.attrs["errors"] = [
        {
            "id": inputs[e.index or 0][0],
            "index": e.index,
            "loc": e.loc,
            "msg": e.msg,
            "type": e.type,
        }
        for e in problems
    ]
    return frame


def _check_count(chunk: Chunk, answer: BatchForecastResponse) -> None:
    if len(answer.forecasts) + len({e.index for e in answer.errors}) != len(chunk.positions):
        raise ForecastAPIError(
            f"{len(answer.forecasts)} forecasts and {len(answer.errors)} errors came back for "
            f"{len(chunk.positions)} series"
        )


def _global(error: SeriesError, chunk: Chunk) -> ErrorDetail:
    """A per-series error of one request, its index and ``loc`` made positions in the call."""
    position = chunk.positions[error.index]
    loc = list(error.loc)
    if loc[:3] == ["body", "series", error.index]:
        loc[2] = position
    return ErrorDetail(loc=loc, msg=error.msg, type=error.type, id=error.id, index=position)


def _joined(parts: list[pd.DataFrame], id_col: str, time_col: str) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame(columns=[id_col, "step", "forecast", "method", "filled", "gap"])
    frame = pd.concat(parts, ignore_index=True)
    return frame.rename(columns={"id": id_col, "timestamp": time_col})


def _series_rows(answer: SeriesForecast, key: Any, series: Input) -> pd.DataFrame:
    horizon = len(answer.forecast)
    columns: dict[str, Any] = {"id": [key] * horizon, "step": np.arange(1, horizon + 1)}
    if answer.timestamps is not None and series.index is not None:
        columns["timestamp"] = _parse_stamps(answer.timestamps, series.index)
    columns["forecast"] = answer.forecast
    columns |= _band_columns(answer)
    columns["calibrated"] = answer.calibrated
    columns["method"] = answer.method
    columns["filled"] = answer.filled
    columns["gap"] = [None if answer.gap is None else answer.gap.model_dump()] * horizon
    return pd.DataFrame(columns)
