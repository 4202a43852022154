"""Frequencies of timestamps, their one home: inferring, naming and comparing them, stepping
along their grid, and what they imply (seasonal periods, default horizon: :func:`calendar`).

A model's manifest records the pandas alias of its training data's frequency (``"h"``, ``"D"``,
``"MS"``); the service and the client compare a request's timestamps with it. Two aliases are the
same frequency when they step by the same amount, whatever their anchor: ``"D"`` and ``"24h"``,
``"W-SUN"`` and ``"W-MON"``, ``"ME"`` and ``"MS"``, ``"QS-OCT"`` and ``"QE-DEC"`` are each one
frequency. Only numpy and pandas are imported, so the client stays light.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from pandas.tseries import offsets
from pandas.tseries.frequencies import to_offset

DAY_US = 86_400_000_000
_DAY_NS, _HOUR_NS = DAY_US * 1000, 3_600 * 10**9
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


def steps_after(last: int, freq: str, steps: int) -> np.ndarray:
    """[steps] int64 microseconds: the points of ``freq``'s grid after ``last`` (int64
    microseconds); OverflowError when they run past what pandas or int64 microseconds hold, or
    pandas cannot step by ``freq``."""
    key = frequency_key(freq)
    if key is not None and key[0] == "us":
        if (np.iinfo(np.int64).max - last) // key[1] < steps:
            raise OverflowError(f"{steps} steps of {freq!r} run past the representable times")
        return last + key[1] * np.arange(1, steps + 1, dtype=np.int64)
    try:
        start = pd.Timestamp(np.datetime64(last, "us"))
        return pd.date_range(start, periods=steps + 1, freq=freq, unit="us")[1:].asi8
    except (ValueError, pd.errors.OutOfBoundsDatetime) as exc:
        raise OverflowError(str(exc)) from None


@functools.lru_cache(maxsize=256)
def step_frequency(step_us: int) -> str:
    """The alias of a constant step of ``step_us`` microseconds: ``"h"``, ``"15min"``, ``"D"``,
    ``"7D"``."""
    if step_us % DAY_US == 0:
        days = step_us // DAY_US
        return "D" if days == 1 else f"{days}D"
    return to_offset(pd.Timedelta(step_us, unit="us")).freqstr


def infer_frequency(times: np.ndarray | pd.DatetimeIndex) -> str | None:
    """The alias pandas infers for ``times`` [n] (datetime64 values or a DatetimeIndex), or None
    (fewer than three points, or no regular frequency)."""
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
    return infer_frequency(index.tz_localize(None).to_numpy())


def usual_step(steps: np.ndarray) -> int:
    """The most common of ``steps`` [n] (n >= 1; the smallest among equally common ones)."""
    values, counts = np.unique(steps, return_counts=True)
    return int(values[np.argmax(counts)])


def common_frequency(ids: Sequence[str], times: Sequence[pd.DatetimeIndex]) -> str | None:
    """The one frequency all inferable series share; ValueError naming two series that differ.

    When no series is regular enough to infer from (say every one skips a timestamp), the most
    common step is used, so skipped rows become gaps and stray timestamps are refused; None
    for single points only.
    """
    found = [(sid, f) for sid, t in zip(ids, times, strict=True) if (f := infer_frequency(t))]
    for sid, f in found[1:]:
        if f != found[0][1]:
            raise ValueError(
                f"inconsistent frequencies: series {found[0][0]!r} is {found[0][1]!r}, "
                f"series {sid!r} is {f!r}"
            )
    if found:
        return found[0][1]
    # Via datetime64[ns]: asi8 is in the index's own unit, which pandas 3 no longer fixes to ns.
    steps = np.concatenate(
        [np.diff(t.values.astype("datetime64[ns]").astype(np.int64)) for t in times]
    )
    if steps.size == 0:
        return None  # single-point series only: nothing to infer from
    return step_frequency(usual_step(steps) // 1000)


@dataclass(frozen=True)
class Calendar:
    """What a sampling frequency implies: its seasonal periods (shortest first; ``(1,)`` when
    it has none) and the default horizon (M4/M3 conventions)."""

    freq: str | None
    seasons: tuple[int, ...]
    horizon: int

    @property
    def seasonality(self) -> int:
        """The shortest seasonal period (``TrainConfig.seasonality``'s default)."""
        return self.seasons[0]


# Frequency (pandas' base code) -> seasonal periods and default horizon, for one unit of it.
CALENDARS: dict[str, tuple[tuple[int, ...], int]] = {
    "D": ((7,), 14),
    "B": ((5,), 10),
    "C": ((5,), 10),
    "W": ((52,), 13),
    "SMS": ((24,), 12),
    "SME": ((24,), 12),
    "MS": ((12,), 18),
    "ME": ((12,), 18),
    "BMS": ((12,), 18),
    "BME": ((12,), 18),
    "QS": ((4,), 8),
    "QE": ((4,), 8),
    "BQS": ((4,), 8),
    "BQE": ((4,), 8),
    "YS": ((1,), 6),
    "YE": ((1,), 6),
    "BYS": ((1,), 6),
    "BYE": ((1,), 6),
}
UNKNOWN = Calendar(None, (1,), 12)


def calendar(freq: str | None) -> Calendar:
    """The :class:`Calendar` of a pandas frequency alias (``h``, ``15min``, ``D``, ``W``,
    ``MS``, ``QS-OCT``, ``YE``, ...); ``None`` (no timestamps) has period 1.

    Sub-daily frequencies cycle over the day and the week (hourly: 24 and 168, horizon two
    days); finer than 15 minutes, over the hour and the day. A multiple of a unit (``2MS``)
    divides the periods that it divides and drops the others.
    """
    if freq is None:
        return UNKNOWN
    offset = to_offset(freq)
    # A step of whole days is read in days, and one of whole weeks in weeks, however it is
    # spelled: data whose gaps hide the weekday give ``7D`` or ``168h``, not ``W-SAT``.
    days = offset.n if isinstance(offset, offsets.Day) else None
    if isinstance(offset, offsets.Tick) and offset.nanos % _DAY_NS == 0:
        days = int(offset.nanos // _DAY_NS)
    if isinstance(offset, offsets.Tick) and days is None:
        return _tick_calendar(offset.freqstr, int(offset.nanos))
    if days is not None:
        rule, n = ("W", days // 7) if days % 7 == 0 else ("D", days)
    else:
        rule, n = offset.rule_code.split("-")[0], offset.n
    seasons, horizon = CALENDARS.get(rule, ((1,), UNKNOWN.horizon))
    n = max(n, 1)
    kept = tuple(p // n for p in seasons if p % n == 0 and p // n > 1) or (1,)
    return Calendar(offset.freqstr, kept, max(1, -(-horizon // n)))


def _tick_calendar(freq: str, nanos: int) -> Calendar:
    per_day, per_hour = _DAY_NS // nanos, _HOUR_NS // nanos
    if _DAY_NS % nanos == 0 and 2 <= per_day <= 96:
        return Calendar(freq, (per_day, 7 * per_day), 2 * per_day)
    if _HOUR_NS % nanos == 0 and per_hour >= 2:
        return Calendar(freq, (per_hour, 24 * per_hour), 2 * per_hour)
    return Calendar(freq, (1,), UNKNOWN.horizon)
