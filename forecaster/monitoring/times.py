"""Timestamps as the monitoring store keeps them: naive UTC."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd


class BadTimestamp(ValueError):
    """A timestamp that cannot be read; ``index`` is its position in the list given."""

    def __init__(self, msg: str, index: int) -> None:
        super().__init__(msg)
        self.index = index


def to_utc(stamps: Sequence[str], probe: Sequence[str] | None = None) -> np.ndarray:
    """ISO 8601 strings as ``datetime64[us]`` [n]: those with an offset brought to UTC, those
    without kept as written (the service writes forecast stamps in the zone the history used,
    so actuals in that convention match). One vectorised parse for the whole list: numpy's
    when no string carries an offset (about 0.2 µs a stamp), else pandas' (about 1.5 µs).
    ``probe``: the stamps looked at for offsets, when they speak for all (the service writes
    every stamp of a series alike); default every stamp."""
    if not any(_has_offset(s) for s in (stamps if probe is None else probe)):
        try:
            return _in_range(np.array(stamps, dtype="datetime64[us]"), stamps)
        except (ValueError, TypeError, OverflowError):
            pass  # spellings numpy does not read: pandas below, which also names the bad one
    try:
        parsed = pd.to_datetime(pd.Series(stamps, dtype=object), format="ISO8601", utc=True)
    except (ValueError, TypeError, OverflowError):
        index = _first_bad(stamps)
        msg = f"not an ISO 8601 timestamp: {str(stamps[index])[:40]!r}"
        raise BadTimestamp(msg, index) from None
    if parsed.isna().any():
        index = int(np.argmax(parsed.isna().to_numpy()))
        raise BadTimestamp("missing timestamp", index)
    return _in_range(parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[us]"), stamps)


# What databases and Python's datetime can hold.
EARLIEST, LATEST = np.datetime64("0001-01-01", "us"), np.datetime64("9999-12-31T23:59:59", "us")


def _in_range(times: np.ndarray, stamps: Sequence[str]) -> np.ndarray:
    """``times``, unless one is missing (``NaT``) or outside years 1 to 9999: BadTimestamp."""
    bad = np.isnat(times) | (times < EARLIEST) | (times > LATEST)
    if bad.any():
        index = int(np.argmax(bad))
        raise BadTimestamp(f"not a timestamp in years 1-9999: {str(stamps[index])[:40]!r}", index)
    return times


def _has_offset(stamp: object) -> bool:
    if not isinstance(stamp, str):
        return True  # let pandas judge (and name) it
    if stamp.endswith(("Z", "z")):
        return True
    if len(stamp) < 11:  # a date alone
        return False
    colon = stamp[-6] in "+-" and stamp[-3] == ":"  # +02:00
    compact = stamp[-5] in "+-" and stamp[-4:].isdigit()  # +0200
    return colon or compact


def _first_bad(stamps: Sequence[str]) -> int:
    for i, stamp in enumerate(stamps):
        try:
            pd.to_datetime(pd.Series([stamp], dtype=object), format="ISO8601", utc=True)
        except (ValueError, TypeError, OverflowError):
            return i
    return 0


def as_datetimes(times: np.ndarray) -> list:
    """``datetime64`` values as the ``datetime`` objects database drivers take."""
    return times.astype("datetime64[us]").tolist()


def to_micros(times: np.ndarray) -> np.ndarray:
    """``datetime64`` values as int64 microseconds since 1970 ``[n]`` (how the store packs them)."""
    return times.astype("datetime64[us]").astype(np.int64)


def instant(stamp: str) -> datetime:
    """One ISO 8601 stamp as a naive UTC ``datetime`` (:func:`to_utc`'s rules)."""
    return as_datetimes(to_utc([stamp]))[0]
