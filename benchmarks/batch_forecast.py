"""``forecaster forecast`` on a synthetic table of hourly series: series per second, CPU and
peak memory, at two sizes to show memory stays flat.

    python -m benchmarks.batch_forecast [--series 100000 1000000] [--engine local|ray]
                                        [--dir /tmp/batch-bench] [--model m4-hourly]

The table (made once per size, kept in ``--dir``): ``--series`` series of 168 hourly points in
the long layout (id, timestamp, value; Parquet row groups of 2,048 series), each a random
168-point stretch of an M4 Hourly training series (``../shared/data/m4``) times a random scale,
with 5% multiplicative noise, starting at a random hour of 2024. The job runs as a child process
(``python -m forecaster.cli forecast``), timed from outside; its CPU seconds and peak RSS come
from ``getrusage(RUSAGE_CHILDREN)``. One JSON line per size; what it found:
``docs/guide/batch.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
M4 = ROOT.parent / "shared" / "data" / "m4" / "Hourly-train.csv"
POINTS = 168
GROUP = 2048  # series per row group
HOUR_US = 3_600_000_000


def shapes(path: Path = M4) -> list[np.ndarray]:
    """The M4 Hourly training series (414 of 700 to 960 points)."""
    import pandas as pd

    wide = pd.read_csv(path, index_col=0)
    return [row.dropna().to_numpy(np.float64) for _, row in wide.iterrows()]


def generate(path: Path, series: int, seed: int = 0) -> None:
    """Write the synthetic table (module docstring) to ``path``, row group by row group."""
    rng = np.random.default_rng(seed)
    bases = shapes()
    longest = max(len(b) for b in bases)
    padded = np.full((len(bases), longest), np.nan)
    for i, b in enumerate(bases):
        padded[i, : len(b)] = b
    lengths = np.array([len(b) for b in bases])
    start = np.datetime64("2024-01-01T00:00", "us").astype(np.int64)
    schema = pa.schema([("id", pa.string()), ("timestamp", pa.timestamp("us")),
                        ("value", pa.float64())])  # fmt: skip
    tmp = path.with_suffix(".tmp")
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for first in range(0, series, GROUP):
            n = min(GROUP, series - first)
            which = rng.integers(0, len(bases), n)
            at = (rng.random(n) * (lengths[which] - POINTS + 1)).astype(np.int64)
            rows = padded[which[:, None], at[:, None] + np.arange(POINTS)]
            rows *= rng.lognormal(0.0, 1.0, n)[:, None]
            rows *= 1 + 0.05 * rng.standard_normal((n, POINTS))
            begin = start + rng.integers(0, 8000, n) * HOUR_US
            times = begin[:, None] + HOUR_US * np.arange(POINTS)
            ids = np.char.add("S", np.char.zfill(np.arange(first, first + n).astype(str), 7))
            writer.write_table(pa.table({
                "id": pa.array(np.repeat(ids, POINTS)),
                "timestamp": pa.array(times.ravel()).cast(pa.timestamp("us")),
                "value": pa.array(np.round(rows.ravel(), 3)),
            }, schema=schema), row_group_size=n * POINTS)  # fmt: skip
    tmp.rename(path)


def run_job(data: Path, out: Path, model: str, engine: str, chunk: int) -> dict:
    """Run the job as a child process; its figures (stdout) with wall time, CPU and peak RSS."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "forecaster.cli", "forecast", "--data", str(data), "--model",
           model, "--registry", str(ROOT / "models"), "--out", str(out), "--no-progress",
           "--engine", engine, "--chunk-series", str(chunk)]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"the job failed ({done.returncode}): {done.stderr[-2000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    series = figures["series"]
    return {
        "benchmark": "batch_forecast", "engine": engine, "series": series,
        "chunk_series": chunk, "wall_s": round(wall, 1),
        "series_per_s": round(series / wall, 1),
        "cpu_s": round(cpu, 1), "cpu_s_per_1000_series": round(1000 * cpu / series, 3),
        # Ray's workers are not children of the job's process: their CPU and memory are not here.
        "peak_rss_mb": round(after.ru_maxrss / 1024, 1),
        "load_avg_before": [round(v, 2) for v in load],
        "load_avg_after": [round(v, 2) for v in os.getloadavg()],
        "cpus": os.cpu_count(), "failed_series": figures["failed_series"],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--series", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--dir", type=Path, default=Path("/tmp/batch-bench"))
    p.add_argument("--model", default="m4-hourly")
    p.add_argument("--engine", choices=("local", "ray"), default="local")
    p.add_argument("--chunk-series", type=int, default=20_000)
    p.add_argument("--keep", action="store_true", help="keep the forecasts")
    args = p.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    for n in args.series:
        data = args.dir / f"hourly-{n}.parquet"
        if not data.exists():
            generate(data, n)
        out = args.dir / f"forecasts-{n}-{args.engine}"
        print(json.dumps(run_job(data, out, args.model, args.engine, args.chunk_series)),
              flush=True)  # fmt: skip
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
