"""forecaster.configs: the one JSON-type check and the rule that derives defaults."""

from __future__ import annotations

import pytest

from forecaster.configs import (
    ConfigError,
    ModelConfig,
    TrainConfig,
    build_configs,
    typed_fields,
)


def test_defaults_follow_the_seasonality() -> None:
    model, train = build_configs({}, {"seasonality": 12})
    assert (model.step, model.input_size, train.seasonality) == (12, 84, 12)
    model, train = build_configs()
    assert (model.step, model.input_size, train.seasonality) == (24, 168, 24)


def test_a_window_that_is_not_whole_seasons_is_read_point_by_point() -> None:
    model, _ = build_configs({"input_size": 50})
    assert (model.step, model.input_size) == (1, 50)


def test_given_settings_win() -> None:
    model, train = build_configs({"step": 6, "input_size": 30, "cell": "lstm"}, {"steps": 3})
    assert (model.step, model.input_size, model.cell, train.steps) == (6, 30, "lstm", 3)


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
