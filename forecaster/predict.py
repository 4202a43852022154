"""Pure inference: histories -> fixed shapes -> jitted forward -> forecasts.

Requests arrive with any number of series of any length; the network is compiled for a few fixed
batch sizes only (``batch_sizes``), so after :meth:`Predictor.warmup` no request compiles.
Normalisation runs in float64 on the host so huge or tiny magnitudes stay finite.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from forecaster.model import ModelConfig, forward
from forecaster.scaling import denormalize, fit_scale, normalize

DEFAULT_BATCH_SIZES = (1, 4, 16, 64, 256)


class HistoryTooShort(ValueError):
    """A history holds fewer points than the model's input window."""

    def __init__(self, index: int, length: int, minimum: int) -> None:
        super().__init__(f"history {index} has {length} points; the model needs at least {minimum}")
        self.index, self.length, self.minimum = index, length, minimum


@dataclass(frozen=True)
class Forecast:
    """Forecasts for ``n`` series: ``point`` [n, horizon]; ``quantiles`` q -> [n, horizon]."""

    point: np.ndarray
    quantiles: dict[float, np.ndarray]


# Keyed on the (hashable) config, so every Predictor of one architecture shares compiled code:
# swapping in new weights of the same shape never recompiles.
_forward = jax.jit(forward, static_argnums=0)


class Predictor:
    """Runs one model at fixed batch shapes.

    Args:
      config: the model's configuration.
      params: its parameter tree.
      batch_sizes: the compiled batch sizes, ascending; larger requests are split into chunks of
        the largest size and each chunk is padded up to the next compiled size.
    """

    def __init__(
        self,
        config: ModelConfig,
        params: dict,
        batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    ) -> None:
        self.config = config
        self.batch_sizes = tuple(sorted(batch_sizes))
        self._params = jax.device_put(params)

    def warmup(self) -> None:
        """Compile every batch shape the predictor will run."""
        for size in self.batch_sizes:
            z = jnp.zeros((size, self.config.input_size), jnp.float32)
            _forward(self.config, self._params, z).block_until_ready()

    def windows(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """The last ``input_size`` points of each history, [n, input_size] float64."""
        size = self.config.input_size
        if isinstance(histories, np.ndarray) and histories.ndim == 2:
            # The service hands whole batches of equal-length windows; no per-row work needed.
            if histories.shape[1] < size:
                raise HistoryTooShort(0, histories.shape[1], size)
            return np.asarray(histories[:, -size:], np.float64)
        for i, h in enumerate(histories):
            if len(h) < size:
                raise HistoryTooShort(i, len(h), size)
        return np.stack([np.asarray(h[-size:], np.float64) for h in histories])

    def predict(self, histories: Sequence[np.ndarray], horizon: int | None = None) -> Forecast:
        """Forecast ``horizon`` steps (default and maximum: the model's) for each history."""
        horizon = self.config.horizon if horizon is None else horizon
        if not 0 < horizon <= self.config.horizon:
            raise ValueError(f"horizon must be between 1 and {self.config.horizon}, got {horizon}")
        x = self.windows(histories)
        scale = fit_scale(x)
        z = normalize(x, scale).astype(np.float32)
        out = denormalize(self._run(z).astype(np.float64), scale)[:, :horizon]
        # Quantile heads are trained independently; sorting keeps the bands from crossing.
        qs = np.sort(out[:, :, 1:], axis=-1)
        quantiles = {q: qs[:, :, k] for k, q in enumerate(self.config.quantiles)}
        return Forecast(point=out[:, :, 0], quantiles=quantiles)

    def _run(self, z: np.ndarray) -> np.ndarray:
        """Forward [n, input_size] -> [n, horizon, outputs] at compiled batch sizes only."""
        largest = self.batch_sizes[-1]
        chunks = []
        for start in range(0, len(z), largest):
            chunk = z[start : start + largest]
            size = next(s for s in self.batch_sizes if s >= len(chunk))
            padded = np.zeros((size, z.shape[1]), np.float32)
            padded[: len(chunk)] = chunk
            chunks.append(np.asarray(_forward(self.config, self._params, padded))[: len(chunk)])
        return np.concatenate(chunks)
