"""One batch forecasting job's settings: its option fields are ``forecaster forecast``'s flags.
Kept apart from the work so that building the command line imports no pyarrow, pandas or JAX."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from forecaster.options import ConfigError, check_choices, option
from forecaster.sources import DataSource

Engine = Literal["local", "ray"]
OutFormat = Literal["parquet", "csv"]
DEFAULT_LEVELS = (80.0, 95.0)  # the service's (forecaster.calibration.DEFAULT_LEVELS)


@dataclass(frozen=True)
class BatchJob:
    """Everything one ``forecaster forecast`` run needs (see :mod:`forecaster.batch`)."""

    data: DataSource
    model: str = option(
        "NAME (its production version), NAME@VERSION or NAME@ALIAS in the registry",
        metavar="NAME[@VERSION]",
    )
    out: str = option(
        "output folder (path or fsspec URL): one file per part, written then renamed; a rerun "
        "skips the parts already there", metavar="DIR"
    )  # fmt: skip
    registry: str = option(
        "registry root (path or fsspec URL)", "", shown="$FORECASTER_REGISTRY, else models"
    )
    out_format: OutFormat = option("format of the output parts", "parquet")
    horizon: int = option("steps to forecast", 0, shown="the model's horizon")
    levels: tuple[float, ...] = option(
        "interval levels in percent (lower_L and upper_L columns)", DEFAULT_LEVELS, metavar="L"
    )
    quantiles: tuple[float, ...] = option(
        "quantile levels in (0, 1) (quantile_Q columns)", (), metavar="Q"
    )
    chunk_series: int = option(
        "series per part: what one step reads, forecasts and writes (memory grows with it)",
        20_000,
    )
    engine: Engine = option(
        "local: this process; ray: Ray Data workers (pip install 'forecaster[ray]')", "local"
    )
    address: str = option(
        "Ray cluster to join (ray://HOST:10001 or auto)", "",
        shown="a local Ray started for the job",
    )  # fmt: skip
    workers: int = option("Ray workers, each loading the model once", 0, shown="one per CPU")
    progress: bool = option("progress bar (series per second) on stderr", True)

    def __post_init__(self) -> None:
        check_choices(self)
        object.__setattr__(self, "levels", tuple(float(v) for v in self.levels))
        object.__setattr__(self, "quantiles", tuple(float(v) for v in self.quantiles))
        if self.chunk_series < 1:
            raise ConfigError(f"chunk_series must be at least 1, not {self.chunk_series}")
        if self.horizon < 0:
            raise ConfigError(f"horizon must be positive, not {self.horizon}")
        if self.workers < 0:
            raise ConfigError(f"workers must not be negative, not {self.workers}")
        bad = [v for v in self.levels if not 0 < v < 100]
        if bad:
            raise ConfigError(f"levels must be in (0, 100) (percent), not {bad[0]:g}")
        bad = [q for q in self.quantiles if not 0 < q < 1]
        if bad:
            raise ConfigError(f"quantiles must be in (0, 1), not {bad[0]:g}")
        if self.address and self.engine != "ray":
            raise ConfigError("address is for --engine ray")
