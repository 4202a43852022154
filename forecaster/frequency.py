"""Frequencies of timestamps: naming them, and telling whether two of them are the same.

A model's manifest records the pandas alias of its training data's frequency (``"h"``, ``"D"``,
``"MS"``); the service and the client compare a request's timestamps with it. Two aliases are the
same frequency when they step by the same amount, whatever their anchor: ``"D"`` and ``"24h"``,
``"W-SUN"`` and ``"W-MON"``, ``"ME"`` and ``"MS"``, ``"QS-OCT"`` and ``"QE-DEC"`` are each one
frequency. Only numpy and pandas are imported, so the client stays light.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from pandas.tseries import offsets
from pandas.tseries.frequencies import to_offset

DAY_US = 86_400_000_000
_MONTHS = {
    offsets.MonthBegin: 1,
    offsets.MonthEnd: 1,
    offsets.BusinessMonthBegin: 1,
    offsets.BusinessMonthEnd: 1,
    offsets.QuarterBegin: 3,
    offsets.QuarterEnd: 3,
    offsets.BQuarterBegin: 3,
    offsets.BQuarterEnd: 3,
    offsets.YearBegin: 12,
    offsets.YearEnd: 12,
    offsets.BYearBegin: 12,
    offsets.BYearEnd: 12,
}


@functools.lru_cache(maxsize=256)
def frequency_key(freq: str) -> tuple[str, int] | None:
    """What a frequency steps by: ``("us", n)``, ``("months", n)`` or ``(rule, n)``; None when
    pandas does not know the alias (a manifest written by another pandas, say)."""
    try:
        offset = to_offset(freq)
    except (ValueError, TypeError):
        return None
    if isinstance(offset, offsets.Tick):
        return "us", int(offset.nanos // 1000)
    if isinstance(offset, offsets.Day):
        return "us", offset.n * DAY_US
    if isinstance(offset, offsets.Week) and offset.weekday is not None:
        return "us", offset.n * 7 * DAY_US
    months = _MONTHS.get(type(offset))
    if months is not None:
        return "months", offset.n * months
    return offset.rule_code.split("-")[0], offset.n


#: The pandas aliases most data comes at, with what they mean: named when an alias is unknown.
ALIASES = {
    "min": "minutes",
    "h": "hourly",
    "D": "daily",
    "B": "business days",
    "W": "weekly, W-MON: weeks ending on Mondays",
    "MS": "monthly, dated at the start",
    "ME": "monthly, at the end",
    "QS": "quarterly, at the start",
    "QE": "quarterly, at the end",
    "YS": "yearly, at the start",
    "YE": "yearly, at the end",
}
# Words people write for a frequency, and the alias they mean.
_WORDS = {"minutely": "min", "hourly": "h", "daily": "D", "weekly": "W", "monthly": "MS",
          "quarterly": "QS", "yearly": "YS", "annual": "YS", "annually": "YS"}  # fmt: skip


def check_alias(freq: str) -> str:
    """``freq`` when pandas knows the alias; else ValueError saying so once, with the common
    aliases (and the one meant, for a word such as ``monthly``)."""
    try:
        to_offset(freq)
    except (ValueError, TypeError):
        meant = _WORDS.get(str(freq).strip().lower())
        hint = f"for {freq} data use {meant!r}; " if meant else ""
        known = "; ".join(f"{alias} = {what}" for alias, what in ALIASES.items())
        raise ValueError(
            f"invalid frequency {freq!r}: {hint}the pandas aliases include {known}; and "
            "multiples such as 15min or 2h"
        ) from None
    return freq


def same_frequency(a: str, b: str) -> bool:
    """Whether aliases ``a`` and ``b`` step alike (True when either is unknown to pandas: a
    frequency that cannot be read cannot be held against a request)."""
    key_a, key_b = frequency_key(a), frequency_key(b)
    return key_a is None or key_b is None or key_a == key_b


def steps_before(t: datetime, freq: str, steps: int) -> datetime:
    """The time ``steps`` steps of ``freq`` before ``t`` (naive), such that ``(result, t]``
    holds ``steps`` points of the frequency's grid: calendar steps (months, quarters, years)
    are counted on their anchors, ``t`` first rolled back onto one. ``datetime.min`` when that
    lies before year 1; ValueError for an alias pandas does not know."""
    key = frequency_key(freq)
    if key is None:
        raise ValueError(f"invalid frequency {freq!r}")
    try:
        if key[0] == "us":
            return t - timedelta(microseconds=key[1] * steps)
        offset = to_offset(freq)
        before = offset.rollback(pd.Timestamp(t)) - steps * offset
    except (OverflowError, pd.errors.OutOfBoundsDatetime):
        return datetime.min
    return datetime.min if before < pd.Timestamp(datetime.min) else before.to_pydatetime()


@functools.lru_cache(maxsize=256)
def step_frequency(step_us: int) -> str:
    """The alias of a constant step of ``step_us`` microseconds: ``"h"``, ``"15min"``, ``"D"``,
    ``"7D"``."""
    if step_us % DAY_US == 0:
        days = step_us // DAY_US
        return "D" if days == 1 else f"{days}D"
    return to_offset(pd.Timedelta(step_us, unit="us")).freqstr


def calendar_frequency(times: np.ndarray) -> str | None:
    """The alias pandas infers for ``times`` [n] (datetime64), or None (fewer than three points,
    or no regular frequency)."""
    if len(times) < 3:
        return None
    # The index infers its own frequency: pd.infer_freq would warn (pandas >= 3.1 announces it
    # will return an offset), and silencing that took warnings.catch_warnings, process-wide
    # state that threads serving requests at once corrupt (issue 29).
    try:
        found = pd.DatetimeIndex(times, freq="infer").freq
    except (TypeError, ValueError):
        return None
    return None if found is None else found.freqstr


def index_frequency(index: pd.DatetimeIndex) -> str | None:
    """The frequency of a DatetimeIndex: its own ``freq``, else inferred; None if irregular."""
    if index.freq is not None:
        return index.freq.freqstr
    steps = np.diff(index.asi8)
    if len(steps) and steps[0] > 0 and (steps == steps[0]).all():
        unit_us = {"s": 1_000_000, "ms": 1000, "us": 1, "ns": 1e-3}[index.unit]
        return step_frequency(int(steps[0] * unit_us))
    return calendar_frequency(index.tz_localize(None).to_numpy())
