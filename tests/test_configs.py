"""forecaster.configs: the one JSON-type check and the rule that derives defaults."""

from __future__ import annotations

import pytest

from forecaster.configs import (
    NAIVE_SHRINKS,
    ConfigError,
    ModelConfig,
    TrainConfig,
    build_configs,
    calendar,
    cost_budget,
    step_candidates,
    step_cost,
    training_cost,
    typed_fields,
)


@pytest.mark.parametrize(
    ("freq", "seasons", "horizon"),
    [
        ("h", (24, 168), 48),
        ("30min", (48, 336), 96),
        ("15min", (96, 672), 192),
        ("min", (60, 1440), 120),
        ("D", (7,), 14),
        ("B", (5,), 10),
        ("W-SUN", (52,), 13),
        ("MS", (12,), 18),
        ("ME", (12,), 18),
        ("QS-OCT", (4,), 8),
        ("QE", (4,), 8),
        ("YS", (1,), 6),
        ("YE-DEC", (1,), 6),
        ("2h", (12, 84), 24),
        ("2MS", (6,), 9),
        # Whole days and weeks however spelled (gaps hide the weekday from pandas' inference).
        ("24h", (7,), 14),
        ("7D", (52,), 13),
        ("168h", (52,), 13),
        ("14D", (26,), 7),
        (None, (1,), 12),
    ],
)
def test_the_calendar_of_each_frequency(freq: str | None, seasons: tuple, horizon: int) -> None:
    cal = calendar(freq)
    assert (cal.seasons, cal.horizon) == (seasons, horizon)


@pytest.mark.parametrize(
    ("freq", "lengths", "expected"),
    [
        # (input_size, step, horizon, min_input, seasonality)
        ("h", [700] * 4, (168, 24, 48, 168, 24)),  # the M4 Hourly recipe
        ("D", [400] * 4, (28, 7, 14, 28, 7)),
        ("W", [300] * 4, (52, 1, 13, 52, 52)),  # in batches of 64 (the cost budget)
        ("MS", [48, 78, 115, 116, 126], (36, 12, 18, 24, 12)),  # short series read masked
        ("QS", [16, 36, 44, 44, 64], (16, 4, 8, 8, 4)),
        ("YS", [14, 15, 19, 30, 41], (7, 1, 6, 6, 1)),  # the window shrinks to the data
    ],
)
def test_defaults_follow_the_frequency_and_the_data(
    freq: str, lengths: list, expected: tuple
) -> None:
    model, train = build_configs(freq=freq, lengths=lengths)
    got = (model.input_size, model.step, model.horizon, model.min_input, train.seasonality)
    assert got == expected
    assert (model.cell, model.ensemble) == ("lstm", 5)


# M4 Hourly's training lengths: 169 series of 700 points and 245 of 960.
M4_HOURLY = [700] * 169 + [960] * 245


def test_hourly_defaults_are_the_shipped_recipe() -> None:
    model, train = build_configs({"horizon": 48}, freq="h", lengths=M4_HOURLY)
    assert model == ModelConfig(cell="lstm", hidden=128, input_size=168, horizon=48, step=24,
                                ensemble=5)  # fmt: skip
    assert train == TrainConfig(steps=12_000, eval_every=1_000, seasonality=24)
    assert (train.ema, train.refit, train.patience) == (0.0, False, 0)


def test_few_windows_of_short_series_get_a_smaller_averaged_model_refit_on_whole_histories() -> (
    None
):
    lengths = [14, 15, 19, 30, 41] * 129  # M3 Yearly's size: about 4,000 windows
    model, train = build_configs(freq="YS", lengths=lengths)
    assert (model.hidden, train.ema, train.refit) == (64, 0.99, True)
    # Early stopping where it saves time without losing accuracy (measured on M3: configs.py).
    assert train.patience == 2
    monthly, monthly_train = build_configs(freq="MS", lengths=[48] + [115] * 1_000)  # M3's size
    assert monthly.masked and (monthly.hidden, monthly_train.refit) == (64, True)
    many, many_train = build_configs(freq="MS", lengths=[48] + [115] * 3_000)  # 168,000 windows
    assert many.masked and (many.hidden, many_train.ema, many_train.refit) == (128, 0.0, False)
    full, full_train = build_configs(freq="YS", lengths=[63] * 174)  # few, but full windows
    assert not full.masked and (full.hidden, full_train.refit) == (128, False)
    given, given_train = build_configs({"hidden": 32}, {"refit": False}, freq="YS", lengths=lengths)
    assert (given.hidden, given_train.ema, given_train.refit) == (32, 0.99, False)


def test_training_length_follows_the_number_of_windows() -> None:
    _, small = build_configs(freq="YS", lengths=[20] * 100)
    _, large = build_configs(freq="h", lengths=[900] * 400)
    assert (small.steps, small.eval_every) == (1_000, 83)
    assert (large.steps, large.eval_every) == (12_000, 1_000)
    _, given = build_configs({}, {"steps": 200}, freq="h", lengths=[900] * 4)
    assert (given.steps, given.eval_every) == (200, 16)


def test_given_seasonality_drives_step_and_window() -> None:
    model, train = build_configs({}, {"seasonality": 12}, freq="h")
    assert (model.step, model.input_size, train.seasonality) == (12, 96, 12)


def test_a_window_that_is_not_whole_seasons_is_read_point_by_point() -> None:
    model, _ = build_configs({"input_size": 50}, freq="h")
    assert (model.step, model.input_size) == (1, 50)


def test_given_settings_win() -> None:
    model, train = build_configs({"step": 6, "input_size": 30, "cell": "gru"}, {"steps": 3})
    assert (model.step, model.input_size, model.cell, train.steps) == (6, 30, "gru", 3)


@pytest.mark.parametrize(
    ("model", "train", "message"),
    [
        ({"cell": "transformer"}, {}, "cell must be lstm, gru or rnn"),
        ({"input_size": 50, "step": 24}, {}, "not a whole number of steps"),
        ({"hidden": "8"}, {}, "`hidden` has the wrong type"),
        ({"hidden": True}, {}, "`hidden` has the wrong type"),
        ({"hiden": 8}, {}, "unknown key"),
        ({}, {"learning_rate": "fast"}, "`learning_rate` has the wrong type"),
        ({"quantiles": [0.1, "x"]}, {}, "`quantiles` has the wrong type"),
        ({}, {"ema": 1.0}, "ema must be in"),
        ({}, {"theta_weights": [0.0, 2.0]}, "theta_weights must lie in"),
        ({}, {"theta_weights": []}, "theta_weights must lie in"),
    ],
)
def test_bad_settings_name_the_setting(model: dict, train: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        build_configs(model, train, "the file")
    assert str(info.value).startswith("the file")


def test_typed_fields_converts_json_kinds() -> None:
    out = typed_fields(ModelConfig, {"dropout": 0, "quantiles": [0.9, 0.1]})
    assert out == {"dropout": 0.0, "quantiles": (0.9, 0.1)}
    assert isinstance(out["dropout"], float)
    assert typed_fields(TrainConfig, {"learning_rate": 1}) == {"learning_rate": 1.0}


# M4 Weekly's shape: 359 series of 80 to 2,600 weekly points, median about 930.
M4_WEEKLY = [80, 93, 150, 260, 400, 560, 700, 850, 930, 930, 1_000, 1_100, 1_300, 1_600, 2_000,
             2_300, 2_600] * 21 + [930, 930]  # fmt: skip
# Every common frequency, a single series of 10,000 points.
SINGLE_FREQS = ("h", "30min", "15min", "min", "D", "B", "W", "MS", "QS", "YS", None)


def test_a_single_series_of_10000_points_trains_within_three_minutes_at_any_frequency() -> None:
    # 200 CPU-seconds: about 100 s on the 2-core CPU, 3 minutes and 20 s on one free core.
    for freq in SINGLE_FREQS:
        for n in (300, 2_232, 10_000):
            model, train = build_configs(freq=freq, lengths=[n])
            assert training_cost(model, train) <= cost_budget([n]) <= 200, (freq, n)


def test_weekly_data_trains_in_smaller_batches_then_coarser_steps_within_the_budget() -> None:
    co2, co2_train = build_configs(freq="W-SAT", lengths=[2_232])
    # A point a step as before, 64 windows a batch instead of 256, the same 1,000 steps.
    assert (co2.input_size, co2.step, co2_train.batch_size, co2_train.steps) == (52, 1, 64, 1_000)
    as_before = build_configs({}, {"batch_size": 256}, freq="W-SAT", lengths=[2_232])
    assert as_before[0].step == 4  # a given batch is kept: the step gives way
    full = build_configs({"step": 1}, {"batch_size": 256}, freq="W-SAT", lengths=[2_232])
    assert training_cost(*full) > 2 * cost_budget([2_232])
    long, long_train = build_configs(freq="W", lengths=[10_000])
    assert (long.step, long_train.batch_size) == (2, 64)  # 26 recurrent steps, not 52
    m4, m4_train = build_configs(freq="W", lengths=M4_WEEKLY)
    assert len(M4_WEEKLY) == 359 and m4_train.steps == 12_000
    hourly = training_cost(*build_configs({"horizon": 48}, freq="h", lengths=M4_HOURLY))
    # Under the M4 Hourly recipe's cost, and 10 minutes on the two cores.
    assert training_cost(m4, m4_train) <= min(hourly, 2 * 600)


def test_data_within_the_budget_keep_the_seasonal_rule() -> None:
    """M3's and M4 Hourly's shapes fit the budget, so their settings are the ones benchmarked."""
    shapes = [("h", M4_HOURLY), ("YS", [14, 15, 19, 30, 41] * 129),
              ("MS", [48] + [115] * 1_000), ("QS", [16, 36, 44, 44, 64] * 150),
              (None, [63] * 174)]  # fmt: skip
    for freq, lengths in shapes:
        horizon = {"horizon": 8} if freq is None else {}
        model, train = build_configs(horizon, freq=freq, lengths=lengths)
        assert training_cost(model, train) <= cost_budget(lengths), freq
    assert build_configs(freq="YS", lengths=[14, 15, 19, 30, 41] * 129)[0].step == 1
    assert build_configs({"horizon": 8}, lengths=[63] * 174)[0].step == 1  # M3 Other


def test_the_cost_follows_the_recurrent_steps_and_their_width() -> None:
    recipe = ModelConfig(cell="lstm", hidden=128, input_size=168, horizon=48, step=24, ensemble=5)
    weekly = ModelConfig(cell="lstm", hidden=128, input_size=52, horizon=13, step=1, ensemble=5)
    # Measured on the 2-core CPU: 56 and 372 CPU-ms a step (benchmarks/own_data.py's notes).
    assert 0.045 < step_cost(recipe, 256) < 0.07 and 0.3 < step_cost(weekly, 256) < 0.45
    assert step_cost(weekly, 64) == pytest.approx(step_cost(weekly, 256) / 4)
    once, twice = TrainConfig(steps=1_000), TrainConfig(steps=1_000, refit=True)
    assert training_cost(weekly, twice) - training_cost(weekly, once) == pytest.approx(
        1_000 * step_cost(weekly, 256)
    )


def test_step_candidates_never_straddle_part_of_a_season() -> None:
    assert step_candidates(52, 52) == [1, 2, 4, 13, 26]
    minutes = step_candidates(1_440, 60)  # a day of minutes: parts of the hour, or whole hours
    assert minutes[:12] == [1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60]
    assert minutes[12:] == [120, 180, 240, 360, 480, 720]  # 72, 96, 144: no
    assert step_candidates(7, 1) == [1]
    assert step_candidates(24, 1) == [1, 2, 3, 4, 6, 8, 12]


def test_a_given_step_is_kept_over_the_budget_and_else_the_cheapest_is_taken() -> None:
    given, _ = build_configs({"step": 1}, freq="W", lengths=[10_000])
    assert given.step == 1
    huge, huge_train = build_configs({"ensemble": 64, "hidden": 512}, freq="W", lengths=[10_000])
    assert (huge.step, huge_train.batch_size) == (26, 64)
    assert training_cost(huge, huge_train) > cost_budget([10_000])
    no_data, _ = build_configs(freq="W")  # nothing to weigh the cost against
    assert no_data.step == 1


def test_the_summary_line_says_when_the_budget_chose_smaller_batches() -> None:
    from forecaster.cli import build_parser
    from forecaster.cli.train import choices

    args = build_parser().parse_args(["train", "--data", "co2.csv", "--out", "m"])
    co2 = build_configs(freq="W-SAT", lengths=[2_232])
    assert choices(*co2, args).endswith(
        "5 x lstm of 128 units, batches of 64 (derived from the data)"
    )
    hourly = build_configs({"horizon": 48}, freq="h", lengths=M4_HOURLY)
    assert "batches of" not in choices(*hourly, args)


def test_the_pull_toward_naive2_is_tried_on_short_series_without_a_season() -> None:
    yearly = [14, 15, 19, 30, 41] * 129  # M3 Yearly's lengths: some read masked
    assert build_configs(freq="YS", lengths=yearly)[1].naive_shrinks == NAIVE_SHRINKS
    no_freq = build_configs({"horizon": 6}, lengths=[14, 20, 30] * 50)[1]
    assert no_freq.naive_shrinks == NAIVE_SHRINKS
    quarterly = [24, 30, 44, 72] * 189  # a season: the hold-out lost with the pull
    assert build_configs(freq="QS", lengths=quarterly)[1].naive_shrinks == (0.0,)
    assert build_configs(freq="YS", lengths=[300])[1].naive_shrinks == (0.0,)  # whole windows
    assert build_configs(freq="h", lengths=[900] * 4)[1].naive_shrinks == (0.0,)
    assert TrainConfig().naive_shrinks == (0.0,)
    given = build_configs({}, {"naive_shrinks": [0, 3]}, freq="h", lengths=[900] * 4)[1]
    assert given.naive_shrinks == (0.0, 3.0)
