"""Hypothesis strategies for hostile requests, shared by ``tests/service/test_fuzz.py`` (a small
budget, in ``make test``) and ``benchmarks/fuzz.py`` (as long as asked).

Timestamps come from a grammar of ISO 8601 and its near misses: whole series spelled alike (the
fast path) with one stamp or every stamp spoiled, or stamps drawn one by one; fields out of range,
odd years (0000, 10000, +2024), separators and suffixes numpy and pandas read differently
(``z``, `` UTC``, ``+1``, ``+01:00:00``, ``+24:00``), control characters, ``now`` and ``today``.
Ids may hold control characters or be too long; values are extreme floats (1e308, subnormals,
±0, beyond the magnitude bound) or null. Only the standard library and Hypothesis are imported.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from hypothesis import strategies as st

CONTROL = "".join(map(chr, [*range(0x20), 0x7F, 0x85, 0x9F]))
SUFFIXES = ["", "", "", "Z", "z", "+00:00", "-00:00", "+01", "+0530", "-23:59", "+23:59", "+24:00",
            "-24:00", "+99:99", "+01:60", "+1", "+01:00:00", " UTC", "X", "\x00", " ", "\n", "Zz",
            "+01:00Z", "\u2212" + "01:00"]  # fmt: skip
ODD = ["now", "today", "NaT", "", " ", "T", "yesterday", "2024", "2024-13-01", "2024-02-30",
       "0000-01-01", "10000-01-01", "+2024-01-01", "-0001-01-01", "2024-01-01T24:00",
       "2024-01-01T23:59:60", "20240101T0500", "2024-1-1", "2024-01-01t05:00", "2024-01-01_05:00",
       "9999-12-31T23:59:59.999999", "0001-01-01T00:00:00", "1e5", "２０２４-01-01"]  # fmt: skip
EXTREME = [1e308, -1e308, 1.7976931348623157e308, 5e-324, -5e-324, 0.0, -0.0, 1e15, -1e15,
           1e15 + 1, 1e16, 1e-300, 123.456]  # fmt: skip


def _field(low: int, high: int, width: int = 2) -> st.SearchStrategy[str]:
    """A numeric field, mostly in range and zero-padded, sometimes not."""
    return st.one_of(
        st.integers(low, high).map(lambda v: f"{v:0{width}d}"),
        st.integers(0, 99).map(str),
        st.sampled_from(["", "0", "000", "ab"]),
    )


@st.composite
def stamp(draw: st.DrawFn) -> str:
    """One timestamp of the grammar or near it."""
    if draw(st.integers(0, 9)) == 9:
        return draw(st.sampled_from(ODD))
    year = draw(st.one_of(_field(1900, 2100, 4), st.sampled_from(["0001", "9999", "1899", "2200"])))
    text = f"{year}-{draw(_field(1, 12))}-{draw(_field(1, 28))}"
    if draw(st.booleans()):
        text += draw(st.sampled_from(["T", "T", " ", "t", "", "_"])) + draw(_field(0, 23))
        for sep, top in ((":", 59), (":", 59)):
            if draw(st.booleans()):
                text += draw(st.sampled_from([sep, sep, ""])) + draw(_field(0, top))
        if draw(st.integers(0, 3)) == 0:
            text += "." + "".join(draw(st.lists(st.sampled_from("0123456789"), max_size=12)))
        text += draw(st.sampled_from(SUFFIXES))
    return _spoiled(draw, text)


def _spoiled(draw: st.DrawFn, text: str) -> str:
    """Sometimes a control character inserted, or the text cut short."""
    what = draw(st.integers(0, 11))
    if what == 11 and text:
        k = draw(st.integers(0, len(text)))
        return text[:k] + draw(st.sampled_from(CONTROL)) + text[k:]
    if what == 10 and text:
        return text[: draw(st.integers(0, len(text) - 1))]
    return text


STEPS = [timedelta(hours=1), timedelta(minutes=15), timedelta(days=1), timedelta(days=7)]
FORMATS = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y%m%dT%H%M",
           "%Y-%m-%dT%H:%M:%S.%f"]  # fmt: skip


@st.composite
def stamps(draw: st.DrawFn, n: int) -> list[str]:
    """``n`` timestamps: a regular series spelled alike, with an offset or none, then perhaps
    one stamp or every stamp spoiled; or ``n`` stamps drawn one by one."""
    if draw(st.integers(0, 5)) == 5:
        return draw(st.lists(stamp(), min_size=n, max_size=n))
    # (Small draws are Hypothesis' favourites: they pick the well-formed cases throughout.)
    wide = draw(st.integers(0, 5)) == 5  # then also outside the forecast's years 1900-2199
    low, high = (1890, 2210) if wide else (1990, 2100)
    start = draw(st.datetimes(datetime(low, 1, 1), datetime(high, 1, 1)))
    step = draw(st.sampled_from(STEPS))
    spelling = draw(st.sampled_from(FORMATS))
    offset = draw(st.sampled_from(["", "", "Z", "+01:00", "-05:30", "+0200", "+09"]))
    out = []
    for k in range(n):
        try:
            out.append((start + step * k).strftime(spelling) + offset)
        except OverflowError:
            out.append("9999-12-31T23:59:59")
    spoil = draw(st.integers(0, 5))
    if spoil == 1 and n:
        out[draw(st.integers(0, n - 1))] = draw(stamp())
    elif spoil == 2:
        suffix = draw(st.sampled_from(SUFFIXES))
        out = [s + suffix for s in out]
    return out


@st.composite
def ids(draw: st.DrawFn) -> str | None:
    """Series ids: mostly plain (so forecasts get recorded), else none, any text, with control
    characters, empty, too long, a lone surrogate."""
    pick = draw(st.integers(0, 9))
    if pick < 5:
        return f"s{draw(st.integers(0, 10**6))}"
    if pick == 5:
        return None
    if pick == 6:
        return draw(st.text(min_size=1, max_size=12))
    if pick == 7:
        return draw(st.text(alphabet=st.sampled_from("ab-_. " + CONTROL), min_size=1, max_size=6))
    return draw(st.sampled_from(["", "x" * 256, "x" * 257, "a\x00b", "\ud800", "東京 1"]))


def numbers() -> st.SearchStrategy[float]:
    """Finite values: ordinary or extreme."""
    return st.one_of(
        st.floats(-1e3, 1e3, allow_nan=False),
        st.sampled_from(EXTREME),
        st.floats(allow_nan=False, allow_infinity=False),
    )


def values() -> st.SearchStrategy[float | None]:
    """History values: :func:`numbers`, or null (a missing one)."""
    return st.one_of(numbers(), st.none())


@st.composite
def series(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 80))
    # Mostly ordinary histories (to reach the model, the fallbacks and the recorder), some
    # sprinkled with extreme values and nulls.
    kind = values() if draw(st.integers(0, 3)) == 3 else st.floats(-1e3, 1e3, allow_nan=False)
    out: dict[str, Any] = {"history": draw(st.lists(kind, min_size=n, max_size=n))}
    if draw(st.integers(0, 5)) < 5:
        k = n if draw(st.integers(0, 9)) < 9 else draw(st.integers(0, n + 2))  # misaligned
        out["timestamps"] = draw(stamps(k))
    sid = draw(ids())
    if sid is not None:
        out["id"] = sid
    return out


@st.composite
def forecast_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Bodies for ``POST /v1/forecast``: one series or many, horizons in and out of range."""
    bad = draw(st.integers(0, 4)) == 4
    body: dict[str, Any] = {"horizon": draw(st.integers(-2, 60) if bad else st.integers(1, 12))}
    if draw(st.booleans()):
        one = draw(series())
        one.pop("id", None)
        body |= one
    else:
        body["series"] = draw(st.lists(series(), min_size=1, max_size=6))
        if draw(st.booleans()):
            body["strict"] = True
    if draw(st.integers(0, 5)) == 5:
        body["quantiles"] = draw(st.lists(st.sampled_from([0.1, 0.5, 0.9, 0.0, 1.0]), max_size=3))
    return body


@st.composite
def actuals_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Bodies for ``POST /v1/actuals``."""
    out = []
    for _ in range(draw(st.integers(1, 3))):
        n = draw(st.integers(1, 12))
        k = n if draw(st.integers(0, 9)) < 9 else draw(st.integers(1, n + 2))
        sid = draw(ids())
        out.append({
            "id": "a" if sid is None else sid,
            "timestamps": draw(stamps(k)),
            "values": draw(st.lists(numbers(), min_size=n, max_size=n)),
        })  # fmt: skip
    return {"series": out}


@st.composite
def accuracy_queries(draw: st.DrawFn) -> dict[str, str]:
    """Query parameters for ``GET /v1/models/{name}/accuracy``."""
    query = {}
    for name in ("since", "until"):
        if draw(st.booleans()):
            query[name] = draw(stamp())
    return query


# ------------------------------------------------------------------------------ verdicts


def server_error(status: int, text: str) -> str | None:
    """Why an answer is a failure of the server (a 5xx, or a traceback shown), else None."""
    if status >= 500:
        return f"{status}: {text[:300]}"
    if "Traceback" in text or re.search(r'File ".*", line \d+', text):
        return f"{status} showing a traceback: {text[:300]}"
    return None


def recordable(body: dict[str, Any], answer: dict[str, Any]) -> int:
    """Forecasts of a 200 answer the service records: those of series sent with an id, which
    came back with timestamps (service/monitoring.py's rule)."""
    sent = body.get("series")
    if not isinstance(sent, list):
        return 0
    return sum(
        1
        for f in answer.get("forecasts", [])
        if "timestamps" in f and sent[f["index"]].get("id") is not None
    )
