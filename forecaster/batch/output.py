"""The batch job's output folder: one file per part (``part-FFFFF-CCCCC.parquet``: input file
F, chunk C of ``chunk_series`` series), each written under a hidden name and renamed into place,
so a part is either whole or absent. Beside each, ``_part-FFFFF-CCCCC.json`` records its series
and those that failed, written (renamed) first: a rerun skips a part whose file is there and
still reports its failures. ``_job.json`` records what the parts were made with; a rerun with
another model version, horizon, intervals or chunk size is refused rather than mixed in.
Readers of the folder (``pyarrow.dataset``, pandas, Spark) skip names starting with ``_``.
"""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from forecaster.options import ConfigError

JOB_FILE = "_job.json"


def part_name(file: int, chunk: int) -> str:
    return f"part-{file:05d}-{chunk:05d}"


@dataclass
class PartRecord:
    """What one part holds: its series, those forecast, and each failure ``(id, why)``."""

    part: str
    series: int
    forecast: int
    problems: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"part": self.part, "series": self.series, "forecast": self.forecast,
                           "problems": [list(p) for p in self.problems]})  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> PartRecord:
        raw = json.loads(text)
        return cls(raw["part"], raw["series"], raw["forecast"],
                   [(str(i), str(m)) for i, m in raw["problems"]])  # fmt: skip


class Output:
    """The output folder ``url`` (path or fsspec URL) of parts in ``fmt``."""

    def __init__(self, url: str, fmt: str, storage_options: dict | None = None) -> None:
        self.url, self.fmt = url, fmt
        self.fs, self.root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        self.root = self.root.rstrip("/")

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def start(self, record: dict[str, Any]) -> None:
        """Create the folder and record the job, or check that the parts already there were
        made by the same job. Raises OSError when the folder cannot be written (before any
        work), :class:`ConfigError` when it holds another job's parts."""
        record = json.loads(json.dumps(record))  # as read back: tuples are lists
        self.fs.makedirs(self.root, exist_ok=True)
        path = self._path(JOB_FILE)
        if self.fs.exists(path):
            with self.fs.open(path, "r") as f:
                before = json.load(f)
            changed = sorted(k for k in record if before.get(k) != record[k])
            if changed:
                shown = "; ".join(
                    f"{k}: {before.get(k)!r} then, {record[k]!r} now" for k in changed
                )
                raise ConfigError(
                    f"{self.url} holds parts of another job ({shown}); give another --out, or "
                    "the same settings to resume it"
                )
            return
        self._atomic(JOB_FILE, json.dumps(record, indent=1).encode())

    def done(self, part: str) -> PartRecord | None:
        """The record of ``part`` when it is already written (then a rerun skips it)."""
        data, side = self._path(f"{part}.{self.fmt}"), self._path(f"_{part}.json")
        if not (self.fs.exists(data) and self.fs.exists(side)):
            return None
        with self.fs.open(side, "r") as f:
            return PartRecord.from_json(f.read())

    def write(self, record: PartRecord, table: pa.Table) -> None:
        """Write ``part``'s record, then its table, each under a hidden name then renamed."""
        self._atomic(f"_{record.part}.json", record.to_json().encode())
        buffer = io.BytesIO()
        if self.fmt == "parquet":
            pq.write_table(table, buffer, compression="zstd")
        else:
            plain = table.cast(pa.schema([_plain(f) for f in table.schema]))
            pacsv.write_csv(plain, buffer)
        self._atomic(f"{record.part}.{self.fmt}", buffer.getvalue())

    def _atomic(self, name: str, data: bytes) -> None:
        tmp = self._path(f".{name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with self.fs.open(tmp, "wb") as f:
                f.write(data)
            self.fs.mv(tmp, self._path(name))
        finally:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)


def _plain(f: pa.Field) -> pa.Field:
    """CSV has no dictionary columns: their values' type instead."""
    return pa.field(f.name, f.type.value_type) if pa.types.is_dictionary(f.type) else f
