"""forecaster.configs: the one JSON-type check and the rule that derives defaults."""

from __future__ import annotations

import pytest

from forecaster.configs import (
    ConfigError,
    ModelConfig,
    TrainConfig,
    build_configs,
    calendar,
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
        ("W", [300] * 4, (52, 1, 13, 52, 52)),
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
