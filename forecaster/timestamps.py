"""Timestamps, their one home: the ISO 8601 grammar every stamp is held to, the years a forecast
may name, UTC offsets, and the timestamps of many series parsed, checked and continued.

The grammar. A stamp is a date (``2024``, ``2024-01``, ``2024-01-15``, ``2024-1-5``, ``20240115``;
the year has four digits), optionally ``T`` or a space and a time (``05``, ``05:30``,
``05:30:00``, ``05:30:00.25``, or ``0530``), and after a time optionally a UTC offset: ``Z``,
``+HH:MM``, ``+HHMM`` or ``+HH``, within ±23:59. Anything else is refused naming the stamp before
numpy or pandas reads it: other suffixes (``X``, ``z``, `` UTC``, ``+1``, ``+01:00:00``), control
characters, offsets like ``+24:00``, and ``now`` or ``today`` (numpy reads those as the clock).
A series' stamps all carry an offset or none do.

Why a grammar of our own: numpy reads an offset by warning and then converting to UTC, and any
other text after the time by warning and then failing. Turning that warning into an error took
``warnings.catch_warnings``, which changes process-wide state and is not thread-safe (issue 29):
concurrent requests left the global filter at "error". Here nothing reaches numpy that it would
warn about, so no request touches the warnings filters. Checking costs one vectorised pass when
the stamps are spelled alike (:func:`plain`: the same length, digits where the first has digits,
its other characters elsewhere), which is how a program writes them; stamps spelled differently
from each other are matched one by one.

Many series at once (:func:`parse_timelines`, :func:`future_stamps`): a request may carry a
thousand series of hundreds of ISO 8601 strings each. Parsing them one series at a time with
pandas cost about 2 s of event-loop time for 1,000 x 168 stamps; here every string of every
series is parsed by one numpy call, each series' steps are checked with a few
array operations, and the forecast stamps of all series are formatted by one numpy call. pandas
is only the fallback for spellings numpy does not read (``20240101T0500``, offsets that change
within a series) and for calendar frequencies (months, quarters).

A skipped timestamp is a missing point, not an error: when the steps are whole multiples of the
most common one (or, for calendar frequencies, land on the grid of the frequency found in the first
regular stretch), the :class:`Timeline` records each stamp's position on that grid, and
:mod:`forecaster.histories` treats the positions skipped like nulls. Stamps off every grid are
refused, naming the first that does not fit.

Times are kept as int64 microseconds of wall-clock time in the zone the strings were written in
(``suffix``: ``""`` for none, else the UTC offset as ``"+HH:MM"``), so calendar arithmetic and
formatting need no time-zone database. Series whose offsets change (daylight saving) are brought
to UTC.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.frequency import DAY_US, infer_frequency, step_frequency, steps_after, usual_step

# What numpy, pandas, Python's datetime and the databases can all hold: years 1 to 9999.
EARLIEST = np.datetime64("0001-01-01T00:00:00", "us")
LATEST = np.datetime64("9999-12-31T23:59:59.999999", "us")
EARLIEST_US, LATEST_US = int(EARLIEST.astype(np.int64)), int(LATEST.astype(np.int64))
_ECHO = 40  # characters of a bad timestamp quoted back
# The years the forecast's own timestamps must lie in. Forecasts are recorded and scored against
# actuals as they arrive: a target before 1900 or after 2199 is a typo (0024 for 2024) or a
# probe, not a time whose actual anyone will send, and one series of such targets once became
# the monitoring's "latest actual", deciding ``retrain --when degraded`` on its own (issue 29).
# 2199 also keeps every target inside pandas' default nanosecond range (1677 to 2262), which
# notebooks reading the store use. Histories may be older: only what is forecast is held to it.
FORECAST_YEARS = (1900, 2199)
_FORECAST_FROM = int(np.datetime64(f"{FORECAST_YEARS[0]}-01-01", "us").astype(np.int64))
_FORECAST_UNTIL = int(np.datetime64(f"{FORECAST_YEARS[1] + 1}-01-01", "us").astype(np.int64))

_DATE = r"\d{4}(?:-\d{1,2}(?:-\d{1,2})?|\d{4})?"
_TIME = r"\d{1,2}(?::?\d\d(?::?\d\d(?:\.\d{1,9})?)?)?"
OFFSET = r"(?:Z|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)"
_NAIVE = re.compile(rf"{_DATE}(?:[T ]{_TIME})?")
_AWARE = re.compile(rf"{_DATE}[T ]{_TIME}{OFFSET}")
# What numpy reads without a warning: the extended form with two-digit fields and no offset.
_PLAIN = re.compile(r"\d{4}(?:-\d\d(?:-\d\d(?:[T ]\d\d(?::\d\d(?::\d\d(?:\.\d{1,9})?)?)?)?)?)?")
# An offset of the right shape whose hours or minutes are out of range (+24:00, +99:99).
_OFFSET_SHAPED = re.compile(rf"{_DATE}[T ]{_TIME}[+-]\d\d(?::?\d\d)?")
_ZERO = ord("0")

NOT_ISO = "is not ISO 8601"
#: Words numpy or pandas read as the current time (lower case): never a stamp of ours.
CLOCK_WORDS = ("now", "today")


def offset_of(stamp: str) -> str | None:
    """The UTC offset ``stamp`` ends with, as written (``Z``, ``+01:00``, ``+0100``, ``+01``);
    None when it has none (or is not a stamp of the grammar)."""
    if _AWARE.fullmatch(stamp) is None:
        return None
    found = re.search(rf"{OFFSET}$", stamp)
    return None if found is None else found.group(0)


def plain(stamps: Sequence[str], *, each: bool = True) -> bool:
    """Whether every stamp is in the form numpy reads without a warning (no offset, two-digit
    fields): checked once for all when they are spelled alike, else one by one (``each=False``:
    not one by one, False instead)."""
    if not stamps:
        return True
    if not isinstance(stamps[0], str) or _PLAIN.fullmatch(stamps[0]) is None:
        return False
    if _alike(stamps):
        return True
    return each and all(isinstance(s, str) and _PLAIN.fullmatch(s) for s in stamps)


def _alike(stamps: Sequence[str]) -> bool:
    """Every stamp the length of the first, with digits where it has digits and its other
    characters elsewhere (vectorised over the bytes of the stamps joined by newlines)."""
    width = len(stamps[0])
    try:
        raw = ("\n".join(stamps) + "\n").encode("ascii")
    except (TypeError, UnicodeEncodeError):
        return False
    if len(raw) != len(stamps) * (width + 1):
        return False
    grid = np.frombuffer(raw, np.uint8).reshape(len(stamps), width + 1)
    first = grid[0]
    digit = (first - _ZERO) < 10  # uint8: characters below "0" wrap around to large values
    digits, others = np.flatnonzero(digit), np.flatnonzero(~digit)
    # The first has no newline but its last (it matched the grammar), so neither has any.
    return bool((grid[:, others] == first[others]).all() and ((grid[:, digits] - _ZERO) < 10).all())


def first_bad(stamps: Sequence[str], offset: bool | None = None) -> tuple[int, str] | None:
    """The position of the first stamp outside the grammar and why (a phrase: "is not ISO
    8601", ...); None when all are stamps. ``offset``: True when each must carry a UTC offset,
    False when none may, None when either will do (the stamps of one series: the first's
    kind, so the phrase can say which)."""
    want = [_NAIVE, _AWARE] if offset is None else [_AWARE if offset else _NAIVE]
    for i, stamp in enumerate(stamps):
        if not isinstance(stamp, str):
            return i, NOT_ISO
        if any(p.fullmatch(stamp) for p in want):
            continue
        return i, _why(stamp, offset)
    return None


def _why(stamp: str, offset: bool | None) -> str:
    if offset is not None and (_NAIVE if offset else _AWARE).fullmatch(stamp):
        return (
            "has no UTC offset but the series' first timestamp has one"
            if offset
            else "has a UTC offset but the series' first timestamp has none"
        ) + "; write every timestamp of a series alike"
    if _OFFSET_SHAPED.fullmatch(stamp):
        return "has a UTC offset beyond ±23:59"
    return NOT_ISO


# Steps this long or longer may be calendar ones (months differ in length).
_CALENDAR_US = 28 * DAY_US
# Stretches of three stamps tried for a calendar frequency when some are skipped (each try is
# a pandas call: bounded, so a request of odd monthly stamps costs milliseconds per series).
_CALENDAR_TRIES = 8


class TimestampError(ValueError):
    """A series' timestamps are unusable; ``index`` is the offending one's position, if any."""

    def __init__(self, msg: str, index: int | None = None) -> None:
        super().__init__(msg)
        self.index = index


@dataclass(frozen=True)
class Timeline:
    """One series' timestamps.

    Attributes:
      times: [n] int64 microseconds of wall-clock time in the zone of ``suffix``, increasing.
      suffix: ``""`` (no zone) or the UTC offset every stamp had, as ``"+HH:MM"``.
      freq: pandas alias of their frequency; None when fewer points than it takes to tell.
      positions: [n] int64 position of each stamp on the grid of ``freq`` when some grid
        points were skipped (missing points); None when none was.
    """

    times: np.ndarray
    suffix: str
    freq: str | None
    positions: np.ndarray | None = None


# ------------------------------------------------------------------------------------ parsing


def parse_timelines(stamps: Sequence[Sequence[str]]) -> list[Timeline | TimestampError]:
    """Each series' :class:`Timeline`, or the error that describes what is wrong with it.

    Every stamp is held to the grammar, and a series' stamps all carry
    a UTC offset or none do; only stamps numpy reads without a warning reach numpy."""
    split = [_split_offset(s) for s in stamps]
    fast = [(i, part) for i, part in enumerate(split) if part is not None]
    parsed: dict[int, tuple[np.ndarray, str] | TimestampError] = {}
    if fast:
        parsed |= _parse_with_numpy([part for _, part in fast], [i for i, _ in fast], stamps)
    for i, part in enumerate(split):
        if part is None:  # offsets that differ from stamp to stamp
            parsed[i] = _checked(stamps[i], True) or _parse_with_pandas(stamps[i])
    out: list[Timeline | TimestampError] = []
    for i in range(len(stamps)):
        result = parsed[i]
        out.append(result if isinstance(result, TimestampError) else _timeline(*result))
    return out


def _split_offset(stamps: Sequence[str]) -> tuple[list[str], str] | None:
    """(the stamps without their common UTC offset, that offset as ``+HH:MM`` or ``""``); None
    when the first has an offset that some others lack or write differently."""
    if not stamps:
        return [], ""
    written = offset_of(stamps[0])
    if written is None:
        return list(stamps), ""
    stripped = list(map(str.removesuffix, stamps, itertools.repeat(written)))
    # Every stamp lost the offset exactly when the lengths dropped by it for every one.
    if sum(map(len, stamps)) - sum(map(len, stripped)) != len(written) * len(stamps):
        return None
    return stripped, _canonical_offset(written)


def _canonical_offset(written: str) -> str:
    if written == "Z":
        return "+00:00"
    digits = written[1:].replace(":", "")
    return f"{written[0]}{digits[:2]}:{digits[2:4] or '00'}"


def _checked(stamps: Sequence[str], offset: bool) -> TimestampError | None:
    """The error naming the first stamp outside the grammar, or of the other kind (with or
    without a UTC offset) than ``offset`` says; None when all are good."""
    bad = first_bad(stamps, offset)
    if bad is None:
        return None
    i, why = bad
    return TimestampError(f"timestamp {_echo(stamps[i])} {why}", i)


def _parse_with_numpy(
    parts: list[tuple[list[str], str]], positions: list[int], stamps: Sequence[Sequence[str]]
) -> dict[int, tuple[np.ndarray, str] | TimestampError]:
    """One numpy parse of every stamp of every series when all are spelled alike (the common
    case); otherwise, or when one is out of range, each series on its own."""
    flat = [s for strings, _ in parts for s in strings]
    times = None
    if plain(flat, each=False):
        with contextlib.suppress(ValueError):  # one out of range: found series by series
            times = _numpy_times(flat)
    out: dict[int, tuple[np.ndarray, str] | TimestampError] = {}
    start = 0
    for (strings, suffix), position in zip(parts, positions, strict=True):
        stop = start + len(strings)
        if times is not None:
            out[position] = (times[start:stop], suffix)
        else:
            out[position] = _parse_one(stamps[position], strings, suffix)
        start = stop
    return out


def _numpy_times(strings: list[str]) -> np.ndarray:
    """[n] int64 microseconds of stamps :func:`plain` has passed (numpy
    reads those without a warning); ValueError if numpy cannot read one or one is out of range."""
    times = np.array(strings, dtype="datetime64[us]").astype(np.int64)
    if len(times) and (times.min() < EARLIEST_US or times.max() > LATEST_US):
        raise ValueError("year outside 1..9999")
    return times


def _parse_one(
    written: Sequence[str], strings: list[str], suffix: str
) -> tuple[np.ndarray, str] | TimestampError:
    """One series: ``written`` as sent, ``strings`` without their common offset ``suffix``."""
    error = _checked(written, bool(suffix))
    if error is not None:
        return error
    if plain(strings):
        try:
            return _numpy_times(strings), suffix
        except ValueError:
            pass
    return _parse_with_pandas(written)  # other spellings (20240101T0500), or to name the bad one


def _parse_with_pandas(strings: Sequence[str]) -> tuple[np.ndarray, str] | TimestampError:
    """The slow path: spellings numpy does not read, and offsets that change (brought to UTC).
    The stamps are in the grammar already, with an offset each or none."""
    try:
        index = _to_datetime(strings)
    except (ValueError, TypeError, OverflowError):
        i = first_unreadable(strings)
        what = "timestamps are not" if i is None else f"timestamp {_echo(strings[i])} is not"
        return TimestampError(f"{what} ISO 8601", i)
    suffix = ""
    if index.tz is not None:
        suffix = _canonical_offset(_written_offset(index[0].utcoffset()))
        index = index.tz_localize(None)  # wall-clock time in that (fixed) offset
    times = index.as_unit("us").asi8
    if len(times) and (times.min() < EARLIEST_US or times.max() > LATEST_US):
        return TimestampError("timestamps must lie in the years 1 to 9999")
    return times, suffix


def _to_datetime(strings: Sequence[str]) -> pd.DatetimeIndex:
    try:
        return pd.DatetimeIndex(pd.to_datetime(list(strings), format="ISO8601"))
    except ValueError as exc:
        if "Mixed timezones" not in str(exc):
            raise
        return pd.DatetimeIndex(pd.to_datetime(list(strings), format="ISO8601", utc=True))


def _written_offset(offset: object) -> str:
    seconds = int(pd.Timedelta(offset).total_seconds())
    sign = "-" if seconds < 0 else "+"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def first_unreadable(strings: Sequence[str]) -> int | None:
    """The position of the first stamp pandas cannot read (None: it reads each alone)."""
    for i, s in enumerate(strings):
        try:
            pd.to_datetime([s], format="ISO8601", utc=True)
        except (ValueError, TypeError, OverflowError):
            return i
    return None


def _echo(text: str) -> str:
    return repr(text if len(text) <= _ECHO else text[:_ECHO] + "...")


# ------------------------------------------------------------------------------------ checking


def _timeline(times: np.ndarray, suffix: str) -> Timeline | TimestampError:
    """Oldest first, at one frequency: a constant step, or a calendar one pandas recognises."""
    steps = np.diff(times)
    if len(steps) == 0:
        return Timeline(times, suffix, None)
    if (steps < 0).all():
        return TimestampError("timestamps are newest first; send them oldest first", 0)
    bad = np.flatnonzero(steps <= 0)
    if len(bad):
        k = int(bad[0]) + 1
        what = "repeats" if steps[k - 1] == 0 else "is before"
        return TimestampError(f"timestamp {k} {what} the one before it; send them oldest first", k)
    if steps.min() == steps.max():
        return Timeline(times, suffix, step_frequency(int(steps[0])))
    freq = infer_frequency(times.astype("datetime64[us]"))
    if freq is not None:
        return Timeline(times, suffix, freq)
    return _with_skips(times, suffix, steps)


def _with_skips(times: np.ndarray, suffix: str, steps: np.ndarray) -> Timeline | TimestampError:
    """A timeline whose stamps lie on a regular grid with some grid points skipped: every step a
    whole number of the most common one, or calendar stamps (steps of four weeks or more) on the
    grid of the frequency pandas finds in their first regular stretch."""
    base = usual_step(steps)
    if base < _CALENDAR_US:
        off = np.flatnonzero(steps % base)
        if not len(off):
            positions = np.r_[0, np.cumsum(steps // base)]
            return Timeline(times, suffix, step_frequency(base), positions)
        return _off_grid(int(off[0]) + 1, steps, base)
    found = _calendar_grid(times)
    if isinstance(found, TimestampError):
        return found
    freq, positions = found
    return Timeline(times, suffix, freq, positions)


def _calendar_grid(times: np.ndarray) -> tuple[str, np.ndarray] | TimestampError:
    """(frequency, grid position of each stamp) for month-like stamps with some skipped."""
    stamps = times.astype("datetime64[us]")
    freq = next(
        (f for k in range(min(len(stamps) - 2, _CALENDAR_TRIES))
         if (f := infer_frequency(stamps[k : k + 3])) is not None),
        None,
    )  # fmt: skip
    if freq is None:
        return TimestampError("timestamps are not at a regular frequency", 1)
    try:
        grid = pd.date_range(pd.Timestamp(stamps[0]), pd.Timestamp(stamps[-1]), freq=freq)
    except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime):
        return TimestampError(f"timestamps are not on a {freq!r} grid")
    positions = grid.as_unit("us").get_indexer(pd.DatetimeIndex(stamps))
    off = np.flatnonzero(positions < 0)
    if len(off):
        k = int(off[0])
        return TimestampError(f"timestamp {k} is off the {freq!r} grid of the others", k)
    return freq, positions.astype(np.int64)


def _off_grid(k: int, steps: np.ndarray, base: int) -> TimestampError:
    return TimestampError(
        f"timestamps are not at a regular frequency: step {k} is "
        f"{pd.Timedelta(int(steps[k - 1]), unit='us')}, not a whole number of the usual "
        f"{pd.Timedelta(base, unit='us')}",
        k,
    )


# ------------------------------------------------------------------------------------ future


def future_stamps(
    timelines: Sequence[Timeline], freqs: Sequence[str], horizon: int
) -> list[list[str] | TimestampError]:
    """The ``horizon`` ISO 8601 stamps after each timeline at ``freqs[i]``, in its zone."""
    futures = [
        _future(int(timeline.times[-1]), freq, horizon)
        for timeline, freq in zip(timelines, freqs, strict=True)
    ]
    good = [f for f in futures if not isinstance(f, TimestampError)]
    formatted = iter(_format(np.stack(good)).tolist() if good else [])
    out: list[list[str] | TimestampError] = []
    for timeline, future in zip(timelines, futures, strict=True):
        if isinstance(future, TimestampError):
            out.append(future)
        else:
            row = next(formatted)
            out.append([s + timeline.suffix for s in row] if timeline.suffix else row)
    return out


def _future(last: int, freq: str, horizon: int) -> np.ndarray | TimestampError:
    future = _continued(last, freq, horizon)
    if isinstance(future, TimestampError):
        return future
    if future[0] < _FORECAST_FROM or future[-1] >= _FORECAST_UNTIL:
        first, final = _format(future[[0, -1]]).tolist()
        return TimestampError(
            f"the forecast's timestamps would run from {first} to {final}; forecasts are made "
            f"for times in the years {FORECAST_YEARS[0]} to {FORECAST_YEARS[1]}"
        )
    return future


def _continued(last: int, freq: str, horizon: int) -> np.ndarray | TimestampError:
    try:
        future = steps_after(last, freq, horizon)
    except OverflowError:
        return _past_the_range(last, freq, horizon)
    return _past_the_range(last, freq, horizon) if future.max() > LATEST_US else future


def _past_the_range(last: int, freq: str, horizon: int) -> TimestampError:
    when = np.datetime_as_string(np.datetime64(last, "us"), unit="s")
    return TimestampError(
        f"{horizon} steps of {freq!r} after {when} go past 9999-12-31, the last timestamp "
        "that can be written"
    )


def _format(times: np.ndarray) -> np.ndarray:
    """Int64 microseconds as ISO 8601 strings, to the second unless some have fractions."""
    unit = "s" if not (times % 1_000_000).any() else "us"
    stamps: np.ndarray = np.datetime_as_string(times.astype("datetime64[us]"), unit=unit)  # type: ignore[call-overload]  # astype by name gives dtype[Any], which its overloads refuse
    return stamps
