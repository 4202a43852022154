"""Covariates: roles, calendar features, reading, training, saving, loading and predicting."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest

from forecaster import calibration, data
from forecaster import covariates as C
from forecaster.configs import ModelConfig, TrainConfig, build_configs
from forecaster.model import Forecaster, dummy_covariates, forward, init_params
from forecaster.predict import Predictor, sanity_problems
from forecaster.registry import load_model, save_model
from forecaster.train import fit

HOURS = 24 * 40
START = pd.Timestamp("2020-11-20")


def driven_frame(seed: int = 0, hours: int = HOURS) -> pd.DataFrame:
    """Two series whose value is 10 + 3 x + noise, x random and known ahead; a static region."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(START, periods=hours, freq="h")
    parts = []
    for sid, region in (("a", "north"), ("b", "south")):
        x = rng.uniform(0, 2, hours)
        load = rng.normal(0, 1, hours)
        y = 10 + 3 * x + rng.normal(0, 0.1, hours)
        parts.append(pd.DataFrame({"id": sid, "timestamp": times, "value": y, "x": x,
                                   "load": load, "region": region}))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def small_configs(series: data.SeriesSet, **train: object) -> tuple[ModelConfig, TrainConfig]:
    model = {"horizon": 24, "input_size": 48, "ensemble": 1, "hidden": 16}
    return build_configs(model, {"steps": 300, "batch_size": 64, **train}, freq=series.freq,
                         lengths=series.lengths)  # fmt: skip


# ------------------------------------------------------------------------------ calendar


def test_calendar_features_fit_the_frequency() -> None:
    assert C.calendar_for("h") == ("hour", "weekday", "yearday")
    assert C.calendar_for("15min") == ("hour", "weekday", "yearday")
    assert C.calendar_for("D") == ("weekday", "yearday")
    assert C.calendar_for("W-SUN") == ("yearday",)
    assert C.calendar_for("MS") == ("month",)
    assert C.calendar_for("QS-OCT") == ("month",)
    assert C.calendar_for("YS") == () and C.calendar_for(None) == ()


def test_calendar_features_are_sine_and_cosine_and_holidays_a_flag() -> None:
    times = pd.DatetimeIndex(["2020-12-24 06:00", "2020-12-25 00:00", "2020-12-25 18:00"])
    out = C.calendar_features(times, ("hour", "weekday"), "US")
    assert out.shape == (3, 5)
    np.testing.assert_allclose(out[0, :2], [1.0, 0.0], atol=1e-12)  # 06:00: a quarter day
    np.testing.assert_allclose(out[1, :2], [0.0, 1.0], atol=1e-12)  # midnight
    friday = 2 * np.pi * 4 / 7
    np.testing.assert_allclose(out[1, 2:4], [np.sin(friday), np.cos(friday)])
    assert out[:, 4].tolist() == [0.0, 1.0, 1.0]  # Christmas Day, all day
    with pytest.raises(C.CovariateError, match="unknown country code 'XX'"):
        C.calendar_features(times, (), "XX")


# ------------------------------------------------------------------------------ reading


def test_a_long_file_reads_its_covariates_by_role_aligned_with_the_values() -> None:
    frame = driven_frame(hours=60)
    series = data.series_from_frame(
        frame, future_covariates=["x"], past_covariates=["load"], static_covariates=["region"]
    )
    cov = series.covariates
    assert list(cov.future) == ["x"] and list(cov.past) == ["load"]
    assert cov.static == {"region": ["north", "south"]}
    a = frame[frame.id == "a"]
    np.testing.assert_array_equal(cov.future["x"][0], a.x.to_numpy())
    np.testing.assert_array_equal(cov.past["load"][0], a.load.to_numpy())
    picked = series.select(["b"])
    assert picked.covariates.static == {"region": ["south"]}
    train, _ = data.train_val_split(series, 10)
    assert len(train.covariates.future["x"][1]) == len(train.values[1]) == 50


def test_a_missing_covariate_point_follows_the_target_s_gap_policy() -> None:
    frame = driven_frame(hours=60)
    frame.loc[5, "x"] = np.nan  # series a: short gap, interpolated
    frame.loc[30:39, "x"] = np.nan  # series a: a long gap cuts the series after it
    series = data.series_from_frame(frame, future_covariates=["x"], max_gap=3)
    x = series.covariates.future["x"][0]
    assert len(x) == len(series.values[0]) == 20  # the points after the long gap
    assert np.isfinite(x).all()
    frame = driven_frame(hours=60)
    frame.loc[5, "x"] = np.nan  # series a: a short gap, interpolated as the target's would be
    short = data.series_from_frame(frame, future_covariates=["x"], max_gap=3)
    assert len(short.covariates.future["x"][0]) == 60
    assert short.covariates.future["x"][0][5] == pytest.approx((frame.x[4] + frame.x[6]) / 2)
    assert [(g.series, g.missing, g.cut) for g in short.gaps] == [("a", 1, False)]


@pytest.mark.parametrize(
    ("named", "message"),
    [
        ({"future_covariates": ["wind"]}, "future covariate column 'wind' is not in the file"),
        ({"past_covariates": ["region"]}, "past covariate column 'region' is not numeric"),
        ({"static_covariates": ["value"]}, "the value column 'value' cannot be a covariate"),
        ({"static_covariates": ["id"]}, "named twice or is the id, timestamp or value"),
    ],
)
def test_a_bad_covariate_column_is_an_error_naming_it(named: dict, message: str) -> None:
    with pytest.raises(data.DataError, match=message):
        data.series_from_frame(driven_frame(hours=30), **named)


def test_a_static_covariate_that_changes_within_a_series_is_refused() -> None:
    frame = driven_frame(hours=30)
    frame.loc[3, "region"] = "east"
    with pytest.raises(data.DataError, match="static covariate 'region': series 'a' holds"):
        data.series_from_frame(frame, static_covariates=["region"])


# ------------------------------------------------------------------------------ the network


def test_a_model_without_covariates_has_exactly_the_univariate_parameters() -> None:
    cfg = ModelConfig(input_size=48, horizon=12, ensemble=2, hidden=8)
    params = init_params(cfg)
    names = {"/".join(str(getattr(k, "key", k)) for k in path)
             for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]}  # fmt: skip
    assert not any("covariate" in n for n in names)
    assert "past_features" not in cfg.to_dict()


def test_each_horizon_step_reads_its_own_future_covariates() -> None:
    cfg = ModelConfig(input_size=48, horizon=12, ensemble=1, hidden=8, past_features=3,
                      future_features=2, static_features=1)  # fmt: skip
    params = init_params(cfg, seed=1)
    z = jax.random.normal(jax.random.key(0), (2, 48))
    cov = {k: jax.random.normal(jax.random.key(i + 1), v.shape)
           for i, (k, v) in enumerate(dummy_covariates(cfg, 2).items())}  # fmt: skip
    base = np.asarray(forward(cfg, params, z, None, cov))
    moved = dict(cov, future=cov["future"].at[:, 5].add(1.0))
    out = np.asarray(forward(cfg, params, z, None, moved))
    changed = np.abs(out - base).max(axis=(0, 2)) > 1e-6
    assert changed.tolist() == [t == 5 for t in range(12)]
    assert Forecaster(cfg).apply(
        {"params": params}, z[None], None, True, {k: v[None] for k, v in cov.items()}
    ).shape == (1, 2, 12, 1)


def test_an_ensemble_reads_covariates_in_every_member() -> None:
    # The recipe's five members: initialising them once failed (the dummy covariates had a
    # member axis of 1, not the ensemble's).
    cfg = ModelConfig(input_size=48, horizon=12, ensemble=3, hidden=8, past_features=3,
                      future_features=2, static_features=1)  # fmt: skip
    params = init_params(cfg, seed=1)
    kernel = params["members"]["covariate_head"]["kernel"]
    assert kernel.shape[0] == 3 and not np.allclose(kernel[0], kernel[1])
    z = jax.random.normal(jax.random.key(0), (2, 48))
    cov = {k: jax.random.normal(jax.random.key(i + 1), v.shape)
           for i, (k, v) in enumerate(dummy_covariates(cfg, 2).items())}  # fmt: skip
    assert np.asarray(forward(cfg, params, z, None, cov)).shape == (2, 12, 1)


# ------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def trained() -> tuple[data.SeriesSet, object, object]:
    frame = driven_frame()
    series = data.series_from_frame(frame, future_covariates=["x"], static_covariates=["region"])
    model, train = small_configs(series, holidays="US")
    with_cov = fit(series, model, train, progress=False)
    plain = dataclasses.replace(train, holidays=None)  # (holidays alone turn the calendar on)
    alone = fit(data.series_from_frame(frame), model, plain, progress=False)
    return series, with_cov, alone


def test_a_known_future_driver_makes_the_covariate_model_much_better(trained) -> None:
    _, with_cov, alone = trained
    assert with_cov.covariates.names("future") == ["x"]
    assert with_cov.covariates.calendar == ("hour", "weekday", "yearday")
    assert with_cov.config.future_features == 1 + 6 + 1  # x, three sine/cosine pairs, holidays
    assert alone.config.past_features == 0 and not alone.covariates
    # y = 10 + 3x + noise with x uniform on [0, 2]: from its past alone the best forecast is the
    # mean (MAE about 1.5); knowing x, the noise (0.1).
    assert alone.val_metrics["mae"] > 1.0
    assert with_cov.val_metrics["mae"] < 0.4 * alone.val_metrics["mae"]


def test_a_covariate_model_is_calibrated_with_sane_coverage(trained) -> None:
    """Trained with the defaults, the covariate model's intervals are calibrated on backtests
    that carry the covariates (every origin of every series); on series it never saw, forecast
    from 10 origins each, its intervals cover about what their table can vouch for."""
    _, with_cov, _ = trained
    cal = with_cov.calibration
    # Two series: 20 origins each where their length allows, for 40 errors per step.
    assert cal is not None and cal.origins == 20 and len(cal.model.values) == 24
    unseen = data.series_from_frame(driven_frame(seed=7, hours=24 * 20), future_covariates=["x"],
                                    static_covariates=["region"])  # fmt: skip
    predictor = Predictor(with_cov.config, with_cov.params, covariates=with_cov.covariates)
    inside = {80: [], 95: []}
    for days in range(1, 11):
        cut = data.train_val_split(unseen, 24 * days)[0]
        ahead = {
            "x": [
                np.asarray(v)[len(c) : len(c) + 24]
                for v, c in zip(unseen.covariates.future["x"], cut.values, strict=True)
            ]
        }
        inputs = C.series_inputs(len(cut), cut.covariates, cut.end, ahead)
        targets = np.stack([np.asarray(v)[len(c) : len(c) + 24]
                            for v, c in zip(unseen.values, cut.values, strict=True)])  # fmt: skip
        forecast = predictor.predict(cut.values, inputs=inputs)
        probs = [0.1, 0.9, 0.025, 0.975]
        bands = calibration.bands(cal, cut.values, forecast, probs).quantiles
        inside[80].append((targets >= bands[0.1]) & (targets <= bands[0.9]))
        inside[95].append((targets >= bands[0.025]) & (targets <= bands[0.975]))
    coverage = {level: float(np.mean(v)) for level, v in inside.items()}
    # 40 errors per step: the 80% band has quantiles of its own, inside the 95% one (with the 16
    # of 8 origins each, both were the errors' extremes, covering about 88% alike).
    assert cal.model.count == 40
    assert 0.70 <= coverage[80] <= 0.88, coverage
    assert 0.88 <= coverage[95] <= 0.99 and coverage[95] > coverage[80] + 0.05, coverage


def test_a_served_covariate_model_answers_with_calibrated_intervals(
    trained, tmp_path: Path
) -> None:
    from forecaster.registry import Registry
    from tests.service.conftest import make_settings, running_client

    series, with_cov, _ = trained
    Registry(tmp_path).publish("driven", with_cov.config, with_cov.params, promote=True,
                               freq=series.freq, covariates=with_cov.covariates,
                               calibration=with_cov.calibration)  # fmt: skip
    entry, _ = served_request(series)
    with running_client(make_settings(tmp_path)) as client:
        answer = client.post("/v1/forecast", json={"model": "driven", "horizon": 24} | {
            k: v for k, v in entry.items() if k != "id"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    got = answer.json()
    assert got["calibrated"] is True and set(got["intervals"]) == {"80", "95"}
    lower, upper = got["intervals"]["80"]["lower"], got["intervals"]["80"]["upper"]
    assert all(lo < f < hi for lo, f, hi in zip(lower, got["forecast"], upper, strict=True))


def inputs_of(series: data.SeriesSet, horizon: int) -> tuple[list[np.ndarray], list, np.ndarray]:
    train, targets = data.train_val_split(series, horizon)
    ahead = {k: [v[-horizon:] for v in a] for k, a in series.covariates.future.items()}
    return train.values, C.series_inputs(len(train), train.covariates, train.end, ahead), targets


def test_the_forecast_follows_the_horizon_s_covariates(trained) -> None:
    series, with_cov, _ = trained
    predictor = Predictor(with_cov.config, with_cov.params, covariates=with_cov.covariates)
    histories, inputs, targets = inputs_of(series, 24)
    point = predictor.predict(histories, inputs=inputs).point
    assert np.abs(point - targets).mean() < 0.5
    x = np.asarray(inputs[0].future["x"])
    shifted = [dataclasses.replace(inputs[0], future={"x": x + 0.5}), inputs[1]]
    moved = predictor.predict(histories, inputs=shifted).point
    # 3 units of y per unit of x: half a unit moves the forecast by about 1.5.
    assert 0.8 < float(np.mean(moved[0] - point[0])) < 2.2
    np.testing.assert_allclose(moved[1], point[1], rtol=1e-6)


def test_save_and_load_keep_what_the_model_reads(trained, tmp_path: Path) -> None:
    series, with_cov, _ = trained
    where = save_model(tmp_path / "m", with_cov.config, with_cov.params, freq=series.freq,
                       covariates=with_cov.covariates)  # fmt: skip
    raw = json.loads((where / "manifest.json").read_text())
    assert raw["format_version"] == 4
    columns = {c["name"]: c for c in raw["covariates"]["columns"]}
    assert columns["x"]["role"] == "future" and columns["x"]["kind"] == "numeric"
    assert columns["region"] == {
        "name": "region",
        "role": "static",
        "kind": "categorical",
        "mean": None,
        "std": None,
        "categories": ["north", "south"],
    }
    assert raw["covariates"]["holidays"] == "US"
    loaded = load_model(where)
    assert loaded.covariates == with_cov.covariates
    histories, inputs, _ = inputs_of(series, 24)
    before = Predictor(with_cov.config, with_cov.params, covariates=with_cov.covariates)
    after = Predictor(loaded.config, loaded.params, covariates=loaded.covariates)
    np.testing.assert_allclose(
        after.predict(histories, inputs=inputs).point,
        before.predict(histories, inputs=inputs).point,
        rtol=1e-6,
    )
    assert sanity_problems(after) == []


def test_a_model_without_covariates_is_still_saved_as_format_3(trained, tmp_path: Path) -> None:
    _, _, alone = trained
    where = save_model(tmp_path / "m", alone.config, alone.params, covariates=alone.covariates)
    raw = json.loads((where / "manifest.json").read_text())
    assert raw["format_version"] == 3 and "covariates" not in raw
    assert not load_model(where).covariates


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda i: dataclasses.replace(i, future={}), "future covariate 'x' is missing"),
        (lambda i: dataclasses.replace(i, future={"x": [1.0] * 5}), "'x' has 5 values; 24"),
        (lambda i: dataclasses.replace(i, past={"x": ["a"] * 1000}), "past covariate 'x' has"),
        (lambda i: dataclasses.replace(i, future={"x": ["a"] * 24}), "not a finite number"),
        (lambda i: dataclasses.replace(i, future={"x": [np.inf] * 24}), "not a finite number"),
        (lambda i: dataclasses.replace(i, static={}), "static covariate 'region' is missing"),
        (lambda i: dataclasses.replace(i, end=None), "timestamps are needed"),
    ],
)
def test_bad_covariates_are_the_series_error_naming_them(trained, change, message) -> None:
    series, with_cov, _ = trained
    predictor = Predictor(with_cov.config, with_cov.params, covariates=with_cov.covariates)
    histories, inputs, _ = inputs_of(series, 24)
    with pytest.raises(C.CovariateError, match=message) as info:
        predictor.predict(histories, inputs=[inputs[0], change(inputs[1])])
    assert info.value.index == 1 and str(info.value).startswith("series 1: ")


def test_a_shorter_horizon_needs_covariates_for_its_steps_only(trained) -> None:
    series, with_cov, _ = trained
    predictor = Predictor(with_cov.config, with_cov.params, covariates=with_cov.covariates)
    histories, inputs, _ = inputs_of(series, 24)
    full = predictor.predict(histories, inputs=inputs).point
    short = [dataclasses.replace(i, future={"x": np.asarray(i.future["x"])[:6]}) for i in inputs]
    np.testing.assert_allclose(predictor.predict(histories, 6, short).point, full[:, :6],
                               rtol=1e-6)  # fmt: skip


def test_an_unseen_category_reads_as_none_of_the_training_ones() -> None:
    spec = C.CovariateSpec((C.Column("region", "static", "categorical",
                                     categories=("north", "south")),))  # fmt: skip
    out = spec.encode([4], [C.SeriesInputs(static={"region": "east"})], 4, 2)
    assert out.static.tolist() == [[0.0, 0.0]]
    out = spec.encode([4], [C.SeriesInputs(static={"region": "south"})], 4, 2)
    assert out.static.tolist() == [[0.0, 1.0]]


def test_a_batch_is_encoded_as_each_series_alone() -> None:
    """Series of one call (lengths short and long, last timestamps shared or not, lists or
    arrays) are encoded exactly as each would be on its own, calendar and holidays included."""
    spec = C.CovariateSpec(
        (C.Column("load", "past", mean=1.0, std=2.0), C.Column("x", "future", mean=0.5, std=3.0),
         C.Column("size", "static", mean=10.0, std=5.0)),
        calendar=("hour", "weekday", "yearday"), holidays="US", freq="h",
    )  # fmt: skip
    rng = np.random.default_rng(0)
    ends = ["2020-11-26 05:00", "2020-11-26 05:00", "2020-12-24 23:00", "2021-01-01 00:00"]
    lengths = [30, 8, 48, 30]
    inputs = [
        C.SeriesInputs(
            past={"load": rng.normal(size=n).tolist(), "x": rng.normal(size=n)},
            future={"x": rng.normal(size=5)},
            static={"size": float(k)},
            end=end,
        )
        for k, (n, end) in enumerate(zip(lengths, ends, strict=True))
    ]
    together = spec.encode(lengths, inputs, 24, 6, 5)
    for i, (n, given) in enumerate(zip(lengths, inputs, strict=True)):
        alone = spec.encode([n], [given], 24, 6, 5)
        for a, b in zip(together, alone, strict=True):
            np.testing.assert_array_equal(a[i], b[0])
    # The holiday column: Thanksgiving 2020 in the first series' window, New Year in the last.
    assert together.past[0, -6:, -1].tolist() == [1.0] * 6
    assert together.future[3, :, -1].tolist() == [1.0] * 6
    assert together.past[3, -2, -1] == 0.0 and together.past[3, -1, -1] == 1.0


def test_covariates_sent_to_a_univariate_model_are_refused(trained) -> None:
    series, _, alone = trained
    predictor = Predictor(alone.config, alone.params)
    histories, inputs, _ = inputs_of(series, 24)
    with pytest.raises(C.CovariateError, match="reads no covariates"):
        predictor.predict(histories, inputs=inputs)
    assert predictor.predict(histories).point.shape == (2, 24)


def served_request(series: data.SeriesSet, points: int = 100) -> tuple[dict, C.SeriesInputs]:
    """Series 0's last ``points`` before its last day, as a request's entry, and the library's
    inputs for the same forecast."""
    train, _ = data.train_val_split(series, 24)
    history = np.asarray(train.values[0])[-points:]
    end = pd.Timestamp(train.end[0])
    stamps = pd.date_range(end=end, periods=points, freq="h").strftime("%Y-%m-%dT%H:%M:%S")
    past = np.asarray(train.covariates.future["x"][0])[-points:]
    future = np.asarray(series.covariates.future["x"][0])[-24:]
    entry = {"id": "a", "history": history.tolist(), "timestamps": list(stamps),
             "past_covariates": {"x": past.tolist()}, "future_covariates": {"x": future.tolist()},
             "static_covariates": {"region": "north"}}  # fmt: skip
    inputs = C.SeriesInputs({"x": past}, {"x": future}, {"region": "north"}, end)
    return entry, inputs


def test_a_served_covariate_model_forecasts_as_the_library_does(trained, tmp_path: Path) -> None:
    """The service serves a covariate model: it states what the model reads, and a forecast
    with its covariates equals the library's for the same inputs; covariates it cannot use are
    said so (a warning), and a horizon beyond the trained one is refused naming it."""
    from forecaster.registry import Registry
    from tests.service.conftest import TINY, make_settings, publish, running_client

    series, with_cov, _ = trained
    Registry(tmp_path).publish("driven", with_cov.config, with_cov.params, promote=True,
                               freq=series.freq, covariates=with_cov.covariates)  # fmt: skip
    publish(tmp_path, "plain")
    entry, inputs = served_request(series)
    predictor = Predictor(with_cov.config, with_cov.params, covariates=with_cov.covariates)
    expected = predictor.predict([np.asarray(entry["history"])], inputs=[inputs]).point[0]
    with running_client(make_settings(tmp_path)) as client:
        ready = client.get("/readyz").json()
        assert {"driven", "plain"} <= set(ready["models"]), ready
        about = client.get("/v1/models/driven").json()["covariates"]
        assert about["columns"] == [
            {"name": "x", "role": "future", "kind": "numeric", "categories": None},
            {"name": "region", "role": "static", "kind": "categorical",
             "categories": ["north", "south"]},
        ]  # fmt: skip
        assert about["holidays"] == "US" and about["needs_timestamps"] is True
        listed = {m["name"]: m for m in client.get("/v1/models").json()}
        assert listed["driven"]["covariates"] == about and listed["plain"]["covariates"] is None

        answer = client.post("/v1/forecast", json={"model": "driven", "horizon": 24,
                                                   "series": [entry]})  # fmt: skip
        assert answer.status_code == 200, answer.text
        got = answer.json()["forecasts"][0]
        np.testing.assert_allclose(got["forecast"], expected, rtol=1e-5, atol=1e-5)
        assert "warnings" not in got
        one = {k: v for k, v in entry.items() if k != "id"}
        single = client.post("/v1/forecast", json={"model": "driven", "horizon": 24} | one)
        np.testing.assert_allclose(single.json()["forecast"], expected, rtol=1e-5, atol=1e-5)
        # A shorter horizon reads the first steps' covariates.
        short = entry | {"future_covariates": {"x": entry["future_covariates"]["x"][:6]}}
        six = client.post("/v1/forecast", json={"model": "driven", "horizon": 6,
                                                "series": [short]})  # fmt: skip
        np.testing.assert_allclose(six.json()["forecasts"][0]["forecast"], expected[:6],
                                   rtol=1e-5, atol=1e-5)  # fmt: skip

        too_far = client.post("/v1/forecast", json={"model": "driven", "horizon": 25,
                                                    "series": [entry]})  # fmt: skip
        assert too_far.status_code == 422
        assert too_far.json()["detail"][0]["loc"] == ["body", "horizon"]
        assert "trained horizon of 24" in too_far.text

        few = {"id": "few", "history": entry["history"][:10], "timestamps":
               entry["timestamps"][:10]}  # fmt: skip
        fallback = client.post("/v1/forecast", json={"model": "driven", "horizon": 24,
                                                     "series": [few]}).json()  # fmt: skip
        answered = fallback["forecasts"][0]
        assert answered["method"] != "model" and "without covariates" in answered["warnings"][0]

        plain = client.post("/v1/forecast", json={"model": "plain", "horizon": TINY.horizon,
                                                  "series": [entry]})  # fmt: skip
        assert plain.status_code == 200, plain.text
        warned = plain.json()["forecasts"][0]["warnings"]
        assert len(warned) == 1 and "reads no covariates" in warned[0]
        assert "past_covariates (x)" in warned[0] and "static_covariates (region)" in warned[0]


def test_a_bad_covariate_is_that_series_error_naming_it(trained, tmp_path: Path) -> None:
    """Missing, misaligned, text, Infinity, unknown or future-without-past covariates, and no
    timestamps for a calendar model: each that series' error naming it (the others answered),
    the whole request refused with ``strict``; never a 500."""
    from forecaster.registry import Registry
    from tests.service.conftest import make_settings, running_client

    series, with_cov, _ = trained
    Registry(tmp_path).publish("driven", with_cov.config, with_cov.params, promote=True,
                               freq=series.freq, covariates=with_cov.covariates)  # fmt: skip
    good, _ = served_request(series)
    past, future = good["past_covariates"]["x"], good["future_covariates"]["x"]
    bad = {
        "missing": (good | {"past_covariates": {}, "future_covariates": {}},
                    ["past_covariates", "x"], "one value per history point (100)"),
        "short": (good | {"future_covariates": {"x": future[:23]}},
                  ["future_covariates", "x"], "has 23 values; 24 (one per horizon step)"),
        "long": (good | {"past_covariates": {"x": [*past, 1.0]}},
                 ["past_covariates", "x"], "has 101 values; 100 (one per history point)"),
        "text": (good | {"past_covariates": {"x": ["a", *past[1:]]}},
                 ["past_covariates", "x", 0], "valid number"),
        "unknown": (good | {"past_covariates": {"x": past, "wind": past}},
                    ["past_covariates", "wind"], "'wind' is not one the model reads"),
        "static": (good | {"static_covariates": {}},
                   ["static_covariates", "region"], "'region' is missing"),
        "no-past": (good | {"past_covariates": {"y": past}, "future_covariates": {"x": future}},
                    [], "future covariate 'x' has no `past_covariates` values"),
        "no-time": ({k: v for k, v in good.items() if k != "timestamps"},
                    ["timestamps"], "timestamps are needed"),
    }  # fmt: skip
    entries = [good | {"id": "ok"}] + [e | {"id": name} for name, (e, _, _) in bad.items()]
    body = {"model": "driven", "horizon": 24, "series": entries}
    with running_client(make_settings(tmp_path)) as client:
        answer = client.post("/v1/forecast", json=body)
        assert answer.status_code == 200, answer.text
        out = answer.json()
        assert [f["id"] for f in out["forecasts"]] == ["ok"]
        errors = {e["id"]: e for e in out["errors"]}
        assert list(errors) == list(bad)
        for k, (name, (_, where, words)) in enumerate(bad.items(), start=1):
            assert errors[name]["loc"] == ["body", "series", k, *where], errors[name]
            assert words in errors[name]["msg"], errors[name]
        strict = client.post("/v1/forecast", json=body | {"strict": True})
        assert strict.status_code == 422
        assert len(strict.json()["detail"]) == len(bad)
        # JSON's Infinity, which Python's json writes as is.
        raw = json.dumps(body | {"series": [good | {"future_covariates": {
            "x": [float("inf"), *future[1:]]}}]})  # fmt: skip
        infinite = client.post("/v1/forecast", content=raw,
                               headers={"content-type": "application/json"})  # fmt: skip
        assert infinite.status_code == 200, infinite.text
        (error,) = infinite.json()["errors"]
        assert error["loc"] == ["body", "series", 0, "future_covariates", "x", 0]
        one = client.post("/v1/forecast", json={"model": "driven", "horizon": 24} | {
            k: v for k, v in bad["short"][0].items() if k != "id"})  # fmt: skip
        assert one.status_code == 422
        assert one.json()["detail"][0]["loc"] == ["body", "future_covariates", "x"]


def test_the_client_sends_covariates_from_frames(trained, tmp_path: Path) -> None:
    """``forecast_many(df, future_df=..., static_df=...)``, sync and async, over a real server:
    the history frame's covariate columns, the horizon's values from ``future_df``; the
    forecast is the library's."""
    import asyncio

    from forecaster.client import AsyncForecastClient, ForecastClient
    from forecaster.registry import Registry
    from tests.service.conftest import server

    series, with_cov, _ = trained
    root = tmp_path / "registry"
    Registry(root).publish("driven", with_cov.config, with_cov.params, promote=True,
                           freq=series.freq, covariates=with_cov.covariates)  # fmt: skip
    entry, inputs = served_request(series)
    predictor = Predictor(with_cov.config, with_cov.params, covariates=with_cov.covariates)
    expected = predictor.predict([np.asarray(entry["history"])], inputs=[inputs]).point[0]
    stamps = pd.to_datetime(entry["timestamps"])
    df = pd.DataFrame({"id": "a", "timestamp": stamps, "value": entry["history"],
                       "x": entry["past_covariates"]["x"]})  # fmt: skip
    after = pd.date_range(stamps[-1], periods=25, freq="h")[1:]
    future_df = pd.DataFrame({"id": "a", "timestamp": after,
                              "x": entry["future_covariates"]["x"]})  # fmt: skip
    static_df = pd.DataFrame({"id": ["a"], "region": ["north"]})
    with server(root, tmp_path) as s:
        with ForecastClient(s.url) as client:
            frame = client.forecast_many(df, 24, model="driven", future_df=future_df,
                                         static_df=static_df)  # fmt: skip
            with pytest.raises(Exception, match="static covariate 'region' is missing"):
                client.forecast_many(df, 24, model="driven", future_df=future_df)

        async def many() -> pd.DataFrame:
            async with AsyncForecastClient(s.url) as client:
                return await client.forecast_many(df, 24, model="driven", future_df=future_df,
                                                  static_df=static_df)  # fmt: skip

        other = asyncio.run(many())
    np.testing.assert_allclose(frame["forecast"].to_numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(other["forecast"].to_numpy(), expected, rtol=1e-5, atol=1e-5)
