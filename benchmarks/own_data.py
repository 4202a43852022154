"""Your own data, as a new user has it: small realistic files trained with no flags.

    python -m benchmarks.own_data [--only NAME ...] [--out FILE] [--flags "--step 1 ..."]
                                  [--models DIR [--load]]

What it measures, how, and what it found: ``docs/results/own-data.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from forecaster import classical, data, extend, metrics
from forecaster.frequency import calendar
from forecaster.predict import Predictor
from forecaster.registry import load_model

RESULTS = Path(__file__).resolve().parent / "results" / "own_data.jsonl"


@dataclass(frozen=True)
class DataSet:
    """A file as a user has it: ``frame`` whole (history and hold-out), how to cut it, and what
    it exercises."""

    name: str
    about: str
    freq: str  # the pandas frequency of the data, for the hold-out's horizon and the baselines
    build: Callable[[], pd.DataFrame]
    id_col: str | None  # None: one series, no id column
    time_col: str
    value_col: str
    date_format: str | None = None  # how the file writes its dates (None: ISO)


def _sunspots() -> pd.DataFrame:
    import statsmodels.api as sm

    raw = sm.datasets.sunspots.load_pandas().data
    years = pd.to_datetime(raw["YEAR"].astype(int).astype(str), format="%Y")
    return pd.DataFrame({"id": "sunspots", "timestamp": years, "value": raw["SUNACTIVITY"]})


def _co2(gaps: bool) -> pd.DataFrame:
    import statsmodels.api as sm

    raw = sm.datasets.co2.load_pandas().data["co2"]
    # With gaps: the weeks the station did not report are simply absent from the file (runs of
    # up to 18 weeks); without: filled as a user would before trying a tool.
    values = raw.dropna() if gaps else raw.interpolate()
    return pd.DataFrame({"week": values.index, "co2_ppm": values.to_numpy()})


def _elnino() -> pd.DataFrame:
    import statsmodels.api as sm

    raw = sm.datasets.elnino.load_pandas().data
    months = raw.columns[1:]
    long = raw.melt(id_vars="YEAR", value_vars=list(months), var_name="month", value_name="sst")
    long["month"] = long["month"].map({m: i + 1 for i, m in enumerate(months)})
    long = long.sort_values(["YEAR", "month"])
    starts = pd.to_datetime(dict(year=long["YEAR"].astype(int), month=long["month"], day=1))
    # Month ends (day 28 to 31): only the day-first reading fits.
    return pd.DataFrame({"date": starts + pd.offsets.MonthEnd(0), "sst": long["sst"].to_numpy()})


def _macro() -> pd.DataFrame:
    import statsmodels.api as sm

    raw = sm.datasets.macrodata.load_pandas().data
    quarters = pd.PeriodIndex.from_fields(
        year=raw["year"].astype(int), quarter=raw["quarter"].astype(int), freq="Q"
    ).to_timestamp()
    names = ["realgdp", "realcons", "realinv", "realgovt", "realdpi", "cpi", "m1", "tbilrate",
             "unemp", "pop"]  # fmt: skip
    frames = [pd.DataFrame({"series": n, "quarter": quarters, "value": raw[n]}) for n in names]
    return pd.concat(frames, ignore_index=True)


def _nile() -> pd.DataFrame:
    import statsmodels.api as sm

    raw = sm.datasets.nile.load_pandas().data
    years = pd.to_datetime(raw["year"].astype(int).astype(str), format="%Y")
    return pd.DataFrame({"year": years, "flow": raw["volume"]})


# M4 Weekly's series lengths, roughly (359 series: shortest 80, median about 930, longest 2,597),
# as a quantile function: the share of series at most this long, and the length.
M4_WEEKLY_LENGTHS = ((0.0, 80), (0.25, 380), (0.5, 930), (0.75, 1_600), (1.0, 2_597))


def _weekly_many(n: int = 40, seed: int = 0, m4_lengths: bool = False) -> pd.DataFrame:
    """``n`` weekly sales-like series of 150 to 1,200 points (M4 Weekly's shape, smaller; with
    ``m4_lengths``, lengths drawn from ``M4_WEEKLY_LENGTHS``): level, drifting trend, a yearly
    cycle of its own shape, multiplicative noise."""
    rng = np.random.default_rng(seed)
    shares, sizes = zip(*M4_WEEKLY_LENGTHS, strict=True)
    frames = []
    for i in range(n):
        if m4_lengths:
            length = int(np.interp(rng.uniform(), shares, sizes))
        else:
            length = int(rng.integers(150, 1_201))
        t = np.arange(length)
        cycle = sum(
            rng.normal(0, 0.15 / k) * np.sin(2 * np.pi * k * t / 52.18 + rng.uniform(0, 6.3))
            for k in (1, 2, 3)
        )
        trend = np.cumsum(rng.normal(rng.normal(0, 0.002), 0.01, length))
        values = rng.uniform(50, 5_000) * np.exp(trend + cycle + rng.normal(0, 0.04, length))
        end = pd.Timestamp("2024-12-29")
        weeks = pd.date_range(end=end, periods=length, freq="W-SUN")
        frames.append(pd.DataFrame({"store": f"S{i:02d}", "week": weeks, "sales": values}))
    return pd.concat(frames, ignore_index=True)


def _half_hourly(weeks: int = 12, seed: int = 0) -> pd.DataFrame:
    """Electricity demand every 30 minutes (taylor-like): a daily shape, lower weekends,
    slowly moving level, autocorrelated noise."""
    rng = np.random.default_rng(seed)
    n = weeks * 7 * 48
    t = np.arange(n)
    day = t % 48
    daily = 0.25 * np.sin(2 * np.pi * (day - 14) / 48) + 0.1 * np.sin(4 * np.pi * day / 48)
    weekend = np.where((t // 48) % 7 >= 5, -0.12, 0.0)
    noise = np.zeros(n)
    for i in range(1, n):
        noise[i] = 0.9 * noise[i - 1] + rng.normal(0, 0.01)
    level = 0.05 * np.sin(2 * np.pi * t / n)
    values = 30_000 * np.exp(daily + weekend + level + noise)
    times = pd.date_range("2000-06-05", periods=n, freq="30min")
    return pd.DataFrame({"time": times, "demand_mw": values})


DATASETS = (
    DataSet("sunspots", "yearly, zeros (1711, 1712, 1810)", "YS", _sunspots, "id", "timestamp",
            "value"),
    DataSet("co2_gaps", "weekly, one series with gaps of up to 18 weeks, no id column", "W-SAT",
            lambda: _co2(gaps=True), None, "week", "co2_ppm"),
    DataSet("co2", "weekly, one series of 2,284 points, no id column", "W-SAT",
            lambda: _co2(gaps=False), None, "week", "co2_ppm"),
    DataSet("elnino", "monthly, day-first dates (31/01/1950), no id column", "ME", _elnino,
            None, "date", "sst", "%d/%m/%Y"),
    DataSet("macro", "quarterly, ten US macro series (id column 'series')", "QS", _macro,
            "series", "quarter", "value"),
    DataSet("nile", "yearly, one short series (100 points)", "YS", _nile, None, "year", "flow"),
    DataSet("weekly", "weekly, 40 series of 150 to 1,200 points (generated)", "W-SUN",
            _weekly_many, "store", "week", "sales"),
    DataSet("weekly_m4", "weekly, M4 Weekly's size: 359 series of 80 to 2,597 points (generated)",
            "W-SUN", lambda: _weekly_many(359, seed=1, m4_lengths=True), "store", "week",
            "sales"),
    DataSet("half_hourly", "half-hourly, 12 weeks of demand (generated)", "30min",
            _half_hourly, None, "time", "demand_mw"),
)  # fmt: skip


def split(ds: DataSet, frame: pd.DataFrame, horizon: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The file's rows without each series' last ``horizon`` rows, and those rows."""
    groups = frame.groupby(ds.id_col, sort=False) if ds.id_col else [(None, frame)]
    heads, tails = [], []
    for _, rows in groups:
        heads.append(rows.iloc[:-horizon])
        tails.append(rows.iloc[-horizon:])
    return pd.concat(heads), pd.concat(tails)


def write(ds: DataSet, frame: pd.DataFrame, path: Path) -> None:
    out = frame.copy()
    if ds.date_format:
        out[ds.time_col] = out[ds.time_col].dt.strftime(ds.date_format)
    out.to_csv(path, index=False)


def train(history: Path, model_dir: Path, flags: list[str]) -> dict:
    """``forecaster train`` with ``flags`` (none by default): wall and CPU seconds, and the
    error if it failed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "forecaster.cli", "train", "--data", str(history),
         "--out", str(model_dir), "--no-progress", *flags],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    said = [line for line in run.stderr.splitlines() if line.startswith("forecaster train:")]
    out = {"train_wall_s": round(wall, 1), "train_cpu_s": round(cpu, 1),
           "load_avg_1min": round(load, 2), "said": said}  # fmt: skip
    if run.returncode:
        lines = [line for line in run.stderr.strip().splitlines() if line.strip()]
        out["error"] = lines[-1] if lines else f"exit {run.returncode}"
    return out


def scores(history: list[np.ndarray], actual: np.ndarray, forecast: np.ndarray, m: int) -> dict:
    """MASE, sMAPE, the mean and median APE (%, points whose actual is not 0) and the worst 1%
    of series: the 99th percentile of each series' mean APE over those points (with few series,
    about the worst one)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(actual != 0, np.abs(forecast - actual) / np.abs(actual) * 100, np.nan)
    ape = terms[np.isfinite(terms)]
    counted = np.isfinite(terms).any(axis=1)
    per_series = np.nanmean(terms[counted], axis=1)
    return {
        "mase": round(metrics.mase(history, actual, forecast, m), 3),
        "smape": round(metrics.smape(actual, forecast), 3),
        "mean_ape": round(float(ape.mean()), 2),
        "median_ape": round(float(np.median(ape)), 2),
        "p99_series_ape": round(float(np.percentile(per_series, 99)), 2),
    }


def auto_ets(history: list[np.ndarray], horizon: int, m: int) -> np.ndarray:
    from statsforecast.models import AutoETS

    # statsforecast fits a seasonal ETS up to period 24 only; longer seasons are fitted without.
    season = m if m <= 24 else 1
    return np.stack([AutoETS(season_length=season).forecast(y=h, h=horizon)["mean"]
                     for h in history])  # fmt: skip


def run_one(ds: DataSet, workdir: Path, flags: list[str], models: Path | None = None,
            load: bool = False) -> dict:  # fmt: skip
    """Train ``ds`` (its model saved in ``models`` / name, else in ``workdir``) and score it;
    with ``load``, score the model saved there earlier instead of training."""
    cal = calendar(ds.freq)
    horizon, m = cal.horizon, cal.seasonality
    frame = ds.build()
    head, tail = split(ds, frame, horizon)
    history_file = workdir / f"{ds.name}.csv"
    write(ds, head, history_file)
    line: dict = {"benchmark": "own_data", "data": ds.name, "about": ds.about,
                  "rows": len(head), "horizon": horizon}  # fmt: skip
    if flags:
        line["flags"] = flags
    model_dir = (models or workdir) / ds.name
    if load:  # a set not kept there still gets its baselines' scores
        line["loaded"] = str(model_dir)
        if not (model_dir / "manifest.json").is_file():
            line["error"] = f"no model kept in {model_dir}"
    else:
        line |= train(history_file, model_dir, flags)
    # The histories as the model reads them (ids and gaps as `forecaster train` read them; gaps
    # interpolated however long, so every method forecasts from the same values).
    series = data.load_series(history_file, id_col=ds.id_col or "id", time_col=ds.time_col,
                              value_col=ds.value_col, date_format=ds.date_format,
                              max_gap=10**6)  # fmt: skip
    history = [np.asarray(v, np.float64) for v in series.values]
    groups = tail.groupby(ds.id_col, sort=False) if ds.id_col else [(None, tail)]
    by_id = {str(k): rows[ds.value_col].to_numpy(np.float64) for k, rows in groups}
    actual = np.stack([by_id[sid] for sid in series.ids]) if ds.id_col else next(
        iter(by_id.values()))[None]  # fmt: skip
    baselines = {
        "naive": metrics.naive(history, horizon),
        "seasonal_naive": metrics.seasonal_naive(history, horizon, m),
        "theta": classical.theta(history, horizon, m),
    }
    try:
        baselines["auto_ets"] = auto_ets(history, horizon, m)
    except ImportError:
        line["auto_ets"] = "statsforecast is not installed (pip install -e '.[bench]')"
    for name, forecast in baselines.items():
        line[name] = scores(history, actual, forecast, m)
    if "error" not in line:
        loaded = load_model(model_dir)
        cfg = loaded.config
        steps = (loaded.manifest.training or {}).get("steps")
        line["settings"] = {
            "input_size": cfg.input_size, "step": cfg.step, "min_input": cfg.min_input,
            "hidden": cfg.hidden, "steps": steps, "method": cfg.method,
            "classical_share": cfg.classical_share,
        }  # fmt: skip
        # The hold-out's horizon, as a user would ask it (rolled forward past a shorter one).
        forecast = extend.forecast(Predictor(cfg, loaded.params), history, horizon).point
        line["model"] = scores(history, actual, forecast, m)
    return line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [ds.name for ds in DATASETS]
    p.add_argument("--only", nargs="+", choices=names, default=names)
    p.add_argument("--out", type=Path, default=RESULTS, help="JSON lines appended here")
    p.add_argument("--note", help="a note added to every line")
    p.add_argument("--flags", default="", help="train flags, for comparisons (default: none)")
    p.add_argument("--models", type=Path, help="keep each trained model in DIR/<name>")
    p.add_argument("--load", action="store_true",
                   help="score the models kept in --models instead of training")  # fmt: skip
    args = p.parse_args(argv)
    if args.load and not args.models:
        p.error("--load needs --models DIR")
    with tempfile.TemporaryDirectory() as tmp:
        for ds in DATASETS:
            if ds.name not in args.only:
                continue
            line = run_one(ds, Path(tmp), args.flags.split(), args.models, args.load)
            if args.note:
                line = {"note": args.note, **line}
            print(json.dumps(line), flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with args.out.open("a") as f:
                f.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
