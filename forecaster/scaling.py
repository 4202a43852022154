"""Per-window normalisation: log of the window divided by its mean, inverted on output.

Scaling each input window as ``log(x / mean(x))`` puts every series on one scale and turns
multiplicative seasonality into additive patterns the network learns once for all series.
Windows holding zeros or negatives are first shifted to be positive (``offset``), so constant,
all-zero and negative series still give finite forecasts. The functions take an array namespace
(``numpy`` in float64 for serving, ``jax.numpy`` inside the jitted training step) so the training
and serving paths share one definition.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

# exp() of a normalised output beyond this would overflow float64 at large levels; the network
# never predicts a 20,000-fold change, so clipping only guards against broken inputs.
MAX_LOG_RATIO = 10.0
# Floor of a window's spread: keeps all-zero windows finite without flattening tiny-unit series.
TINY = 1e-12


class Scale(NamedTuple):
    """Per-window statistics, each [batch, 1]."""

    offset: Any
    level: Any


def fit_scale(x: Any, xp: Any = np) -> Scale:
    """Statistics of input windows ``x`` [batch, length].

    A window is used as is when all its values are comfortably positive; otherwise (zeros,
    negatives, or values so near zero that their log ratio would exceed ``MAX_LOG_RATIO``) it is
    shifted by ``offset`` so its lowest value equals its mean absolute value.
    """
    lowest = xp.min(x, axis=-1, keepdims=True)
    spread = xp.maximum(xp.mean(xp.abs(x), axis=-1, keepdims=True), TINY)
    positive = lowest > spread * np.exp(-MAX_LOG_RATIO)
    offset = xp.where(positive, 0.0, spread - lowest)
    level = xp.mean(x + offset, axis=-1, keepdims=True)
    return Scale(offset, level)


def normalize(x: Any, scale: Scale, xp: Any = np) -> Any:
    """Windows [batch, length] -> log ratios to the window level, same shape."""
    return xp.log((x + scale.offset) / scale.level)


def denormalize(z: Any, scale: Scale, xp: Any = np) -> Any:
    """Inverse of :func:`normalize` for outputs ``z`` [batch, ...]; scale broadcasts over axis 1."""
    level = scale.level.reshape(scale.level.shape[:1] + (1,) * (z.ndim - 1))
    offset = scale.offset.reshape(level.shape)
    return level * xp.exp(xp.clip(z, -MAX_LOG_RATIO, MAX_LOG_RATIO)) - offset
