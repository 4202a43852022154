"""Where series come from and how to read them: :class:`DataSource`, the one description of a
data file.

Its fields are the reading options everywhere (:func:`forecaster.options.option`): the command
line makes one flag per field, with the help written here, and retraining config files take the
same keys. No pandas here, so building the command line's flags stays fast; the
reading itself is :func:`forecaster.data.load_series`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from forecaster.options import option, options

if TYPE_CHECKING:
    from forecaster.data import SeriesSet

Format = Literal["auto", "long", "wide"]


@dataclass(frozen=True)
class DataSource:
    """Where series come from and how to read them: the one description of a data file, used by
    every command's data options and by retraining config files (see
    :func:`forecaster.data.load_series`)."""

    url: str
    format: Format = option(
        "long (a row per observation), wide (a row per series, M4) or auto: decided from the "
        "content, and said", "auto"
    )  # fmt: skip
    id_col: str = option("series id column (a file without one is one series)", "id")
    time_col: str = option("timestamp column (else the first column of dates)", "timestamp")
    value_col: str = option("value column (else the one numeric column)", "value")
    freq: str | None = option("pandas frequency alias (h, D, W, MS, QS, YS ...)", None)
    date_format: str | None = option("strftime format of the timestamps, e.g. %d/%m/%Y", None)
    dayfirst: bool | None = option(
        "read dates such as 01/02/1980 day first (--no-dayfirst: month first); needed when "
        "both readings fit the file", None
    )  # fmt: skip

    future_covariates: tuple[str, ...] = option(
        "columns known ahead, for the history and the horizon (e.g. a load forecast)", (),
        metavar="COL"
    )  # fmt: skip
    past_covariates: tuple[str, ...] = option(
        "columns observed only up to the forecast origin", (), metavar="COL"
    )
    static_covariates: tuple[str, ...] = option(
        "columns holding one value per series, numeric or categorical", (), metavar="COL"
    )

    cache_dir: str | None = option(
        "folder for the memory-mapped values of a folder of Parquet parts (the file is "
        "removed as soon as it is mapped)", None, shown="the system's temporary folder",
        metavar="DIR"
    )  # fmt: skip

    def __post_init__(self) -> None:
        for name in ("future_covariates", "past_covariates", "static_covariates"):
            object.__setattr__(self, name, tuple(getattr(self, name)))  # flags give lists

    def load(self, **kwargs: Any) -> SeriesSet:
        """The validated series (``kwargs``: ``min_length``, ``max_gap``, ``storage_options``)."""
        from forecaster.data import load_series

        return load_series(self.url, **self.options(), **kwargs)

    def options(self) -> dict[str, Any]:
        """The reading options (every field but the URL)."""
        return {k: getattr(self, k) for k in SOURCE_OPTIONS}


#: The reading options of a :class:`DataSource` besides its URL.
SOURCE_OPTIONS: tuple[str, ...] = tuple(f.name for f in options(DataSource))
