"""The batch job's driver: input files → chunks of whole series → forecast parts, in this
process (``engine="local"``) or on Ray Data workers (:mod:`forecaster.batch.ray_engine`), and
the summary of what was written and what failed."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from forecaster.options import ConfigError

from .job import BatchJob
from .output import Output, PartRecord, part_name
from .reading import (
    PartError,
    check_schema,
    chunks,
    columns,
    covariate_columns,
    file_columns,
    input_files,
    record_batches,
)

# Series named in the summary's lines; the rest are in each part's _part-*.json.
SHOWN = 5


@dataclass
class Summary:
    """What a job did: its parts (written now or before), the input files it could not read."""

    model: str
    out: str
    written: list[PartRecord] = field(default_factory=list)
    skipped: list[PartRecord] = field(default_factory=list)
    failed_parts: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def series(self) -> int:
        return sum(p.series for p in [*self.written, *self.skipped])

    @property
    def forecast(self) -> int:
        return sum(p.forecast for p in [*self.written, *self.skipped])

    @property
    def problems(self) -> list[tuple[str, str, str]]:
        """(part, series id, why) of every series that failed."""
        return [(p.part, i, m) for p in [*self.written, *self.skipped] for i, m in p.problems]

    @property
    def ok(self) -> bool:
        return not self.failed_parts and not self.problems

    def figures(self) -> dict[str, Any]:
        """The summary as one JSON object (the command's stdout)."""
        done = sum(p.series for p in self.written)
        return {
            "model": self.model, "out": self.out, "series": self.series,
            "forecast": self.forecast, "failed_series": len(self.problems),
            "failed_parts": len(self.failed_parts), "parts_written": len(self.written),
            "parts_skipped": len(self.skipped), "seconds": round(self.seconds, 3),
            "series_per_s": round(done / self.seconds, 1) if self.seconds else None,
        }  # fmt: skip

    def lines(self) -> list[str]:
        """What failed, one line each (the first few series; every one is in its part's
        ``_part-*.json``)."""
        out = [f"part {p}" for p in self.failed_parts]
        problems = self.problems
        out += [f"series {i!r} ({part}): {m}" for part, i, m in problems[:SHOWN]]
        if len(problems) > SHOWN:
            out.append(
                f"... and {len(problems) - SHOWN} more series (see _part-*.json in {self.out})"
            )
        return out


def record(job: BatchJob, version: int) -> dict[str, Any]:
    """What the parts depend on: a rerun resumes only the same job (:meth:`Output.start`)."""
    data = {f"data.{k}": v for k, v in asdict(job.data).items()}  # a change names its field
    return {
        "model": job.model.partition("@")[0], "version": version, **data,
        "horizon": job.horizon, "levels": list(job.levels), "quantiles": list(job.quantiles),
        "chunk_series": job.chunk_series, "out_format": job.out_format,
    }  # fmt: skip


def run(job: BatchJob, *, on_progress: Callable[[int], None] | None = None) -> Summary:
    """Run ``job`` (see :mod:`forecaster.batch`); ``on_progress`` is told of each part's
    series as it is done."""
    from .forecasting import resolve

    if job.data.format == "wide":
        raise ConfigError("the batch job reads the long layout (a row per series and timestamp)")
    started = time.perf_counter()
    files = input_files(job.data.url)
    name, version = resolve(job)
    job = _with_covariates(job, name, version)
    if covariate_columns(job.data):
        try:  # a column the model reads that the data lacks: said before any work
            check_schema(files[0], file_columns(files[0]), list(columns(job.data)), job.data)
        except PartError as exc:
            raise ConfigError(str(exc)) from None
    out = Output(job.out, job.out_format)
    out.start(record(job, version))
    summary = Summary(f"{name}@{version}", job.out)
    tell = on_progress or (lambda n: None)
    if job.engine == "ray":
        from .ray_engine import run_ray

        run_ray(job, version, files, out, summary, tell)
    else:
        _run_local(job, version, files, out, summary, tell)
    summary.seconds = time.perf_counter() - started
    return summary


def _with_covariates(job: BatchJob, name: str, version: int) -> BatchJob:
    """``job`` reading the covariate columns the model's manifest names (none for a model of
    the target alone); columns named on the command line must be those."""
    from forecaster.environment import registry_root
    from forecaster.registry import Registry

    spec = Registry(registry_root(job.registry or None)).manifest(name, version).covariate_spec
    reads = {f"{role}_covariates": tuple(spec.names(role)) for role in ("past", "future", "static")}
    for flag, names in reads.items():
        given = getattr(job.data, flag)
        if given and set(given) != set(names):
            raise ConfigError(
                f"{flag}: model {name!r} reads {', '.join(names) or 'none'}, not "
                f"{', '.join(given)} (the job reads the columns its manifest names)"
            )
    data = dataclasses.replace(
        job.data,
        past_covariates=reads["past_covariates"],
        future_covariates=reads["future_covariates"],
        static_covariates=reads["static_covariates"],
    )
    return dataclasses.replace(job, data=data)


def _run_local(
    job: BatchJob,
    version: int,
    files: list,
    out: Output,
    summary: Summary,
    tell: Callable[[int], None],
) -> None:
    from .forecasting import BatchModel, forecast_chunk, load

    model: BatchModel | None = None
    source = job.data
    for file in files:
        try:
            for c, table in enumerate(
                chunks(record_batches(file, source), source.id_col, job.chunk_series)
            ):
                part = part_name(file.index, c)
                done = out.done(part)
                if done is not None:
                    summary.skipped.append(done)
                    tell(done.series)
                    continue
                model = model or load(job, version)  # only when there is work left
                result = forecast_chunk(table, model, source)
                rec = PartRecord(part, result.series, result.series - len(result.problems),
                                 result.problems)  # fmt: skip
                out.write(rec, result.table)
                summary.written.append(rec)
                tell(rec.series)
        except PartError as exc:
            summary.failed_parts.append(str(exc))


class ProgressBar:
    """A tqdm bar counting series (with series per second) on stderr, shown from the first
    part done (a job that stops at once prints no bar)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def update(self, series: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(unit=" series", unit_scale=True, file=sys.stderr, desc="forecast",
                            smoothing=0.1)  # fmt: skip
        self.bar.update(series)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
