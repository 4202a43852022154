"""Timestamps of many series at once (forecaster.timestamps) and frequency names
(forecaster.frequency): parsing, checks and forecast stamps, against pandas one series at a time."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from forecaster.frequency import index_frequency, same_frequency, step_frequency
from forecaster.timestamps import Timeline, TimestampError, future_stamps, parse_timelines


def iso(index: pd.DatetimeIndex) -> list[str]:
    return [t.isoformat() for t in index]


def continued(stamps: list[str], horizon: int) -> list[str] | TimestampError:
    (timeline,) = parse_timelines([stamps])
    if isinstance(timeline, TimestampError):
        return timeline
    assert isinstance(timeline, Timeline)
    (future,) = future_stamps([timeline], [timeline.freq], horizon)  # type: ignore[list-item]
    return future


@pytest.mark.parametrize(
    ("freq", "tz", "start"),
    [
        ("h", None, "2024-02-28 05:00"),  # through the leap day
        ("15min", None, "2024-01-01"),
        ("D", None, "2023-12-25"),
        ("W-SUN", None, "2024-01-07"),
        ("MS", None, "2020-01-01"),
        ("ME", None, "2020-01-31"),
        ("QS-OCT", None, "2020-01-01"),
        ("YS", None, "2001-01-01"),
        ("h", "Etc/GMT-1", "2024-01-01"),  # a fixed offset is kept
        ("h", "UTC", "2024-01-01"),
    ],
)
def test_forecast_stamps_match_pandas(freq, tz, start):
    history = pd.date_range(start, periods=30, freq=freq, tz=tz)
    expected = pd.date_range(history[-1], periods=6, freq=freq)[1:]
    assert continued(iso(history), 5) == iso(expected)


def test_offsets_that_change_are_brought_to_utc():
    berlin = pd.date_range("2024-03-29 12:00", periods=50, freq="h", tz="Europe/Berlin")
    future = continued(iso(berlin), 2)
    utc = berlin.tz_convert("UTC")
    assert future == iso(pd.date_range(utc[-1], periods=3, freq="h")[1:])
    assert continued([t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in utc], 1) == [
        future[0]  # type: ignore[index]
    ]


def test_spellings_numpy_does_not_read_go_through_pandas():
    assert continued(["20240101T0500", "20240101T0600", "20240101T0700"], 1) == [
        "2024-01-01T08:00:00"
    ]


@pytest.mark.parametrize(
    ("stamps", "index", "words"),
    [
        (["2024-01-03", "2024-01-02", "2024-01-01"], 0, "newest first"),
        (["2024-01-01", "2024-01-01", "2024-01-02"], 1, "repeats"),
        (["2024-01-01", "2024-01-03", "2024-01-02"], 2, "before"),
        (["2024-01-01", "now", "2024-01-03"], 1, "not ISO 8601"),
        (["2024-01-01", "NaT", "2024-01-03"], 1, "not ISO 8601"),
        (["yesterday"] * 3, 0, "not ISO 8601"),
        (["10000-01-01", "10000-01-02", "10000-01-03"], 0, "not ISO 8601"),
        (["2024-01-01T00:00", "2024-01-01T01:00", "2024-01-01T02:30"], 2, "regular"),
        ([*iso(pd.date_range("2024-01-01", periods=10, freq="MS")), "2024-11-15"], 10, "grid"),
    ],
)
def test_unusable_stamps_name_the_first_bad_one(stamps, index, words):
    (error,) = parse_timelines([stamps])
    assert isinstance(error, TimestampError) and words in str(error)
    assert error.index == index


@pytest.mark.parametrize(
    ("freq", "skipped"), [("h", [4]), ("15min", [2, 3, 9]), ("D", [1]), ("MS", [5, 6]), ("QS", [3])]
)
def test_skipped_stamps_are_positions_on_the_grid(freq, skipped):
    """A stamp skipped on the series' grid is a missing point (issue 13), not an error."""
    full = pd.date_range("2024-01-01", periods=14, freq=freq)
    (timeline,) = parse_timelines([iso(full[:12].delete(skipped))])
    assert isinstance(timeline, Timeline) and same_frequency(timeline.freq or "", freq)
    assert timeline.positions is not None
    assert timeline.positions.tolist() == [i for i in range(12) if i not in skipped]
    (future,) = future_stamps([timeline], [timeline.freq or ""], 2)
    assert future == iso(full[12:])


def test_a_huge_bad_stamp_is_not_echoed_whole():
    (error,) = parse_timelines([["2024-01-01", "x" * 100_000]])
    assert isinstance(error, TimestampError) and len(str(error)) < 200


def test_forecast_stamps_past_9999_are_an_error_not_year_10000():
    for freq in ("h", "MS"):
        history = iso(pd.date_range("9999-06-01", periods=5, freq=freq))
        error = continued(history, 10_000)
        assert isinstance(error, TimestampError) and "9999-12-31" in str(error)


def test_one_bad_series_does_not_spoil_the_others():
    good = iso(pd.date_range("2024-01-01", periods=5, freq="h"))
    parsed = parse_timelines([good, ["2024-01-01", "bad"], good])
    assert [type(p).__name__ for p in parsed] == ["Timeline", "TimestampError", "Timeline"]
    assert parsed[0].freq == "h" and np.array_equal(parsed[0].times, parsed[2].times)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("h", "60min", True),
        ("D", "24h", True),
        ("W-SUN", "W-MON", True),
        ("ME", "MS", True),
        ("QS-OCT", "QE-DEC", True),
        ("h", "D", False),
        ("D", "B", False),
        ("MS", "QS", False),
        ("h", "not-a-frequency", True),  # unknown to pandas: nothing to hold against a request
    ],
)
def test_same_frequency(a, b, same):
    assert same_frequency(a, b) is same


def test_frequency_names():
    assert [step_frequency(s * 10**6) for s in (3600, 900, 86400, 7 * 86400)] == [
        "h",
        "15min",
        "D",
        "7D",
    ]
    index = pd.DatetimeIndex(list(pd.date_range("2024-01-01", periods=12, freq="MS")))
    assert index_frequency(index) == "MS"
    assert index_frequency(pd.DatetimeIndex(["2024-01-01", "2024-01-02", "2024-01-05"])) is None


# ------------------------------------------------------------------ hostile spellings (issue 29)

HOURS = iso(pd.date_range("2024-01-01", periods=5, freq="h"))


def _with(suffixes: list[str]) -> list[str]:
    return [s + x for s, x in zip(HOURS, suffixes, strict=True)]


@pytest.mark.parametrize(
    ("stamps", "index", "words"),
    [
        (_with(["X"] * 5), 0, "not ISO 8601"),
        (_with(["z"] * 5), 0, "not ISO 8601"),
        (_with([" UTC"] * 5), 0, "not ISO 8601"),
        (_with(["+1"] * 5), 0, "not ISO 8601"),
        (_with(["+01:00:00"] * 5), 0, "not ISO 8601"),
        (_with(["\x00"] * 5), 0, "not ISO 8601"),
        (_with(["", "", "+01", "", ""]), 2, "has a UTC offset"),
        (_with(["", "", "", "", "Z"]), 4, "has a UTC offset"),
        (_with(["+01:00", "", "", "", ""]), 1, "has no UTC offset"),
        (_with(["+01:00", "+02:00", "", "+01:00", "+01:00"]), 2, "has no UTC offset"),
        (_with(["+99:99"] * 5), 0, "beyond ±23:59"),
        (_with(["+24:00"] * 5), 0, "beyond ±23:59"),
        (_with(["-24:00"] * 5), 0, "beyond ±23:59"),
        (_with(["+01:00", "+02:00", "+24:00", "+01:00", "+01:00"]), 2, "beyond ±23:59"),
        (_with(["+01:60"] * 5), 0, "beyond ±23:59"),
        (["now", "today", "2024-01-03"], 0, "not ISO 8601"),
        (["2024-01-01T00:00", "today", "2024-01-01T02:00"], 1, "not ISO 8601"),
        (["+2024-01-01", "+2024-01-02", "+2024-01-03"], 0, "not ISO 8601"),
        (["2024-01-01T00:00\n", "2024-01-01T01:00\n", "2024-01-01T02:00\n"], 0, "not ISO 8601"),
    ],
)
def test_suffixes_and_mixed_offsets_name_the_stamp(stamps, index, words):
    """Each of these once raised numpy's timezone warning as an error (a 500), or was read."""
    (error,) = parse_timelines([stamps])
    assert isinstance(error, TimestampError), error
    assert words in str(error) and error.index == index


@pytest.mark.parametrize(
    ("offset", "suffix"),
    [("Z", "+00:00"), ("+23:59", "+23:59"), ("-23:59", "-23:59"), ("+0530", "+05:30"),
     ("-03", "-03:00"), ("+00:00", "+00:00")],
)  # fmt: skip
def test_offsets_within_a_day_are_kept(offset, suffix):
    (timeline,) = parse_timelines([_with([offset] * 5)])
    assert isinstance(timeline, Timeline) and timeline.suffix == suffix
    assert continued(_with([offset] * 5), 1) == ["2024-01-01T05:00:00" + suffix]


def test_stamps_spelled_unlike_each_other_are_each_checked():
    stamps = ["2024-01-01T00:00:00", "2024-01-01T01:00", "2024-01-01 02:00:00.5"]
    (timeline,) = parse_timelines([stamps])
    assert isinstance(timeline, TimestampError) and "regular" in str(timeline)  # read, then off
    (error,) = parse_timelines([[*stamps[:2], "2024-01-01T02:00:00.5Z"]])
    assert isinstance(error, TimestampError) and error.index == 2


def test_one_bad_spelling_does_not_spoil_the_other_series():
    good = iso(pd.date_range("2024-01-01", periods=5, freq="h"))
    parsed = parse_timelines([good, _with(["X"] * 5), good, _with(["+24:00"] * 5)])
    assert [type(p).__name__ for p in parsed] == [
        "Timeline", "TimestampError", "Timeline", "TimestampError"
    ]  # fmt: skip


def test_parsing_never_depends_on_the_warnings_filters():
    """Whatever the process' filter says (an app may turn warnings into errors, or hide
    them), the same stamps give the same answers."""
    cases = [_with(["X"] * 5), _with(["", "", "+01", "", ""]), HOURS, _with(["+01:00"] * 5)]
    expected = [repr(p) for p in parse_timelines(cases)]
    for action in ("error", "ignore", "always"):
        with warnings.catch_warnings():
            warnings.simplefilter(action)
            assert [repr(p) for p in parse_timelines(cases)] == expected


def test_concurrent_parsing_leaves_the_warnings_filters_alone():
    """``warnings.catch_warnings`` is not thread-safe: threads parsing at once once left the
    process-wide filter at "error" (issue 29), after which any warning anywhere was a 500."""
    before = list(warnings.filters)
    big = [iso(pd.date_range("2024-01-01", periods=2000, freq="h"))] * 10
    small = [HOURS] * 50

    def work(k: int) -> None:
        for _ in range(15):
            parse_timelines(big if k % 2 else small)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(16)))
    assert warnings.filters == before


def test_forecast_stamps_must_lie_in_the_years_1900_to_2199():
    last_ok = iso(pd.date_range("2199-12-31T20:00", periods=3, freq="h"))
    assert continued(last_ok, 1) == ["2199-12-31T23:00:00"]
    for stamps, horizon in [
        (last_ok, 2),
        (iso(pd.date_range("9999-06-01", periods=5, freq="h")), 2),
        (iso(pd.date_range("1899-12-31T20:00", periods=3, freq="h")), 1),
        (iso(pd.date_range("0024-01-01", periods=5, freq="MS")), 1),
    ]:
        error = continued(stamps, horizon)
        assert isinstance(error, TimestampError) and "1900 to 2199" in str(error)
    first_ok = iso(pd.date_range("1899-12-31T21:00", periods=3, freq="h"))
    assert continued(first_ok, 1) == ["1900-01-01T00:00:00"]
    # Histories may be older: only what is forecast is held to the range.
    old = iso(pd.date_range("1750", periods=300, freq="YS"))
    assert continued(old, 2) == ["2050-01-01T00:00:00", "2051-01-01T00:00:00"]
