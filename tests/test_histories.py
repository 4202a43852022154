"""Missing values in served histories (forecaster.histories): the training policy (trim the ends,
interpolate up to 3 in a row), long gaps cutting the history, and skipped grid points."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecaster import data
from forecaster.histories import Gap, GapTooLong, NoValues, clean_history, on_grid

nan = np.nan


def test_ends_are_trimmed_and_short_gaps_interpolated_as_in_training():
    values = np.array([nan, 1.0, nan, nan, nan, 5.0, 6.0, nan])
    cleaned = clean_history(values)
    np.testing.assert_array_equal(cleaned.values, [1, 2, 3, 4, 5, 6])
    assert (cleaned.filled, cleaned.last, cleaned.gap) == (3, 6, None)
    # The same values in a training file (wide format) load the same way.
    frame = pd.DataFrame([["a", *values]])
    np.testing.assert_array_equal(data.series_from_frame(frame, format="wide")["a"], cleaned.values)
    filled, first, count = data.fill_gaps(values)
    assert (filled.tolist(), first, count) == ([1, 2, 3, 4, 5, 6], 1, 3)


def test_a_long_gap_cuts_the_history_after_it():
    values = np.r_[1.0, 2.0, [nan] * 4, 3.0, nan, 5.0, 6.0]
    cleaned = clean_history(values, min_after_gap=4)
    np.testing.assert_array_equal(cleaned.values, [3, 4, 5, 6])
    assert cleaned.gap == Gap(before=1, after=6, missing=4) and cleaned.filled == 1
    with pytest.raises(GapTooLong) as e:
        clean_history(values, min_after_gap=5)
    assert (e.value.gap, e.value.points_after, e.value.needed) == (cleaned.gap, 4, 5)
    # The last long gap is the one that counts.
    twice = np.r_[1.0, [nan] * 5, 2.0, [nan] * 4, 3.0]
    assert clean_history(twice).gap == Gap(before=6, after=11, missing=4)


def test_only_missing_values_is_no_history():
    for values in ([nan], [nan, nan, nan]):
        with pytest.raises(NoValues):
            clean_history(np.array(values))


def test_skipped_grid_points_are_missing_points():
    grid, sent = on_grid([1.0, 2.0, 4.0, 5.0], [0, 1, 3, 4])
    np.testing.assert_array_equal(sent, [0, 1, -1, 2, 3])
    cleaned = clean_history(grid, sent=sent)
    np.testing.assert_array_equal(cleaned.values, [1, 2, 3, 4, 5])
    assert (cleaned.filled, cleaned.last) == (1, 3)


def test_a_null_beside_skipped_points_makes_one_run():
    # Sent: 1, null, 3 (at grid 0, 1, 2), then 7 at grid 6: grid 1 and 3..5 missing -> run of 4.
    positions = [0, 1, 2, 6, 7]
    grid, sent = on_grid([1.0, nan, nan, 7.0, 8.0], positions)
    cleaned = clean_history(grid, sent=sent, positions=positions)
    assert cleaned.gap == Gap(before=0, after=3, missing=5)
    np.testing.assert_array_equal(cleaned.values, [7, 8])


def test_stamps_years_apart_do_not_build_a_huge_grid():
    positions = [0, 1, 10**9, 10**9 + 1]
    grid, sent = on_grid([1.0, 2.0, 3.0, 4.0], positions)
    assert grid.size == 4 + 4  # the run of skipped points is kept at max_gap + 1
    cleaned = clean_history(grid, sent=sent, positions=positions)
    assert cleaned.gap == Gap(before=1, after=2, missing=10**9 - 2)
    np.testing.assert_array_equal(cleaned.values, [3, 4])
