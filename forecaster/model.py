"""The forecasting network: a recurrent encoder over seasonal steps and a multi-horizon head."""

from __future__ import annotations

from typing import cast

import flax.linen as nn
import jax
import jax.numpy as jnp

from forecaster.configs import ModelConfig
from forecaster.recurrent import StackedRecurrent

__all__ = ["Forecaster", "Member", "ModelConfig", "combine", "forward", "init_params"]


def valid_first(steps: jax.Array, lengths: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Move each row's valid steps to the front: steps [batch, time, step] holding a history
    right-aligned (padding first), lengths [batch] in points -> (steps with the valid ones first,
    valid step counts [batch]). The recurrent core then stops each row at its last valid step."""
    time, step = steps.shape[1], steps.shape[2]
    valid = jnp.clip(-(-lengths // step), 1, time)  # a partly padded first step counts
    order = (jnp.arange(time)[None, :] + (time - valid)[:, None]) % time
    return jnp.take_along_axis(steps, order[..., None], axis=1), valid


class Member(nn.Module):
    """One network: normalised history [batch, input_size] -> [batch, horizon, outputs].

    With ``lengths`` [batch] (points of real history, the rest left padding), the encoder reads
    only each row's valid steps. ``training`` compiles the encoder for gradients (longer scans
    unrolled whole: :func:`forecaster.recurrent.default_unroll`); the outputs are the same."""

    config: ModelConfig
    training: bool = False

    @nn.compact
    def __call__(
        self, z: jax.Array, lengths: jax.Array | None = None, deterministic: bool = True
    ) -> jax.Array:
        cfg = self.config
        steps = z.reshape(z.shape[0], cfg.input_size // cfg.step, cfg.step)
        valid = None
        if lengths is not None:
            steps, valid = valid_first(steps, lengths)
        encoder = StackedRecurrent(
            cfg.cell, cfg.hidden, cfg.layers, cfg.dropout, training=self.training, name="encoder"
        )
        _, carries = encoder(steps, valid, deterministic=deterministic)
        last = carries[-1]
        h = last[1] if cfg.cell == "lstm" else last
        out = nn.Dense(cfg.horizon * cfg.outputs, name="head")(h)
        return out.reshape(z.shape[0], cfg.horizon, cfg.outputs)


class Forecaster(nn.Module):
    """An ensemble of ``config.ensemble`` independently initialised members.

    Parameters carry a leading member axis [ensemble, ...] (also for a single member), so one
    artifact format serves single models and ensembles, and members train side by side in one
    jitted step, each on its own batch. ``training``: as in :class:`Member`.
    """

    config: ModelConfig
    training: bool = False

    @nn.compact
    def __call__(
        self, z: jax.Array, lengths: jax.Array | None = None, deterministic: bool = True
    ) -> jax.Array:
        """Per-member forecasts: z [ensemble, batch, input_size] (and lengths [ensemble, batch])
        -> [ensemble, batch, horizon, outputs], in normalised units."""
        members = nn.vmap(
            Member,
            variable_axes={"params": 0},
            split_rngs={"params": True, "dropout": True},
            in_axes=(0, None if lengths is None else 0, None),
            axis_size=self.config.ensemble,
        )
        return members(self.config, self.training, name="members")(z, lengths, deterministic)


def combine(outputs: jax.Array) -> jax.Array:
    """Ensemble forecast from member outputs [ensemble, ...] -> [...] (the median: robust to one
    member that went astray)."""
    return jnp.median(outputs, axis=0)


def forward(
    config: ModelConfig, params: dict, z: jax.Array, lengths: jax.Array | None = None
) -> jax.Array:
    """Inference: normalised windows z [batch, input_size] (left-padded where ``lengths``
    [batch] is below input_size) -> [batch, horizon, outputs]."""
    stacked = jnp.broadcast_to(z, (config.ensemble, *z.shape))
    if lengths is not None:
        lengths = jnp.broadcast_to(lengths, (config.ensemble, *lengths.shape))
    # Without ``mutable``, flax's apply returns the output alone (its annotation admits both).
    out = cast(jax.Array, Forecaster(config).apply({"params": params}, stacked, lengths))
    return combine(out)


def init_params(config: ModelConfig, seed: int = 0) -> dict:
    """Freshly initialised parameters of :class:`Forecaster` for ``config``."""
    dummy = jnp.zeros((config.ensemble, 1, config.input_size), jnp.float32)
    return Forecaster(config).init(jax.random.key(seed), dummy)["params"]
