"""Recurrent core: LSTM, GRU and plain tanh RNN layers over ``lax.scan``.

Parameter layout of one layer (G gates, H hidden units, F input features):
  kernel_in  [F, G*H]   input projection, all gates fused
  kernel_rec [H, G*H]   recurrent projection, all gates fused
  bias       [G*H]
  bias_rec   [H]        GRU only: bias of the candidate's recurrent term (inside the reset product)
Gate order: LSTM (i, f, g, o); GRU (r, z, n); RNN (a single tanh "gate").

The cells below are the equations of flax's own cells (``OptimizedLSTMCell``, ``GRUCell``,
``SimpleCell``; the tests check outputs, carries and gradients against them, with parameters
converted exactly by :func:`to_flax_params`), written out because a few things about how
XLA:CPU runs them are worth a few lines each (measured in docs/results/core-speed.md): a
layer that starts from the zero state computes its first step without the recurrent product
(XLA does not fold a product with zeros, as ``0 * inf`` is not 0, so a cell handed a zero carry
pays for a matmul and a weight gradient known to be zero: one step in seven at the
shipped shape), a scan not unrolled whole computes its input product as a real matmul (see
:func:`scan_layer`), and an unrolled scan computes each step's carry once
(:func:`_materialized`). JAX differentiates the scan (backpropagation through time over the unrolled
loop); a hand-written backward pass (custom VJP) lived here until it measured no faster.

Variable lengths: with ``lengths`` [batch], steps at or past a sequence's length leave its carry
unchanged and their outputs repeat the last valid hidden state, so ``outputs[:, -1]`` is always
the final hidden state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from forecaster.configs import CellType

GATES: dict[str, int] = {"lstm": 4, "gru": 3, "rnn": 1}
Carry = Any  # (c, h) for the LSTM, h otherwise; each [batch, hidden]
Params = dict[str, jax.Array]

# Scans of up to this many steps are unrolled whole, longer ones not at all. Measured on CPU:
# for inference, whole unrolls pay at the shipped shape but not beyond (52 steps: a forecast of
# 16 series 8.4 ms against 6.9, and the five compiled batch sizes took 9.1 s against 2.0); when
# differentiated, a whole unroll stores the backward's residuals as plain buffers instead of
# writing them into stacked loop outputs step by step, and pays up to long windows (training
# B256 H128: 16 steps 13.1 ms against 16.6, 64 steps 56 against 74, 168 steps LSTM 174 against
# 207 and GRU 117 against 159), for a compile that grows with the steps (8.5 s at 168 against
# 1.2). Partial unrolls (2, 4) were slower than none at 168 steps.
FULL_UNROLL_STEPS = 16
TRAINING_UNROLL_STEPS = 168


def default_unroll(steps: int, training: bool = False) -> int:
    """Time steps per scan iteration for a scan of ``steps`` steps: the whole scan up to
    :data:`FULL_UNROLL_STEPS` (:data:`TRAINING_UNROLL_STEPS` for a graph that is differentiated,
    ``training``), else one."""
    limit = TRAINING_UNROLL_STEPS if training else FULL_UNROLL_STEPS
    return max(1, steps if steps <= limit else 1)


def hidden_state(cell: str, carry: Carry) -> jax.Array:
    """The hidden state h [batch, hidden] of a carry ((c, h) for the LSTM, h otherwise)."""
    return carry[1] if cell == "lstm" else carry


# --------------------------------------------------------------------------------------------
# Cells: one step from the carry and the step's input product xw = x_t W + b [batch, G*H];
# carry None is the zero state
# --------------------------------------------------------------------------------------------


def lstm_step(p: Params, carry: Carry | None, xw: jax.Array) -> Carry:
    """LSTM: gates i, f, o and candidate g from the input product ``xw`` (x_t W + b,
    [batch, 4H]) and h; the cell state c is carried apart from h, c' = f*c + i*g,
    h' = o*tanh(c')."""
    z = xw if carry is None else xw + carry[1] @ p["kernel_rec"]
    i, f, g, o = jnp.split(z, 4, axis=-1)
    c = jax.nn.sigmoid(i) * jnp.tanh(g)
    if carry is not None:
        c = jax.nn.sigmoid(f) * carry[0] + c
    return c, jax.nn.sigmoid(o) * jnp.tanh(c)


def gru_step(p: Params, h: jax.Array | None, xw: jax.Array) -> jax.Array:
    """GRU: reset r and update z gates from the input product ``xw`` ([batch, 3H]) and h;
    candidate n = tanh(xw_n + r*(U_n h + b_n)), h' = (1-z)*n + z*h."""
    xr, xz, xn = jnp.split(xw, 3, axis=-1)
    if h is None:
        r, z = jax.nn.sigmoid(xr), jax.nn.sigmoid(xz)
        return (1.0 - z) * jnp.tanh(xn + r * p["bias_rec"])
    hr, hz, hn = jnp.split(h @ p["kernel_rec"], 3, axis=-1)
    r, z = jax.nn.sigmoid(xr + hr), jax.nn.sigmoid(xz + hz)
    n = jnp.tanh(xn + r * (hn + p["bias_rec"]))
    return (1.0 - z) * n + z * h


def rnn_step(p: Params, h: jax.Array | None, xw: jax.Array) -> jax.Array:
    """Plain RNN: h' = tanh(xw + U h), with xw = x_t W + b."""
    return jnp.tanh(xw if h is None else h @ p["kernel_rec"] + xw)


STEPS: dict[str, Callable[[Params, Carry | None, jax.Array], Carry]] = {
    "lstm": lstm_step,
    "gru": gru_step,
    "rnn": rnn_step,
}


def _input_products(
    params: Params, xs: jax.Array, ones_column: bool
) -> tuple[jax.Array, Callable[[jax.Array], jax.Array]]:
    """The scanned inputs [time, batch, F (+1)] and the step's x_t -> x_t W + b [batch, G*H].

    A scan not unrolled whole reads each step's input as a dynamic slice, which XLA:CPU fuses
    into the gates' elementwise work when the input product is not a real matmul (one feature:
    a broadcast multiply); that fusion runs several times slower. With the bias riding in the
    product as a column of ones (``ones_column``) it is a matmul and the slice stays apart:
    forward of 64 windows x 168 steps, LSTM 31.5 -> 18.4 ms, GRU 27 -> 14. Training got 0-5%
    slower, so scans unrolled whole (static slices) keep x W + b.
    """
    w_in, bias = params["kernel_in"], params["bias"]
    if not ones_column:
        return xs, lambda x_t: x_t @ w_in + bias
    xs = jnp.concatenate([xs, jnp.ones_like(xs[..., :1])], axis=-1)
    w_in = jnp.concatenate([w_in, bias[None]])
    return xs, lambda x_t: x_t @ w_in


@jax.custom_jvp
def _materialized(x: jax.Array) -> jax.Array:
    """x, computed once: XLA:CPU fuses cheap elementwise producers into every consumer, so in an
    unrolled scan the carry's elementwise recursions (the LSTM's c' = f*c + i*g, the GRU's
    h' = (1-z)*n + z*h, and their gradients dc = f*dc' + ...) were recomputed along the chain
    inside every step's fusions: quadratic in the steps (the recipe's backward spent about 4.5
    of its 20 ms on it). A float divide counts as expensive to XLA's fusion and is never
    duplicated, so dividing by a ones array XLA cannot fold (x*0 + 1; x*0 is not folded, as
    inf*0 is nan) materialises x once, forward and backward. ``optimization_barrier`` does not:
    XLA:CPU removes it before fusion. Values pass unchanged (inf or nan carries become nan)."""
    return x / (x * 0.0 + 1.0)


@_materialized.defjvp
def _materialized_jvp(primals: tuple[jax.Array], tangents: tuple[jax.Array]) -> tuple:
    (x,), (t,) = primals, tangents
    ones = x * 0.0 + 1.0
    return x / ones, t / ones  # linear in t, so reverse mode divides the cotangent too


def scan_layer(
    cell: str,
    params: Params,
    x: jax.Array,
    carry: Carry | None = None,
    lengths: jax.Array | None = None,
    *,
    unroll: int | None = None,
    training: bool = False,
) -> tuple[jax.Array, Carry]:
    """Run one layer over a sequence.

    Args:
      cell: "lstm", "gru" or "rnn".
      params: the layer's parameters (layout in the module docstring).
      x: inputs [batch, time, features].
      carry: initial carry: (c, h) for the LSTM, h otherwise, each [batch, hidden]; None is the
        zero state (and saves the first step's recurrent product).
      lengths: optional valid lengths [batch]; steps at or past a sequence's length leave its
        carry unchanged and output the last valid hidden state.
      unroll: time steps per scan iteration (default: :func:`default_unroll`).
      training: whether the graph will be differentiated (only the default unroll depends on
        it; the outputs do not).
    Returns:
      (outputs [batch, time, hidden], final carry).
    """
    if cell not in GATES:
        raise ValueError(f"unknown cell {cell!r}; expected one of {sorted(GATES)}")
    step = STEPS[cell]
    steps = x.shape[1] - (carry is None)  # scanned steps: a zero state's first step is not
    unroll = unroll or default_unroll(steps, training)
    xs, input_product = _input_products(params, jnp.swapaxes(x, 0, 1), unroll < steps)

    def keep_valid(t: int | jax.Array, new: Carry, old: Carry) -> Carry:
        if lengths is None:
            return new
        keep = (t < lengths)[:, None]
        return jax.tree.map(lambda n, o: jnp.where(keep, n, o), new, old)

    h_first = None
    if carry is None:
        new = step(params, None, input_product(xs[0]))
        carry = keep_valid(0, new, jax.tree.map(jnp.zeros_like, new))
        h_first, xs = hidden_state(cell, carry), xs[1:]

    def body(carry: Carry, inp: tuple[jax.Array, jax.Array]) -> tuple[Carry, jax.Array]:
        x_t, t = inp
        carry = keep_valid(t, step(params, carry, input_product(x_t)), carry)
        if unroll > 1:  # a rolled loop stores its carry anyway
            carry = jax.tree.map(_materialized, carry)
        return carry, hidden_state(cell, carry)

    t = jnp.arange(x.shape[1] - xs.shape[0], x.shape[1])
    carry, hs = jax.lax.scan(body, carry, (xs, t), unroll=unroll)
    if h_first is not None:
        hs = jnp.concatenate([h_first[None], hs])
    return jnp.swapaxes(hs, 0, 1), carry


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
      unroll: time steps per scan iteration (None: :func:`default_unroll`).
      training: compiled for gradients (see :func:`scan_layer`).
    """

    cell: CellType
    hidden: int
    unroll: int | None = None
    training: bool = False

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
        return scan_layer(
            self.cell, params, x, carry, lengths, unroll=self.unroll, training=self.training
        )


class StackedRecurrent(nn.Module):
    """Stacked layers: [batch, time, features] -> ([batch, time, hidden], tuple of carries).

    Submodules are named ``layer_0``, ``layer_1``, ...; dropout (when > 0) is applied between
    layers and needs a ``dropout`` rng when ``deterministic`` is False. ``unroll`` and
    ``training``: as in :class:`RecurrentLayer`.
    """

    cell: CellType
    hidden: int
    layers: int = 1
    dropout: float = 0.0
    unroll: int | None = None
    training: bool = False

    @nn.compact
    def __call__(
        self, x: jax.Array, lengths: jax.Array | None = None, *, deterministic: bool = True
    ) -> tuple[jax.Array, tuple[Carry, ...]]:
        carries = []
        for i in range(self.layers):
            if i > 0 and self.dropout > 0:
                x = nn.Dropout(self.dropout)(x, deterministic=deterministic)
            layer = RecurrentLayer(
                self.cell, self.hidden, self.unroll, self.training, name=f"layer_{i}"
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
    "FULL_UNROLL_STEPS",
    "GATES",
    "STEPS",
    "TRAINING_UNROLL_STEPS",
    "CellType",
    "RecurrentLayer",
    "StackedRecurrent",
    "blockwise_orthogonal",
    "default_unroll",
    "flops_per_step",
    "from_flax_params",
    "gru_step",
    "hidden_state",
    "lstm_bias_init",
    "lstm_step",
    "rnn_step",
    "scan_layer",
    "to_flax_params",
    "zero_carry",
]
