"""Actuals from a file (``forecaster actuals ingest``): one row per observation.

The file is read like training data (CSV or Parquet, a path or fsspec URL, the same column
options), but only the long format carries the timestamps actuals are matched on; missing values
are simply not sent (there is nothing to score them against).
"""

from __future__ import annotations

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
from forecaster.monitoring.times import BadTimestamp, to_utc

Actuals = list[tuple[str, np.ndarray, list[float]]]


def read_actuals(source: DataSource) -> Actuals:
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
    kept = np.flatnonzero(values.notna().to_numpy())
    times = _times(source, raw_times.iloc[kept], layout.time_col or "")
    numbers = values.to_numpy(dtype=np.float64)[kept]
    kept_ids = ids.to_numpy()[kept]
    groups = pd.Series(kept_ids).groupby(kept_ids, sort=False).indices
    return [(str(sid), times[rows], numbers[rows].tolist()) for sid, rows in groups.items()]


def _times(source: DataSource, raw: pd.Series, column: str) -> np.ndarray:
    """ISO 8601 as the service writes it (:func:`to_utc`); other spellings read as training
    data is (:func:`forecaster.data.read_times`: day or month first, or the given format)."""
    not_iso = None
    if source.date_format is None and source.dayfirst is None:
        try:
            return to_utc(raw.astype(str).tolist())
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
