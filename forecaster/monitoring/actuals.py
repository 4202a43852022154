"""Actuals as they arrive: checked like histories, from a request or a file.

Over HTTP (``POST /v1/actuals``) each series is checked by :func:`checked_series`; from a file
(``forecaster actuals ingest``) by :func:`read_actuals`. Either way a timestamp must be one of
:mod:`forecaster.isotime`'s (``now`` and ``today`` are not: numpy would read them as the server's
clock) and a value a finite number within the histories' magnitude bound (``max_abs_value``,
1e15 by default: one value of 1e308 once set a version's live MASE to 1e307), and the error names
the first bad one.

The file is read like training data (CSV or Parquet, a path or fsspec URL, the same column
options), but only the long format carries the timestamps actuals are matched on; missing values
are simply not sent (there is nothing to score them against).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from forecaster.data import DataError, DataSource, read_frame
from forecaster.histories import beyond, magnitude_rule
from forecaster.monitoring.times import BadTimestamp, to_utc
from forecaster.schemas import ID_MAX_LENGTH, id_problem
from forecaster.settings import Settings

Actuals = list[tuple[str, np.ndarray, list[float]]]
#: The histories' bound, which actuals from a file are held to (the service uses its setting).
MAX_ABS_VALUE: float = Settings.model_fields["max_abs_value"].default
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
    cols = [source.id_col, source.time_col, source.value_col]
    absent = [c for c in cols if c not in frame.columns]
    if source.format == "wide" or absent:
        raise DataError(
            f"actuals are matched by timestamp, so they need the long format: columns {cols}"
            + (f"; missing {absent}" if absent else "")
        )
    raw = frame[source.value_col]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna()
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise DataError(f"data row {row}: value {raw.iloc[row]!r} is not a number")
    too_big = beyond(values.to_numpy(np.float64), max_abs)  # 1e400 in a CSV reads as inf
    if len(too_big):
        rows = ", ".join(str(r) for r in too_big[:_ROWS_NAMED])
        more = f" and {len(too_big) - _ROWS_NAMED} more" if len(too_big) > _ROWS_NAMED else ""
        first = raw.iloc[int(too_big[0])]
        raise DataError(
            f"data row{'s' if len(too_big) > 1 else ''} {rows}{more}: {magnitude_rule(max_abs)} "
            f"(row {too_big[0]} holds {first!r})"
        )
    frame = frame.assign(**{source.value_col: values}).dropna(subset=[source.value_col])
    try:
        times = to_utc(frame[source.time_col].astype(str).tolist())
    except BadTimestamp as exc:
        raise DataError(f"data row {frame.index[exc.index]}: {exc}") from None
    ids = frame[source.id_col].astype(str).to_numpy()
    numbers = frame[source.value_col].to_numpy(dtype=np.float64)
    groups = pd.Series(ids).groupby(ids, sort=False).indices
    for sid, rows in groups.items():
        problem = id_problem(sid)
        if len(sid) > ID_MAX_LENGTH:
            problem = f"id has {len(sid)} characters; at most {ID_MAX_LENGTH}"
        if problem is not None:
            raise DataError(f"data row {frame.index[rows[0]]}: {problem}")
    return [(str(sid), times[rows], numbers[rows].tolist()) for sid, rows in groups.items()]
