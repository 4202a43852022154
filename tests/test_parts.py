"""A folder of Parquet parts: read into a memory-mapped file, the same series as one file, the
same model as in memory, and bad parts named."""

from __future__ import annotations

import warnings
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest

from forecaster import data, train
from forecaster.configs import build_configs
from forecaster.parts import list_parts, load_parts, mapped

pytest.importorskip("pyarrow")


def long_frame(n_series: int = 5, seed: int = 0) -> pd.DataFrame:
    """Hourly series of different lengths and starts, one with a short gap (filled) and one
    with a long one (cut): a row per observation, sorted by series then time."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_series):
        n = 200 + 37 * i
        t = pd.date_range("2021-01-01", periods=n, freq="h") + pd.Timedelta(hours=i)
        v = 10 + 3 * np.sin(np.arange(n) * 2 * np.pi / 24) + rng.standard_normal(n)
        if i == 2:
            v[20:23] = np.nan
        if i == 3:
            v[30:40] = np.nan
        rows.append(pd.DataFrame({"id": f"s{i}", "timestamp": t, "value": v}))
    return pd.concat(rows, ignore_index=True)


def write_parts(frame: pd.DataFrame, folder: Path, n: int = 3) -> Path:
    """``frame``'s rows dealt at random over ``n`` parts: a series spreads over every part and
    its rows come in any order."""
    folder.mkdir(parents=True, exist_ok=True)
    shuffled = frame.sample(frac=1, random_state=1)
    for k in range(n):
        shuffled.iloc[k::n].sort_values("id", kind="stable").to_parquet(folder / f"p{k}.parquet")
    return folder


def test_long_parts_read_as_the_one_file_does_into_one_memory_mapped_file(tmp_path: Path) -> None:
    frame = long_frame()
    frame.to_csv(tmp_path / "all.csv", index=False)
    whole = data.load_series(str(tmp_path / "all.csv"))
    folder = write_parts(frame, tmp_path / "parts")
    got = data.load_series(str(folder), cache_dir=str(tmp_path / "cache"))
    assert got.ids == whole.ids and got.freq == whole.freq == "h" and got.end == whole.end
    for sid in whole.ids:
        np.testing.assert_array_equal(got[sid], whole[sid])
        assert [p.tolist() for p in got.before_gaps.get(sid, [])] == [
            p.tolist() for p in whole.before_gaps.get(sid, [])
        ]
    assert sorted(got.gaps, key=str) == sorted(whole.gaps, key=str) and len(got.gaps) == 2
    assert "3 Parquet parts" in got.reading and "memory-mapped" in got.reading
    # Every value (segments before long gaps too) is a view of one mapped file, which is
    # already unlinked: nothing is left on disk.
    segments = [p for ps in got.before_gaps.values() for p in ps]
    assert mapped([*got.values, *segments]) is not None
    assert mapped(whole.values) is None
    assert list((tmp_path / "cache").iterdir()) == []


def test_wide_parts_read_as_the_one_wide_file_does(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    wide = pd.DataFrame(rng.uniform(1, 9, (6, 30)), columns=[f"V{j}" for j in range(30)])
    wide.iloc[1, 25:] = np.nan  # a shorter series, padded at the end
    wide.insert(0, "id", [f"H{i}" for i in range(6)])
    wide.to_csv(tmp_path / "wide.csv", index=False)
    (tmp_path / "parts").mkdir()
    wide.iloc[:4].to_parquet(tmp_path / "parts" / "a.parquet")
    wide.iloc[4:].to_parquet(tmp_path / "parts" / "b.parquet")
    whole = data.load_series(str(tmp_path / "wide.csv"), freq="h")
    got = data.load_series(str(tmp_path / "parts"), freq="h")
    assert got.ids == whole.ids and got.freq == "h" and got.lengths.tolist()[1] == 25
    for sid in whole.ids:
        np.testing.assert_array_equal(got[sid], whole[sid])
    assert mapped(got.values) is not None


def test_training_from_parts_gives_the_model_training_in_memory_gives(tmp_path: Path) -> None:
    frame = long_frame()
    whole = data.series_from_frame(frame)
    got = data.load_series(str(write_parts(frame, tmp_path / "parts")))
    model, cfg = build_configs({"horizon": 12, "input_size": 48, "ensemble": 2, "hidden": 8},
                               {"steps": 40, "eval_every": 40, "batch_size": 16},
                               freq="h", lengths=whole.lengths.tolist())  # fmt: skip
    a = train.fit(whole, model, cfg, progress=False)
    b = train.fit(got, model, cfg, progress=False)
    jax.tree.map(np.testing.assert_array_equal, a.params, b.params)
    assert a.val_metrics == b.val_metrics and a.best_step == b.best_step
    assert a.calibration is not None and b.calibration is not None
    assert a.calibration.model == b.calibration.model
    assert b.sampled == ""  # few series: validation reads them all


def test_many_mapped_series_are_validated_and_calibrated_on_a_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(train, "CHECKED_SERIES", 3)
    got = data.load_series(str(write_parts(long_frame(), tmp_path / "parts")))
    model, cfg = build_configs({"horizon": 12, "input_size": 48, "ensemble": 1, "hidden": 8},
                               {"steps": 20, "eval_every": 20, "batch_size": 16},
                               freq="h", lengths=got.lengths.tolist())  # fmt: skip
    result = train.fit(got, model, cfg, progress=False)
    assert "a sample of 3 of the 5 memory-mapped series" in result.sampled
    assert result.calibration is not None and np.isfinite(result.val_metrics["owa"])


def test_a_part_with_other_columns_is_named(tmp_path: Path) -> None:
    folder = write_parts(long_frame(), tmp_path / "parts")
    other = long_frame().rename(columns={"value": "load"}).head(50)
    other.to_parquet(folder / "p9.parquet")
    with pytest.raises(data.DataError, match=r"part 'p9.parquet' has columns \(id .*load"):
        load_parts(folder)
    typed = long_frame().head(50).astype({"value": str})
    typed.to_parquet(folder / "p9.parquet")
    with pytest.raises(data.DataError, match=r"p9\.parquet. has columns .*value large_string"):
        load_parts(folder)


def test_a_duplicate_stamp_names_the_part_the_series_and_the_stamp(tmp_path: Path) -> None:
    frame = long_frame()
    folder = write_parts(frame, tmp_path / "parts")
    frame[frame["id"] == "s1"].iloc[[7]].to_parquet(folder / "p3.parquet")
    stamp = frame[frame["id"] == "s1"].iloc[7]["timestamp"]
    with pytest.raises(data.DataError, match=f"part 'p3.parquet': series 's1': duplicate "
                       f"timestamp {stamp}"):  # fmt: skip
        load_parts(folder)
    # Within one part too.
    twice = pd.concat([frame, frame[frame["id"] == "s4"].iloc[[3]]], ignore_index=True)
    folder = write_parts(twice, tmp_path / "again", n=1)
    with pytest.raises(data.DataError, match=r"part 'p0\.parquet': series 's4': duplicate"):
        load_parts(folder)


def test_a_stamp_off_the_grid_names_the_part_and_the_series(tmp_path: Path) -> None:
    frame = long_frame()
    folder = write_parts(frame, tmp_path / "parts")
    odd = frame[frame["id"] == "s0"].iloc[[5]].copy()
    odd["timestamp"] += pd.Timedelta(minutes=30)
    odd.to_parquet(folder / "p7.parquet")
    with pytest.raises(data.DataError, match=r"part 'p7.parquet': series 's0': timestamp .* off"):
        load_parts(folder)


def test_a_series_too_short_names_its_part_and_training_skips_it(tmp_path: Path) -> None:
    frame = long_frame()
    folder = write_parts(frame, tmp_path / "parts")
    stamps = pd.date_range("2021-03-01", periods=3, freq="h")
    short = pd.DataFrame({"id": "tiny", "timestamp": stamps, "value": 1.0})
    short.to_parquet(folder / "p5.parquet")
    with pytest.raises(data.DataError, match=r"part 'p5\.parquet': series 'tiny': 3 observations"):
        load_parts(folder, min_length=10)
    got = load_parts(folder)
    model, cfg = build_configs({"horizon": 12, "input_size": 48, "ensemble": 1, "hidden": 8},
                               {"steps": 10, "eval_every": 10, "batch_size": 8,
                                "calibration_origins": 0}, freq="h")  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train.fit(got, model, cfg, progress=False)
    assert any("'tiny'" in str(w.message) for w in caught)


def test_wide_parts_holding_one_series_twice_are_named(tmp_path: Path) -> None:
    wide = pd.DataFrame({"id": ["a", "b"], "V1": [1.0, 2.0], "V2": [3.0, 4.0]})
    (tmp_path / "parts").mkdir()
    wide.to_parquet(tmp_path / "parts" / "a.parquet")
    wide.iloc[1:].to_parquet(tmp_path / "parts" / "b.parquet")
    with pytest.raises(data.DataError, match=r"part 'b\.parquet': series 'b' is also in part "
                       r"'a\.parquet'"):  # fmt: skip
        load_parts(tmp_path / "parts")


def test_a_folder_without_parts_and_a_broken_part_are_named(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataError, match="holds no Parquet part"):
        list_parts(tmp_path / "empty")
    folder = write_parts(long_frame(), tmp_path / "parts")
    (folder / "p1.parquet").write_bytes(b"not parquet")
    with pytest.raises(data.DataError, match=r"part 'p1\.parquet'"):
        load_parts(folder)
