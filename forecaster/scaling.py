"""Per-window normalisation, inverted on output: by default the log of the window divided by its
mean; for data that go negative, the window standardised (or arcsinh of it, robustly).

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

Prices go negative and spike (electricity: -200 to 3,000 within a week). Shifting such a window to
be positive reads its log ratios around its most negative point, so a model's ``scaling``
(:data:`SCALINGS`) may instead be ``"standard"`` (``(x - mean) / std``) or ``"arcsinh"``: the
variance-stabilising transform of electricity price forecasting (Uniejewski, Weron and Ziel,
2018), ``arcsinh((x - median) / MAD)``, linear near the median and logarithmic in the spikes.
:func:`forecaster.configs.build_configs` picks one from the data (``"log"`` unless some value is
negative, then the one that validation chose: ``configs.NEGATIVE_SCALING``); every function here
takes it as ``kind``, and its default ``"log"`` runs exactly the code it ran before the other
kinds existed.

Scale-free: nothing here has an absolute size (the only floors are the dtype's smallest normal
number, for all-zero windows, and a standardised window's ``MIN_SPREAD`` of its own magnitude), so
``c * x`` is forecast as ``c`` times the forecast of ``x``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

# exp() of a normalised output beyond this would overflow float64 at large levels; the network
# never predicts a 20,000-fold change, so clipping only guards against broken inputs.
MAX_LOG_RATIO = 10.0
# The kinds of scaling (ModelConfig.scaling). The standardised ones bound their outputs so the
# inverse is as finite as the log's: ``exp(MAX_LOG_RATIO)`` (22,026) spreads, and arcsinh's
# equivalent, ``sinh(MAX_LOG_RATIO)`` (11,013).
SCALINGS = ("log", "standard", "arcsinh")
MAX_STANDARD = float(np.exp(MAX_LOG_RATIO))
# A standardised window's spread is at least this share of its mean magnitude: a constant
# window (std 0) stays finite and scale-free, and a change of 1% of its level reads as 10.
MIN_SPREAD = 1e-3
# The MAD of normal data times this is its standard deviation (1 / 0.6745).
MAD_TO_STD = 1.482602218505602


class Scale(NamedTuple):
    """Per-window statistics, each [batch, 1]."""

    offset: Any
    level: Any


def fit_scale(x: Any, xp: Any = np, kind: str = "log") -> Scale:
    """Statistics of input windows ``x`` [batch, length] for scaling ``kind``.

    Standardised kinds: ``offset`` is minus the window's centre and ``level`` its spread (at
    least ``MIN_SPREAD`` of its mean magnitude): mean and standard deviation for
    ``"standard"``, median and MAD (scaled by ``MAD_TO_STD``) for ``"arcsinh"``.

    Log: a window is used as is when all its values are comfortably positive; otherwise (zeros,
    negatives, or values so near zero that their log ratio would exceed ``MAX_LOG_RATIO``) it is
    shifted by ``offset`` so its lowest value equals its mean absolute value.
    """
    if kind != "log":
        return _fit_standard(x, xp, robust=kind == "arcsinh")
    lowest = xp.min(x, axis=-1, keepdims=True)
    # The floor only keeps all-zero windows finite: the smallest normal number of the dtype, so
    # that tiny-unit series (1e-20, and 1e-300 when served in float64) keep their shape.
    spread = xp.maximum(xp.mean(xp.abs(x), axis=-1, keepdims=True), xp.finfo(x.dtype).tiny)
    positive = lowest > spread * np.exp(-MAX_LOG_RATIO)
    offset = xp.where(positive, 0.0, spread - lowest)
    level = xp.mean(x + offset, axis=-1, keepdims=True)
    return Scale(offset, level)


def _fit_standard(x: Any, xp: Any, robust: bool) -> Scale:
    magnitude = xp.maximum(xp.mean(xp.abs(x), axis=-1, keepdims=True), xp.finfo(x.dtype).tiny)
    if robust:
        centre = xp.median(x, axis=-1, keepdims=True)
        spread = MAD_TO_STD * xp.median(xp.abs(x - centre), axis=-1, keepdims=True)
    else:
        centre = xp.mean(x, axis=-1, keepdims=True)
        spread = xp.sqrt(xp.mean((x - centre) ** 2, axis=-1, keepdims=True))
    return Scale(-centre, xp.maximum(spread, MIN_SPREAD * magnitude))


def normalize(x: Any, scale: Scale, xp: Any = np, kind: str = "log") -> Any:
    """Windows [batch, length] -> log ratios to the window level (or, for the other kinds,
    standardised values, through arcsinh for ``"arcsinh"``), same shape."""
    if kind == "standard":
        return (x + scale.offset) / scale.level
    if kind == "arcsinh":
        return xp.arcsinh((x + scale.offset) / scale.level)
    return xp.log((x + scale.offset) / scale.level)


def normalize_targets(y: Any, scale: Scale, xp: Any = np, kind: str = "log") -> Any:
    """Targets y [batch, horizon] in the units of their input window's ``scale``, clipped to
    ``[-MAX_LOG_RATIO, MAX_LOG_RATIO]``: the range :func:`denormalize` maps outputs back from.

    A target at or below zero once shifted (a zero after a positive window) has no log: it
    becomes the lowest value a forecast can take. Targets inside the range are exactly
    :func:`normalize`'s (clipping the ratio leaves them untouched). The standardised kinds
    clip to their own bounds (``MAX_STANDARD`` standard deviations).
    """
    if kind != "log":
        with np.errstate(over="ignore"):
            standard = xp.clip((y + scale.offset) / scale.level, -MAX_STANDARD, MAX_STANDARD)
        return standard if kind == "standard" else xp.arcsinh(standard)
    with np.errstate(over="ignore"):  # a ratio beyond float range is clipped all the same
        ratio = (y + scale.offset) / scale.level
    return xp.log(xp.clip(ratio, np.exp(-MAX_LOG_RATIO), np.exp(MAX_LOG_RATIO)))


def denormalize(z: Any, scale: Scale, xp: Any = np, kind: str = "log") -> Any:
    """Inverse of :func:`normalize` for outputs ``z`` [batch, ...]; scale broadcasts over axis 1."""
    level = scale.level.reshape(scale.level.shape[:1] + (1,) * (z.ndim - 1))
    offset = scale.offset.reshape(level.shape)
    if kind == "standard":
        return level * xp.clip(z, -MAX_STANDARD, MAX_STANDARD) - offset
    if kind == "arcsinh":
        return level * xp.sinh(xp.clip(z, -MAX_LOG_RATIO, MAX_LOG_RATIO)) - offset
    return level * xp.exp(xp.clip(z, -MAX_LOG_RATIO, MAX_LOG_RATIO)) - offset
