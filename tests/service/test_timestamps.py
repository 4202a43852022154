"""Timestamps of many series at once (service.timestamps) and frequency names
(forecaster.frequency): parsing, checks and forecast stamps, against pandas one series at a time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecaster.frequency import index_frequency, same_frequency, step_frequency
from service.timestamps import Timeline, TimestampError, future_stamps, parse_timelines


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
