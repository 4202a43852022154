"""Per-window normalisation: log of the window divided by its mean, inverted on output.

Scaling each input window as ``log(x / mean(x))`` puts every series on one scale and turns
multiplicative seasonality into additive patterns the network learns once for all series.
Windows holding zeros or negatives are first shifted to be positive (``offset``), so constant,
all-zero and negative series still give finite forecasts. The functions take an array namespace
(``numpy`` in float64 for serving, ``jax.numpy`` inside the jitted training step) so the training
and serving paths share one definition.

The scale is fitted on the input window alone (a forecast has nothing else), so a target may lie
where the window's scale cannot reach: a zero after a positive window (counts, closed days), a
negative one, or a jump beyond ``MAX_LOG_RATIO``. :func:`normalize_targets` clips such targets to
the range :func:`denormalize` can produce, so every finite series gives a finite loss, and windows
whose targets the scale does express are normalised exactly as inputs are.

Scale-free: nothing here has an absolute size (the only floor is the dtype's smallest normal
number, for all-zero windows), so ``c * x`` is forecast as ``c`` times the forecast of ``x``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

# exp() of a normalised output beyond this would overflow float64 at large levels; the network
# never predicts a 20,000-fold change, so clipping only guards against broken inputs.
MAX_LOG_RATIO = 10.0


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
    # The floor only keeps all-zero windows finite: the smallest normal number of the dtype, so
    # that tiny-unit series (1e-20, and 1e-300 when served in float64) keep their shape.
    spread = xp.maximum(xp.mean(xp.abs(x), axis=-1, keepdims=True), xp.finfo(x.dtype).tiny)
    positive = lowest > spread * np.exp(-MAX_LOG_RATIO)
    offset = xp.where(positive, 0.0, spread - lowest)
    level = xp.mean(x + offset, axis=-1, keepdims=True)
    return Scale(offset, level)


def normalize(x: Any, scale: Scale, xp: Any = np) -> Any:
    """Windows [batch, length] -> log ratios to the window level, same shape."""
    return xp.log((x + scale.offset) / scale.level)


def normalize_targets(y: Any, scale: Scale, xp: Any = np) -> Any:
    """Targets y [batch, horizon] in the units of their input window's ``scale``, clipped to
    ``[-MAX_LOG_RATIO, MAX_LOG_RATIO]``: the range :func:`denormalize` maps outputs back from.

    A target at or below zero once shifted (a zero after a positive window) has no log: it
    becomes the lowest value a forecast can take. Targets inside the range are exactly
    :func:`normalize`'s (clipping the ratio leaves them untouched).
    """
    with np.errstate(over="ignore"):  # a ratio beyond float range is clipped all the same
        ratio = (y + scale.offset) / scale.level
    return xp.log(xp.clip(ratio, np.exp(-MAX_LOG_RATIO), np.exp(MAX_LOG_RATIO)))


def denormalize(z: Any, scale: Scale, xp: Any = np) -> Any:
    """Inverse of :func:`normalize` for outputs ``z`` [batch, ...]; scale broadcasts over axis 1."""
    level = scale.level.reshape(scale.level.shape[:1] + (1,) * (z.ndim - 1))
    offset = scale.offset.reshape(level.shape)
    return level * xp.exp(xp.clip(z, -MAX_LOG_RATIO, MAX_LOG_RATIO)) - offset
