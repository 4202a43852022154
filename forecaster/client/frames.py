"""From the service's answers to DataFrames."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from forecaster.client.bodies import Chunk, Input
from forecaster.client.errors import ForecastAPIError
from forecaster.schemas import BatchForecastResponse, ForecastResponse, SeriesForecast


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
    chunks: Sequence[Chunk],
    answers: Sequence[BatchForecastResponse],
    inputs: Sequence[tuple[Any, Input]],
    id_col: str,
    time_col: str,
) -> pd.DataFrame:
    """Every series' forecast as one long DataFrame.

    Columns: ``id_col``, ``step`` (1..h), ``time_col`` when any history had timestamps, then
    ``forecast`` and one ``q<level>`` per quantile. Each answer comes in its request's order, so
    its rows are matched to the inputs by the positions its chunk covers (ids are echoed only
    for the server's logs).
    """
    parts = []
    for chunk, answer in zip(chunks, answers, strict=True):
        if len(answer.forecasts) != len(chunk.positions):
            first, last = chunk.positions[0], chunk.positions[-1]
            raise ForecastAPIError(
                f"{len(answer.forecasts)} forecasts came back for the {len(chunk.positions)} "
                f"series at positions {first}..{last}"
            )
        for position, forecast in zip(chunk.positions, answer.forecasts, strict=True):
            key, series = inputs[position]
            parts.append(_series_rows(forecast, key, series))
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
