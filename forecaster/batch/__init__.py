"""``forecaster forecast``: a table of histories in, a table of forecasts out, streamed.

The input (CSV or Parquet; a file, a folder of parts or an fsspec URL; the long layout: a row
per series and timestamp) is read in bounded record batches and cut into chunks of
``chunk_series`` whole series (:mod:`~forecaster.batch.reading`); each chunk is forecast as the
service forecasts a history (:mod:`~forecaster.batch.forecasting`: the same
:class:`~forecaster.predict.Predictor`, fallback and calibration, many series per forward pass
at the predictor's compiled batch sizes) and written as one part, under a hidden name then
renamed (:mod:`~forecaster.batch.output`), so memory stays flat whatever the input's size and
a rerun skips the parts already written. ``engine="ray"`` runs the same chunks on Ray Data
workers (:mod:`~forecaster.batch.ray_engine`, an optional extra).

Light on import: the job's settings (:class:`BatchJob`) need no pyarrow or JAX.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .job import BatchJob

if TYPE_CHECKING:
    from .driver import Summary, run

__all__ = ["BatchJob", "Summary", "run"]


def __getattr__(name: str) -> Any:
    if name in ("Summary", "run"):
        from . import driver as module

        return getattr(module, name)
    raise AttributeError(name)
