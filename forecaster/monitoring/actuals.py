"""Actuals as they arrive: checked like histories, from a request or a file.

Over HTTP (``POST /v1/actuals``) each series is checked by :func:`checked_series`; from a file
(``forecaster actuals ingest``) by :func:`read_actuals`. Either way a timestamp must be readable
and not ``now`` or ``today`` (numpy and pandas read those as the clock: they were stored at the
server's time), a value a finite number within the histories' magnitude bound (``max_abs_value``,
1e15 by default: one value of 1e308 once set a version's live MASE to 1e307), and an id one of
:data:`forecaster.schemas.SeriesId`; the error names the first bad one (a file's, its rows).

The file is read like training data (CSV or Parquet, a path or fsspec URL, the same column
options), but only the long format carries the timestamps actuals are matched on; missing values
are simply not sent (there is nothing to score them against).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from forecaster.data import (
    DataError,
    DataSource,
    detect_layout,
    long_columns,
    read_frame,
    read_times,
)
from forecaster.histories import MAX_ABS_VALUE, beyond, magnitude_rule
from forecaster.monitoring.times import BadTimestamp, to_utc
from forecaster.schemas import ID_MAX_LENGTH, id_problem
from forecaster.timestamps import CLOCK_WORDS

Actuals = list[tuple[str, np.ndarray, list[float]]]
# Bad rows of a file named in its error (the count covers them all).
_ROWS_NAMED = 5


class BadActual(ValueError):
    """One series' actuals refused: ``field`` (``timestamps`` or ``values``) and ``index``
    name the first bad entry."""

    def __init__(self, msg: str, field: str, index: int) -> None:
        super().__init__(msg)
        self.field, self.index = field, index


def checked_series(
    series_id: str, stamps: Sequence[str], values: Sequence[float], max_abs: float
) -> tuple[str, np.ndarray, list[float]]:
    """``(series_id, times [n] datetime64 UTC, values)`` of one series of a request, or
    :class:`BadActual`."""
    try:
        times = to_utc(stamps)
    except BadTimestamp as exc:
        raise BadActual(str(exc), "timestamps", exc.index) from None
    too_big = beyond(values, max_abs)
    if len(too_big):
        raise BadActual(magnitude_rule(max_abs), "values", int(too_big[0]))
    return series_id, times, list(values)


def read_actuals(source: DataSource, max_abs: float = MAX_ABS_VALUE) -> Actuals:
    """``(series_id, times [n] datetime64 UTC, values [n])`` of each series in ``source``."""
    frame = read_frame(source.url, None)
    layout = detect_layout(frame, source.format, source.id_col, source.time_col, source.value_col)
    if layout.format == "wide":
        raise DataError(
            "actuals are matched by timestamp, so they need the long format: a column of "
            f"timestamps ({layout.why})"
        )
    ids, raw_times, raw_values = long_columns(frame, layout)
    values = pd.to_numeric(raw_values, errors="coerce")
    bad = values.isna() & raw_values.notna()
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise DataError(
            f"data row {row % len(frame)}: value {raw_values.iloc[row]!r} is not a number"
        )
    _check_magnitudes(values, raw_values, max_abs, len(frame))
    kept = np.flatnonzero(values.notna().to_numpy())
    times = _times(source, raw_times.iloc[kept], layout.time_col or "")
    numbers = values.to_numpy(dtype=np.float64)[kept]
    kept_ids = ids.to_numpy()[kept]
    groups = pd.Series(kept_ids).groupby(kept_ids, sort=False).indices
    for sid, rows in groups.items():
        _check_id(str(sid), int(kept[rows[0]]) % len(frame))
    return [(str(sid), times[rows], numbers[rows].tolist()) for sid, rows in groups.items()]


def _check_magnitudes(values: pd.Series, raw: pd.Series, max_abs: float, rows: int) -> None:
    """DataError naming the rows whose value is beyond ``max_abs`` (1e400 in a CSV reads as
    inf, which once failed the whole ingest as "database unavailable")."""
    too_big = beyond(values.to_numpy(np.float64), max_abs)
    if not len(too_big):
        return
    named = ", ".join(str(r % rows) for r in too_big[:_ROWS_NAMED])
    more = f" and {len(too_big) - _ROWS_NAMED} more" if len(too_big) > _ROWS_NAMED else ""
    first = int(too_big[0])
    raise DataError(
        f"data row{'s' if len(too_big) > 1 else ''} {named}{more}: {magnitude_rule(max_abs)} "
        f"(row {first % rows} holds {raw.iloc[first]!r})"
    )


def _check_id(sid: str, row: int) -> None:
    problem = id_problem(sid)
    if len(sid) > ID_MAX_LENGTH:
        problem = f"id has {len(sid)} characters; at most {ID_MAX_LENGTH}"
    if problem is not None:
        raise DataError(f"data row {row}: {problem}")


def _times(source: DataSource, raw: pd.Series, column: str) -> np.ndarray:
    """ISO 8601 as the service writes it (:func:`to_utc`); other spellings read as training
    data is (:func:`forecaster.data.read_times`: day or month first, or the given format), but
    never ``now`` or ``today``, which pandas reads as the clock."""
    text = raw.astype(str)
    clock = np.flatnonzero(text.str.strip().str.lower().isin(CLOCK_WORDS).to_numpy())
    if len(clock):
        row = int(clock[0])
        raise DataError(f"data row {raw.index[row]}: not an ISO 8601 timestamp: {text.iloc[row]!r}")
    not_iso = None
    if source.date_format is None and source.dayfirst is None:
        try:
            return to_utc(text.tolist())
        except BadTimestamp as exc:
            not_iso = f"data row {raw.index[exc.index]}: {exc}"
    times, _ = read_times(
        raw, date_format=source.date_format, dayfirst=source.dayfirst, column=column
    )
    if times.isna().any():
        row = int(np.argmax(times.isna()))
        raise DataError(not_iso or f"data row {raw.index[row]}: cannot read {raw.iloc[row]!r}")
    if times.tz is not None:
        times = times.tz_convert("UTC").tz_localize(None)
    return times.to_numpy(dtype="datetime64[us]")
