"""Where series come from and how to read them: :class:`DataSource`, the one description of a
data file.

Its fields are the reading options everywhere: the command line makes one flag per field, with
the help written here (:mod:`forecaster.cli._options`), and retraining config files take the same
keys (:data:`SOURCE_KINDS`). No pandas here, so building the command line's flags stays fast; the
reading itself is :func:`forecaster.data.load_series`.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from forecaster.data import SeriesSet

Format = Literal["auto", "long", "wide"]


@dataclass(frozen=True)
class DataSource:
    """Where series come from and how to read them: the one description of a data file, used by
    every command's data options and by retraining config files (see
    :func:`forecaster.data.load_series`)."""

    url: str
    format: Format = field(
        default="auto",
        metadata={
            "help": "long (a row per observation), wide (a row per series, M4) or auto "
            "(default): decided from the content, and said"
        },
    )
    id_col: str = field(
        default="id",
        metadata={"help": "series id column (default id; a file without one is one series)"},
    )
    time_col: str = field(
        default="timestamp",
        metadata={"help": "timestamp column (default timestamp, else the first column of dates)"},
    )
    value_col: str = field(
        default="value",
        metadata={"help": "value column (default value, else the one numeric column)"},
    )
    freq: str | None = field(
        default=None,
        metadata={"help": "pandas frequency alias (h, D, W, MS, QS, YS ...), if not inferred"},
    )
    date_format: str | None = field(
        default=None,
        metadata={"help": "strftime format of the timestamps, e.g. %d/%m/%Y (default: inferred)"},
    )
    dayfirst: bool | None = field(
        default=None,
        metadata={
            "help": "read dates such as 01/02/1980 day first (--no-dayfirst: month first); "
            "needed when both readings fit the file"
        },
    )

    def load(self, **kwargs: Any) -> SeriesSet:
        """The validated series (``kwargs``: ``min_length``, ``max_gap``, ``storage_options``)."""
        from forecaster.data import load_series

        return load_series(self.url, **self.options(), **kwargs)

    def options(self) -> dict[str, Any]:
        """The reading options (every field but the URL)."""
        return {k: getattr(self, k) for k in SOURCE_OPTIONS}


#: The reading options of a :class:`DataSource` besides its URL.
SOURCE_OPTIONS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(DataSource) if f.name != "url"
)


def option_kind(name: str) -> Any:
    """A value of the JSON kind of option ``name`` (its default, or ``""``/``False`` for an
    optional text/flag), for :func:`forecaster.configs.typed_values`."""
    default = next(f.default for f in dataclasses.fields(DataSource) if f.name == name)
    if default is not None:
        return default
    hint = typing.get_type_hints(DataSource)[name]
    return False if bool in typing.get_args(hint) else ""


#: The JSON kinds of the reading options, for config files.
SOURCE_KINDS: dict[str, Any] = {name: option_kind(name) for name in SOURCE_OPTIONS}
