"""One chunk of series → its forecasts, as the service answers them: each history read by the
training missing-value rule (:mod:`forecaster.histories`), forecast by the model when it holds
the model's ``min_input`` points (:func:`forecaster.extend.forecast`: the
:class:`~forecaster.predict.Predictor`'s windows, forward and blend, rolled beyond the trained
horizon), else by the statistical fallback, with the model's calibrated bands
(:mod:`forecaster.calibration`). A covariate model's history ends at each series' last value;
the rows after it carry the horizon's future covariates (the console's layout), and every
series' covariates are checked and encoded as the service's (:class:`SeriesInputs` through
:meth:`Predictor.predict`). The checks are vectorised over the chunk (numpy group
boundaries, no per-series pandas); only series with missing values or skipped timestamps take
the per-series path the service takes for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd
import pyarrow as pa

from forecaster import calibration, extend
from forecaster.calibration import (
    Calibration,
    NotOffered,
    level_key,
    level_quantiles,
    uncalibrated_intervals,
)
from forecaster.covariates import CovariateError, CovariateSpec, SeriesInputs
from forecaster.fallback import Method, answering_method
from forecaster.histories import (
    MAX_ABS_VALUE,
    GapTooLong,
    NoValues,
    clean_history,
    least_after_gap,
    magnitude_rule,
    on_grid,
    trained_max_gap,
)
from forecaster.horizons import horizon_problem
from forecaster.options import ConfigError
from forecaster.predict import Predictor
from forecaster.sources import DataSource

from .job import DEFAULT_LEVELS, BatchJob
from .reading import series_starts

# Timestamp differences at series boundaries, out of every per-series minimum and check.
_NONE = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Wanted:
    """The intervals every series gets: ``levels`` (percent) bounded by the quantile pairs
    ``bounds``, the explicit ``quantiles``, and whether calibration serves them (else the
    model's quantile heads do)."""

    levels: tuple[float, ...]
    bounds: tuple[tuple[float, float], ...]
    quantiles: tuple[float, ...]
    calibrated: bool

    @property
    def probs(self) -> list[float]:
        return sorted({*self.quantiles, *(q for pair in self.bounds for q in pair)})


@dataclass(frozen=True)
class BatchModel:
    """The model a job forecasts with, loaded and compiled once (per process or Ray worker)."""

    name: str
    version: int
    predictor: Predictor
    calibration: Calibration | None
    seasonality: int
    freq: str
    max_gap: int
    horizon: int
    wanted: Wanted

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def resolve(job: BatchJob) -> tuple[str, int]:
    """The (name, version) ``job.model`` names: ``NAME`` (its production version),
    ``NAME@VERSION`` or ``NAME@ALIAS``. Raises the registry's errors naming what is missing."""
    from forecaster.environment import registry_root
    from forecaster.registry import ModelNotFoundError, Registry

    registry = Registry(registry_root(job.registry or None))
    name, _, at = job.model.partition("@")
    if at.isdigit():
        registry.manifest(name, int(at))  # raises VersionNotFoundError naming the versions
        return name, int(at)
    version = registry.alias(name, at or "production")
    if version is None:
        raise ModelNotFoundError(
            f"model {name!r} has no {at or 'production'!r} version in {registry.root}"
        )
    return name, version


def load(job: BatchJob, version: int | None = None) -> BatchModel:
    """``job``'s model (at ``version`` when given), compiled for the predictor's batch sizes and
    timed (:meth:`Predictor.warmup`), and the intervals the job asks checked against it."""
    from forecaster.environment import registry_root
    from forecaster.registry import Registry

    name = job.model.partition("@")[0]
    if version is None:
        name, version = resolve(job)
    loaded = Registry(registry_root(job.registry or None)).load(name, version)
    freq = job.data.freq or loaded.manifest.freq
    if freq is None:
        raise ConfigError(f"model {name!r} records no frequency: give the data's with --freq")
    cfg = loaded.config
    horizon = job.horizon or cfg.horizon
    too_far = horizon_problem(horizon, cfg.horizon)
    if too_far is not None:
        raise ConfigError(f"horizon: {too_far}")
    if loaded.covariates and horizon > cfg.horizon:
        raise ConfigError(
            f"horizon: model {name!r} reads covariates ({loaded.covariates.described()}) and "
            f"forecasts at most its trained horizon of {cfg.horizon} steps (it is not rolled "
            "forward on its own forecasts, which carry no covariates)"
        )
    predictor = Predictor(cfg, loaded.params, covariates=loaded.covariates)
    predictor.warmup()
    cal = loaded.manifest.calibration
    return BatchModel(
        name, version, predictor, cal, loaded.manifest.seasonality or 1, freq,
        trained_max_gap(loaded.manifest.training), horizon, wanted(job, cal, cfg.quantiles),
    )  # fmt: skip


def wanted(job: BatchJob, cal: Calibration | None, offered: Sequence[float]) -> Wanted:
    """The intervals to write (the service's rule): any, from a calibrated model; else only
    those its quantile heads give: a level or quantile asked that it cannot give is an error,
    a default level it cannot give is left out."""
    if cal is not None:
        return Wanted(job.levels, tuple(level_quantiles(job.levels)), job.quantiles, True)
    try:
        levels, bounds, quantiles = uncalibrated_intervals(
            job.levels, job.quantiles, offered, levels_asked=job.levels != DEFAULT_LEVELS
        )
    except NotOffered as exc:
        raise ConfigError(str(exc)) from None
    return Wanted(tuple(levels), tuple(bounds), tuple(quantiles), False)


# ------------------------------------------------------------------------------------ a chunk


@dataclass(frozen=True)
class Result:
    """A chunk's forecasts (one row per series and step) and the series that failed, each
    with why (``(id, message)``), in input order."""

    table: pa.Table
    series: int
    problems: list[tuple[str, str]]


def forecast_chunk(table: pa.Table, model: BatchModel, source: DataSource) -> Result:
    """Forecast every series of ``table`` (id, time, value columns; each series' rows
    contiguous): see the module docstring."""
    ids = table.column(source.id_col).combine_chunks()
    times = table.column(source.time_col).combine_chunks()
    values = table.column(source.value_col).to_numpy().astype(np.float64, copy=False)
    tz = times.type.tz
    t = times.cast(pa.timestamp("us", tz)).cast(pa.int64()).to_numpy(zero_copy_only=False)
    n = len(values)
    starts = series_starts(ids, None)
    ends = np.append(starts[1:], n)
    k = len(starts)
    names = [str(v) for v in ids.take(pa.array(starts)).to_pylist()]
    problems: dict[int, str] = {}
    _check_rows(ids, times, values, starts, ends, names, problems)
    offset = pd.tseries.frequencies.to_offset(model.freq)
    tick = isinstance(offset, pd.offsets.Tick)
    gapped = _check_steps(t, starts, ends, offset, model.freq, problems) if tick else None
    spec = model.predictor.covariates
    # A covariate model's history ends at each series' last value: the rows after it carry
    # the horizon's future covariates (the console's layout). Without covariates, every row.
    stops = _last_values(values, starts, ends) if spec else ends
    missing = np.isnan(values)
    if spec and n:
        missing &= np.arange(n) < np.repeat(stops, ends - starts)
    nans = np.add.reduceat(missing, starts) > 0 if n else np.zeros(0, bool)

    least = model.predictor.min_history
    after_gap = least_after_gap(least, model.seasonality)
    histories: list[np.ndarray] = []
    last = stops - 1  # row of each series' last point kept
    methods: list[str] = []
    for j in range(k):
        if j in problems:
            histories.append(values[:0])
            methods.append("")
            continue
        s, e = int(starts[j]), int(stops[j])
        if nans[j] or gapped is None or gapped[j]:
            found = _cleaned(values[s:e], t[s:e], offset, tick, model.max_gap, after_gap)
            if isinstance(found, str):
                problems[j] = found
                histories.append(values[:0])
                methods.append("")
                continue
            history, kept = found
            last[j] = s + kept
        else:
            history = values[s:e]
        histories.append(history)
        methods.append(answering_method(len(history), least, model.seasonality))

    h, wanted = model.horizon, model.wanted
    probs = wanted.probs
    point = np.full((k, h), np.nan)
    bands = {q: np.full((k, h), np.nan) for q in probs}
    rows = [j for j in range(k) if methods[j] == "model" and j not in problems]
    inputs = None
    if spec and rows:
        gaps = np.zeros(k, bool) if gapped is None else gapped
        given = _inputs(table, source, spec, rows, histories, starts, stops, ends, gaps, t, tz, h)
        inputs = [g for g in given.values() if not isinstance(g, str)]
        problems |= {j: m for j, m in given.items() if isinstance(m, str)}
        rows = [j for j in rows if j not in problems]
    if rows:
        modelled = [histories[j] for j in rows]
        result = extend.forecast(model.predictor, modelled, h, inputs)
        if wanted.calibrated and model.calibration is not None and probs:
            result = calibration.bands(model.calibration, modelled, result, probs)
        point[rows] = result.point
        for q in probs:
            bands[q][rows] = result.quantiles[q]
    cal = model.calibration if wanted.calibrated else None
    for j in range(k):
        if methods[j] in ("model", "") or j in problems:
            continue
        made, _ = calibration.fallback_forecast(
            cal, histories[j], h, model.seasonality, probs, cast(Method, methods[j])
        )
        point[j], methods[j] = made.point, made.method
        for q in probs:
            bands[q][j] = made.quantiles[q]
    finite = np.isfinite(point).all(axis=1)
    for band in bands.values():
        finite &= np.isfinite(band).all(axis=1)
    for j in np.flatnonzero(~finite).tolist():
        problems.setdefault(int(j), f"the {methods[j]} method produced non-finite forecasts")

    ok = np.array([j not in problems for j in range(k)], bool)
    future = _future(t[last[ok]], offset, tick, h, tz)
    out = _table(model, ids, starts[ok], future, point[ok], bands, ok, np.array(methods)[ok], tz)
    failed = [(names[j], problems[j]) for j in sorted(problems)]
    return Result(out, k, failed)


def _last_values(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """[k] the row after each series' last value (its end when it holds none)."""
    if not len(values):
        return ends
    rows = np.where(np.isnan(values), -1, np.arange(len(values)))
    last = np.maximum.reduceat(rows, starts)
    return np.where(last >= starts, last + 1, ends)


def _inputs(
    table: pa.Table,
    source: DataSource,
    spec: CovariateSpec,
    rows: list[int],
    histories: list[np.ndarray],
    starts: np.ndarray,
    stops: np.ndarray,
    ends: np.ndarray,
    gapped: np.ndarray,
    t: np.ndarray,
    tz: str | None,
    h: int,
) -> dict[int, SeriesInputs | str]:
    """The covariates of the series ``rows`` the model answers, as the service takes them
    from a request (:class:`SeriesInputs`, checked by :meth:`CovariateSpec.check`): each
    history point's past and future covariates, the future ones of the first ``h`` rows after
    its last value, the statics of its first row; or why they cannot be had."""
    dynamic = [*spec.names("past"), *spec.names("future")]
    cols = {c: table.column(c).to_numpy().astype(np.float64, copy=False) for c in dynamic}
    statics = {c: table.column(c) for c in spec.names("static")}
    ahead = spec.names("future")
    out: dict[int, SeriesInputs | str] = {}
    for i, j in enumerate(rows):
        stop, n = int(stops[j]), len(histories[j])
        if gapped[j]:
            out[j] = ("the timestamps skip points of their grid: a model with covariates needs "
                      "every step's row and covariates (give them, with the value empty where "
                      "it is missing)")  # fmt: skip
            continue
        if ahead and ends[j] - stop < h:
            out[j] = (
                f"its future covariates ({', '.join(ahead)}) are missing: {h} rows after its "
                f"last value are needed, one per step forecast (value empty), {ends[j] - stop} "
                "found"
            )
            continue
        end = pd.Timestamp(int(t[stop - 1]), unit="us")
        if tz:  # the service reads calendar features from the wall-clock time
            end = end.tz_localize("UTC").tz_convert(tz).tz_localize(None)
        first = {c: col[int(starts[j])].as_py() for c, col in statics.items()}
        given = SeriesInputs(
            past={c: cols[c][stop - n : stop] for c in dynamic},
            future={c: cols[c][stop : stop + h] for c in ahead},
            static={c: v for c, v in first.items() if v is not None},
            end=end,
        )
        try:
            spec.check(i, n, given, h)
        except CovariateError as exc:
            out[j] = exc.detail
            continue
        out[j] = given
    return out


def _check_rows(
    ids: pa.Array,
    times: pa.Array,
    values: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    names: list[str],
    problems: dict[int, str],
) -> None:
    """Series whose rows are not contiguous, whose timestamps are missing, or whose values
    exceed the service's ``max_abs_value``."""
    seen: dict[str, int] = {}
    for j, name in enumerate(names):
        if name in seen:
            problems[j] = problems[seen[name]] = (
                "its rows are not contiguous (the job needs each series' rows together: sort "
                "the file by id and time)"
            )
        seen[name] = j
    if ids.null_count:
        for j in np.flatnonzero(np.add.reduceat(ids.is_null().to_numpy(), starts) > 0).tolist():
            problems[int(j)] = "rows without an id"
    if times.null_count:
        missing = times.is_null().to_numpy(zero_copy_only=False)
        for j in np.flatnonzero(np.add.reduceat(missing, starts) > 0).tolist():
            problems.setdefault(int(j), "a row without a timestamp")
    big = np.flatnonzero(np.abs(np.nan_to_num(values, nan=0.0)) > MAX_ABS_VALUE)
    for row in big:
        j = int(np.searchsorted(starts, row, side="right") - 1)
        problems.setdefault(j, f"value at point {row - starts[j]}: {magnitude_rule(MAX_ABS_VALUE)}")


def _check_steps(
    t: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    offset: pd.DateOffset,
    freq: str,
    problems: dict[int, str],
) -> np.ndarray:
    """For a fixed-length frequency: the series whose timestamps repeat, go backwards, fall off
    the model's grid or are at another frequency get a problem; returns [k] whether each skips
    points of the grid (missing points, read by the per-series path)."""
    step = int(pd.Timedelta(offset).value // 1000)
    d = np.append(np.diff(t), 0)
    d[ends - 1] = _NONE  # across series
    least = np.minimum.reduceat(d, starts)
    d[ends - 1] = 0
    off = np.add.reduceat(d % step != 0, starts) > 0
    most = np.maximum.reduceat(d, starts)
    for j in np.flatnonzero(least <= 0):
        s = int(starts[j])
        at = s + int(np.flatnonzero(d[s : ends[j]] <= 0)[0])
        what = "repeats" if d[at] == 0 else "goes backwards"
        problems.setdefault(int(j), f"duplicate timestamps: the timestamp after point {at - s} "
                                    f"{what} (each series' timestamps must increase)")  # fmt: skip
    wrong = (least > 0) & (least != step) & (least != _NONE)
    for j in np.flatnonzero(wrong | off):
        problems.setdefault(int(j), f"the timestamps are not on the model's {freq!r} grid "
                                    f"(every {pd.Timedelta(offset)})")  # fmt: skip
    return most > step


def _cleaned(
    values: np.ndarray,
    t: np.ndarray,
    offset: pd.DateOffset,
    tick: bool,
    max_gap: int,
    after_gap: int,
) -> tuple[np.ndarray, int] | str:
    """One series with missing values or skipped timestamps read as the service reads it: its
    history and the index of its last point kept, or why it cannot be forecast."""
    if tick:
        positions = (t - t[0]) // int(pd.Timedelta(offset).value // 1000)
    else:
        stamps = pd.DatetimeIndex(t.astype("datetime64[us]"))
        grid = pd.date_range(stamps[0], stamps[-1], freq=offset)
        positions = grid.get_indexer(stamps)
        if (positions < 0).any() or (np.diff(positions) <= 0).any():
            return f"the timestamps are not on the model's {offset.freqstr!r} grid, or repeat"
    skips = len(positions) and positions[-1] != len(positions) - 1
    sent = None
    if skips:
        values, sent = on_grid(values, positions, max_gap)
    try:
        cleaned = clean_history(
            values,
            sent=sent,
            positions=positions if skips else None,
            min_after_gap=after_gap,
            max_gap=max_gap,
        )
    except NoValues as exc:
        return str(exc)
    except GapTooLong as exc:
        return str(exc)
    return cleaned.values, cleaned.last


def _future(
    last: np.ndarray, offset: pd.DateOffset, tick: bool, h: int, tz: str | None
) -> np.ndarray:
    """[n, h] int64 microseconds: the ``h`` timestamps after each series' last (UTC for a
    zoned column, as Arrow keeps them)."""
    if tick:
        step = int(pd.Timedelta(offset).value // 1000)
        return last[:, None] + step * np.arange(1, h + 1)[None, :]
    start = pd.DatetimeIndex(last.astype("datetime64[us]"))
    if tz:
        start = start.tz_localize("UTC").tz_convert(tz)
    cols = [(start + i * offset).as_unit("us") for i in range(1, h + 1)]
    return np.stack([c.asi8 for c in cols], axis=1) if len(last) else np.zeros((0, h), np.int64)


def _table(
    model: BatchModel,
    ids: pa.Array,
    starts: np.ndarray,
    future: np.ndarray,
    point: np.ndarray,
    bands: dict[float, np.ndarray],
    ok: np.ndarray,
    methods: np.ndarray,
    tz: str | None,
) -> pa.Table:
    """One row per series and step: id, timestamp, step, forecast, the levels' bounds and the
    quantiles asked, method, model and version."""
    m, h = point.shape
    wanted = model.wanted
    columns: dict[str, pa.Array] = {
        # Each id repeated h times: a dictionary column (Parquet keeps it so; CSV decodes it).
        "id": pa.DictionaryArray.from_arrays(
            pa.array(np.repeat(np.arange(m, dtype=np.int32), h)), ids.take(pa.array(starts))
        ),
        "timestamp": pa.array(future.ravel()).cast(pa.timestamp("us", tz)),
        "step": pa.array(np.tile(np.arange(1, h + 1, dtype=np.int32), m)),
        "forecast": pa.array(point.ravel()),
    }
    for level, (lo, hi) in zip(wanted.levels, wanted.bounds, strict=True):
        columns[f"lower_{level_key(level)}"] = pa.array(bands[lo][ok].ravel())
        columns[f"upper_{level_key(level)}"] = pa.array(bands[hi][ok].ravel())
    for q in wanted.quantiles:
        columns[f"quantile_{q:g}"] = pa.array(bands[q][ok].ravel())
    kinds, codes = np.unique(methods, return_inverse=True) if m else (np.array([]), np.zeros(0))
    columns["method"] = pa.DictionaryArray.from_arrays(
        pa.array(np.repeat(codes.astype(np.int32), h)), pa.array(kinds.tolist(), pa.string())
    )
    columns["model"] = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(m * h, np.int32)), pa.array([model.name])
    )
    columns["version"] = pa.array(np.full(m * h, model.version, np.int32))
    return pa.table(columns)
