"""``--engine ray`` in Ray's local mode: the same parts, the same forecasts as the local job.
One ``ray.init`` for the module (starting Ray costs seconds)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecaster.batch import BatchJob, run
from forecaster.sources import DataSource
from tests.batch.conftest import H, covariate_table, long_table, read_parts

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow  # Ray's start and its workers' model compilation: ~30 s


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_writes_the_local_jobs_forecasts(
    local_ray: None, tmp_path: Path, tiny_registry: Path
) -> None:
    table = long_table({f"s{i}": 40 + 9 * i for i in range(9)})
    table.loc[15, "value"] = np.nan  # the per-series path too
    folder = tmp_path / "in"
    folder.mkdir()
    table.iloc[: 3 * 60].to_parquet(folder / "a.parquet", row_group_size=64)
    table.iloc[3 * 60 :].to_parquet(folder / "b.parquet", row_group_size=64)
    source = DataSource(str(folder))
    jobs = {
        engine: BatchJob(
            data=source,
            model="tiny",
            registry=str(tiny_registry),
            out=str(tmp_path / engine),
            chunk_series=2,
            engine=engine,
            progress=False,
        )
        for engine in ("local", "ray")
    }
    remote, local = run(jobs["ray"]), run(jobs["local"])  # Ray first: no JAX in this process yet
    assert local.ok and remote.ok
    assert remote.figures()["parts_written"] == local.figures()["parts_written"] > 4
    names = sorted(p.name for p in (tmp_path / "local").glob("part-*"))
    assert sorted(p.name for p in (tmp_path / "ray").glob("part-*")) == names
    a, b = read_parts(tmp_path / "local"), read_parts(tmp_path / "ray")
    numbers = ["forecast", "lower_80", "upper_80"]
    pd.testing.assert_frame_equal(a.drop(columns=numbers), b.drop(columns=numbers))
    np.testing.assert_allclose(b[numbers], a[numbers], rtol=1e-6)


def test_ray_forecasts_covariate_models_as_the_local_job(
    local_ray: None, tmp_path: Path, cov_registry: Path
) -> None:
    table = covariate_table({f"s{i}": (30 + 5 * i, H) for i in range(5)} | {"bare": (40, 1)})
    data = tmp_path / "in.parquet"
    table.to_parquet(data, row_group_size=64)
    jobs = {
        engine: BatchJob(
            data=DataSource(str(data)),
            model="cov",
            registry=str(cov_registry),
            out=str(tmp_path / engine),
            chunk_series=2,
            engine=engine,
            progress=False,
        )
        for engine in ("local", "ray")
    }
    remote, local = run(jobs["ray"]), run(jobs["local"])
    assert [p[1] for p in remote.problems] == [p[1] for p in local.problems] == ["bare"]
    assert remote.figures()["forecast"] == local.figures()["forecast"] == 5
    a, b = read_parts(tmp_path / "local"), read_parts(tmp_path / "ray")
    numbers = ["forecast", "lower_80", "upper_80"]
    pd.testing.assert_frame_equal(a.drop(columns=numbers), b.drop(columns=numbers))
    np.testing.assert_allclose(b[numbers], a[numbers], rtol=1e-6)
