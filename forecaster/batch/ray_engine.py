"""``engine="ray"``: the batch job's chunks on Ray Data workers.

The driver plans the chunks from the id columns alone (:func:`~forecaster.batch.reading.chunk_rows`,
the cuts the local job makes) and hands Ray a dataset of part descriptors; ``map_batches`` with a
class runs them, so each worker process loads and compiles the model once, then reads its parts'
rows (the Parquet row groups holding them), forecasts and writes them exactly as the local job
does. Workers are processes Ray starts (nothing forks after JAX has started), each with one CPU
and XLA held to one thread, so ``workers`` of them share the machine instead of fighting over it.

Ray is an optional extra (``pip install 'forecaster[ray]'``), imported only here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from forecaster.options import ConfigError
from forecaster.sources import DataSource

from .driver import Summary
from .job import BatchJob
from .output import Output, PartRecord, part_name
from .reading import InputFile, PartError, chunk_rows, read_rows

# One XLA thread per worker: parallelism comes from the workers.
XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray: pip install 'forecaster[ray]'") from None
    return ray


def run_ray(
    job: BatchJob,
    version: int,
    files: list[InputFile],
    out: Output,
    summary: Summary,
    tell: Callable[[int], None],
) -> None:
    """Run ``job``'s parts not yet written on Ray (joining ``job.address`` or starting a local
    Ray), adding each part's record to ``summary``."""
    ray = _ray()
    tasks = []
    for file in files:
        if file.kind != "parquet":
            summary.failed_parts.append(
                f"{file.url}: --engine ray reads Parquet (its workers read row groups); "
                "convert the CSV, or run it locally"
            )
            continue
        try:
            rows = chunk_rows(file, job.data, job.chunk_series)
        except PartError as exc:
            summary.failed_parts.append(str(exc))
            continue
        for c, (start, stop) in enumerate(rows):
            done = out.done(part_name(file.index, c))
            if done is not None:
                summary.skipped.append(done)
                tell(done.series)
            else:
                tasks.append({"file": file.index, "url": file.url, "kind": file.kind,
                              "chunk": c, "start": start, "stop": stop})  # fmt: skip
    if not tasks:
        return
    if not ray.is_initialized():
        ray.init(address=job.address or None, runtime_env={"env_vars": {"XLA_FLAGS": XLA_FLAGS}},
                 log_to_driver=False)  # fmt: skip
    cpus = int(ray.cluster_resources().get("CPU", 1))
    workers = min(job.workers or cpus, len(tasks))
    settings = {"job": _plain(job), "version": version}
    ds = ray.data.from_items(tasks, override_num_blocks=len(tasks))
    ds = ds.map_batches(
        Worker, fn_constructor_kwargs=settings, batch_size=1, concurrency=workers, num_cpus=1,
        runtime_env={"env_vars": {"XLA_FLAGS": XLA_FLAGS}},
    )  # fmt: skip
    for row in ds.iter_rows():
        if row["error"]:
            summary.failed_parts.append(str(row["error"]))
            continue
        rec = PartRecord.from_json(str(row["record"]))
        summary.written.append(rec)
        tell(rec.series)


def _plain(job: BatchJob) -> dict[str, Any]:
    """``job`` as plain JSON-able values (what travels to the workers)."""
    fields = asdict(job)
    fields["data"] = asdict(job.data)
    return fields


def _job(fields: dict[str, Any]) -> BatchJob:
    data = DataSource(**fields["data"])
    return BatchJob(**{**fields, "data": data})


class Worker:
    """One Ray worker: the model loaded and compiled once, then a part per call."""

    def __init__(self, job: dict[str, Any], version: int) -> None:
        from .forecasting import load

        self.job = _job(job)
        self.model = load(self.job, version)
        self.out = Output(self.job.out, self.job.out_format)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        from .forecasting import forecast_chunk

        records, errors = [], []
        for i in range(len(batch["file"])):
            file = InputFile(int(batch["file"][i]), str(batch["url"][i]), str(batch["kind"][i]))
            part = part_name(file.index, int(batch["chunk"][i]))
            try:
                table = read_rows(
                    file, self.job.data, int(batch["start"][i]), int(batch["stop"][i])
                )
            except PartError as exc:
                records.append("")
                errors.append(str(exc))
                continue
            result = forecast_chunk(table, self.model, self.job.data)
            rec = PartRecord(part, result.series, result.series - len(result.problems),
                             result.problems)  # fmt: skip
            self.out.write(rec, result.table)
            records.append(rec.to_json())
            errors.append("")
        return {"record": records, "error": errors}
