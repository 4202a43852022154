"""Load and validate many time series, and cut them into training windows for one global model.

Formats (CSV or Parquet by suffix, local path or any fsspec URL such as ``s3://`` or ``memory://``):

- long: one row per observation with an id, a timestamp and a value column (names configurable).
  Rows of different series may interleave; within a series timestamps must increase strictly.
- wide (M4): one row per series, the first column the id, then the observations in time order,
  padded with empty cells after the series ends. There are no timestamps: ``freq``/``end`` stay
  None unless the caller passes ``freq``.
- auto: decided from the content (:func:`detect_layout`): long when a column holds dates (the
  ``time_col`` one, else the first column of dates), else wide. A long file needs no id column:
  without one it is one series (named after its value column), or with several numeric columns
  and one row per timestamp, one series per column. ``SeriesSet.reading`` says what was chosen.

Dates: ISO 8601 as written; other spellings (``01/02/1980``) are read both month first and day
first, and when both readings fit the file and differ, :class:`DataError` names the two; the
``dayfirst`` and ``date_format`` options settle it.

Missing-value policy:

- Leading and trailing missing values are not data: wide rows are padded that way, and in long
  format a series simply starts at its first and ends at its last observed value.
- Interior gaps of up to ``max_gap`` consecutive missing points (default 3) are filled by linear
  interpolation between the neighbouring observations; a longer gap cuts the series
  (:func:`split_at_gaps`): its ``values`` are the points after its last long gap (what a forecast
  reads, as the service does with a history), and the segments before are kept apart
  (``SeriesSet.before_gaps``) for training windows that never span a long gap. Every gap handled
  is recorded (``SeriesSet.gaps``) and summed up in one line (:meth:`SeriesSet.gap_summary`).
- In long format a missing *row* (a timestamp skipped on the series' regular grid) is a missing
  point like an empty value, so the same gap rule applies. Timestamps that do not fall on the grid
  of the frequency (irregular spacing) are refused, naming the first offending timestamp.

Error positions: long format gives the timestamp and the 0-based data row; wide format the 0-based
index among the value columns (the position in the series, as M4 has no leading padding) and the
column name.

Frequency: inferred per series (or the ``freq`` argument); all series must agree. A series too
short or too gappy to infer from takes the frequency the others agree on
(:func:`forecaster.frequency.common_frequency`).

Windows are cut in :mod:`forecaster.windows`; scaling in :mod:`forecaster.scaling`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from forecaster.configs import TrainConfig
from forecaster.covariates import CovariateValues
from forecaster.frequency import check_alias, common_frequency
from forecaster.sources import SOURCE_OPTIONS, DataSource, Format
from forecaster.timestamps import CLOCK_WORDS

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

__all__ = [
    "MAX_GAP",
    "SOURCE_OPTIONS",
    "DataError",
    "DataSource",
    "HandledGap",
    "Layout",
    "SeriesSet",
    "Split",
    "detect_layout",
    "fill_gaps",
    "fingerprint",
    "gap_runs",
    "load_series",
    "one_line",
    "read_frame",
    "read_times",
    "series_from_frame",
    "split_at_gaps",
    "train_val_split",
]


class DataError(ValueError):
    """Invalid input data; the message names the series id and the position of the problem."""


#: Longest run of interior missing points that is interpolated (training and serving alike; the
#: default of ``TrainConfig.max_gap``, hence of ``--max-gap``).
MAX_GAP: int = TrainConfig.max_gap


# ---------------------------------------------------------------------------- SeriesSet


@dataclass(frozen=True)
class HandledGap:
    """A run of ``missing`` points in series ``series`` starting at ``at`` (a timestamp, or an
    index and column), interpolated or, when ``cut`` (longer than ``max_gap``), where the series
    was cut."""

    series: str
    at: str
    missing: int
    cut: bool


# The gaps a summary line lists one by one; it counts them all.
LISTED_GAPS = 20


@dataclass
class SeriesSet:
    """Many univariate series: ``values[i]`` is the float64 history ``[len_i]`` of ``ids[i]``.

    ``freq`` is a pandas offset alias when timestamps are known; ``end[i]`` is then the timestamp
    of the last observation of series ``i``. A series cut by long gaps (module docstring) keeps
    its earlier segments, oldest first, in ``before_gaps[id]``; ``gaps`` records every gap the
    loader handled. ``reading`` says how a file was read (layout, columns, dates), in words,
    when it came from one. ``covariates`` holds the covariate columns read with the series,
    aligned with ``values`` (:class:`~forecaster.covariates.CovariateValues`).
    """

    ids: list[str]
    values: list[F64]
    freq: str | None = None
    end: list[pd.Timestamp] | None = None
    before_gaps: dict[str, list[F64]] = dataclasses.field(default_factory=dict)
    gaps: list[HandledGap] = dataclasses.field(default_factory=list)
    reading: str = ""
    covariates: CovariateValues = dataclasses.field(default_factory=CovariateValues)

    def __post_init__(self) -> None:
        self.ids = [str(i) for i in self.ids]
        self.values = [np.asarray(v, dtype=np.float64).reshape(-1) for v in self.values]
        self.before_gaps = {str(k): [np.asarray(v, np.float64).reshape(-1) for v in segments]
                            for k, segments in self.before_gaps.items() if segments}  # fmt: skip
        if len(self.ids) != len(self.values):
            raise ValueError(f"{len(self.ids)} ids for {len(self.values)} series")
        if self.end is not None and len(self.end) != len(self.ids):
            raise ValueError(f"{len(self.end)} end timestamps for {len(self.ids)} series")
        if len(set(self.ids)) != len(self.ids):
            raise DataError(f"duplicate series id {_first_duplicate(self.ids)!r}")

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[tuple[str, F64]]:
        """Yield ``(id, values)`` pairs."""
        return iter(zip(self.ids, self.values, strict=True))

    def __getitem__(self, key: str | int) -> F64:
        """Values of the series with id ``key`` (a str) or at position ``key`` (an int)."""
        return self.values[self.ids.index(key) if isinstance(key, str) else key]

    @property
    def lengths(self) -> I64:
        """Series lengths ``[n_series]``."""
        return np.array([v.size for v in self.values], dtype=np.int64)

    def select(self, which: Sequence[int] | Sequence[str] | slice) -> SeriesSet:
        """Subset by positions, ids or a slice, keeping ``freq`` and the matching ``end``."""
        if isinstance(which, slice):
            pos = list(range(len(self)))[which]
        else:
            lookup = {sid: i for i, sid in enumerate(self.ids)}
            pos = [lookup[w] if isinstance(w, str) else int(w) for w in which]
        end = None if self.end is None else [self.end[i] for i in pos]
        ids = [self.ids[i] for i in pos]
        kept = set(ids)
        before = {k: v for k, v in self.before_gaps.items() if k in kept}
        gaps = [g for g in self.gaps if g.series in kept]
        return SeriesSet(ids, [self.values[i] for i in pos], self.freq, end, before, gaps,
                         covariates=self.covariates.select(pos))  # fmt: skip

    def gap_summary(self) -> str | None:
        """One line on every gap the loader handled (None when there was none): how many were
        interpolated and how many cut a series, then each (up to ``LISTED_GAPS``)."""
        if not self.gaps:
            return None
        cut = sum(g.cut for g in self.gaps)
        listed = "; ".join(
            f"{g.series!r} at {g.at}: {g.missing} {'cut' if g.cut else 'filled'}"
            for g in self.gaps[:LISTED_GAPS]
        )
        more = f" and {len(self.gaps) - LISTED_GAPS} more" if len(self.gaps) > LISTED_GAPS else ""
        series = len({g.series for g in self.gaps})
        return (
            f"{len(self.gaps)} gap(s) of missing points in {series} series: "
            f"{len(self.gaps) - cut} interpolated, {cut} longer than max_gap cut the history "
            f"(training reads the segments between, a forecast the points after the last): "
            f"{listed}{more}"
        )


def _first_duplicate(items: Sequence[str]) -> str:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return ""


# ---------------------------------------------------------------------------- reading


def read_frame(path: str | Any, storage_options: dict[str, Any] | None) -> pd.DataFrame:
    """CSV or Parquet by suffix (``.csv``, ``.csv.gz`` ..., ``.parquet``, ``.pq``).

    Every failure to read (no such file, a URL whose fsspec backend is not installed, missing
    credentials, a malformed file) is a :class:`DataError` naming the path and the cause.
    """
    suffixes = [s.lower() for s in PurePosixPath(str(path).split("?", 1)[0]).suffixes]
    # pandas refuses storage_options for plain local paths, so pass it only when given.
    kwargs: dict[str, Any] = {} if storage_options is None else {"storage_options": storage_options}
    if suffixes and suffixes[-1] in {".parquet", ".pq"}:
        reader: Callable[..., pd.DataFrame] = pd.read_parquet
    elif ".csv" in suffixes:
        reader = pd.read_csv
    else:
        raise DataError(f"cannot tell the file type of {path!s}: expected .csv[.gz] or .parquet")
    try:
        return reader(path, **kwargs)
    except FileNotFoundError as err:
        raise DataError(f"cannot read {path!s}: no such file") from err
    except ImportError as err:  # e.g. s3:// without s3fs installed
        raise DataError(f"cannot read {path!s}: {one_line(err)}") from err
    except Exception as err:  # credentials, permissions, network, a malformed file
        raise DataError(f"cannot read {path!s}: {one_line(err, named=True)}") from err


def one_line(
    err: BaseException, limit: int = 500, *, first: bool = False, named: bool = False
) -> str:
    """``err`` in at most ``limit`` characters (cut: "..."): its message on one line (pydantic's
    span several), only the first with ``first`` (drivers follow it with hints, SQLAlchemy with
    a link), after its type's name with ``named`` (messages that do not say what failed)."""
    text = str(err).strip()
    text = " ".join((text.partition("\n")[0] if first else text).split())
    if named or not text:
        text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def _to_numeric(raw: pd.Series, describe: Callable[[int], str]) -> F64:
    """Float64 values of ``raw`` (nan where empty); text or infinities raise.

    ``describe(i)`` names the series and position of element ``i`` for the error message.
    """
    num = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if raw.dtype == object or pd.api.types.is_string_dtype(raw.dtype):
        blank = raw.isna().to_numpy() | raw.astype(str).str.strip().eq("").to_numpy()
        bad = np.isnan(num) & ~blank
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{describe(i)}: non-numeric value {raw.iloc[i]!r}")
    if np.isinf(num).any():
        raise DataError(f"{describe(int(np.argmax(np.isinf(num))))}: infinite value")
    return num


class Split(NamedTuple):
    """A series cut by :func:`split_at_gaps`: ``segments`` between long gaps, oldest first, each
    (position of its first point, its values with short gaps interpolated), and every run of
    missing points between its first and last observation (``starts``, exclusive ``stops``,
    positions in the series; runs longer than the ``max_gap`` cut it)."""

    segments: list[tuple[int, F64]]
    starts: I64
    stops: I64


def split_at_gaps(values: ArrayLike, max_gap: int = MAX_GAP) -> Split:
    """The missing-value policy on one series ``values [n]`` (nan = missing), the one home of
    it: training (the loaders) reads every segment, a forecast (:mod:`forecaster.histories`)
    the last. Leading and trailing missing points are trimmed; a series with no value has no
    segment."""
    values = np.asarray(values, dtype=np.float64)
    observed = np.flatnonzero(~np.isnan(values))
    if observed.size == 0:
        return Split([], np.zeros(0, np.int64), np.zeros(0, np.int64))
    first, last = int(observed[0]), int(observed[-1])
    starts, stops = (first + r for r in gap_runs(np.isnan(values[first : last + 1])))
    long = stops - starts > max_gap
    bounds = zip([first, *stops[long]], [*starts[long], last + 1], strict=True)
    segments = [(int(a), _interpolate(values[a:b])) for a, b in bounds]
    return Split(segments, starts, stops)


def _interpolate(core: F64) -> F64:
    """``core`` with its missing points linearly interpolated (its ends are observed)."""
    missing = np.isnan(core)
    if not missing.any():
        return core.copy()
    pos = np.arange(core.size)
    out = core.copy()
    out[missing] = np.interp(pos[missing], pos[~missing], core[~missing])
    return out


def fill_gaps(values: ArrayLike, max_gap: int = MAX_GAP) -> tuple[F64, int, int]:
    """One series ``values [n]`` (nan = missing) with no gap longer than ``max_gap``: the filled
    values ``[k]``, the position of the first kept point and how many points were interpolated;
    :class:`DataError` names the first gap longer than ``max_gap``."""
    values = np.asarray(values, dtype=np.float64)
    split = split_at_gaps(values, max_gap)
    if not split.segments:
        return values[:0], 0, 0
    too_long = split.stops - split.starts > max_gap
    if too_long.any():
        k = int(np.argmax(too_long))
        raise DataError(
            f"gap of {split.stops[k] - split.starts[k]} missing values starting at "
            f"{split.starts[k]} is longer than max_gap={max_gap}"
        )
    first, core = split.segments[0]
    return core, first, int(np.isnan(values[first : first + core.size]).sum())


def gap_runs(missing: NDArray[np.bool_]) -> tuple[I64, I64]:
    """Runs of True in ``missing [n]``: their starts and (exclusive) stops, ``[runs]`` each."""
    # From the edges of the mask: one vectorised pass, no loop per point.
    edges = np.diff(np.r_[0, missing.astype(np.int8), 0])
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


class _Cut(NamedTuple):
    """A loaded series after the policy: the values after its last long gap, the position of
    their first point, its earlier segments and the gaps handled."""

    values: F64
    first: int
    before: list[F64]
    gaps: list[HandledGap]


def _cut_at_gaps(sid: str, values: F64, labels: Sequence[Any], max_gap: int) -> _Cut:
    """:func:`split_at_gaps` of one loaded series; ``labels[j]`` names position ``j``."""
    split = split_at_gaps(values, max_gap)
    if not split.segments:
        return _Cut(values[:0], 0, [], [])
    gaps = [HandledGap(sid, str(labels[a]), int(b - a), bool(b - a > max_gap))
            for a, b in zip(split.starts, split.stops, strict=True)]  # fmt: skip
    *before, (first, core) = split.segments
    return _Cut(core, first, [segment for _, segment in before], gaps)


def _check_length(sid: str, n: int, min_length: int) -> None:
    if n < min_length:
        raise DataError(f"series {sid!r}: {n} observations, fewer than min_length={min_length}")


# ---------------------------------------------------------------------------- wide format


def _load_wide(frame: pd.DataFrame, *, min_length: int, max_gap: int) -> SeriesSet:
    """One series per row: first column the id, then the values padded with empty cells."""
    if frame.shape[1] < 2:
        raise DataError("wide format needs an id column and at least one value column")
    ids = frame.iloc[:, 0].astype(str).tolist()
    if len(set(ids)) != len(ids):
        raise DataError(f"duplicate series id {_first_duplicate(ids)!r} in the first column")
    columns = [str(c) for c in frame.columns[1:]]
    labels = [f"index {j} (column {c!r})" for j, c in enumerate(columns)]
    ncol = len(columns)
    raw = pd.Series(frame.iloc[:, 1:].to_numpy().ravel())

    def describe(i: int) -> str:
        return f"series {ids[i // ncol]!r} at {labels[i % ncol]}"

    values = _to_numeric(raw, describe).reshape(len(ids), ncol)
    out, before, gaps = [], {}, []
    for sid, row in zip(ids, values, strict=True):
        cut = _cut_at_gaps(sid, row, labels, max_gap)
        _check_length(sid, cut.values.size, min_length)
        out.append(cut.values)
        before[sid] = cut.before
        gaps.extend(cut.gaps)
    return SeriesSet(ids, out, before_gaps=before, gaps=gaps)


# ---------------------------------------------------------------------------- long format


def _parse_times(times: pd.DatetimeIndex, raw: pd.Series, ids: pd.Series) -> pd.DatetimeIndex:
    """``times`` read from ``raw``, unless one is missing or unparseable: that raises, naming
    the series and the row."""
    if times.isna().any():
        i = int(np.argmax(times.isna()))
        what = "missing timestamp" if pd.isna(raw.iloc[i]) else f"unparseable {raw.iloc[i]!r}"
        raise DataError(f"series {ids.iloc[i]!r}: {what} at data row {i}")
    return times


def _group_rows(codes: I64, n_series: int) -> list[I64]:
    """Row positions of each series, in file order within a series ``[len_i]`` each."""
    order = np.argsort(codes, kind="stable")
    return np.split(order, np.cumsum(np.bincount(codes, minlength=n_series))[:-1])


def _check_order(sid: str, times: pd.DatetimeIndex, rows: I64) -> None:
    step = np.diff(times.asi8)
    if (step > 0).all():
        return
    k = int(np.argmax(step <= 0)) + 1
    what = "duplicate timestamp" if step[k - 1] == 0 else "timestamps not increasing at"
    raise DataError(f"series {sid!r}: {what} {times[k]} (data row {rows[k]})")


def _on_grid(sid: str, times: pd.DatetimeIndex, values: F64, freq: str) -> tuple[F64, Any]:
    """Values on the regular grid ``[len(grid)]`` (nan for skipped timestamps) and the grid."""
    grid = pd.date_range(times[0], times[-1], freq=freq)
    pos = grid.get_indexer(times)
    if (pos < 0).any():
        raise DataError(
            f"series {sid!r}: timestamp {times[int(np.argmax(pos < 0))]} is off the {freq!r} grid"
        )
    full = np.full(len(grid), np.nan)
    full[pos] = values
    return full, grid


def _load_long(
    frame: pd.DataFrame,
    layout: Layout,
    *,
    freq: str | None,
    min_length: int,
    max_gap: int,
    date_format: str | None = None,
    dayfirst: bool | None = None,
    roles: Mapping[str, tuple[str, ...]] | None = None,
) -> tuple[SeriesSet, str]:
    """One row per observation, in the columns ``layout`` names; also how the dates were read.
    ``roles``: the covariate columns of each role (:func:`_covariate_columns`)."""
    ids, raw_times, raw_values = long_columns(frame, layout)
    parsed, dates = read_times(
        raw_times, date_format=date_format, dayfirst=dayfirst, column=layout.time_col or ""
    )
    times = _parse_times(parsed, raw_times, ids)
    values = _to_numeric(
        raw_values, lambda i: f"series {ids.iloc[i]!r} at {times[i]} (data row {i % len(frame)})"
    )
    codes, uniques = pd.factorize(ids)
    series_ids = [str(u) for u in uniques]
    rows = _group_rows(codes.astype(np.int64), len(series_ids))
    per_times = [times[r] for r in rows]
    for sid, t, r in zip(series_ids, per_times, rows, strict=True):
        _check_order(sid, t, r)
    try:
        freq = check_alias(freq) if freq else common_frequency(series_ids, per_times)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    roles = roles or {}
    # Without an id column every value column is a series over the same rows (long_columns).
    tiled = {name: pd.concat([frame[name]] * (len(ids) // max(len(frame), 1)), ignore_index=True)
              for names in roles.values() for name in names}  # fmt: skip

    def where(name: str) -> Callable[[int], str]:
        return lambda i: f"covariate {name!r}: series {ids.iloc[i]!r} at {times[i]} (data row {i})"

    dynamic = {name: _to_numeric(tiled[name], where(name))
               for role in ("past", "future") for name in roles.get(role, ())}  # fmt: skip
    covariates = CovariateValues({n: [] for n in roles.get("past", ())},
                                 {n: [] for n in roles.get("future", ())},
                                 {n: [] for n in roles.get("static", ())})  # fmt: skip
    out, ends, before, gaps = [], [], {}, []
    for sid, t, r in zip(series_ids, per_times, rows, strict=True):
        full, grid = _on_grid(sid, t, values[r], freq) if freq else (values[r], t)
        columns = {n: _on_grid(sid, t, v[r], freq)[0] if freq else v[r] for n, v in dynamic.items()}
        # A point is missing where the target or any covariate is: one policy for them all.
        both = full.copy()
        for column in columns.values():
            both[np.isnan(column)] = np.nan
        cut = _cut_at_gaps(sid, both, grid, max_gap)  # the index itself labels positions
        _check_length(sid, cut.values.size, min_length)
        out.append(cut.values)
        ends.append(grid[cut.first + cut.values.size - 1] if cut.values.size else pd.NaT)
        # Segments before long gaps have no timestamps kept (calendar features): with
        # covariates, training reads the points after the last long gap only.
        before[sid] = [] if roles else cut.before
        gaps.extend(cut.gaps)
        span = slice(cut.first, cut.first + cut.values.size)
        for name, column in columns.items():
            part = _interpolate(column[span]) if cut.values.size else column[:0]
            (covariates.past if name in covariates.past else covariates.future)[name].append(part)
        for name in roles.get("static", ()):
            covariates.static[name].append(_static_value(tiled[name].iloc[r], name, sid))
    return SeriesSet(series_ids, out, freq, ends, before, gaps, covariates=covariates), dates


def _static_value(column: pd.Series, name: str, sid: str) -> float | str:
    """The one value of static covariate ``name`` in series ``sid``'s rows: a number, or text
    (a category) when the column is not numeric; it must not change within the series."""
    present = column.dropna()
    if present.empty:
        raise DataError(f"static covariate {name!r}: series {sid!r} has no value")
    if present.nunique() > 1:
        raise DataError(
            f"static covariate {name!r}: series {sid!r} holds several values "
            f"({present.iloc[0]!r}, {present[present != present.iloc[0]].iloc[0]!r}); a static "
            "covariate has one value per series"
        )
    value = present.iloc[0]
    if _is_numeric(column):
        if not np.isfinite(float(value)):
            raise DataError(f"static covariate {name!r}: series {sid!r}: infinite value")
        return float(value)
    return str(value)


def _covariate_columns(
    frame: pd.DataFrame, layout: Layout, roles: Mapping[str, Sequence[str]]
) -> dict[str, tuple[str, ...]]:
    """The covariate columns of each role, checked: each exists, is named once and is not an
    id, timestamp or value column; past and future ones are numeric."""
    columns = [str(c) for c in frame.columns]
    taken = {layout.id_col, layout.time_col, *layout.value_cols}
    seen: set[str] = set()
    out: dict[str, tuple[str, ...]] = {}
    for role in ("past", "future", "static"):
        names = tuple(roles.get(role, ()))
        for name in names:
            if name not in columns:
                raise DataError(
                    f"{role} covariate column {name!r} is not in the file (columns: "
                    f"{_shown(columns, 10)})"
                )
            if name in taken or name in seen:
                raise DataError(f"{role} covariate column {name!r} is named twice or is the "
                                "id, timestamp or value column")  # fmt: skip
            seen.add(name)
            if role != "static" and not _is_numeric(frame[name]):
                sample = frame[name].dropna()
                bad = sample[pd.to_numeric(sample, errors="coerce").isna()]
                if len(bad):
                    raise DataError(
                        f"{role} covariate column {name!r} is not numeric (e.g. {bad.iloc[0]!r})"
                    )
        if names:
            out[role] = names
    return out


def _validate_freq(freq: str) -> str:
    try:
        return check_alias(freq)
    except ValueError as exc:
        raise DataError(str(exc)) from None


# ---------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Layout:
    """How a frame holds its series.

    ``"long"``: a row per observation, the timestamps in ``time_col``; with an ``id_col``, the
    values in ``value_cols[0]``; without one, each of ``value_cols`` is one series named after
    it. ``"wide"``: a row per series, the ids in the first column. ``why``: what decided it.
    """

    format: Literal["long", "wide"]
    id_col: str | None = None
    time_col: str | None = None
    value_cols: tuple[str, ...] = ()
    why: str = ""

    def describe(self) -> str:
        """The layout in words, e.g. ``long (ids 'store', timestamps 'date', values 'sales')``."""
        if self.format == "wide":
            return f"wide (a row per series, ids in the first column; {self.why})"
        cols = ", ".join(repr(c) for c in self.value_cols)
        if self.id_col is not None:
            what = f"ids {self.id_col!r}, timestamps {self.time_col!r}, values {cols}"
        elif len(self.value_cols) == 1:
            what = f"no id column: one series {cols}, timestamps {self.time_col!r}"
        else:
            what = f"no id column: a series per column ({cols}), timestamps {self.time_col!r}"
        return f"long ({what})"


# A date column: this many of its first values are looked at, and all must read as dates of
# these years (dateutil reads some ids as dates: "M1" is 0001-01-01 00:00:01).
DATE_SAMPLE = 20
DATE_YEARS = (1000, 2999)
# Dates that start with a four-digit year are year-month-day; dateutil would read them
# year-day-month when told day first.
_YEAR_FIRST = re.compile(r"\s*\d{4}\D")


def detect_layout(
    frame: pd.DataFrame,
    format: Format = "auto",
    id_col: str = "id",
    time_col: str = "timestamp",
    value_col: str = "value",
) -> Layout:
    """The :class:`Layout` of ``frame``, from its content where the column names do not say:

    - ``wide`` when asked, or (``auto``) when no column holds dates;
    - timestamps: ``time_col``, else the first column whose values read as dates;
    - ids: ``id_col``, else the one text column left (none: no id column);
    - values: ``value_col``, else the numeric columns left: one (the value column), or, with no
      id column and one row per timestamp, several (a series each).

    Raises :class:`DataError` naming the columns when it cannot tell.
    """
    if format not in ("auto", "long", "wide"):
        raise ValueError(f"format must be 'auto', 'long' or 'wide', not {format!r}")
    columns = [str(c) for c in frame.columns]
    if format == "wide":
        return Layout("wide", why="as asked")
    if format == "auto" and {id_col, time_col, value_col} <= set(columns):
        return Layout("long", id_col, time_col, (value_col,), "columns named so")
    times = time_col if time_col in columns else _date_column(frame)
    if times is None:
        if format == "long":
            raise DataError(
                f"long format needs a timestamp column: {time_col!r} is missing, and no column "
                f"of {columns} holds dates; name it with time_col (--time-col)"
            )
        return Layout("wide", why=f"no column of dates among {_shown(columns)}")
    rest = [c for c in columns if c != times]
    numeric = [c for c in rest if _is_numeric(frame[c])]
    ids = id_col if id_col in columns else None
    if ids is None:
        text = [c for c in rest if c not in numeric and c != value_col]
        if len(text) > 1:
            raise DataError(
                f"cannot tell which column names the series among {text}; give id_col (--id-col)"
            )
        ids = text[0] if text else None
    if value_col in columns:
        values = [value_col]
    else:
        values = [c for c in numeric if c != ids]
        if not values:
            raise DataError(
                f"no numeric column of values among {columns}; give value_col (--value-col)"
            )
        if ids is not None and len(values) > 1:
            raise DataError(
                f"cannot tell which column holds the values among {values}; give value_col "
                "(--value-col)"
            )
    if ids is None and len(values) > 1 and frame[times].duplicated().any():
        raise DataError(
            f"timestamps in {times!r} repeat, so the file holds several series, but no column "
            f"names them; give id_col (--id-col)"
        )
    return Layout("long", ids, times, tuple(values), "a column of dates")


def _shown(columns: list[str], most: int = 5) -> str:
    more = f" and {len(columns) - most} more" if len(columns) > most else ""
    return ", ".join(repr(c) for c in columns[:most]) + more


def _is_numeric(column: pd.Series) -> bool:
    dtype = column.dtype
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _date_column(frame: pd.DataFrame) -> str | None:
    """The first column whose values (the first ``DATE_SAMPLE`` of them) all read as dates."""
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_datetime64_any_dtype(column.dtype):
            return str(name)
        if _is_numeric(column) or pd.api.types.is_bool_dtype(column.dtype):
            continue
        sample = column.dropna().astype(str).head(DATE_SAMPLE)
        if sample.empty:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read = pd.to_datetime(sample, format="mixed", errors="coerce")
        years = read.dt.year
        if read.notna().all() and years.between(*DATE_YEARS).all():
            return str(name)
    return None


def long_columns(frame: pd.DataFrame, layout: Layout) -> tuple[pd.Series, pd.Series, pd.Series]:
    """The ids (text), raw timestamps and raw values of every observation of a long ``frame``,
    ``[rows]`` each: a file without an id column is one series per value column."""
    assert layout.format == "long" and layout.time_col is not None
    frame = frame.reset_index(drop=True)
    raw_times = frame[layout.time_col]
    if layout.id_col is not None:
        return frame[layout.id_col].astype(str), raw_times, frame[layout.value_cols[0]]
    n = len(frame)
    ids = pd.Series(np.repeat(np.array(layout.value_cols, dtype=object), n))
    times = pd.concat([raw_times] * len(layout.value_cols), ignore_index=True)
    values = pd.concat([frame[c] for c in layout.value_cols], ignore_index=True)
    return ids, times, values


def read_times(
    raw: pd.Series,
    *,
    date_format: str | None = None,
    dayfirst: bool | None = None,
    column: str = "timestamp",
) -> tuple[pd.DatetimeIndex, str]:
    """The timestamps in ``raw`` ``[n]`` (NaT where missing or unreadable) and how they were
    read, in words (``""`` when there was nothing to decide).

    ISO 8601 is read as written; other spellings both month first and day first (unless
    ``dayfirst`` says which, or ``date_format`` gives the format), each with one format for
    the whole column. When both readings fit and differ, :class:`DataError` names the two.
    Whole numbers between 1000 and 2999 are years. ``now`` and ``today`` (:data:`CLOCK_WORDS`),
    which pandas reads as the current time under any format, are refused naming their rows.
    """
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        return pd.DatetimeIndex(raw), ""
    if _is_numeric(raw):
        years = raw.dropna()
        if len(years) and (years % 1 == 0).all() and years.between(*DATE_YEARS).all():
            text = raw.map(lambda y: "" if pd.isna(y) else str(int(y)))
            return _to_times(text, format="%Y"), "years"
        raise DataError(f"timestamp column {column!r} holds numbers, not dates")
    _refuse_clock_words(raw, column)
    if date_format is not None:
        return _to_times(raw, format=date_format), f"format {date_format}"
    tried = []
    if dayfirst is None:
        iso = _to_times(raw, format="ISO8601")
        if _complete(iso, raw):
            return iso, ""
        tried.append(iso)
    orders = [dayfirst] if dayfirst is not None else [False, True]
    first = raw.dropna().astype(str).head(1)
    if dayfirst is None and len(first) and _YEAR_FIRST.match(first.iloc[0]):
        orders = [False]
    readings = {order: _to_times(raw, dayfirst=order) for order in orders}
    fits = {order: t for order, t in readings.items() if _complete(t, raw)}
    if len(fits) == 2 and not fits[False].equals(fits[True]):
        i = int(np.argmax(fits[False] != fits[True]))
        month, day = fits[False][i], fits[True][i]
        raise DataError(
            f"the dates in column {column!r} read two ways: {raw.iloc[i]!r} is "
            f"{month:%Y-%m-%d} month first and {day:%Y-%m-%d} day first; say which with "
            "dayfirst (--dayfirst or --no-dayfirst) or date_format (--date-format)"
        )
    if fits:
        order, times = next(iter(fits.items()))
        decided = len(readings) == 1 or (len(fits) == 1 and len(orders) == 2)
        return times, ("day first" if order else "month first") if decided else ""
    # Nothing reads every row: the reading that reads the most, for the error naming the first
    # row it cannot read.
    return min([*tried, *readings.values()], key=lambda t: int(t.isna().sum())), ""


def _refuse_clock_words(raw: pd.Series, column: str) -> None:
    """DataError naming the rows (positions) of ``raw`` that hold a word pandas reads as the
    clock: a file read today and tomorrow must not hold two different histories."""
    # Exactly as written: pandas reads no other spelling as the clock (" now", "Now": unreadable).
    rows = np.flatnonzero(raw.isin(CLOCK_WORDS).to_numpy())
    if not len(rows):
        return
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    first = raw.iloc[int(rows[0])]
    raise DataError(
        f"timestamp column {column!r}, data row{'s' if len(rows) > 1 else ''} "
        f"{', '.join(str(r) for r in rows[:5])}{more}: {first!r} is not a date (pandas reads "
        "it as the current time); write the time itself"
    )


def _to_times(raw: pd.Series, **how: Any) -> pd.DatetimeIndex:
    with warnings.catch_warnings():
        # pandas warns when it infers a format, or reads a date against dayfirst; the readings
        # are compared here instead.
        warnings.simplefilter("ignore")
        try:
            return pd.DatetimeIndex(pd.to_datetime(raw, errors="coerce", **how))
        except (ValueError, TypeError) as exc:  # e.g. mixed time zones
            raise DataError(f"timestamp column cannot be parsed: {one_line(exc)}") from exc


def _complete(times: pd.DatetimeIndex, raw: pd.Series) -> bool:
    """Whether ``times`` reads every value of ``raw`` that is there."""
    return not (times.isna() & raw.notna().to_numpy()).any()


# ---------------------------------------------------------------------------- public loaders


def series_from_frame(
    frame: pd.DataFrame,
    *,
    format: Format = "auto",
    id_col: str = "id",
    time_col: str = "timestamp",
    value_col: str = "value",
    freq: str | None = None,
    date_format: str | None = None,
    dayfirst: bool | None = None,
    min_length: int = 1,
    max_gap: int = MAX_GAP,
    future_covariates: Sequence[str] = (),
    past_covariates: Sequence[str] = (),
    static_covariates: Sequence[str] = (),
) -> SeriesSet:
    """Validate an in-memory long or wide frame (see :func:`load_series`)."""
    layout = detect_layout(frame, format, id_col, time_col, value_col)
    named = {"past": past_covariates, "future": future_covariates, "static": static_covariates}
    if any(named.values()) and layout.format != "long":
        raise DataError("covariates need a long file (a row per observation); this one reads "
                        f"as {layout.describe()}")  # fmt: skip
    if any(named.values()):
        # Named covariate columns are not values: a file without an id column and several
        # numeric columns would otherwise read them as series.
        covariate = {n for names in named.values() for n in names}
        values = tuple(c for c in layout.value_cols if c not in covariate)
        if not values:
            raise DataError(f"the value column {layout.value_cols[0]!r} cannot be a covariate")
        layout = dataclasses.replace(layout, value_cols=values)
    roles = _covariate_columns(frame, layout, named)
    if layout.format == "long":
        out, dates = _load_long(
            frame,
            layout,
            freq=freq,
            min_length=min_length,
            max_gap=max_gap,
            date_format=date_format,
            dayfirst=dayfirst,
            roles=roles,
        )
    else:
        try:
            out = _load_wide(frame, min_length=min_length, max_gap=max_gap)
        except DataError as err:
            if format == "wide":
                raise
            raise DataError(
                f"{err} (read as wide: {layout.why}; for a long file name its timestamp "
                "column with time_col, --time-col)"
            ) from err
        out.freq, dates = _validate_freq(freq) if freq else None, ""
    out.reading = f"{layout.describe()}{f', dates {dates}' if dates else ''}; " + _counted(out)
    return out


def _counted(series: SeriesSet) -> str:
    n = len(series)
    what = f"{n} series" if n != 1 else f"1 series ({series.ids[0]!r})" if n else "no series"
    return f"{what}, frequency {series.freq or 'unknown (no timestamps)'}"


def load_series(
    path_or_url: str | Any,
    *,
    format: Format = "auto",
    id_col: str = "id",
    time_col: str = "timestamp",
    value_col: str = "value",
    freq: str | None = None,
    date_format: str | None = None,
    dayfirst: bool | None = None,
    min_length: int = 1,
    max_gap: int = MAX_GAP,
    storage_options: dict[str, Any] | None = None,
    future_covariates: Sequence[str] = (),
    past_covariates: Sequence[str] = (),
    static_covariates: Sequence[str] = (),
    cache_dir: str | None = None,
) -> SeriesSet:
    """Read CSV or Parquet (local path or fsspec URL) and validate it into a :class:`SeriesSet`;
    a local folder is a folder of Parquet parts, its values memory-mapped
    (:func:`forecaster.parts.load_parts`, in ``cache_dir``).

    Args:
        format: "long", "wide" (M4) or "auto" (from the content: :func:`detect_layout`).
        id_col, time_col, value_col: the long format's columns (:func:`detect_layout` finds
            them by content when absent; no id column: one series).
        freq: pandas offset alias; inferred from the timestamps when None (long format only).
        date_format: strftime format of the timestamps; dayfirst: read ``01/02/1980`` day
            first (True) or month first (False); None: the one reading that fits
            (:func:`read_times`).
        min_length: shortest series accepted after trimming, e.g. ``input_size + horizon``.
        max_gap: longest run of interior missing points that is linearly interpolated; a
            longer one cuts the series (module docstring).
        storage_options: passed to fsspec for URLs (credentials, endpoints).
        future_covariates, past_covariates, static_covariates: covariate columns of a long
            file (:mod:`forecaster.covariates`), read into ``SeriesSet.covariates``; their
            missing points follow the target's policy (a point is missing where any is).

    Raises:
        DataError: invalid data; the message names the series id and the position.
    """
    reading: dict[str, Any] = dict(
        format=format,
        id_col=id_col,
        time_col=time_col,
        value_col=value_col,
        freq=freq,
        date_format=date_format,
        dayfirst=dayfirst,
        min_length=min_length,
        max_gap=max_gap,
        future_covariates=future_covariates,
        past_covariates=past_covariates,
        static_covariates=static_covariates,
    )
    from forecaster import parts  # it builds on this module

    if parts.is_parts_folder(path_or_url):
        return parts.load_parts(path_or_url, **reading, cache_dir=cache_dir)
    return series_from_frame(read_frame(path_or_url, storage_options), **reading)


# ---------------------------------------------------------------------------- splits


def train_val_split(series: SeriesSet, horizon: int) -> tuple[SeriesSet, F64]:
    """Hold out each series' last ``horizon`` points: ``(train, val_targets [n, horizon])``.

    Only the past stays in ``train``, so windows cut from it never see a validation target;
    segments before long gaps (``before_gaps``) are all past, and stay whole.
    """
    for sid, v in series:
        _check_length(sid, v.size, horizon + 1)
    train_values = [v[: v.size - horizon] for v in series.values]
    targets = np.array([v[v.size - horizon :] for v in series.values]).reshape(-1, horizon)
    end = None
    if series.end is not None and series.freq is not None:
        step = pd.tseries.frequencies.to_offset(series.freq)
        end = [e - horizon * step for e in series.end]
    covariates = series.covariates.head([v.size for v in train_values])
    train = SeriesSet(list(series.ids), train_values, series.freq, end, series.before_gaps,
                      series.gaps, covariates=covariates)  # fmt: skip
    return train, targets


def fingerprint(series: SeriesSet) -> str:
    """A content hash of ids and values (float64), recorded with every trained model."""
    digest = hashlib.sha256()
    for sid, values in series:
        digest.update(sid.encode())
        # Segments before long gaps first, in time order (none: the hash of older versions).
        for part in [*series.before_gaps.get(sid, []), values]:
            digest.update(np.ascontiguousarray(part, np.float64).tobytes())
    return "sha256:" + digest.hexdigest()
