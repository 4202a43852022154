"""A folder of Parquet parts, read into one memory-mapped array: training beyond memory.

:func:`load_parts` streams the parts (``*.parquet``/``*.pq`` under the folder, sorted by path)
one row group batch at a time with pyarrow and writes every series' values, float64, into one
flat file mapped with :class:`numpy.memmap`; the :class:`~forecaster.data.SeriesSet` it returns
holds views of that file, so nothing holds all the values in memory: the OS pages in what is
touched and can drop it again. Training draws its windows from the file through
:class:`forecaster.train.MappedSampler`.

The reading rules are :func:`forecaster.data.load_series`'s, part by part:

- wide parts (a row per series): each batch is read by the wide loader itself;
- long parts (``id``, ``timestamp``, ``value``): two passes. The first reads the ids and the
  timestamps alone, for each series' first and last timestamp and the part it first appears
  in; the frequency is inferred from the first batch (or given) and must be a fixed step
  (minutes, hours, days, weeks). The second writes each value at its place on its series'
  grid: rows of a series may be spread over batches and parts in any order. Timestamps off
  the grid and duplicate timestamps are refused naming the part, the series and the stamp.
- every part must have the first part's columns and types; the missing-value policy
  (:func:`forecaster.data.split_at_gaps`) applies per series, in place in the file.

Errors name the part (and the series). The file goes to ``cache_dir`` (default: the system's
temporary folder) and is unlinked as soon as it is mapped, so it takes disk space only while
the process holds it. Covariates, and folders whose frequency is not a fixed step (months,
quarters, years: small data), are read whole by the in-memory loader.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from forecaster import data
from forecaster.data import DataError, HandledGap, SeriesSet
from forecaster.frequency import check_alias, common_frequency, frequency_key
from forecaster.sources import Format

F64 = np.ndarray

__all__ = ["PART_SUFFIXES", "is_parts_folder", "list_parts", "load_parts", "mapped"]

#: The suffixes of the files a folder of parts is read from.
PART_SUFFIXES = (".parquet", ".pq")
#: Rows read at a time: bounds the memory of reading, whatever the size of a part.
BATCH_ROWS = 1 << 20


def is_parts_folder(path: str | Any) -> bool:
    """Whether ``path`` is a local folder (the place of a folder of Parquet parts)."""
    return isinstance(path, str | os.PathLike) and Path(path).is_dir()


def list_parts(folder: str | os.PathLike[str]) -> list[Path]:
    """The Parquet files under ``folder`` (at any depth, e.g. hive partitions), sorted."""
    found = sorted(
        p for p in Path(folder).rglob("*") if p.suffix.lower() in PART_SUFFIXES and p.is_file()
    )
    if not found:
        raise DataError(f"{folder!s} holds no Parquet part (*.parquet, *.pq)")
    return found


def mapped(arrays: Sequence[np.ndarray]) -> tuple[np.memmap, np.ndarray] | None:
    """The one memory-mapped float64 file every array of ``arrays`` is a view of, with each
    array's position in it ``[n]`` (int64); None when they are not all views of one file."""
    root: np.memmap | None = None
    offsets = np.zeros(len(arrays), np.int64)
    for i, a in enumerate(arrays):
        base = _root(a)
        if base is None or (root is not None and base is not root) or a.dtype != np.float64:
            return None
        root = base
        if a.size > 1 and a.strides[0] != 8:
            return None
        offsets[i] = (a.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // 8
    return (root, offsets) if root is not None else None


def _root(a: np.ndarray) -> np.memmap | None:
    """The flat float64 memmap ``a`` is a view of (the one whose base is the mapping)."""
    while a is not None:
        if isinstance(a, np.memmap) and not isinstance(a.base, np.ndarray) and a.ndim == 1:
            return a
        a = a.base  # type: ignore[assignment]  # views chain through ndarray bases
    return None


@dataclass
class _Series:
    """What the first pass learns of the series of long parts, ``[n_series]`` arrays."""

    index: dict[str, int] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    part: list[int] = field(default_factory=list)  # the part each series first appears in
    first: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # ns
    last: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def codes(self, names: Sequence[str], part: int) -> np.ndarray:
        """Positions of ``names`` (new ones are added, first seen in ``part``)."""
        out = np.empty(len(names), np.int64)
        for k, name in enumerate(names):
            i = self.index.get(name)
            if i is None:
                i = self.index[name] = len(self.ids)
                self.ids.append(name)
                self.part.append(part)
            out[k] = i
        grow = len(self.ids) - self.first.size
        if grow > 0:
            big = np.iinfo(np.int64)
            self.first = np.r_[self.first, np.full(grow, big.max)]
            self.last = np.r_[self.last, np.full(grow, big.min)]
        return out


def load_parts(
    folder: str | os.PathLike[str],
    *,
    format: Format = "auto",
    id_col: str = "id",
    time_col: str = "timestamp",
    value_col: str = "value",
    freq: str | None = None,
    date_format: str | None = None,
    dayfirst: bool | None = None,
    min_length: int = 1,
    max_gap: int = data.MAX_GAP,
    cache_dir: str | None = None,
    future_covariates: Sequence[str] = (),
    past_covariates: Sequence[str] = (),
    static_covariates: Sequence[str] = (),
) -> SeriesSet:
    """The series of the Parquet parts under ``folder``, their values memory-mapped (module
    docstring); the options are :func:`forecaster.data.load_series`'s."""
    import pyarrow.parquet as pq

    parts = list_parts(folder)
    reading = dict(format=format, id_col=id_col, time_col=time_col, value_col=value_col,
                   freq=freq, date_format=date_format, dayfirst=dayfirst, min_length=min_length,
                   max_gap=max_gap)  # fmt: skip
    covariates = dict(future_covariates=future_covariates, past_covariates=past_covariates,
                      static_covariates=static_covariates)  # fmt: skip
    first = _open(pq, parts[0], folder)
    schema = first.schema_arrow
    for part in parts[1:]:
        _same_schema(part, _open(pq, part, folder).schema_arrow, parts[0], schema, folder)
    if any(covariates.values()):
        return _whole(parts, folder, reading, covariates, "covariates are read whole")
    head = next(first.iter_batches(batch_size=1000)).to_pandas()
    layout = data.detect_layout(head, format, id_col, time_col, value_col)
    where = f"{len(parts)} Parquet part{'s' * (len(parts) > 1)} under {folder!s}"
    if layout.format == "wide":
        out = _load_wide(pq, parts, folder, min_length, max_gap, cache_dir)
        out.freq = data._validate_freq(freq) if freq else None
    else:
        if layout.id_col is None or len(layout.value_cols) != 1:
            return _whole(parts, folder, reading, covariates, "no id column: read whole")
        found = _long_frequency(pq, parts[0], folder, layout, freq)
        key = frequency_key(found) if found else None
        if key is None or key[0] != "us":
            return _whole(parts, folder, reading, covariates,
                          f"frequency {found}, not a fixed step: read whole")  # fmt: skip
        out = _load_long(pq, parts, folder, layout, found, key[1] * 1000, min_length, max_gap,
                         cache_dir)  # fmt: skip
    size = sum(v.size for v in out.values) + sum(p.size for ps in out.before_gaps.values()
                                                 for p in ps)  # fmt: skip
    place = cache_dir or tempfile.gettempdir()
    held = f"{size * 8 / 1e9:.1f} GB" if size * 8 >= 1e8 else f"{size * 8 / 1e6:.1f} MB"
    out.reading = (f"{where}, {layout.describe()}; values memory-mapped ({held} in {place}); "
                   f"{data._counted(out)}")  # fmt: skip
    return out


def _name(part: Path, folder: str | os.PathLike[str]) -> str:
    return str(part.relative_to(folder))


def _open(pq: Any, part: Path, folder: str | os.PathLike[str]) -> Any:
    try:
        return pq.ParquetFile(part)
    except Exception as err:  # a truncated or foreign file
        raise DataError(f"part {_name(part, folder)!r}: {data.one_line(err, named=True)}") from err


def _plain(t: Any) -> Any:
    """An arrow type with dictionary encoding taken off (writers choose it freely)."""
    return t.value_type if hasattr(t, "value_type") and hasattr(t, "index_type") else t


def _columns(schema: Any) -> list[tuple[str, Any]]:
    """Names and types of a part's columns, pandas' saved index (``__index_level_0__``) aside."""
    return [(f.name, _plain(f.type)) for f in schema if not f.name.startswith("__index_level_")]


def _same_schema(part: Path, schema: Any, first: Path, expected: Any, folder: Any) -> None:
    got, want = _columns(schema), _columns(expected)
    if got != want:
        show = ", ".join(f"{n} {t}" for n, t in got)
        raise DataError(
            f"part {_name(part, folder)!r} has columns ({show}), unlike the first part "
            f"{_name(first, folder)!r} ({', '.join(f'{n} {t}' for n, t in want)}); every part "
            "needs the same columns and types"
        )


def _whole(parts: list[Path], folder: Any, reading: dict, covariates: dict, why: str) -> SeriesSet:
    """Every part read into one frame, by the in-memory loader (``why``: said in ``reading``)."""
    frame = pd.concat([data.read_frame(str(p), None) for p in parts], ignore_index=True)
    out = data.series_from_frame(frame, **reading, **covariates)
    out.reading = f"{len(parts)} Parquet parts under {folder!s} ({why}), {out.reading}"
    return out


def _batches(pq: Any, part: Path, folder: Any, columns: list[str] | None = None) -> Iterator[Any]:
    try:
        yield from pq.ParquetFile(part).iter_batches(batch_size=BATCH_ROWS, columns=columns)
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"part {_name(part, folder)!r}: {data.one_line(err, named=True)}") from err


class _File:
    """A scratch file of float64 values (and a byte mask beside, for long parts), mapped once
    written and unlinked at once: its space is the mapping's, freed with it."""

    def __init__(self, cache_dir: str | None) -> None:
        if cache_dir:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
        self.dir = cache_dir

    def mapping(self, dtype: Any, size: int) -> np.memmap:
        fd, path = tempfile.mkstemp(prefix="forecaster-parts-", dir=self.dir)
        try:
            os.ftruncate(fd, max(size, 1) * np.dtype(dtype).itemsize)  # sparse: zeros
            mm = np.memmap(path, dtype, "r+", shape=(max(size, 1),))
        finally:
            os.close(fd)
            os.unlink(path)
        return mm


def _load_wide(
    pq: Any, parts: list[Path], folder: Any, min_length: int, max_gap: int, cache_dir: str | None
) -> SeriesSet:
    """Wide parts: each batch through the wide loader, its values appended to the file."""
    fd, path = tempfile.mkstemp(prefix="forecaster-parts-", dir=cache_dir)
    ids: list[str] = []
    where: dict[str, str] = {}
    spans: list[tuple[int, int]] = []  # (position, length) of every series' values
    before: dict[str, list[tuple[int, int]]] = {}
    gaps: list[HandledGap] = []
    at = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                name = _name(part, folder)
                for batch in _batches(pq, part, folder):
                    try:
                        got = data._load_wide(batch.to_pandas(), min_length=min_length,
                                              max_gap=max_gap)  # fmt: skip
                    except DataError as err:
                        raise DataError(f"part {name!r}: {err}") from err
                    for sid, values in got:
                        if sid in where:
                            raise DataError(f"part {name!r}: series {sid!r} is also in part "
                                            f"{where[sid]!r}")  # fmt: skip
                        where[sid] = name
                        for segment in got.before_gaps.get(sid, []):
                            before.setdefault(sid, []).append((at, segment.size))
                            out.write(segment.tobytes())
                            at += segment.size
                        ids.append(sid)
                        spans.append((at, values.size))
                        out.write(values.tobytes())
                        at += values.size
                    gaps += got.gaps
        flat = np.memmap(path, np.float64, "r", shape=(max(at, 1),)) if at else np.zeros(1)
    finally:
        os.unlink(path)
    views = [flat[a : a + n] for a, n in spans]
    segments = {sid: [flat[a : a + n] for a, n in s] for sid, s in before.items()}
    return SeriesSet(ids, views, before_gaps=segments, gaps=gaps)


def _times(column: Any, part: str) -> np.ndarray:
    """int64 nanoseconds of a timestamp (or date, or ISO text) arrow column ``[rows]``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = _plain(column.type)
    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, kind)
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        ns = pc.cast(column, pa.timestamp("ns", getattr(kind, "tz", None)))
        return np.asarray(ns.cast(pa.int64()).to_numpy(zero_copy_only=False), np.int64)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = pd.Series(column.to_numpy(zero_copy_only=False))
        read = pd.to_datetime(text, format="ISO8601", errors="coerce")
        bad = read.isna().to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(f"part {part!r}: unreadable timestamp {text.iloc[row]!r} at row "
                            f"{row} (parts need ISO 8601 text or a timestamp column)")  # fmt: skip
        return read.to_numpy("datetime64[ns]").astype(np.int64)
    raise DataError(f"part {part!r}: timestamp column of type {kind}, not a timestamp or date")


def _time_zone(pq: Any, part: Path, column: str) -> str | None:
    kind = _plain(pq.ParquetFile(part).schema_arrow.field(column).type)
    return getattr(kind, "tz", None)


def _ids(column: Any) -> tuple[list[str], np.ndarray]:
    """The distinct ids of an arrow column (as text) and each row's position among them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    names = [str(x) for x in column.dictionary.to_pylist()]
    codes = np.asarray(column.indices.to_numpy(zero_copy_only=False), np.int64)
    return names, codes


def _long_frequency(pq: Any, part: Path, folder: Any, layout: data.Layout, freq: str | None) -> str:
    """``freq`` checked, or the frequency the series of ``part``'s first batch agree on."""
    if freq:
        return data._validate_freq(freq)
    assert layout.id_col and layout.time_col
    batch = next(_batches(pq, part, folder, [layout.id_col, layout.time_col]))
    names, codes = _ids(batch.column(0))
    times = _times(batch.column(1), _name(part, folder))
    order = np.lexsort((times, codes))
    cuts = np.flatnonzero(np.diff(codes[order])) + 1
    per = [pd.DatetimeIndex(np.unique(times[g]).astype("datetime64[ns]"))
           for g in np.split(order, cuts)]  # fmt: skip
    ids = [names[codes[g[0]]] for g in np.split(order, cuts)]
    try:
        found = common_frequency(ids, per)
    except ValueError as exc:
        raise DataError(f"part {_name(part, folder)!r}: {exc}") from None
    if found is None:
        raise DataError(f"cannot infer the frequency from part {_name(part, folder)!r}'s first "
                        "rows (single points); give freq (--freq)")  # fmt: skip
    return check_alias(found)


def _load_long(
    pq: Any,
    parts: list[Path],
    folder: Any,
    layout: data.Layout,
    freq: str,
    step: int,
    min_length: int,
    max_gap: int,
    cache_dir: str | None,
) -> SeriesSet:
    """Long parts: the span of every series, then every value at its place (module docstring)."""
    assert layout.id_col and layout.time_col
    columns = [layout.id_col, layout.time_col, layout.value_cols[0]]
    names = [_name(p, folder) for p in parts]
    found = _Series()
    for k, part in enumerate(parts):  # pass 1: ids and timestamps
        for batch in _batches(pq, part, folder, columns[:2]):
            distinct, codes = _ids(batch.column(0))
            rows = found.codes(distinct, k)[codes]
            times = _times(batch.column(1), names[k])
            np.minimum.at(found.first, rows, times)
            np.maximum.at(found.last, rows, times)
    n = len(found.ids)
    sizes = (found.last - found.first) // step + 1
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    files = _File(cache_dir)
    flat = files.mapping(np.float64, int(offsets[-1]))
    seen = files.mapping(np.uint8, int(offsets[-1]))
    tz = _time_zone(pq, parts[0], layout.time_col)

    def stamp(ns: int) -> pd.Timestamp:
        return pd.Timestamp(int(ns), tz="UTC").tz_convert(tz) if tz else pd.Timestamp(int(ns))

    for k, part in enumerate(parts):  # pass 2: the values at their places
        for batch in _batches(pq, part, folder, columns):
            distinct, codes = _ids(batch.column(0))
            rows = found.codes(distinct, k)[codes]
            times = _times(batch.column(1), names[k])
            values = _values(batch.column(2), names[k], layout.value_cols[0])
            since = times - found.first[rows]
            off = since % step != 0
            if off.any():
                i = int(np.argmax(off))
                raise DataError(f"part {names[k]!r}: series {found.ids[rows[i]]!r}: timestamp "
                                f"{stamp(times[i])} is off the {freq!r} grid")  # fmt: skip
            at = offsets[rows] + since // step
            order = np.argsort(at, kind="stable")
            again = np.flatnonzero(np.diff(at[order]) == 0)
            taken = seen[at] != 0
            if again.size or taken.any():
                i = int(order[again[0] + 1]) if again.size else int(np.argmax(taken))
                raise DataError(f"part {names[k]!r}: series {found.ids[rows[i]]!r}: duplicate "
                                f"timestamp {stamp(times[i])}")  # fmt: skip
            flat[at] = values
            seen[at] = 1
    ids, views, ends, gaps = [], [], [], []
    before: dict[str, list[np.ndarray]] = {}
    for i in range(n):  # the missing-value policy, series by series, in place
        a, b = int(offsets[i]), int(offsets[i + 1])
        slot = flat[a:b]
        slot[seen[a:b] == 0] = np.nan
        sid = found.ids[i]
        # The grid's stamps made one at a time, for the gaps alone: it is no sequence to mypy.
        grid = cast(Sequence[Any], _Grid(int(found.first[i]), step, stamp))
        cut = data._cut_at_gaps(sid, slot, grid, max_gap)
        try:
            data._check_length(sid, cut.values.size, min_length)
        except DataError as err:
            raise DataError(f"part {names[found.part[i]]!r}: {err}") from None
        # The policy's copies written back where they came from: the views stay in the file.
        segments = data.split_at_gaps(slot, max_gap).segments if cut.before else []
        for start, segment in segments:
            slot[start : start + segment.size] = segment
        if not cut.before:
            slot[cut.first : cut.first + cut.values.size] = cut.values
        ids.append(sid)
        views.append(slot[cut.first : cut.first + cut.values.size])
        before[sid] = [slot[s : s + seg.size] for s, seg in segments[:-1]]
        ends.append(stamp(int(found.first[i]) + (cut.first + cut.values.size - 1) * step))
        gaps += cut.gaps
    del seen
    return SeriesSet(ids, views, freq, ends, before, gaps)


@dataclass(frozen=True)
class _Grid:
    """The timestamps of a series' grid, by position: labels of its gaps."""

    first: int
    step: int
    stamp: Any

    def __getitem__(self, j: int) -> pd.Timestamp:
        return self.stamp(self.first + int(j) * self.step)


def _values(column: Any, part: str, name: str) -> np.ndarray:
    """float64 values of an arrow column (nan where null); infinities are refused."""
    import pyarrow as pa

    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        raise DataError(f"part {part!r}: value column {name!r} of type {column.type}, not numeric")
    values = np.asarray(column.to_numpy(zero_copy_only=False), np.float64)
    if np.isinf(values).any():
        raise DataError(f"part {part!r}: value column {name!r}: infinite value")
    return values
