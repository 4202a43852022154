"""The forecasting network: a recurrent encoder over seasonal steps and a multi-horizon head."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from forecaster.recurrent import CellType, StackedRecurrent

# Upper bounds far above any useful model; they keep a hostile or mistyped manifest from making
# the loader trace or allocate something enormous.
LIMITS = {"hidden": 8192, "layers": 16, "input_size": 100_000, "horizon": 10_000,
          "step": 10_000, "ensemble": 64}  # fmt: skip


@dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters of one model; everything needed to rebuild it from saved weights.

    ``input_size`` points of history are read as ``input_size // step`` recurrent steps of
    ``step`` values each (a whole seasonal cycle per step, as ES-RNN does), which makes the
    scan short and lets the network see the season's shape at every step.
    """

    cell: CellType = "gru"
    hidden: int = 128
    layers: int = 1
    dropout: float = 0.0
    input_size: int = 168
    horizon: int = 48
    step: int = 24
    quantiles: tuple[float, ...] = field(default_factory=tuple)
    ensemble: int = 1

    def __post_init__(self) -> None:
        if self.cell not in ("lstm", "gru", "rnn"):
            raise ValueError(f"cell must be lstm, gru or rnn, got {self.cell!r}")
        for name, most in LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 < value <= most:
                raise ValueError(f"{name} must be an integer in [1, {most}], got {value!r}")
        if self.input_size % self.step:
            raise ValueError(f"input_size {self.input_size} is not a multiple of step {self.step}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if any(not 0.0 < q < 1.0 for q in self.quantiles):
            raise ValueError(f"quantiles must lie in (0, 1), got {self.quantiles}")
        object.__setattr__(self, "quantiles", tuple(sorted(float(q) for q in self.quantiles)))

    @property
    def outputs(self) -> int:
        """Output channels per horizon step: the point forecast, then each quantile."""
        return 1 + len(self.quantiles)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"quantiles": list(self.quantiles)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**{**data, "quantiles": tuple(data.get("quantiles", ()))})


class Member(nn.Module):
    """One network: normalised history [batch, input_size] -> [batch, horizon, outputs]."""

    config: ModelConfig

    @nn.compact
    def __call__(self, z: jax.Array, deterministic: bool = True) -> jax.Array:
        cfg = self.config
        steps = z.reshape(z.shape[0], cfg.input_size // cfg.step, cfg.step)
        encoder = StackedRecurrent(cfg.cell, cfg.hidden, cfg.layers, cfg.dropout, name="encoder")
        _, carries = encoder(steps, deterministic=deterministic)
        last = carries[-1]
        h = last[1] if cfg.cell == "lstm" else last
        out = nn.Dense(cfg.horizon * cfg.outputs, name="head")(h)
        return out.reshape(z.shape[0], cfg.horizon, cfg.outputs)


class Forecaster(nn.Module):
    """An ensemble of ``config.ensemble`` independently initialised members.

    Parameters carry a leading member axis [ensemble, ...] (also for a single member), so one
    artifact format serves single models and ensembles, and members train side by side in one
    jitted step, each on its own batch.
    """

    config: ModelConfig

    @nn.compact
    def __call__(self, z: jax.Array, deterministic: bool = True) -> jax.Array:
        """Per-member forecasts: z [ensemble, batch, input_size] -> [ensemble, batch, horizon,
        outputs], in normalised units."""
        members = nn.vmap(
            Member,
            variable_axes={"params": 0},
            split_rngs={"params": True, "dropout": True},
            in_axes=(0, None),
            axis_size=self.config.ensemble,
        )
        return members(self.config, name="members")(z, deterministic)


def combine(outputs: jax.Array) -> jax.Array:
    """Ensemble forecast from member outputs [ensemble, ...] -> [...] (the median: robust to one
    member that went astray)."""
    return jnp.median(outputs, axis=0)


def forward(config: ModelConfig, params: dict, z: jax.Array) -> jax.Array:
    """Inference: normalised windows z [batch, input_size] -> [batch, horizon, outputs]."""
    stacked = jnp.broadcast_to(z, (config.ensemble, *z.shape))
    return combine(Forecaster(config).apply({"params": params}, stacked))


def init_params(config: ModelConfig, seed: int = 0) -> dict:
    """Freshly initialised parameters of :class:`Forecaster` for ``config``."""
    dummy = jnp.zeros((config.ensemble, 1, config.input_size), jnp.float32)
    return Forecaster(config).init(jax.random.key(seed), dummy)["params"]
