"""ISO 8601 timestamps as the service and the monitoring store read them: the one grammar.

A stamp is a date (``2024``, ``2024-01``, ``2024-01-15``, ``2024-1-5``, ``20240115``; the year
has four digits), optionally ``T`` or a space and a time (``05``, ``05:30``, ``05:30:00``,
``05:30:00.25``, or ``0530``), and after a time optionally a UTC offset: ``Z``, ``+HH:MM``,
``+HHMM`` or ``+HH``, within ±23:59. Anything else is refused naming the stamp before numpy or
pandas reads it: other suffixes (``X``, ``z``, `` UTC``, ``+1``, ``+01:00:00``), control
characters, offsets like ``+24:00``, and ``now`` or ``today`` (numpy reads those as the clock).

Why a grammar of our own: numpy reads an offset by warning and then converting to UTC, and any
other text after the time by warning and then failing. Turning that warning into an error took
``warnings.catch_warnings``, which changes process-wide state and is not thread-safe (issue 29):
concurrent requests left the global filter at "error". Here nothing reaches numpy that it would
warn about, so no request touches the warnings filters.

Checking costs one vectorised pass when the stamps are spelled alike (:func:`plain`: the same
length, digits where the first has digits, its other characters elsewhere), which is how a
program writes them; stamps spelled differently from each other are matched one by one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

# What numpy, pandas, Python's datetime and the databases can all hold: years 1 to 9999.
EARLIEST = np.datetime64("0001-01-01T00:00:00", "us")
LATEST = np.datetime64("9999-12-31T23:59:59.999999", "us")
EARLIEST_US, LATEST_US = int(EARLIEST.astype(np.int64)), int(LATEST.astype(np.int64))

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


def kind_of(stamp: str) -> bool:
    """Whether ``stamp`` carries a UTC offset (what :func:`first_bad` expects of the others)."""
    return isinstance(stamp, str) and _AWARE.fullmatch(stamp) is not None
