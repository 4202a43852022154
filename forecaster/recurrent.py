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

CellType = Literal["lstm", "gru", "rnn"]
Impl = Literal["fused", "reference"]
GATES: dict[str, int] = {"lstm": 4, "gru": 3, "rnn": 1}

Carry = Any  # (c, h) for the LSTM, h otherwise; each [batch, hidden]
Params = dict[str, jax.Array]

# Steps per scan iteration. 2-4 pays on CPU (fewer loop trips, bigger weight-gradient matmuls);
# 8 was measured slower.
DEFAULT_UNROLL = 4


# --------------------------------------------------------------------------------------------
# Reference implementation (plain autodiff)
# --------------------------------------------------------------------------------------------


def _step(cell: str, params: Params, carry: Carry, xp: jax.Array) -> tuple[Carry, jax.Array]:
    """One time step given the precomputed input projection ``xp`` [batch, G*H]."""
    h = carry[1] if cell == "lstm" else carry
    hp = h @ params["kernel_rec"]
    if cell == "lstm":
        c = carry[0]
        i, f, g, o = jnp.split(xp + hp, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (c, h), h
    if cell == "gru":
        xr, xz, xn = jnp.split(xp, 3, axis=-1)
        hr, hz, hn = jnp.split(hp, 3, axis=-1)
        r = jax.nn.sigmoid(xr + hr)
        z = jax.nn.sigmoid(xz + hz)
        n = jnp.tanh(xn + r * (hn + params["bias_rec"]))
        h = (1.0 - z) * n + z * h
        return h, h
    h = jnp.tanh(xp + hp)
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
        return new_carry, _hidden(cell, new_carry)

    carry, hs = jax.lax.scan(body, carry, (xs, steps), unroll=unroll)
    return jnp.swapaxes(hs, 0, 1), carry


# --------------------------------------------------------------------------------------------
# Fused implementation: custom VJP over the time loop
# --------------------------------------------------------------------------------------------


def _hidden(cell: str, carry: Carry) -> jax.Array:
    return carry[1] if cell == "lstm" else carry


def _lstm_scale(hidden: int, dtype: Any) -> jax.Array:
    """[4H] per-column scale s so that ``s * tanh(s * a) + (1 - s)`` activates all LSTM gates.

    sigmoid(a) = 0.5 * tanh(a / 2) + 0.5, so one tanh over the fused [B, 4H] pre-activations
    replaces three sigmoids and a tanh on column slices, which XLA:CPU lowers slowly.
    """
    half = jnp.full((hidden,), 0.5, dtype)
    return jnp.concatenate([half, half, jnp.ones((hidden,), dtype), half])


def _gru_fwd_step(
    w: tuple[jax.Array, ...],
    b_rec: jax.Array,
    h: jax.Array,
    xp: tuple[jax.Array, ...],
    keep: jax.Array | None,
    save: bool,
) -> tuple[jax.Array, tuple]:
    """GRU step with the gates kept apart: w = 3 x [H, H] (r, z, n), xp = 3 x [B, H].

    Three dots instead of column slices of one [B, 3H] product: XLA:CPU fuses the sliced form
    into one loop it cannot vectorise and runs it about 2x slower.
    """
    (x_r, x_z, x_n), (w_r, w_z, w_n) = xp, w
    r = 0.5 * jnp.tanh(0.5 * (x_r + h @ w_r)) + 0.5  # sigmoid via tanh: one fast primitive
    z = 0.5 * jnp.tanh(0.5 * (x_z + h @ w_z)) + 0.5
    hnb = h @ w_n + b_rec
    n = jnp.tanh(x_n + r * hnb)
    h_new = n + z * (h - n)
    if keep is not None:
        h_new = jnp.where(keep, h_new, h)
    if not save:
        return h_new, ()
    # d h_new / d (pre-activations of r, z, n); kept per gate so no step slices columns
    p_n = (1.0 - z) * (1.0 - n * n)
    p_r, p_z = p_n * hnb * r * (1.0 - r), (h - n) * z * (1.0 - z)
    zp = z  # d h_new / d h (direct path)
    if keep is not None:
        m = keep.astype(x_n.dtype)
        p_r, p_z, p_n, zp = p_r * m, p_z * m, p_n * m, z * m + (1.0 - m)
    return h_new, (p_r, p_z, p_n, r, zp)


def _lstm_infer_step(
    w: tuple[jax.Array, ...], carry: Carry, xp: tuple[jax.Array, ...], keep: jax.Array | None
) -> tuple[Carry, tuple]:
    """LSTM step without residuals, gates kept apart: w = 4 x [H, H], xp = 4 x [B, H].

    Without residuals to store, XLA fuses the whole step into one loop, and column slices of a
    fused [B, 4H] product inside it run slowly on CPU; four dots avoid the slices.
    """
    c, h = carry

    def sig(v: jax.Array) -> jax.Array:
        return 0.5 * jnp.tanh(0.5 * v) + 0.5

    i, f, g, o = (x_k + h @ w_k for x_k, w_k in zip(xp, w, strict=True))
    c_new = sig(f) * c + sig(i) * jnp.tanh(g)
    h_new = sig(o) * jnp.tanh(c_new)
    if keep is not None:
        c_new, h_new = jnp.where(keep, c_new, c), jnp.where(keep, h_new, h)
    return (c_new, h_new), ()


def _fwd_step(
    cell: str,
    w: jax.Array,
    b_rec: jax.Array | None,
    carry: Carry,
    xp: jax.Array,
    keep: jax.Array | None,
    save: bool,
) -> tuple[Carry, tuple]:
    """One step: carry and xp [B, G*H] -> new carry and (when ``save``) backward residuals.

    The residuals are the products of partial derivatives the backward step needs, with the
    length mask folded in, so the reverse scan does a few multiplies and one matmul per step.
    """
    h = _hidden(cell, carry)
    hid = h.shape[-1]
    if cell == "gru":
        return _gru_fwd_step(w, b_rec, h, xp, keep, save)
    if cell == "lstm" and not save:  # w and xp arrive split per gate (see _run_forward)
        return _lstm_infer_step(w, carry, xp, keep)
    hp = h @ w
    if cell == "lstm":
        a = xp + hp
        c = carry[0]
        s = _lstm_scale(hid, a.dtype)
        y = jnp.tanh(a * s)
        act = s * y + (1.0 - s)
        i, f, g, o = (act[:, k * hid : (k + 1) * hid] for k in range(4))
        c_new = f * c + i * g
        tc = jnp.tanh(c_new)
        h_new = o * tc
        if keep is not None:
            c_new, h_new = jnp.where(keep, c_new, c), jnp.where(keep, h_new, h)
        if not save:
            return (c_new, h_new), ()
        # d act / d a = s^2 (1 - y^2): the sigmoid and tanh derivatives in one expression
        p = (s * s) * (1.0 - y * y) * jnp.concatenate([g, c, i, tc], axis=-1)
        k1 = o * (1.0 - tc * tc)
        if keep is not None:
            m = keep.astype(a.dtype)
            p, k1, f = p * m, k1 * m, f * m + (1.0 - m)
        return (c_new, h_new), (p, k1, f)
    h_new = jnp.tanh(xp + hp)
    if keep is not None:
        h_new = jnp.where(keep, h_new, h)
    if not save:
        return h_new, ()
    d = 1.0 - h_new * h_new
    if keep is not None:
        d = d * keep.astype(xp.dtype)
    return h_new, (d,)


def _bwd_step(
    cell: str, w: jax.Array, res: tuple, pass_h: jax.Array | None, dcarry: Carry, dh_out: jax.Array
) -> tuple[Carry, jax.Array, jax.Array]:
    """Reverse of one step: returns (d carry_prev, d xp [B, G*H], d (h_prev @ w) [B, G*H])."""
    if cell == "lstm":
        p, k1, f = res
        dc, dh = dcarry
        dh = dh + dh_out
        dct = dc + dh * k1
        da = jnp.concatenate([dct, dct, dct, dh], axis=-1) * p
        dh_prev = da @ w.T
        if pass_h is not None:  # masked steps hand dh through unchanged
            dh_prev = dh_prev + dh * pass_h
        return (dct * f, dh_prev), da, da
    if cell == "gru":
        p_r, p_z, p_n, r, zp = res
        dh = dcarry + dh_out
        dx_r, dx_z, dx_n = dh * p_r, dh * p_z, dh * p_n
        dhp = jnp.concatenate([dx_r, dx_z, dx_n * r], axis=-1)
        return dh * zp + dhp @ w.T, jnp.concatenate([dx_r, dx_z, dx_n], axis=-1), dhp
    (d,) = res
    dh = dcarry + dh_out
    da = dh * d
    dh_prev = da @ w.T
    if pass_h is not None:
        dh_prev = dh_prev + dh * pass_h
    return dh_prev, da, da


def _run_forward(
    cell: str,
    unroll: int,
    xs: jax.Array,
    w: jax.Array,
    b_rec: jax.Array | None,
    carry: Carry,
    keep: jax.Array | None,
    save: bool,
) -> tuple[Carry, jax.Array, tuple]:
    """Forward scan over time-major xs [T, B, G*H]: (final carry, hs [T, B, H], residuals)."""
    if cell == "gru" or (cell == "lstm" and not save):
        # split per gate once, outside the loop (see _gru_fwd_step, _lstm_infer_step)
        xs, w = jnp.split(xs, GATES[cell], axis=-1), jnp.split(w, GATES[cell], axis=-1)

    def body(carry: Carry, inp: tuple) -> tuple[Carry, tuple]:
        xp, k = inp
        new_carry, res = _fwd_step(cell, w, b_rec, carry, xp, k, save)
        return new_carry, (_hidden(cell, new_carry), res)

    carry, (hs, res) = jax.lax.scan(body, carry, (xs, keep), unroll=unroll)
    return carry, hs, res


def _fused_impl(
    cell: str,
    unroll: int,
    xs: jax.Array,
    w: jax.Array,
    b_rec: jax.Array | None,
    carry: Carry,
    keep: jax.Array | None,
) -> tuple[jax.Array, Carry]:
    """Time loop: xs [T, B, G*H], w [H, G*H], keep [T, B, 1] -> (hs [T, B, H], final carry)."""
    carry, hs, _ = _run_forward(cell, unroll, xs, w, b_rec, carry, keep, save=False)
    return hs, carry


_fused = jax.custom_vjp(_fused_impl, nondiff_argnums=(0, 1))


def _fused_fwd(
    cell: str,
    unroll: int,
    xs: jax.Array,
    w: jax.Array,
    b_rec: jax.Array | None,
    carry: Carry,
    keep: jax.Array | None,
) -> tuple[tuple[jax.Array, Carry], tuple]:
    """Forward of the custom VJP: also keeps per-step residuals and the inputs to every step."""
    final, hs, res = _run_forward(cell, unroll, xs, w, b_rec, carry, keep, save=True)
    h0 = _hidden(cell, carry)
    h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0)  # [T, B, H] inputs to each step
    return (hs, final), (w, b_rec, keep, h_prev, res)


def _fused_bwd(cell: str, unroll: int, saved: tuple, cts: tuple) -> tuple:
    """Reverse scan carrying only d carry; returns cotangents of (xs, w, b_rec, carry, keep)."""
    w, b_rec, keep, h_prev, res = saved
    dhs, dcarry = cts
    steps = dhs.shape[0]
    pass_h = None if keep is None else 1.0 - keep.astype(dhs.dtype)
    chunk = max(1, min(unroll, steps))
    n_chunks, rem = divmod(steps, chunk)
    seq = (dhs, h_prev, res, pass_h)

    def run_chunk(acc: tuple, part: tuple) -> tuple[tuple, jax.Array]:
        """Reverse over the leading (time) axis of ``part``, accumulating dW (and GRU db)."""
        dcarry, dw, db = acc
        dhs_c, hprev_c, res_c, pass_c = part
        dxps = []
        for t in reversed(range(dhs_c.shape[0])):
            pass_t = None if pass_c is None else pass_c[t]
            res_t = jax.tree.map(lambda r, t=t: r[t], res_c)
            dcarry, dxp, dhp = _bwd_step(cell, w, res_t, pass_t, dcarry, dhs_c[t])
            dxps.append(dxp)
            # weight gradient while dhp is still in cache (measured faster than one matmul
            # over the stacked chunk or over the whole sequence)
            dw = dw + hprev_c[t].T @ dhp
            if db is not None:  # GRU recurrent bias: the n block of d(h_prev @ w)
                db = db + jnp.sum(dhp[:, 2 * w.shape[0] :], axis=0)
        return (dcarry, dw, db), jnp.stack(dxps[::-1])

    acc = (dcarry, jnp.zeros_like(w), None if b_rec is None else jnp.zeros_like(b_rec))
    dxp_tail = None
    if rem:  # the last T % chunk steps, unrolled, before the chunked scan
        acc, dxp_tail = run_chunk(acc, jax.tree.map(lambda a: a[n_chunks * chunk :], seq))
    head = jax.tree.map(lambda a: a[: n_chunks * chunk].reshape(n_chunks, chunk, *a.shape[1:]), seq)
    (dcarry, dw, dbias), dxps = jax.lax.scan(run_chunk, acc, head, reverse=True)
    dxs = dxps.reshape(n_chunks * chunk, *dxps.shape[2:])
    if dxp_tail is not None:
        dxs = jnp.concatenate([dxs, dxp_tail], axis=0)
    return dxs, dw, dbias, dcarry, None


_fused.defvjp(_fused_fwd, _fused_bwd)


def _fused_layer(
    cell: str, params: Params, x: jax.Array, carry: Carry, lengths: jax.Array | None, unroll: int
) -> tuple[jax.Array, Carry]:
    """Fused layer: x [B, T, F] -> (outputs [B, T, H], carry); autodiff handles the projection."""
    xs = jnp.einsum("btf,fg->tbg", x, params["kernel_in"]) + params["bias"]
    keep = None
    if lengths is not None:
        keep = (jnp.arange(x.shape[1])[:, None] < lengths[None, :])[..., None]  # [T, B, 1]
    hs, carry = _fused(cell, unroll, xs, params["kernel_rec"], params.get("bias_rec"), carry, keep)
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
    layer = _fused_layer if impl == "fused" else _reference_layer
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
