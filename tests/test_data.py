"""Loading, validation and windowing of series (forecaster/data.py, forecaster/windows.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

import fsspec
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecaster.data import (
    DataError,
    HandledGap,
    SeriesSet,
    fill_gaps,
    load_series,
    series_from_frame,
    train_val_split,
)
from forecaster.windows import gather_windows, last_windows, pad_series, window_index

DATA = Path(__file__).resolve().parent / "data"
M4_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "m4"
LONG_COLS = {"id_col": "series", "time_col": "time", "value_col": "y"}


def long_frame(values: dict[str, list[float | str | None]], freq: str = "h") -> pd.DataFrame:
    """Long frame with ids as keys, timestamps from 2024-01-01 at ``freq``."""
    rows = [
        (sid, t, v)
        for sid, vals in values.items()
        for t, v in zip(
            pd.date_range("2024-01-01", periods=len(vals), freq=freq), vals, strict=True
        )
    ]
    return pd.DataFrame(rows, columns=["id", "timestamp", "value"])


# ---------------------------------------------------------------------------- loading


def test_load_long_csv_interleaved_with_gap() -> None:
    s = load_series(DATA / "long_hourly.csv", **LONG_COLS)
    assert s.ids == ["a", "b"]
    assert s.freq == "h"
    np.testing.assert_array_equal(s["a"], [1, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(s["b"], [10, 20, 30, 40, 50])  # 2-point gap interpolated
    assert s.end == [pd.Timestamp("2024-01-01 05:00"), pd.Timestamp("2024-01-01 04:00")]


def test_load_parquet_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "series.parquet"
    pd.read_csv(DATA / "long_hourly.csv").to_parquet(path)
    s = load_series(path, **LONG_COLS)
    assert s.ids == ["a", "b"] and s.freq == "h"
    np.testing.assert_allclose(s["b"], [10, 20, 30, 40, 50])


def test_load_wide_m4_style() -> None:
    s = load_series(DATA / "wide_m4.csv")  # auto: no id/timestamp/value columns
    assert s.ids == ["X1", "X2", "X3"]
    np.testing.assert_array_equal(s.lengths, [6, 5, 3])  # trailing empty cells are padding
    np.testing.assert_allclose(s["X2"], [10, 20, 30, 40, 50])
    assert s.freq is None and s.end is None


def test_load_memory_url() -> None:
    url = f"memory://forecaster-tests/{uuid.uuid4().hex}/long.csv"
    pd.read_csv(DATA / "long_hourly.csv").to_csv(url, index=False)
    try:
        s = load_series(url, format="long", **LONG_COLS)
    finally:
        fsspec.filesystem("memory").rm(url)
    assert s.ids == ["a", "b"]
    np.testing.assert_array_equal(s["a"], [1, 2, 3, 4, 5, 6])


def test_unknown_suffix_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file type"):
        load_series(tmp_path / "series.txt")


def test_long_format_missing_columns() -> None:
    with pytest.raises(DataError, match="missing"):
        series_from_frame(pd.DataFrame({"id": ["a"], "value": [1.0]}), format="long")


@pytest.mark.skipif(not (M4_DIR / "Hourly-train.csv").exists(), reason="M4 data not available")
def test_load_m4_hourly_train() -> None:
    s = load_series(M4_DIR / "Hourly-train.csv", format="wide", min_length=700)
    assert len(s) == 414
    assert s.ids[0] == "H1" and s.ids[-1] == "H414"
    assert s.lengths.min() == 700 and s.lengths.max() == 960
    assert all(np.isfinite(v).all() for v in s.values)


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("values", "pattern"),
    [
        ({"a": [1, 2, 3], "b": [1, "x", 3]}, r"'b'.*2024-01-01 01:00:00.*non-numeric value 'x'"),
        ({"a": [1, 2, 3], "b": [1, 2, float("inf")]}, r"'b'.*2024-01-01 02:00:00.*infinite"),
    ],
)
def test_long_bad_values_name_series_and_timestamp(values: dict, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        series_from_frame(long_frame(values))


def test_wide_bad_values_name_series_and_index() -> None:
    frame = pd.DataFrame({"V1": ["S1", "S2"], "V2": ["1", "2"], "V3": ["3", "oops"]})
    with pytest.raises(DataError, match=r"'S2' at index 1 \(column 'V3'\).*'oops'"):
        series_from_frame(frame)
    frame["V3"] = ["3", "-inf"]
    with pytest.raises(DataError, match=r"'S2' at index 1.*infinite"):
        series_from_frame(frame)


def test_duplicate_timestamp_named() -> None:
    frame = long_frame({"a": [1, 2, 3, 4]})
    frame.loc[2, "timestamp"] = frame.loc[1, "timestamp"]
    with pytest.raises(DataError, match=r"'a': duplicate timestamp 2024-01-01 01:00:00 .*row 2"):
        series_from_frame(frame)


def test_unsorted_timestamps_named() -> None:
    frame = long_frame({"a": [1, 2, 3, 4]}).iloc[[0, 2, 1, 3]]
    with pytest.raises(DataError, match=r"'a': timestamps not increasing at 2024-01-01 01:00"):
        series_from_frame(frame)


def test_missing_and_unparseable_timestamps_named() -> None:
    frame = long_frame({"a": [1, 2, 3]}).astype({"timestamp": object})
    frame.loc[1, "timestamp"] = None
    with pytest.raises(DataError, match=r"'a': missing timestamp at data row 1"):
        series_from_frame(frame)
    frame.loc[1, "timestamp"] = "not a date"
    with pytest.raises(DataError, match=r"'a': unparseable 'not a date' at data row 1"):
        series_from_frame(frame)


def test_too_short_named() -> None:
    with pytest.raises(DataError, match=r"'b': 2 observations, fewer than min_length=3"):
        series_from_frame(long_frame({"a": [1, 2, 3], "b": [1, 2]}), min_length=3)


def test_duplicate_wide_ids_refused() -> None:
    with pytest.raises(DataError, match="duplicate series id 'S1'"):
        series_from_frame(pd.DataFrame({"V1": ["S1", "S1"], "V2": [1.0, 2.0]}))


# ---------------------------------------------------------------------------- missing values


def test_short_gap_interpolated_linearly() -> None:
    s = series_from_frame(long_frame({"a": [0.0, None, None, None, 8.0]}))
    np.testing.assert_allclose(s["a"], [0, 2, 4, 6, 8])


def test_long_gap_cuts_the_series_and_is_reported_with_its_start() -> None:
    # A long gap used to stop training ("longer than max_gap=3") while the service forecast the
    # same history from the points after it: both now cut it there.
    frame = long_frame({"a": [0.0, 1.0, None, None, None, None, 5.0, 6.0, None, 8.0]})
    s = series_from_frame(frame)
    np.testing.assert_array_equal(s["a"], [5.0, 6.0, 7.0, 8.0])  # the short gap filled
    np.testing.assert_array_equal(s.before_gaps["a"][0], [0.0, 1.0])
    assert s.end == [pd.Timestamp("2024-01-01 09:00")]
    assert s.gaps == [HandledGap("a", "2024-01-01 02:00:00", 4, cut=True),
                      HandledGap("a", "2024-01-01 08:00:00", 1, cut=False)]  # fmt: skip
    summary = s.gap_summary()
    assert summary is not None and "1 interpolated, 1 longer than max_gap cut" in summary
    assert "'a' at 2024-01-01 02:00:00: 4 cut; 'a' at 2024-01-01 08:00:00: 1 filled" in summary
    assert series_from_frame(frame, max_gap=4)["a"].size == 10
    assert series_from_frame(frame, max_gap=4).gap_summary().startswith("2 gap(s)")  # type: ignore[union-attr]
    cut = series_from_frame(long_frame({"a": [0.0, None, 2.0]}), max_gap=0)
    assert cut["a"].tolist() == [2.0] and cut.gaps[0].cut
    assert series_from_frame(long_frame({"a": [1.0, 2.0]})).gap_summary() is None


def test_wide_gap_cuts_the_series_and_is_reported_with_its_index() -> None:
    frame = pd.DataFrame([["S1", 1.0, *[np.nan] * 4, 6.0]], columns=[f"V{i}" for i in range(1, 8)])
    s = series_from_frame(frame)
    assert s["S1"].tolist() == [6.0] and s.before_gaps["S1"][0].tolist() == [1.0]
    assert s.gaps == [HandledGap("S1", "index 1 (column 'V3')", 4, cut=True)]
    assert s.select(["S1"]).before_gaps == s.before_gaps


def test_fill_gaps_still_refuses_a_long_gap() -> None:
    with pytest.raises(DataError, match="gap of 4 missing values starting at 1"):
        fill_gaps([0.0, None, None, None, None, 5.0])


def test_leading_trailing_missing_trimmed_in_long_format() -> None:
    s = series_from_frame(long_frame({"a": [None, 1.0, 2.0, 3.0, None]}))
    np.testing.assert_array_equal(s["a"], [1, 2, 3])
    assert s.end == [pd.Timestamp("2024-01-01 03:00")]


def test_skipped_timestamp_is_a_gap() -> None:
    frame = long_frame({"a": [0.0, 1.0, 2.0, 3.0, 4.0], "b": [0.0, 1.0, 2.0, 3.0, 4.0]})
    s = series_from_frame(frame.drop(index=[7, 8]))  # b misses 02:00 and 03:00
    np.testing.assert_allclose(s["b"], [0, 1, 2, 3, 4])
    cut = series_from_frame(frame.drop(index=[7, 8]), max_gap=1)
    assert cut.gaps == [HandledGap("b", "2024-01-01 02:00:00", 2, cut=True)]
    np.testing.assert_array_equal(cut["b"], [4.0])
    # Alone, b is not inferable: its most common step gives the grid.
    alone = series_from_frame(frame.drop(index=[0, 1, 2, 3, 4, 7]))
    assert alone.freq == "h"
    np.testing.assert_allclose(alone["b"], [0, 1, 2, 3, 4])


# ---------------------------------------------------------------------------- frequency


@pytest.mark.parametrize("freq", ["h", "D", "MS", "15min"])
def test_frequency_inferred(freq: str) -> None:
    assert series_from_frame(long_frame({"a": [1, 2, 3, 4], "b": [1, 2, 3]}, freq)).freq == freq


def test_short_series_take_the_common_frequency() -> None:
    assert series_from_frame(long_frame({"a": [1, 2, 3, 4], "b": [1, 2]}, "D")).freq == "D"


def test_inconsistent_frequencies_refused() -> None:
    frame = pd.concat([long_frame({"a": [1, 2, 3]}, "h"), long_frame({"b": [1, 2, 3]}, "D")])
    with pytest.raises(DataError, match=r"series 'a' is 'h', series 'b' is 'D'"):
        series_from_frame(frame)


def test_irregular_timestamps_refused_with_position() -> None:
    times = pd.to_datetime(["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 01:30"])
    times = times.append(pd.date_range("2024-01-01 02:00", periods=4, freq="h"))
    frame = pd.DataFrame({"id": "a", "timestamp": times, "value": np.arange(7.0)})
    with pytest.raises(DataError, match=r"'a': timestamp 2024-01-01 01:30:00 is off the 'h' grid"):
        series_from_frame(frame)


def test_explicit_frequency_overrides_inference() -> None:
    s = series_from_frame(long_frame({"a": [1.0, 2.0, 3.0]}), freq="30min")
    assert s.freq == "30min"
    np.testing.assert_allclose(s["a"], [1, 1.5, 2, 2.5, 3])  # half-hours are gaps of 1
    with pytest.raises(DataError, match="invalid frequency"):
        series_from_frame(long_frame({"a": [1.0, 2.0]}), freq="fortnightly")


# ---------------------------------------------------------------------------- SeriesSet


def test_seriesset_select_iterate() -> None:
    ends = [pd.Timestamp(f"2024-01-0{i}") for i in (1, 2, 3)]
    s = SeriesSet(["a", "b", "c"], [[1.0], [2.0, 3.0], [4.0]], "D", ends)
    assert len(s) == 3
    assert [sid for sid, _ in s] == ["a", "b", "c"]
    sub = s.select(["c", "a"])
    assert sub.ids == ["c", "a"] and sub.end == [ends[2], ends[0]]
    assert s.select([1]).values[0].tolist() == [2.0, 3.0]
    assert s.select(slice(1, None)).ids == ["b", "c"]
    assert s.lengths.tolist() == [1, 2, 1]
    assert s[1].tolist() == s["b"].tolist() == [2.0, 3.0]
    with pytest.raises(DataError, match="duplicate"):
        SeriesSet(["a", "a"], [[1.0], [2.0]])


# ---------------------------------------------------------------------------- windows


def test_pad_series_right_pads_with_zeros() -> None:
    padded, lengths = pad_series([np.array([1.0, 2.0, 3.0]), np.array([4.0])])
    assert padded.dtype == np.float32
    np.testing.assert_array_equal(padded, [[1, 2, 3], [4, 0, 0]])
    np.testing.assert_array_equal(lengths, [3, 1])
    empty, none = pad_series([])
    assert empty.shape == (0, 0) and none.size == 0


def brute_force_windows(lengths: list[int], span: int, stride: int) -> list[tuple[int, int]]:
    """Reference: windows aligned to each series' end, stepping back by ``stride``."""
    out = []
    for i, n in enumerate(lengths):
        out += [(i, s) for s in sorted(range(n - span, -1, -stride))]
    return out


lengths_st = st.lists(st.integers(0, 40), min_size=1, max_size=8)


@given(lengths_st, st.integers(1, 10), st.integers(0, 6), st.integers(1, 5))
def test_window_index_matches_brute_force(
    lengths: list[int], input_size: int, horizon: int, stride: int
) -> None:
    series_idx, start = window_index(lengths, input_size, horizon, stride=stride)
    span = input_size + horizon
    assert list(zip(series_idx.tolist(), start.tolist(), strict=True)) == brute_force_windows(
        lengths, span, stride
    )
    n = np.asarray(lengths)
    expected_count = np.where(n >= span, (n - span) // stride + 1, 0).sum()
    assert series_idx.size == expected_count
    if series_idx.size:
        assert start.min() >= 0
        assert (start + span <= n[series_idx]).all()  # no window crosses its series' end


@given(lengths_st, st.integers(1, 6), st.integers(0, 4), st.integers(1, 3))
def test_gather_windows_equals_slices(
    lengths: list[int], input_size: int, horizon: int, stride: int
) -> None:
    values = [np.arange(n, dtype=np.float64) + 1000 * i for i, n in enumerate(lengths)]
    padded, lens = pad_series(values, np.float64)
    series_idx, start = window_index(lens, input_size, horizon, stride=stride)
    span = input_size + horizon
    windows = gather_windows(padded, series_idx, start, span)
    assert windows.shape == (series_idx.size, span)
    for w, i, s in zip(windows, series_idx, start, strict=True):
        np.testing.assert_array_equal(w, values[i][s : s + span])


@settings(max_examples=10, deadline=None)  # each new shape is a fresh jit compile
@given(lengths_st, st.integers(1, 6), st.integers(1, 4))
def test_gather_windows_under_jit_equals_numpy(
    lengths: list[int], input_size: int, horizon: int
) -> None:
    rng = np.random.default_rng(0)
    padded, lens = pad_series([rng.normal(size=n) for n in lengths])
    series_idx, start = window_index(lens, input_size, horizon)
    span = input_size + horizon
    jitted = jax.jit(gather_windows, static_argnums=3)
    out = jitted(jnp.asarray(padded), jnp.asarray(series_idx), jnp.asarray(start), span)
    assert isinstance(out, jax.Array)
    np.testing.assert_array_equal(np.asarray(out), gather_windows(padded, series_idx, start, span))


def test_gather_windows_is_one_gather_under_jit() -> None:
    padded, lens = pad_series([np.arange(10.0), np.arange(7.0)])
    series_idx, start = window_index(lens, 3, 2)
    jaxpr = jax.make_jaxpr(gather_windows, static_argnums=3)(padded, series_idx, start, 5)
    assert [e.primitive.name for e in jaxpr.jaxpr.eqns].count("gather") == 1


@given(
    st.lists(st.integers(1, 30), min_size=1, max_size=6),
    st.integers(1, 5),
    st.integers(1, 4),
    st.integers(1, 4),
)
def test_split_keeps_validation_targets_out_of_training_windows(
    extra: list[int], input_size: int, horizon: int, stride: int
) -> None:
    # Every value encodes (series, time) so leaked targets would be recognisable.
    values = [1000.0 * i + np.arange(horizon + n) for i, n in enumerate(extra)]
    series = SeriesSet([f"s{i}" for i in range(len(values))], values)
    train, targets = train_val_split(series, horizon)
    for v, t in zip(values, targets, strict=True):
        np.testing.assert_array_equal(t, v[-horizon:])
    padded, lens = pad_series(train.values, np.float64)
    series_idx, start = window_index(lens, input_size, horizon, stride=stride)
    windows = gather_windows(padded, series_idx, start, input_size + horizon)
    time_in_series = windows % 1000
    cutoff = np.asarray([v.size - horizon for v in values])[series_idx]
    assert (time_in_series < cutoff[:, None]).all()


def test_split_moves_end_back_and_refuses_short_series() -> None:
    s = series_from_frame(long_frame({"a": [1.0, 2.0, 3.0, 4.0, 5.0]}))
    train, targets = train_val_split(s, 2)
    np.testing.assert_array_equal(train["a"], [1, 2, 3])
    np.testing.assert_array_equal(targets, [[4, 5]])
    assert train.end == [pd.Timestamp("2024-01-01 02:00")]
    with pytest.raises(DataError, match="'a': 5 observations, fewer than min_length=6"):
        train_val_split(s, 5)


def test_last_windows() -> None:
    s = SeriesSet(["a", "b"], [np.arange(6.0), np.arange(3.0) + 10])
    np.testing.assert_array_equal(last_windows(s, 3), [[3, 4, 5], [10, 11, 12]])
    assert last_windows(s.values, 2).dtype == np.float32
    with pytest.raises(DataError, match="series 'b': 3 points, fewer than input_size=4"):
        last_windows(s, 4)
