"""From what the caller has (lists, arrays, Series, long DataFrames) to request bodies.

Every body is checked against the shared :mod:`forecaster.schemas` before it is sent, and
many-series work is split into requests within the service's limits. NaN (and None, ``pd.NA``)
marks a missing value and is sent as ``null``; the service fills or trims it as training does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd
import pydantic

from forecaster.client.errors import InvalidRequest, client_side_error
from forecaster.schemas import (
    ID_MAX_LENGTH,
    ActualsRequest,
    ActualsResponse,
    ErrorDetail,
    ForecastRequest,
    SeriesInput,
)

History: TypeAlias = Sequence[float | None] | np.ndarray | pd.Series
#: What ``forecast_many`` does with series the service could not forecast.
OnErrors = Literal["raise", "return"]
# Room for the envelope of a many-series body (horizon, model, quantiles, brackets).
_ENVELOPE_BYTES = 1024


# --- inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Input:
    """One history ready to send: values (None where missing), ISO timestamps if it has them, and
    its original index."""

    values: list[float | None]
    timestamps: list[str] | None
    index: pd.DatetimeIndex | None
    past: dict[str, list[float]] | None = None  # covariates: one value per history point
    future: dict[str, list[float]] | None = None  # one per horizon step (cut by ``ahead``)
    static: dict[str, float | str] | None = None


def as_input(history: History) -> Input:
    """A list, NumPy array or pandas Series of observations, oldest first."""
    if isinstance(history, pd.DataFrame):
        raise InvalidRequest("history must be one series; use forecast_many for a DataFrame")
    index = None
    try:
        if isinstance(history, pd.Series):
            values = history.to_numpy(dtype=np.float64, na_value=np.nan)
            index = history.index
        else:
            values = np.asarray(history, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"history must be numbers: {exc}") from None
    if values.ndim != 1:
        raise InvalidRequest(f"history must be one-dimensional, got shape {values.shape}")
    if not isinstance(index, pd.DatetimeIndex):
        return Input(_with_nulls(values), None, None)
    return Input(_with_nulls(values), _iso(index), index)


def _with_nulls(values: np.ndarray) -> list[float | None]:
    """``values [n]`` as a list with None (JSON null) for NaN; infinities stay, to be refused."""
    out: list[float | None] = values.tolist()
    if np.isnan(values).any():
        for i in np.flatnonzero(np.isnan(values)):
            out[i] = None
    return out


def _iso(index: pd.DatetimeIndex) -> list[str]:
    # Offsets change across daylight saving; UTC keeps one offset the server can parse.
    if index.tz is not None:
        index = index.tz_convert("UTC")
    return [t.isoformat() for t in index]


def inputs_of(
    data: Mapping[Any, History] | pd.DataFrame,
    id_col: str,
    time_col: str,
    value_col: str,
    covariates: Covariates | None = None,
) -> list[tuple[Any, Input]]:
    """``(id, input)`` per series of a dict of series or a long DataFrame, in first-seen order,
    with their ``covariates`` (a long DataFrame's only)."""
    if not isinstance(data, pd.DataFrame):
        if covariates:
            raise InvalidRequest("covariates come with a long DataFrame of the histories")
        return [(key, as_input(history)) for key, history in data.items()]
    missing = [c for c in (id_col, value_col) if c not in data.columns]
    if missing:
        raise InvalidRequest(f"the DataFrame has no column {missing[0]!r}")
    inputs = [
        (key, as_input(series)) for key, series in _split_long(data, id_col, time_col, value_col)
    ]
    return with_covariates(data, inputs, covariates, id_col, time_col) if covariates else inputs


def one_input(
    history: History | pd.DataFrame,
    id_col: str,
    time_col: str,
    value_col: str,
    covariates: Covariates,
) -> Input:
    """One series to forecast: a list, array or Series (:func:`as_input`), or a DataFrame of
    one series (``time_col``, ``value_col`` and a column per covariate; an ``id_col`` is
    optional) whose ``covariates`` come as in :func:`with_covariates`; ``future_df`` and
    ``static_df`` need no ``id_col`` then, and ``static_df`` may be a dict."""
    if not isinstance(history, pd.DataFrame):
        if covariates:
            raise InvalidRequest(
                "covariates come with a DataFrame of the history (a column per covariate)"
            )
        return as_input(history)
    if id_col in history.columns and history[id_col].nunique(dropna=False) > 1:
        raise InvalidRequest("history must be one series; use forecast_many for several")
    key = history[id_col].iloc[0] if id_col in history.columns and len(history) else 0

    def keyed(frame: pd.DataFrame) -> pd.DataFrame:
        return frame if id_col in frame.columns else frame.assign(**{id_col: key})

    future, static = covariates.future_df, covariates.static_df
    if isinstance(static, Mapping):
        static = pd.DataFrame([{**static, id_col: key}])
    given = replace(covariates, future_df=None if future is None else keyed(future),
                    static_df=None if static is None else keyed(static))  # fmt: skip
    inputs = inputs_of(keyed(history), id_col, time_col, value_col, given)
    if not inputs:
        raise InvalidRequest("the history DataFrame has no rows")
    return inputs[0][1]


@dataclass(frozen=True)
class Covariates:
    """Where a long DataFrame's covariates are: ``future_df`` (id, time and one column per
    future covariate, whose history is the same column of the history frame), the history
    frame's ``past`` columns (observed up to the forecast origin only), and ``static_df`` (id
    and one column per static covariate): the layout neuralforecast users know."""

    future_df: pd.DataFrame | None = None
    past: Sequence[str] = ()
    static_df: pd.DataFrame | Mapping[str, float | str] | None = None

    def __bool__(self) -> bool:
        return self.future_df is not None or bool(self.past) or self.static_df is not None


def with_covariates(
    data: pd.DataFrame,
    inputs: list[tuple[Any, Input]],
    covariates: Covariates,
    id_col: str,
    time_col: str,
) -> list[tuple[Any, Input]]:
    """``inputs`` (of the long frame ``data``) with their covariates."""
    future = covariates.future_df
    ahead = [c for c in future.columns if c not in (id_col, time_col)] if future is not None else []
    named = [*ahead, *covariates.past]
    missing = [c for c in named if c not in data.columns]
    if missing:
        raise InvalidRequest(f"the DataFrame has no covariate column {missing[0]!r}")
    groups = dict(_groups(data, id_col, time_col))
    futures = dict(_groups(future, id_col, time_col)) if future is not None else {}
    statics: dict[Any, dict[str, Any]] = {}
    if isinstance(covariates.static_df, Mapping):
        raise InvalidRequest("static_df of several series is a DataFrame (id and a column each)")
    if covariates.static_df is not None:
        table = covariates.static_df.drop_duplicates(id_col).set_index(id_col)
        statics = {k: {c: _plain(v) for c, v in row.items()} for k, row in table.iterrows()}
    out = []
    for key, item in inputs:
        group, later = groups[key], futures.get(key)
        past = {c: _numbers(group[c], c) for c in named}
        fut = {c: _numbers(later[c], c) if later is not None else [] for c in ahead}
        out.append((key, replace(item, past=past or None, future=fut or None,
                                 static=statics.get(key))))  # fmt: skip
    return out


def ahead(inputs: list[tuple[Any, Input]], horizon: int) -> list[tuple[Any, Input]]:
    """``inputs`` with their future covariates cut to ``horizon`` steps."""
    return [
        (k, replace(i, future={c: v[:horizon] for c, v in i.future.items()}) if i.future else i)
        for k, i in inputs
    ]


def _groups(frame: pd.DataFrame, id_col: str, time_col: str) -> Iterator[tuple[Any, pd.DataFrame]]:
    for key, group in frame.groupby(id_col, sort=False):
        if time_col in group.columns:
            group = group.sort_values(time_col, kind="stable")
        yield key, group


def _numbers(column: pd.Series, name: str) -> list[float]:
    try:
        values: list[float] = column.to_numpy(dtype=np.float64).tolist()
    except (TypeError, ValueError):
        raise InvalidRequest(f"covariate column {name!r} must hold numbers") from None
    return values


def _plain(value: Any) -> float | str:
    """A static value as JSON takes it: a number, else its text."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
        return str(value)
    return float(value)


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
    series: Input,
    horizon: int,
    model: str | None,
    quantiles: Sequence[float] | None,
    levels: Sequence[float] | None = None,
) -> bytes:
    """The JSON body forecasting one series, checked against the shared schema first."""
    try:
        request = ForecastRequest(
            history=series.values,
            timestamps=series.timestamps,
            past_covariates=series.past,
            future_covariates=series.future,
            static_covariates=series.static,
            horizon=horizon,
            model=model,
            quantiles=_levels(quantiles),
            levels=_levels(levels),
        )
    except pydantic.ValidationError as exc:
        raise client_side_error(exc) from None
    return request.model_dump_json(exclude_none=True).encode()


def _levels(quantiles: Sequence[float] | None) -> list[float] | None:
    return None if quantiles is None else [float(q) for q in quantiles]


def _series_input(key: Any, series: Input, position: int) -> SeriesInput:
    try:
        return SeriesInput(
            id=str(key)[:ID_MAX_LENGTH],
            history=series.values,
            timestamps=series.timestamps,
            past_covariates=series.past,
            future_covariates=series.future,
            static_covariates=series.static,
        )
    except pydantic.ValidationError as exc:
        error = client_side_error(exc)
        for e in error.errors:
            e.loc = ["body", "series", position, *e.loc[1:]]
        raise error from None


@dataclass(frozen=True)
class Chunk:
    """One request's worth of a many-series call: the positions of the inputs it covers (so
    its answer's ``index`` is matched back to them) and its body."""

    positions: Sequence[int]
    body: bytes


@dataclass(frozen=True)
class Plan:
    """A many-series call: its requests, and the series refused before sending (with
    ``errors="return"``), each error naming the series' position in the inputs."""

    chunks: list[Chunk]
    refused: list[ErrorDetail] = field(default_factory=list)


def plan_chunks(
    inputs: Sequence[tuple[Any, Input]],
    horizon: int,
    model: str | None,
    quantiles: Sequence[float] | None,
    *,
    max_series: int,
    max_body_bytes: int,
    errors: OnErrors = "raise",
    levels: Sequence[float] | None = None,
) -> Plan:
    """Bodies of at most ``max_series`` series and about ``max_body_bytes`` each, in order.

    A series that fails the shared schema raises :class:`InvalidRequest` before anything is
    sent, or with ``errors="return"`` is left out and listed in ``Plan.refused``. A single series
    too big for one body still gets a body of its own: the server's 413 then says exactly what
    is wrong, which a client-side guess at its limit could not.
    """
    entries, positions, refused = [], [], []
    for i, (key, series) in enumerate(inputs):
        try:
            entries.append(_series_input(key, series, i))
            positions.append(i)
        except InvalidRequest as exc:
            if errors == "raise":
                raise
            refused += [e.model_copy(update={"id": str(key), "index": i}) for e in exc.errors]
    sizes = [len(e.model_dump_json(exclude_none=True)) + 1 for e in entries]
    chunks, start = [], 0
    for stop in _boundaries(sizes, max_series, max_body_bytes - _ENVELOPE_BYTES):
        body = _many_body(entries[start:stop], horizon, model, quantiles, levels)
        chunks.append(Chunk(positions[start:stop], body))
        start = stop
    return Plan(chunks, refused)


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
    levels: Sequence[float] | None = None,
) -> bytes:
    try:
        request = ForecastRequest(
            series=entries,
            horizon=horizon,
            model=model,
            quantiles=_levels(quantiles),
            levels=_levels(levels),
        )
    except pydantic.ValidationError as exc:
        raise client_side_error(exc) from None
    return request.model_dump_json(exclude_none=True).encode()


# --- actuals -----------------------------------------------------------------------------------


def actuals_bodies(inputs: Sequence[tuple[Any, Input]], max_series: int) -> list[bytes]:
    """``POST /v1/actuals`` bodies of at most ``max_series`` series each; missing values are
    left out (nothing to score), and every series needs timestamps (actuals match by them)."""
    series = []
    for key, item in inputs:
        if item.timestamps is None:
            raise InvalidRequest(f"series {key!r}: actuals need timestamps (a DatetimeIndex)")
        kept = [(t, v) for t, v in zip(item.timestamps, item.values, strict=True) if v is not None]
        if kept:
            stamps, values = zip(*kept, strict=True)
            series.append({"id": str(key), "timestamps": list(stamps), "values": list(values)})
    bodies = []
    for start in range(0, len(series), max_series):
        try:
            request = ActualsRequest.model_validate({"series": series[start : start + max_series]})
        except pydantic.ValidationError as exc:
            raise client_side_error(exc) from None
        bodies.append(request.model_dump_json().encode())
    return bodies


def merged_actuals(answers: Sequence[ActualsResponse]) -> ActualsResponse:
    """The answers of several actuals requests as one."""
    return ActualsResponse(
        stored=sum(a.stored for a in answers),
        matched=sum(a.matched for a in answers),
        unknown_series=sum(a.unknown_series for a in answers),
        unknown_ids=[i for a in answers for i in a.unknown_ids][:10],
    )
