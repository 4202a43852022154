"""``forecaster forecast`` with a model that reads covariates: the columns its manifest names,
the horizon's future covariates from the rows after each series' last value (the console's
layout), and the same numbers as ``POST /v1/forecast`` given the same covariates."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.batch.conftest import H, covariate_table, read_parts
from tests.batch.test_batch import forecast
from tests.service.conftest import server


def test_covariate_forecasts_are_the_services_and_a_series_without_its_future_fails(
    tmp_path: Path, cov_registry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    points = {"a": (40, H), "b": (55, H), "c": (30, H), "short-future": (40, 2), "d": (48, H + 3)}
    table = covariate_table(points)
    table.loc[(table["id"] == "b") & table.index.isin(range(60, 62)), "value"] = np.nan
    data = tmp_path / "histories.csv"
    table.to_csv(data, index=False)
    out = tmp_path / "out"
    code, summary, err = forecast(
        capsys, "--data", str(data), "--model", "cov", "--registry", str(cov_registry),
        "--out", str(out), "--chunk-series", "2",
    )  # fmt: skip
    assert code == 1
    assert (summary["series"], summary["forecast"], summary["failed_series"]) == (5, 4, 1)
    assert (
        "series 'short-future' (part-00000-00001): its future covariates (x) are missing: "
        "6 rows after its last value are needed, one per step forecast (value empty), 2 found"
    ) in err
    got = read_parts(out)
    assert sorted(set(got["id"])) == ["a", "b", "c", "d"]
    series = []
    for name, rows in table[table["id"] != "short-future"].groupby("id", sort=False):
        known = rows.iloc[: points[str(name)][0]]
        after = rows.iloc[points[str(name)][0] :].iloc[:H]
        series.append({
            "id": name,
            "history": [None if np.isnan(v) else v for v in known["value"]],
            "timestamps": [t.isoformat() for t in known["timestamp"]],
            "past_covariates": {"load": known["load"].tolist(), "x": known["x"].tolist()},
            "future_covariates": {"x": after["x"].tolist()},
            "static_covariates": {"region": rows["region"].iloc[0]},
        })  # fmt: skip
    with server(cov_registry, tmp_path) as s:
        body = {"model": "cov", "horizon": H, "series": series}
        answer = httpx.post(s.url + "/v1/forecast", json=body, timeout=60).json()
    assert not answer["errors"], answer["errors"]
    for f in answer["forecasts"]:
        mine = got[got["id"] == f["id"]]
        assert list(mine["method"]) == [f["method"]] * H == ["model"] * H, f["id"]
        np.testing.assert_allclose(mine["forecast"], f["forecast"], rtol=1e-6)
        band = f["intervals"]["80"]
        np.testing.assert_allclose(mine["lower_80"], band["lower"], rtol=1e-6)
        np.testing.assert_allclose(mine["upper_80"], band["upper"], rtol=1e-6)
        stamps = [t.isoformat() for t in pd.to_datetime(mine["timestamp"])]
        assert stamps == f["timestamps"]
    # The covariates matter: other future values, other forecasts.
    table.loc[table["value"].isna() & table["load"].isna(), "x"] += 1.0
    table.to_csv(data, index=False)
    code, _, _ = forecast(capsys, "--data", str(data), "--model", "cov", "--registry",
                          str(cov_registry), "--out", str(tmp_path / "again"))  # fmt: skip
    again = read_parts(tmp_path / "again")
    assert not np.allclose(again[again["id"] == "a"]["forecast"], got[got["id"] == "a"]["forecast"])


def test_a_covariate_column_the_data_lacks_is_one_line_before_any_work(
    tmp_path: Path, cov_registry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "h.parquet"
    covariate_table({"a": (40, H)}).drop(columns=["x"]).to_parquet(data)
    out = tmp_path / "out"
    code, _, err = forecast(capsys, "--data", str(data), "--model", "cov", "--registry",
                            str(cov_registry), "--out", str(out))  # fmt: skip
    assert code == 1 and not out.exists()
    assert err == (
        f"forecaster forecast: error: {data}: no column 'x': the model reads the future covariate "
        "'x' (columns: id, timestamp, value, load, region)\n"
    )
    covariate_table({"a": (40, 12)}).to_parquet(data)
    code, _, err = forecast(capsys, "--data", str(data), "--model", "cov", "--registry",
                            str(cov_registry), "--out", str(out), "--horizon", "12")  # fmt: skip
    assert code == 1 and "forecasts at most its trained horizon of 6 steps" in err
