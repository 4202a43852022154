"""The batch job's input: files of the long layout (a row per series and timestamp), read in
bounded record batches and cut into chunks of whole series.

What the job requires of its input: each series' rows are contiguous within one file (sorted or
grouped by id; a folder of Parquet parts may split the series among its files, never one series
across two), and within a series the timestamps increase. Both are checked, and a series that
breaks them is named: the chunking is by id changes, so memory stays bounded by
``chunk_series`` series whatever the file's size.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from forecaster.sources import DataSource

# Rows per record batch read: a few MB of columns at a time.
READ_ROWS = 1 << 18
SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


class PartError(ValueError):
    """One input file cannot be read as the job needs (missing column, wrong type, unreadable);
    the message names it. The job goes on with the other files."""


@dataclass(frozen=True)
class InputFile:
    """One input file: its index among the job's files (output parts are named by it), where it
    is, and its kind (``parquet`` or ``csv``)."""

    index: int
    url: str
    kind: str


def input_files(url: str, storage_options: dict | None = None) -> list[InputFile]:
    """The files of ``url``: the file itself, or every Parquet / CSV file under a folder, in
    name order (names starting with ``_`` or ``.`` skipped, as Spark and Arrow write them)."""
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    if not fs.exists(path):
        raise FileNotFoundError(f"{url}: no such file or folder")
    if not fs.isdir(path):
        return [InputFile(0, url, _kind(url))]
    found = sorted(
        p for p in fs.find(path) if _suffix(p) in SUFFIXES and not _hidden(p[len(path) :])
    )
    if not found:
        raise FileNotFoundError(f"{url}: a folder without .parquet or .csv files")
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    prefix = "" if protocol in ("file", "local") else f"{protocol}://"
    return [InputFile(i, prefix + p, SUFFIXES[_suffix(p)]) for i, p in enumerate(found)]


def _suffix(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _hidden(rest: str) -> bool:
    return any(part.startswith(("_", ".")) for part in rest.split("/") if part)


def _kind(url: str) -> str:
    return SUFFIXES.get(_suffix(url), "csv")


def columns(source: DataSource) -> tuple[str, ...]:
    """The id, time and value columns the job reads, then the covariates (those the model
    reads: the driver sets them from its manifest)."""
    return (source.id_col, source.time_col, source.value_col, *covariate_columns(source))


def covariate_columns(source: DataSource) -> tuple[str, ...]:
    return (*source.past_covariates, *source.future_covariates, *source.static_covariates)


def record_batches(
    file: InputFile, source: DataSource, *, ids_only: bool = False
) -> Iterator[pa.RecordBatch]:
    """``file``'s rows in record batches of about ``READ_ROWS``: the id, time and value columns
    (time as timestamp, value and the past and future covariates as float64, the statics as
    read), or the id column alone. Raises :class:`PartError`
    naming the file and the column when one is missing or of the wrong type."""
    wanted = [source.id_col] if ids_only else list(columns(source))
    try:
        if file.kind == "parquet":
            with fsspec.open(file.url, "rb") as f:
                # Without pre-buffering: with it, Arrow keeps every row group read so far
                # (memory grew by the file's compressed size, 1 GB over 1M series).
                reader = pq.ParquetFile(f, pre_buffer=False)
                check_schema(file, reader.schema_arrow.names, wanted, source)
                for batch in reader.iter_batches(batch_size=READ_ROWS, columns=wanted):
                    yield _typed(file, batch, source)
        else:
            # The header first: Arrow's own error for a missing column names no file.
            check_schema(file, file_columns(file), wanted, source)
            with fsspec.open(file.url, "rb", compression="infer") as f:
                convert = pacsv.ConvertOptions(
                    include_columns=wanted, column_types={source.id_col: pa.string()}
                )
                rows = pacsv.open_csv(
                    f, read_options=pacsv.ReadOptions(block_size=1 << 24), convert_options=convert
                )
                for batch in rows:
                    yield _typed(file, batch, source)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise PartError(f"{file.url}: {str(exc).splitlines()[0]}") from None


def file_columns(file: InputFile) -> list[str]:
    """The names of ``file``'s columns (a Parquet schema, or a CSV header), nothing else read.
    Raises :class:`PartError` when it cannot be read."""
    try:
        if file.kind == "parquet":
            with fsspec.open(file.url, "rb") as f:
                return list(pq.ParquetFile(f).schema_arrow.names)
        with fsspec.open(file.url, "rt", compression="infer", newline="") as f:
            return next(csv.reader(f), [])
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PartError(f"{file.url}: {str(exc).splitlines()[0]}") from None


def check_schema(file: InputFile, names: list[str], wanted: list[str], source: DataSource) -> None:
    """Raise :class:`PartError` naming the first column of ``wanted`` that ``file`` (columns
    ``names``) lacks."""
    missing = [c for c in wanted if c not in names]
    if missing and missing[0] in covariate_columns(source):
        role = next(r for r in ("past", "future", "static")
                    if missing[0] in getattr(source, f"{r}_covariates"))  # fmt: skip
        raise PartError(
            f"{file.url}: no column {missing[0]!r}: the model reads the {role} covariate "
            f"{missing[0]!r} (columns: {', '.join(names)})"
        )
    if missing:
        raise PartError(
            f"{file.url}: no column {missing[0]!r} (columns: {', '.join(names)}); name "
            "the columns with --id-col, --time-col and --value-col"
        )


def _typed(file: InputFile, batch: pa.RecordBatch, source: DataSource) -> pa.RecordBatch:
    """``batch`` with its time column as a timestamp and its value column as float64."""
    names = batch.schema.names
    arrays = list(batch.columns)
    if source.time_col in names:
        k = names.index(source.time_col)
        arrays[k] = _timestamps(file, arrays[k], source)
    if source.value_col in names:
        k = names.index(source.value_col)
        if not (pa.types.is_floating(arrays[k].type) or pa.types.is_integer(arrays[k].type)):
            raise PartError(
                f"{file.url}: column {source.value_col!r} holds {arrays[k].type}, not numbers"
            )
        arrays[k] = arrays[k].cast(pa.float64())
    for name in (*source.past_covariates, *source.future_covariates):
        if name in names:
            k = names.index(name)
            if not (pa.types.is_floating(arrays[k].type) or pa.types.is_integer(arrays[k].type)
                    or pa.types.is_null(arrays[k].type)):  # fmt: skip
                raise PartError(f"{file.url}: column {name!r} holds {arrays[k].type}, not numbers")
            arrays[k] = arrays[k].cast(pa.float64())
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _timestamps(file: InputFile, times: pa.Array, source: DataSource) -> pa.Array:
    if pa.types.is_timestamp(times.type):
        return times
    if pa.types.is_date(times.type):
        return times.cast(pa.timestamp("s"))
    if pa.types.is_string(times.type) or pa.types.is_large_string(times.type):
        try:
            if source.date_format:
                return pc.strptime(times, format=source.date_format, unit="s")
            return times.cast(pa.timestamp("us"))
        except pa.ArrowInvalid:
            pass
    raise PartError(
        f"{file.url}: column {source.time_col!r} holds {times.type} values that are not "
        "ISO 8601 timestamps; give --date-format"
    )


# ------------------------------------------------------------------------------------ chunks


def series_starts(ids: pa.Array, previous: object) -> np.ndarray:
    """Rows of ``ids`` where a series starts: where the id changes, and row 0 unless it goes on
    the series ``previous`` (the id of the row before, None at the start of a file)."""
    if len(ids) == 0:
        return np.zeros(0, np.int64)
    changes = pc.not_equal(ids[1:], ids[:-1]).to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(changes) + 1
    first = ids[0].as_py()
    if previous is None or first != previous:
        starts = np.concatenate([[0], starts])
    return starts.astype(np.int64)


def chunks(batches: Iterator[pa.RecordBatch], id_col: str, size: int) -> Iterator[pa.Table]:
    """``batches`` regrouped into tables of ``size`` whole series each (the last one fewer), in
    order; series are cut where the id changes, so a series' rows must be contiguous."""
    pending: list[pa.RecordBatch] = []
    count = 0  # series started in ``pending``
    previous: object = None
    for batch in batches:
        if len(batch) == 0:
            continue
        ids = batch.column(id_col)
        starts = series_starts(ids, previous)
        previous = ids[len(ids) - 1].as_py()
        while count + len(starts) > size:
            cut = int(starts[size - count])
            yield pa.Table.from_batches([*pending, batch.slice(0, cut)])
            batch, starts = batch.slice(cut), starts[size - count :] - cut
            pending, count = [], 0
        pending.append(batch)
        count += len(starts)
    if pending:
        yield pa.Table.from_batches(pending)


def chunk_rows(file: InputFile, source: DataSource, size: int) -> list[tuple[int, int]]:
    """The (first row, row after the last) of each chunk :func:`chunks` makes of ``file``,
    from its id column alone: the Ray engine's plan, so that each worker reads its own rows."""
    rows, offset = [], 0
    for table in chunks(record_batches(file, source, ids_only=True), source.id_col, size):
        rows.append((offset, offset + table.num_rows))
        offset += table.num_rows
    return rows


def read_rows(file: InputFile, source: DataSource, start: int, stop: int) -> pa.Table:
    """Rows ``start`` to ``stop`` of a Parquet ``file`` (the row groups holding them only)."""
    wanted = list(columns(source))
    try:
        with fsspec.open(file.url, "rb") as f:
            reader = pq.ParquetFile(f, pre_buffer=False)
            check_schema(file, reader.schema_arrow.names, wanted, source)
            meta = reader.metadata
            ends = np.cumsum([meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
            first = int(np.searchsorted(ends, start, side="right"))
            last = int(np.searchsorted(ends, stop - 1, side="right"))
            groups = list(range(first, last + 1))
            table = reader.read_row_groups(groups, columns=wanted)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise PartError(f"{file.url}: {str(exc).splitlines()[0]}") from None
    base = int(ends[first - 1]) if first else 0
    table = table.slice(start - base, stop - start)
    return pa.Table.from_batches([_typed(file, b, source) for b in table.to_batches()])
