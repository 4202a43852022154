"""Training beyond memory: a folder of Parquet parts larger than the memory cap.

    python -m benchmarks.train_big generate --out /work/build-big/parts --gb 10
    python -m benchmarks.train_big run --parts /work/build-big/parts --small /work/build-big/small

``generate`` writes synthetic hourly series (long format: ``id``, ``timestamp``, ``value``) as
Parquet parts until the folder holds ``--gb`` gigabytes, vectorised part by part. ``run`` trains a
fixed number of steps three ways and prints one JSON line: from ``--small`` (a folder that fits)
read whole into memory, the same folder from its parts (memory-mapped,
:mod:`forecaster.parts`), and ``--parts`` from its parts; steps/s of each (compilation
excluded), the seconds of reading, and the peak resident memory of the process. Run it under a
memory cap (a cgroup) to check it stays under it; ``--fit`` adds a whole
:func:`forecaster.train.fit` of the big folder (validation and calibration on a sample). What it
found: ``docs/guide/data.md`` (``benchmarks/results/train_big.jsonl``). ``generate`` spends most
of its system time faulting in fresh arrays for every part: glibc keeps them with
``MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736`` (107 CPU-seconds for
10 GB, against about 2.5 a part without).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

# Every part: this many series of POINTS hourly points (about 2.3 years), staggered starts.
SERIES_PER_PART, POINTS = 320, 20_000


def generate(out: Path, gb: float, seed: int = 0) -> dict[str, float]:
    """Parts ``part-00000.parquet``... under ``out`` until they total ``gb`` gigabytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    total, part, rows = 0, 0, 0
    hour = np.int64(3_600_000_000)  # microseconds
    t0 = np.datetime64("2020-01-01T00:00", "us").astype(np.int64)
    while total < gb * 1e9:
        n = SERIES_PER_PART
        first = part * n
        names = pa.array([f"S{first + i:07d}" for i in range(n)])
        ids = pa.DictionaryArray.from_arrays(np.repeat(np.arange(n, dtype=np.int32), POINTS), names)
        start = t0 + rng.integers(0, 24 * 365, n) * hour
        t = np.arange(POINTS, dtype=np.int64)
        stamps = (start[:, None] + t[None, :] * hour).ravel()
        level = rng.uniform(50, 5000, n)[:, None]
        phase = rng.uniform(0, 2 * np.pi, n)[:, None]
        daily = 1 + 0.3 * np.sin(2 * np.pi * t[None, :] / 24 + phase)
        weekly = 1 + 0.1 * np.sin(2 * np.pi * t[None, :] / 168)
        noise = 1 + 0.05 * rng.standard_normal((n, POINTS))
        values = (level * daily * weekly * noise).ravel()
        table = pa.table(
            {
                "id": ids,
                "timestamp": pa.array(stamps, pa.timestamp("us")),
                "value": pa.array(values, pa.float64()),
            }
        )
        path = out / f"part-{part:05d}.parquet"
        pq.write_table(table, path, row_group_size=1_000_000)
        total += path.stat().st_size
        rows += len(values)
        part += 1
    return {"parts": part, "rows": rows, "gb": round(total / 1e9, 2)}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# The models trained: M4 Hourly's (the library's hourly defaults, horizon 48), and a tiny one
# whose step costs little beside the reading of its windows (the worst case for the reading).
MODELS = {"m4": {"horizon": 48}, "tiny": {"horizon": 48, "ensemble": 1, "hidden": 32}}


def steps_per_second(series: object, steps: int) -> dict[str, object]:
    """:func:`steps_of` for each of ``MODELS``."""
    return {name: steps_of(series, model, steps) for name, model in MODELS.items()}


def steps_of(series: object, given: dict, steps: int) -> dict[str, object]:
    """Training ``steps`` steps on ``series``'s windows (as :func:`forecaster.train.fit` draws
    them): the sampler fit would build, its kind, and steps/s after compilation."""
    import jax

    from forecaster import train
    from forecaster.configs import build_configs

    model, cfg = build_configs(given, {"steps": steps, "seed": 0},
                               freq="h", lengths=series.lengths.tolist())  # type: ignore[attr-defined]  # fmt: skip
    values = list(series.values)  # type: ignore[attr-defined]
    started = time.perf_counter()
    if (found := train.mapped(values)) is not None:
        reader = train.MappedReader(*found, model.input_size + model.horizon)
        sampler: train.Sampler = train.MappedSampler.from_series(
            values, model.input_size, model.horizon, held_out=model.horizon, reader=reader
        )
    else:
        sampler = train.WindowSampler.from_series(
            values, model.input_size, model.horizon, held_out=model.horizon
        )
    built = time.perf_counter() - started
    state = train.create_train_state(model, cfg)
    key = jax.random.key(0)
    shape = (model.ensemble, cfg.batch_size)
    state, key, _ = train.train_steps(state, sampler, key, shape, 5)  # compile and warm up
    jax.block_until_ready(state)
    started, cpu = time.perf_counter(), time.process_time()
    state, key, metrics = train.train_steps(state, sampler, key, shape, steps)
    loss = float(metrics["loss"])
    seconds = time.perf_counter() - started
    return {"sampler": type(sampler).__name__, "batch": cfg.batch_size,
            "model": f"{model.ensemble} x {model.cell} {model.hidden}", "build_s": round(built, 2),
            "steps_per_s": round(steps / seconds, 2), "cpu_s": round(time.process_time() - cpu, 1),
            "loss": round(loss, 4)}  # fmt: skip


def say(what: str) -> None:
    """Progress on stderr (the JSON line is stdout's)."""
    print(f"train_big: {time.strftime('%H:%M:%S')} {what}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, object]:
    """The JSON line of ``run`` (module docstring)."""
    from forecaster import data, parts
    from forecaster.configs import build_configs, data_facts
    from forecaster.train import fit

    line: dict[str, object] = {"benchmark": "train_big", "steps": args.steps}
    cache = str(args.cache_dir) if args.cache_dir else None
    if args.only in (None, "small"):
        files = parts.list_parts(args.small)
        frame = pd_concat([data.read_frame(str(p), None) for p in files])
        whole = data.series_from_frame(frame)
        del frame
        say("small read whole")
        line["memory"] = steps_per_second(whole, args.steps)
        say(f"in memory: {line['memory']}")
        del whole
        small = data.load_series(str(args.small), cache_dir=cache)
        line["small_parts"] = steps_per_second(small, args.steps)
        say(f"small from parts: {line['small_parts']}")
        del small
    if args.only in (None, "parts"):
        started, cpu = time.perf_counter(), time.process_time()
        big = data.load_series(str(args.parts), cache_dir=cache)
        read = {"reading": big.reading, "read_s": round(time.perf_counter() - started, 1),
                "read_cpu_s": round(time.process_time() - cpu, 1)}  # fmt: skip
        say(f"read: {read}")
        line["parts"] = {**read, **steps_per_second(big, args.steps)}
        say(f"parts: {line['parts']}")
        line["peak_rss_mb"] = round(peak_rss_mb())
        if not args.fit:
            return line
        # What `forecaster train` does besides: the facts configs derive from, the fingerprint,
        # and a whole fit (validation and calibration on a sample).
        started, cpu = time.perf_counter(), time.process_time()
        facts = data_facts(big)
        fingerprint = data.fingerprint(big)
        model, cfg = build_configs(MODELS["m4"], {"steps": args.steps, "eval_every": args.steps},
                                   **facts)  # fmt: skip
        result = fit(big, model, cfg, progress=False)
        line["fit"] = {"seconds": round(time.perf_counter() - started, 1),
                       "cpu_s": round(time.process_time() - cpu, 1), "sampled": result.sampled,
                       "val_owa": round(result.val_metrics["owa"], 4),
                       "calibrated": result.calibration is not None,
                       "fingerprint": fingerprint[:20]}  # fmt: skip
    line["peak_rss_mb"] = round(peak_rss_mb())
    return line


def pd_concat(frames: list) -> object:
    import pandas as pd

    return pd.concat(frames, ignore_index=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    g = sub.add_parser("generate", help="write the synthetic parts")
    g.add_argument("--out", type=Path, required=True)
    g.add_argument("--gb", type=float, default=10.0)
    r = sub.add_parser("run", help="train from the parts and in memory")
    r.add_argument("--parts", type=Path, required=True, help="the folder beyond memory")
    r.add_argument("--small", type=Path, required=True, help="a folder that fits in memory")
    r.add_argument("--steps", type=int, default=200)
    r.add_argument("--cache-dir", type=Path, help="where the memory-mapped values go")
    r.add_argument("--fit", action="store_true", help="then a whole fit of the big folder")
    r.add_argument("--only", choices=["small", "parts"], help="one of the two (else both)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.what == "generate":
        started = time.process_time()
        line = generate(args.out, args.gb)
        print(json.dumps({**line, "cpu_seconds": round(time.process_time() - started, 1)}))
        return 0
    print(json.dumps(run(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
