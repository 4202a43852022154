"""``forecaster forecast``: CSV and Parquet in and out, chunks of whole series, resuming, bad
input named while the rest is written, and the same numbers as ``POST /v1/forecast``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from forecaster.cli import main
from tests.batch.conftest import ROOT, long_table, read_parts
from tests.service.conftest import server


def forecast(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict, str]:
    """Run the command in this process: exit status, its JSON summary, its stderr."""
    code = main(["forecast", "--no-progress", *args])
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    return code, json.loads(lines[-1]) if lines else {}, err


def leftovers(out: Path) -> list[str]:
    """Half-written files: the hidden names parts are written under before the rename."""
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))


def test_the_forecasts_are_the_services_for_the_same_histories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped model through the job and through a real server: the same points, bands,
    methods and timestamps, for full histories, a short one (the fallback) and one with
    missing values (interpolated)."""
    table = long_table({"long-a": 200, "long-b": 168, "short": 60, "gappy": 190, "tail": 400})
    table.loc[(table["id"] == "gappy") & table.index.isin(range(700, 702)), "value"] = np.nan
    data = tmp_path / "histories.csv"
    table.to_csv(data, index=False)
    code, summary, err = forecast(
        capsys, "--data", str(data), "--model", "m4-hourly", "--registry", str(ROOT / "models"),
        "--out", str(tmp_path / "out"), "--chunk-series", "2",
    )  # fmt: skip
    assert code == 0, err
    assert summary["series"] == 5 and summary["parts_written"] == 3
    got = read_parts(tmp_path / "out")
    series = []
    for name, rows in table.groupby("id", sort=False):
        values = [None if np.isnan(v) else v for v in rows["value"]]
        stamps = [t.isoformat() for t in rows["timestamp"]]
        series.append({"id": name, "history": values, "timestamps": stamps})
    with server(ROOT / "models", tmp_path) as s:
        body = {"model": "m4-hourly", "horizon": 48, "series": series}
        answer = httpx.post(s.url + "/v1/forecast", json=body, timeout=60).json()
    assert not answer["errors"]
    for f in answer["forecasts"]:
        mine = got[got["id"] == f["id"]]
        assert list(mine["method"]) == [f["method"]] * 48, f["id"]
        assert list(mine["version"]) == [answer["version"]] * 48
        np.testing.assert_allclose(mine["forecast"], f["forecast"], rtol=1e-6)
        for level in ("80", "95"):
            band = f["intervals"][level]
            np.testing.assert_allclose(mine[f"lower_{level}"], band["lower"], rtol=1e-6)
            np.testing.assert_allclose(mine[f"upper_{level}"], band["upper"], rtol=1e-6)
        stamps = [t.isoformat() for t in pd.to_datetime(mine["timestamp"])]
        assert stamps == f["timestamps"]
    methods = dict(zip(got["id"], got["method"], strict=True))
    assert methods["short"] != "model" and methods["gappy"] == "model"


def test_parquet_folder_in_csv_out_in_parts_and_a_rerun_resumes(
    tmp_path: Path, tiny_registry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder of Parquet parts, cut into parts of 3 whole series (a series never split,
    even across record batches); deleting one part and rerunning writes that part alone,
    with the same rows."""
    table = long_table({f"s{i}": 60 + 7 * i for i in range(8)})
    folder = tmp_path / "in"
    folder.mkdir()
    first = table["id"].isin([f"s{i}" for i in range(5)])
    table[first].to_parquet(folder / "a.parquet", row_group_size=50)
    table[~first].to_parquet(folder / "b.parquet", row_group_size=50)
    (folder / "_SUCCESS").write_text("")  # what Spark leaves: skipped
    out = tmp_path / "out"
    args = ["--data", str(folder), "--model", "tiny", "--registry", str(tiny_registry),
            "--out", str(out), "--out-format", "csv", "--chunk-series", "3"]  # fmt: skip
    code, summary, err = forecast(capsys, *args)
    assert code == 0, err
    parts = sorted(p.name for p in out.glob("part-*.csv"))
    assert parts == ["part-00000-00000.csv", "part-00000-00001.csv", "part-00001-00000.csv"]
    got = read_parts(out)
    assert len(got) == 8 * 12 and got.groupby("id").size().eq(12).all()
    assert list(dict.fromkeys(got["id"])) == [f"s{i}" for i in range(8)]
    # An uncalibrated model gives the levels its heads bound: 80% from the 0.1 and 0.9 heads.
    assert {"lower_80", "upper_80"} <= set(got.columns) and "lower_95" not in got.columns
    assert (got["lower_80"] <= got["upper_80"]).all()
    assert summary | {"seconds": 0, "series_per_s": 0} == {
        "model": "tiny@1", "out": str(out), "series": 8, "forecast": 8, "failed_series": 0,
        "failed_parts": 0, "parts_written": 3, "parts_skipped": 0, "seconds": 0,
        "series_per_s": 0,
    }  # fmt: skip
    (out / "part-00000-00001.csv").unlink()
    code, again, err = forecast(capsys, *args)
    assert code == 0, err
    assert (again["parts_written"], again["parts_skipped"], again["series"]) == (1, 2, 8)
    pd.testing.assert_frame_equal(read_parts(out), got)
    assert leftovers(out) == []
    # Parts made with other settings are not mixed in.
    code, _, err = forecast(capsys, *args[:-1], "4")
    assert code == 1 and "holds parts of another job (chunk_series: 3 then, 4 now)" in err


def test_bad_parts_and_series_are_named_and_the_rest_is_written(
    tmp_path: Path, tiny_registry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = long_table({"good": 80, "dup": 80, "empty": 30, "other": 70})
    table.loc[table.index[table["id"] == "dup"][10], "timestamp"] = table.loc[
        table.index[table["id"] == "dup"][9], "timestamp"
    ]
    table.loc[table["id"] == "empty", "value"] = np.nan  # fewer points than any path needs
    folder = tmp_path / "in"
    folder.mkdir()
    table.to_parquet(folder / "part-0.parquet")
    table.rename(columns={"value": "y"}).to_parquet(folder / "part-1.parquet")
    out = tmp_path / "out"
    code, summary, err = forecast(
        capsys, "--data", str(folder), "--model", "tiny", "--registry", str(tiny_registry),
        "--out", str(out),
    )  # fmt: skip
    assert code == 1
    assert (summary["series"], summary["forecast"], summary["failed_series"]) == (4, 2, 2)
    assert summary["failed_parts"] == 1
    assert f"part {folder / 'part-1.parquet'}: no column 'value'" in err
    assert "series 'dup' (part-00000-00000): duplicate timestamps" in err
    assert "series 'empty' (part-00000-00000): the history holds no value" in err
    got = read_parts(out)
    assert sorted(set(got["id"])) == ["good", "other"]
    record = json.loads((out / "_part-00000-00000.json").read_text())
    assert [p[0] for p in record["problems"]] == ["dup", "empty"]
    assert leftovers(out) == []


def test_a_model_that_does_not_exist_and_an_unwritable_output_stop_the_job_at_once(
    tmp_path: Path, tiny_registry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "h.csv"
    long_table({"a": 60}).to_csv(data, index=False)
    code, _, err = forecast(capsys, "--data", str(data), "--model", "nope", "--registry",
                            str(tiny_registry), "--out", str(tmp_path / "out"))  # fmt: skip
    assert code == 1 and "no model named 'nope'" in err and not (tmp_path / "out").exists()
    code, _, err = forecast(capsys, "--data", str(data), "--model", "tiny@7", "--registry",
                            str(tiny_registry), "--out", str(tmp_path / "out"))  # fmt: skip
    assert code == 1 and "no version 7" in err
    blocked = tmp_path / "file"
    blocked.write_text("")
    code, _, err = forecast(capsys, "--data", str(data), "--model", "tiny", "--registry",
                            str(tiny_registry), "--out", str(blocked / "out"))  # fmt: skip
    assert code == 1 and err.startswith("forecaster forecast: error:") and str(blocked) in err
    assert "Traceback" not in err


def test_ray_without_ray_is_one_line_naming_the_extra(
    tmp_path: Path, tiny_registry: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: import fails
    table = long_table({"a": 60})
    table.to_parquet(tmp_path / "h.parquet")
    code, _, err = forecast(capsys, "--data", str(tmp_path / "h.parquet"), "--model", "tiny",
                            "--registry", str(tiny_registry), "--out", str(tmp_path / "out"),
                            "--engine", "ray")  # fmt: skip
    assert code == 1
    assert (
        err == "forecaster forecast: error: --engine ray needs Ray: pip install 'forecaster[ray]'\n"
    )
