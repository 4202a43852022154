"""Files as users have them (issue 34, item 3): the layout decided from the content and said,
one series without an id column, a series per column, dates day first or month first, and the
same reading options for every command (forecaster/data.py, forecaster/sources.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecaster.cli import build_parser, main
from forecaster.data import DataError, load_series, series_from_frame
from forecaster.monitoring.actuals import read_actuals
from forecaster.retrain.jobs import job_from_settings
from forecaster.sources import SOURCE_OPTIONS, DataSource

DATA = Path(__file__).parent / "data"
MONTHS = pd.date_range("1980-01-01", periods=30, freq="MS")


def sales(n: int = 30, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(100 + 10 * np.sin(np.arange(n) * 2 * np.pi / 12) + rng.normal(0, 1, n), 2)


def test_a_long_file_with_other_column_names_is_read_long_and_says_so() -> None:
    frame = pd.DataFrame(
        {
            "store": np.repeat(["north", "south"], 30),
            "date": np.tile(MONTHS.strftime("%Y-%m-%d"), 2),
            "sales": np.r_[sales(), sales(seed=1)],
        }
    )
    series = series_from_frame(frame)
    assert series.ids == ["north", "south"] and series.freq == "MS"
    np.testing.assert_array_equal(series["south"], sales(seed=1))
    assert series.reading.startswith("long (ids 'store', timestamps 'date', values 'sales')")
    assert "2 series, frequency MS" in series.reading


def test_one_series_needs_no_id_column(tmp_path: Path) -> None:
    path = tmp_path / "co2.csv"
    pd.DataFrame({"date": MONTHS.strftime("%Y-%m-%d"), "co2": sales()}).to_csv(path, index=False)
    series = load_series(path)
    assert series.ids == ["co2"] and series.freq == "MS"
    np.testing.assert_array_equal(series["co2"], sales())
    assert "no id column: one series 'co2'" in series.reading


def test_several_numeric_columns_without_ids_are_a_series_each() -> None:
    frame = pd.DataFrame({"quarter": MONTHS[::3][:10], "gdp": sales(10), "cpi": sales(10, 1)})
    frame.loc[0, "cpi"] = np.nan  # starts a quarter later
    series = series_from_frame(frame)
    assert series.ids == ["gdp", "cpi"] and series.freq == "QS-JAN"
    assert series.lengths.tolist() == [10, 9]
    assert "a series per column ('gdp', 'cpi')" in series.reading


def test_repeated_timestamps_without_an_id_column_ask_for_one() -> None:
    frame = pd.DataFrame(
        {"date": np.tile(MONTHS.strftime("%Y-%m-%d"), 2), "store": 1, "sales": sales(60)}
    )
    with pytest.raises(DataError, match=r"timestamps in 'date' repeat.*give id_col \(--id-col\)"):
        series_from_frame(frame)
    series = series_from_frame(frame.assign(store=np.repeat([1, 2], 30)), id_col="store")
    assert series.ids == ["1", "2"]


def test_two_text_columns_ask_which_names_the_series() -> None:
    frame = pd.DataFrame(
        {"region": "x", "store": "a", "date": MONTHS.strftime("%Y-%m-%d"), "sales": sales()}
    )
    with pytest.raises(DataError, match=r"among \['region', 'store'\]; give id_col"):
        series_from_frame(frame)


def day_first(dates: pd.DatetimeIndex, values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"date": dates.strftime("%d/%m/%Y"), "value": values})


def test_ambiguous_day_first_dates_name_both_readings() -> None:
    """Monthly dates written day first: month first they are days (Jan 1 ... Jan 12, then a
    gap of 354 days); both readings fit, so the file says neither."""
    frame = day_first(MONTHS, sales())
    with pytest.raises(DataError) as err:
        series_from_frame(frame)
    message = str(err.value)
    assert "'01/02/1980' is 1980-01-02 month first and 1980-02-01 day first" in message
    assert "--dayfirst or --no-dayfirst" in message and "gap" not in message
    for how in ({"dayfirst": True}, {"date_format": "%d/%m/%Y"}):
        series = series_from_frame(frame, **how)
        assert series.freq == "MS" and series.lengths.tolist() == [30]
        np.testing.assert_array_equal(series.values[0], sales())
        assert series.end == [MONTHS[-1]]
    # As asked: days, with the year's gaps, which cut the series (training's gap policy).
    series = series_from_frame(frame, dayfirst=False)
    assert series.freq == "D" and [g.missing for g in series.gaps] == [354, 353]
    assert "354 cut" in series.gap_summary()


def test_dates_that_only_read_day_first_are_read_so_and_said() -> None:
    days = pd.date_range("1980-01-01", periods=40, freq="D")
    series = series_from_frame(day_first(days, sales(40)))
    assert series.freq == "D" and series.end == [days[-1]]
    assert "dates day first" in series.reading


def test_year_first_and_iso_dates_are_never_ambiguous() -> None:
    for spelled in (MONTHS.strftime("%Y/%m/%d"), MONTHS.strftime("%Y-%m-%d")):
        series = series_from_frame(pd.DataFrame({"date": spelled, "value": sales()}))
        assert series.freq == "MS" and series.end == [MONTHS[-1]]


def test_whole_number_years_are_a_yearly_index() -> None:
    frame = pd.DataFrame({"YEAR": np.arange(1700, 1730), "SUNACTIVITY": sales()})
    series = series_from_frame(frame, time_col="YEAR")
    assert series.ids == ["SUNACTIVITY"] and series.freq.startswith("YS")


def test_wide_files_are_still_wide_and_failures_say_why(tmp_path: Path) -> None:
    series = load_series(DATA / "wide_m4.csv")
    assert series.ids == ["X1", "X2", "X3"]
    assert series.reading.startswith("wide (a row per series, ids in the first column; no column")
    # A long file whose dates cannot be read falls back to wide: the error says so.
    frame = pd.DataFrame({"store": ["a", "a"], "when": ["soon", "later"], "sales": [1.0, 2.0]})
    with pytest.raises(DataError, match=r"read as wide: no column of dates.*--time-col"):
        series_from_frame(frame)


def test_an_unknown_frequency_lists_the_aliases_once() -> None:
    frame = pd.DataFrame({"date": MONTHS.strftime("%Y-%m-%d"), "value": sales()})
    with pytest.raises(DataError) as err:
        series_from_frame(frame, freq="monthly")
    message = str(err.value)
    assert message.count("invalid frequency") == 1 and "Failed to parse" not in message
    assert "for monthly data use 'MS'" in message and "h = hourly" in message


def test_every_command_that_reads_a_file_has_every_reading_option() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    commands = {
        "train": sub["train"],
        "evaluate": sub["evaluate"],
        "retrain": sub["retrain"],
        "actuals ingest": next(
            a for a in sub["actuals"]._actions if a.dest == "actuals_command"
        ).choices["ingest"],
    }
    for name, command in commands.items():
        flags = {s for a in command._actions for s in a.option_strings}
        for option in SOURCE_OPTIONS:
            assert "--" + option.replace("_", "-") in flags, (name, option)
    assert {"date_format", "dayfirst"} <= set(SOURCE_OPTIONS)


def test_retrain_config_files_take_the_new_reading_options() -> None:
    job = job_from_settings(
        {"name": "m", "data": "x.csv", "registry": "r", "dayfirst": True, "date_format": "%d.%m"}
    )
    assert job.data == DataSource("x.csv", dayfirst=True, date_format="%d.%m")


def test_actuals_read_day_first_dates_and_files_without_ids(tmp_path: Path) -> None:
    path = tmp_path / "actuals.csv"
    day_first(MONTHS[:3], [1.0, 2.0, 3.0]).rename(columns={"value": "load"}).to_csv(
        path, index=False
    )
    with pytest.raises(DataError, match="read two ways"):
        read_actuals(DataSource(str(path)))
    [(sid, times, values)] = read_actuals(DataSource(str(path), dayfirst=True))
    assert sid == "load" and values == [1.0, 2.0, 3.0]
    assert times.tolist() == MONTHS[:3].to_numpy(dtype="datetime64[us]").tolist()


def test_train_says_how_it_read_the_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "co2.csv"
    months = pd.date_range("1980-01-01", periods=60, freq="MS")
    day_first(months, sales(60)).rename(columns={"value": "co2"}).to_csv(path, index=False)
    tiny = ["--hidden", "4", "--steps", "2", "--eval-every", "2", "--ensemble", "1",
            "--no-progress", "--out", str(tmp_path / "m")]  # fmt: skip
    assert main(["train", "--data", str(path), *tiny]) == 1
    assert "read two ways" in capsys.readouterr().err
    assert main(["train", "--data", str(path), "--dayfirst", *tiny]) == 0
    err = capsys.readouterr().err
    [line] = [x for x in err.splitlines() if x.startswith("forecaster train: data: ")]
    assert "long (no id column: one series 'co2', timestamps 'date'), dates day first" in line
    assert "1 series ('co2'), frequency MS" in line


@pytest.mark.parametrize(
    "how", [{}, {"dayfirst": True}, {"date_format": "%Y-%m-%d"}, {"freq": "MS"}]
)
def test_now_and_today_in_a_training_file_are_refused_naming_the_rows(how: dict) -> None:
    """pandas reads ``now`` and ``today`` as the clock, whatever the format: a file read
    twice would hold two histories (the actuals and the service refuse them too)."""
    frame = pd.DataFrame({"store": "north", "date": MONTHS.strftime("%Y-%m-%d"), "sales": sales()})
    frame.loc[[5, 12], "date"] = ["now", "today"]
    with pytest.raises(DataError) as err:
        series_from_frame(frame, **how)
    assert str(err.value) == (
        "timestamp column 'date', data rows 5, 12: 'now' is not a date (pandas reads it as the "
        "current time); write the time itself"
    )
    frame.loc[[5, 12], "date"] = MONTHS[[5, 12]].strftime("%Y-%m-%d")
    frame.loc[29, "date"] = "today"  # the last row, where the clock fits the order
    with pytest.raises(DataError, match="data row 29: 'today' is not a date"):
        series_from_frame(frame.drop(columns="store"), **how)


def test_train_refuses_now_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "co2.csv"
    dates = list(MONTHS.strftime("%Y-%m-%d"))
    pd.DataFrame({"date": [*dates[:-1], "now"], "co2": sales()}).to_csv(path, index=False)
    assert main(["train", "--data", str(path), "--out", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("timestamp column 'date', data row 29: 'now' is not a date (pandas "
                        "reads it as the current time); write the time itself")  # fmt: skip
    assert len(err.splitlines()) == 1 and not (tmp_path / "m").exists()
