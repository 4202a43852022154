"""Training windows: many series of different lengths -> one padded array -> every window.

:func:`pad_series` right-pads the series with zeros into one ``[n_series, max_len]`` array,
:func:`window_index` lists every (series, start) training window of ``input_size + horizon``
points, and :func:`gather_windows` cuts them out with one gather, in numpy or under
``jax.jit``. The window length is a real choice: long enough to see the season, short enough
that most series give windows (see :mod:`forecaster.configs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from forecaster.data import DataError, SeriesSet

I64 = NDArray[np.int64]

__all__ = ["gather_windows", "last_windows", "pad_features", "pad_series", "window_index"]


def pad_series(values: Sequence[ArrayLike], dtype: DTypeLike = np.float32) -> tuple[NDArray, I64]:
    """Right-pad with zeros into ``[n_series, max_len]``; also return ``lengths [n_series]``.

    Right padding keeps index ``t`` the ``t``-th observation of every series, so a window start
    is a plain offset; windows from :func:`window_index` never reach into the padding.
    """
    arrays = [np.asarray(v).reshape(-1) for v in values]
    lengths = np.array([a.size for a in arrays], dtype=np.int64)
    padded = np.zeros((len(arrays), int(lengths.max(initial=0))), dtype=dtype)
    # A row-major boolean mask fills row by row, left to right: the concatenation order.
    mask = np.arange(padded.shape[1]) < lengths[:, None]
    if arrays:
        padded[mask] = np.concatenate(arrays)
    return padded, lengths


def pad_features(features: Sequence[NDArray], values: Sequence[ArrayLike]) -> NDArray:
    """Each series' values beside its covariate features ``[len_i, F]`` (from
    :meth:`forecaster.covariates.CovariateSpec.series_features`), right-padded with zeros into
    ``[n_series, max_len, 1 + F]``: channel 0 the values, so :func:`gather_windows` cuts the
    target and its covariates in one gather."""
    padded, lengths = pad_series(values)
    width = 1 + (features[0].shape[-1] if len(features) else 0)
    out = np.zeros((*padded.shape, width), np.float32)
    out[..., 0] = padded
    for i, f in enumerate(features):
        out[i, : lengths[i], 1:] = f
    return out


def window_index(
    lengths: ArrayLike,
    input_size: int,
    horizon: int,
    *,
    stride: int = 1,
    min_input: int | None = None,
) -> tuple[I64, I64]:
    """Every training window of ``input_size + horizon`` points: ``(series_idx [M], start [M])``.

    Window ``w`` covers ``padded[series_idx[w], start[w] : start[w] + input_size + horizon]``.
    Windows are spaced ``stride`` apart and aligned to the end, so each series' most recent
    window is always included. With ``min_input`` below ``input_size``, windows may start up to
    ``input_size - min_input`` points before their series (a negative ``start``: that part of
    the history is missing, see :func:`pad_left`); a series shorter than ``min_input + horizon``
    contributes none.
    """
    min_input = input_size if min_input is None else min_input
    if not 1 <= min_input <= input_size or horizon < 0 or stride < 1:
        raise ValueError("need 1 <= min_input <= input_size, horizon >= 0 and stride >= 1")
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    span = input_size + horizon
    shortest = min_input + horizon
    counts = np.where(lengths >= shortest, (lengths - shortest) // stride + 1, 0)
    series_idx = np.repeat(np.arange(lengths.size, dtype=np.int64), counts)
    # k = rank of each window within its series, from cumsum offsets (no loop per series).
    k = np.arange(series_idx.size, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    start = (lengths - span)[series_idx] - (counts[series_idx] - 1 - k) * stride
    return series_idx, start


def _namespace(*arrays: Any) -> Any:
    """jax.numpy if any argument is a jax array (tracers included), else numpy."""
    return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def gather_windows(padded: Any, series_idx: Any, start: Any, length: int) -> Any:
    """``[M, length]`` windows ``padded[series_idx[w], start[w] : start[w] + length]`` (and
    ``[M, length, F]`` from ``padded`` [n_series, max_len, F]: :func:`pad_features`).

    One advanced-indexing gather with a broadcast ``[M, length]`` index, so it runs as a single
    gather under ``jax.jit`` (``length`` must then be static). Positions before a series'
    start (a negative ``start``) repeat its first point; take the indices from
    :func:`window_index` (beyond the end, numpy raises but jax silently clamps).
    """
    xp = _namespace(padded, series_idx, start)
    padded = xp.asarray(padded)
    rows = xp.asarray(series_idx)[:, None]
    cols = xp.maximum(xp.asarray(start)[:, None] + xp.arange(length)[None, :], 0)
    return padded[rows, cols]


def pad_left(x: Any, lengths: Any) -> Any:
    """Windows x [..., input_size] whose last ``lengths`` [...] points are history, with every
    earlier point replaced by the mean of that history, so the padding leaves the window's level
    (its normalisation) unchanged. numpy or jax.numpy, like its inputs."""
    xp = _namespace(x, lengths)
    size = x.shape[-1]
    lengths = xp.asarray(lengths)[..., None]
    valid = xp.arange(size) >= size - lengths
    mean = xp.sum(xp.where(valid, x, 0), axis=-1, keepdims=True) / xp.maximum(lengths, 1)
    return xp.where(valid, x, mean)


def last_windows(
    values: Sequence[ArrayLike] | SeriesSet, input_size: int, dtype: DTypeLike = np.float32
) -> NDArray:
    """Each series' final ``input_size`` points, ``[n_series, input_size]``: forecasting inputs."""
    ids = values.ids if isinstance(values, SeriesSet) else None
    arrays = values.values if isinstance(values, SeriesSet) else list(values)
    padded, lengths = pad_series(arrays, dtype)
    short = lengths < input_size
    if short.any():
        i = int(np.argmax(short))
        name = repr(ids[i]) if ids else f"#{i}"
        raise DataError(f"series {name}: {lengths[i]} points, fewer than input_size={input_size}")
    return gather_windows(padded, np.arange(len(arrays)), lengths - input_size, input_size)
