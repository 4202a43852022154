"""Recurrent core: LSTM, GRU and plain tanh RNN layers over ``lax.scan``.

Parameter layout of one layer (G gates, H hidden units, F input features):
  kernel_in  [F, G*H]   input projection, all gates fused
  kernel_rec [H, G*H]   recurrent projection, all gates fused
  bias       [G*H]
  bias_rec   [H]        GRU only: bias of the candidate's recurrent term (inside the reset product)
Gate order: LSTM (i, f, g, o); GRU (r, z, n); RNN (a single tanh "gate").

Two implementations share that layout:

* ``impl="fused"`` (default): the input projection of every step is one matmul before the scan,
  only the recurrent matmul runs inside it, and the time loop is a ``jax.custom_vjp`` whose
  backward pass is a hand-written reverse scan. The forward pass stores, per step, the partial
  derivatives the backward needs, so the reverse scan only propagates dh (and dc) with one
  matmul per step, and accumulates the recurrent weight gradient per chunk of ``unroll`` steps
  while those gate gradients are still in cache. Supports reverse-mode autodiff (``grad``,
  ``vjp``), ``jit`` and ``vmap``; it does not support forward-mode (``jvp``/``jacfwd``).
* ``impl="reference"``: the same maths written plainly and differentiated by JAX, for
  forward-mode autodiff and as a test oracle.

Variable lengths: with ``lengths`` [batch], steps at or past a sequence's length leave its carry
unchanged and their outputs repeat the last valid hidden state, so ``outputs[:, -1]`` is always
the final hidden state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from forecaster.configs import CellType
from forecaster.fused import GATES, Carry, Params, fused_layer, hidden_state

Impl = Literal["fused", "reference"]

# Steps per scan iteration. 2-4 pays on CPU (fewer loop trips, bigger weight-gradient matmuls);
# 8 was measured slower.
DEFAULT_UNROLL = 4


# --------------------------------------------------------------------------------------------
# Reference implementation (plain autodiff)
# --------------------------------------------------------------------------------------------


def _step(cell: str, params: Params, carry: Carry, x_proj: jax.Array) -> tuple[Carry, jax.Array]:
    """One time step given the precomputed input projection ``x_proj`` [batch, G*H]."""
    h = carry[1] if cell == "lstm" else carry
    hp = h @ params["kernel_rec"]
    if cell == "lstm":
        c = carry[0]
        i, f, g, o = jnp.split(x_proj + hp, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (c, h), h
    if cell == "gru":
        xr, xz, xn = jnp.split(x_proj, 3, axis=-1)
        hr, hz, hn = jnp.split(hp, 3, axis=-1)
        r = jax.nn.sigmoid(xr + hr)
        z = jax.nn.sigmoid(xz + hz)
        n = jnp.tanh(xn + r * (hn + params["bias_rec"]))
        h = (1.0 - z) * n + z * h
        return h, h
    h = jnp.tanh(x_proj + hp)
    return h, h


def _reference_layer(
    cell: str, params: Params, x: jax.Array, carry: Carry, lengths: jax.Array | None, unroll: int
) -> tuple[jax.Array, Carry]:
    """Plain ``lax.scan`` layer differentiated by JAX: x [B, T, F] -> ([B, T, H], carry)."""
    xs = jnp.einsum("btf,fg->tbg", x, params["kernel_in"]) + params["bias"]
    steps = jnp.arange(x.shape[1])

    def body(carry: Carry, inp: tuple[jax.Array, jax.Array]) -> tuple[Carry, jax.Array]:
        xp_t, t = inp
        new_carry, _ = _step(cell, params, carry, xp_t)
        if lengths is not None:
            keep = (t < lengths)[:, None]
            new_carry = jax.tree.map(lambda n, o: jnp.where(keep, n, o), new_carry, carry)
        return new_carry, hidden_state(cell, new_carry)

    carry, hs = jax.lax.scan(body, carry, (xs, steps), unroll=unroll)
    return jnp.swapaxes(hs, 0, 1), carry


def scan_layer(
    cell: str,
    params: Params,
    x: jax.Array,
    carry: Carry,
    lengths: jax.Array | None = None,
    *,
    impl: Impl = "fused",
    unroll: int = DEFAULT_UNROLL,
) -> tuple[jax.Array, Carry]:
    """Run one layer over a sequence.

    Args:
      cell: "lstm", "gru" or "rnn".
      params: the layer's parameters (layout in the module docstring).
      x: inputs [batch, time, features].
      carry: initial carry: (c, h) for the LSTM, h otherwise, each [batch, hidden].
      lengths: optional valid lengths [batch]; steps at or past a sequence's length leave its
        carry unchanged and output the last valid hidden state.
      impl: "fused" (custom VJP, fast, reverse-mode only) or "reference" (plain autodiff).
      unroll: time steps per scan iteration.
    Returns:
      (outputs [batch, time, hidden], final carry).
    """
    if cell not in GATES:
        raise ValueError(f"unknown cell {cell!r}; expected one of {sorted(GATES)}")
    layer = fused_layer if impl == "fused" else _reference_layer
    return layer(cell, params, x, carry, lengths, unroll)


def zero_carry(cell: str, batch: int, hidden: int, dtype=jnp.float32) -> Carry:
    """The zero initial carry: (c, h) for the LSTM, h otherwise, each [batch, hidden]."""
    h = jnp.zeros((batch, hidden), dtype)
    return (h, h) if cell == "lstm" else h


# --------------------------------------------------------------------------------------------
# Initialisers and flax modules
# --------------------------------------------------------------------------------------------


def blockwise_orthogonal(gates: int) -> Callable[..., jax.Array]:
    """Initialiser for a [H, G*H] recurrent kernel whose every [H, H] gate block is orthogonal.

    One orthogonal [H, G*H] matrix only has orthonormal rows; per-block orthogonality keeps
    every gate's recurrent map norm-preserving, which is what protects gradients through time.
    """

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        rows, cols = shape
        if cols != gates * rows:
            raise ValueError(f"expected shape [H, {gates}*H], got {shape}")
        keys = jax.random.split(key, gates)
        ortho = nn.initializers.orthogonal()
        return jnp.concatenate([ortho(k, (rows, rows), dtype) for k in keys], axis=-1)

    return init


def lstm_bias_init(hidden: int) -> Callable[..., jax.Array]:
    """Zero bias [4H] except the forget gate block (i, f, g, o order), set to 1.0."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        del key
        return jnp.zeros(shape, dtype).at[hidden : 2 * hidden].set(1.0)

    return init


class RecurrentLayer(nn.Module):
    """One recurrent layer: [batch, time, features] -> ([batch, time, hidden], carry).

    Attributes:
      cell: "lstm", "gru" or "rnn".
      hidden: hidden units H.
      impl: "fused" (default, custom VJP) or "reference" (plain autodiff, supports jvp).
      unroll: time steps per scan iteration.
    """

    cell: CellType
    hidden: int
    impl: Impl = "fused"
    unroll: int = DEFAULT_UNROLL

    @nn.compact
    def __call__(
        self, x: jax.Array, lengths: jax.Array | None = None, carry: Carry = None
    ) -> tuple[jax.Array, Carry]:
        g, h = GATES[self.cell], self.hidden
        bias_init = lstm_bias_init(h) if self.cell == "lstm" else nn.initializers.zeros
        params = {
            "kernel_in": self.param(
                "kernel_in", nn.initializers.lecun_normal(), (x.shape[-1], g * h)
            ),
            "kernel_rec": self.param("kernel_rec", blockwise_orthogonal(g), (h, g * h)),
            "bias": self.param("bias", bias_init, (g * h,)),
        }
        if self.cell == "gru":
            params["bias_rec"] = self.param("bias_rec", nn.initializers.zeros, (h,))
        if carry is None:
            carry = zero_carry(self.cell, x.shape[0], h, x.dtype)
        return scan_layer(self.cell, params, x, carry, lengths, impl=self.impl, unroll=self.unroll)


class StackedRecurrent(nn.Module):
    """Stacked layers: [batch, time, features] -> ([batch, time, hidden], tuple of carries).

    Submodules are named ``layer_0``, ``layer_1``, ...; dropout (when > 0) is applied between
    layers and needs a ``dropout`` rng when ``deterministic`` is False.
    """

    cell: CellType
    hidden: int
    layers: int = 1
    dropout: float = 0.0
    impl: Impl = "fused"
    unroll: int = DEFAULT_UNROLL

    @nn.compact
    def __call__(
        self, x: jax.Array, lengths: jax.Array | None = None, *, deterministic: bool = True
    ) -> tuple[jax.Array, tuple[Carry, ...]]:
        carries = []
        for i in range(self.layers):
            if i > 0 and self.dropout > 0:
                x = nn.Dropout(self.dropout)(x, deterministic=deterministic)
            layer = RecurrentLayer(
                self.cell, self.hidden, impl=self.impl, unroll=self.unroll, name=f"layer_{i}"
            )
            x, carry = layer(x, lengths)
            carries.append(carry)
        return x, tuple(carries)


# --------------------------------------------------------------------------------------------
# Conversion to and from flax.linen cell parameters
# --------------------------------------------------------------------------------------------

_FLAX_NAMES = {"lstm": "ifgo", "gru": "rzn"}


def to_flax_params(cell: str, params: Params) -> dict[str, dict[str, jax.Array]]:
    """Our layer params -> the params of flax.linen's cell (exact).

    lstm -> ``LSTMCell`` / ``OptimizedLSTMCell`` (same layout): ``i{g}`` kernels [F, H] without
    bias, ``h{g}`` kernels [H, H] with our bias. gru -> ``GRUCell``: ``i{g}`` with our bias,
    ``hr``/``hz`` without bias, ``hn`` with ``bias_rec``. rnn -> ``SimpleCell``: ``i`` with bias,
    ``h`` without.
    """
    k_in, k_rec, bias = params["kernel_in"], params["kernel_rec"], params["bias"]
    if cell == "rnn":
        return {"i": {"kernel": k_in, "bias": bias}, "h": {"kernel": k_rec}}
    names = _FLAX_NAMES[cell]
    kin, krec, bs = (jnp.split(a, len(names), axis=-1) for a in (k_in, k_rec, bias))
    out: dict[str, dict[str, jax.Array]] = {}
    for n, ki, kr, b in zip(names, kin, krec, bs, strict=True):
        if cell == "lstm":
            out[f"i{n}"] = {"kernel": ki}
            out[f"h{n}"] = {"kernel": kr, "bias": b}
        else:
            out[f"i{n}"] = {"kernel": ki, "bias": b}
            out[f"h{n}"] = {"kernel": kr}
    if cell == "gru":
        out["hn"]["bias"] = params["bias_rec"]
    return out


def from_flax_params(cell: str, flax_params: dict) -> Params:
    """flax.linen cell params (``LSTMCell``, ``OptimizedLSTMCell``, ``GRUCell``, ``SimpleCell``)
    -> our layer params. Exact: every flax bias has a slot in our layout."""
    p = flax_params
    if cell == "rnn":
        return {
            "kernel_in": p["i"]["kernel"],
            "kernel_rec": p["h"]["kernel"],
            "bias": p["i"]["bias"],
        }
    names = _FLAX_NAMES[cell]
    bias_side = "h" if cell == "lstm" else "i"
    out = {
        "kernel_in": jnp.concatenate([p[f"i{n}"]["kernel"] for n in names], axis=-1),
        "kernel_rec": jnp.concatenate([p[f"h{n}"]["kernel"] for n in names], axis=-1),
        "bias": jnp.concatenate([p[f"{bias_side}{n}"]["bias"] for n in names], axis=-1),
    }
    if cell == "gru":
        out["bias_rec"] = p["hn"]["bias"]
    return out


def flops_per_step(cell: str, features: int, hidden: int) -> int:
    """Matmul FLOPs of one forward step for one sequence: input and recurrent projections."""
    return 2 * GATES[cell] * hidden * (features + hidden)


__all__ = [
    "DEFAULT_UNROLL",
    "GATES",
    "CellType",
    "RecurrentLayer",
    "StackedRecurrent",
    "blockwise_orthogonal",
    "flops_per_step",
    "from_flax_params",
    "lstm_bias_init",
    "scan_layer",
    "to_flax_params",
    "zero_carry",
]
