"""Actuals from a file (``forecaster actuals ingest``): one row per observation.

The file is read like training data (CSV or Parquet, a path or fsspec URL, the same column
options), but only the long format carries the timestamps actuals are matched on; missing values
are simply not sent (there is nothing to score them against).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecaster.data import DataError, DataSource, read_frame
from forecaster.monitoring.times import BadTimestamp, to_utc

Actuals = list[tuple[str, np.ndarray, list[float]]]


def read_actuals(source: DataSource) -> Actuals:
    """``(series_id, times [n] datetime64 UTC, values [n])`` of each series in ``source``."""
    frame = read_frame(source.url, None)
    cols = [source.id_col, source.time_col, source.value_col]
    absent = [c for c in cols if c not in frame.columns]
    if source.format == "wide" or absent:
        raise DataError(
            f"actuals are matched by timestamp, so they need the long format: columns {cols}"
            + (f"; missing {absent}" if absent else "")
        )
    values = pd.to_numeric(frame[source.value_col], errors="coerce")
    bad = values.isna() & frame[source.value_col].notna()
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raw = frame[source.value_col].iloc[row]
        raise DataError(f"data row {row}: value {raw!r} is not a number")
    frame = frame.assign(**{source.value_col: values}).dropna(subset=[source.value_col])
    try:
        times = to_utc(frame[source.time_col].astype(str).tolist())
    except BadTimestamp as exc:
        raise DataError(f"data row {frame.index[exc.index]}: {exc}") from None
    ids = frame[source.id_col].astype(str).to_numpy()
    numbers = frame[source.value_col].to_numpy(dtype=np.float64)
    groups = pd.Series(ids).groupby(ids, sort=False).indices
    return [(str(sid), times[rows], numbers[rows].tolist()) for sid, rows in groups.items()]
