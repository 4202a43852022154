"""The fused recurrent time loop: a ``jax.custom_vjp`` with a hand-written backward pass.

The fast path behind :func:`forecaster.recurrent.scan_layer` (``impl="fused"``); the cells'
equations are written plainly in :mod:`forecaster.recurrent` and this file must compute the same
(the tests compare both, and both against flax's own cells).

The input projection of every step is one matmul before the scan, only the recurrent matmul runs
inside it, and the backward pass is a reverse scan that propagates only dh (and dc): the forward
pass stores the per-step partial derivatives it needs, and the recurrent weight gradient is
accumulated per chunk of ``unroll`` steps while those gate gradients are still in cache.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

GATES: dict[str, int] = {"lstm": 4, "gru": 3, "rnn": 1}
Carry = Any  # (c, h) for the LSTM, h otherwise; each [batch, hidden]
Params = dict[str, jax.Array]


def hidden_state(cell: str, carry: Carry) -> jax.Array:
    """The hidden state h [batch, hidden] of a carry ((c, h) for the LSTM, h otherwise)."""
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
    x_proj: tuple[jax.Array, ...],
    keep: jax.Array | None,
    save: bool,
) -> tuple[jax.Array, tuple]:
    """GRU step with the gates kept apart: w = 3 x [H, H] (r, z, n), x_proj = 3 x [B, H].

    Three dots instead of column slices of one [B, 3H] product: XLA:CPU fuses the sliced form
    into one loop it cannot vectorise and runs it about 2x slower.
    """
    (x_r, x_z, x_n), (w_r, w_z, w_n) = x_proj, w
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
    w: tuple[jax.Array, ...], carry: Carry, x_proj: tuple[jax.Array, ...], keep: jax.Array | None
) -> tuple[Carry, tuple]:
    """LSTM step without residuals, gates kept apart: w = 4 x [H, H], x_proj = 4 x [B, H].

    Without residuals to store, XLA fuses the whole step into one loop, and column slices of a
    fused [B, 4H] product inside it run slowly on CPU; four dots avoid the slices.
    """
    c, h = carry

    def sig(v: jax.Array) -> jax.Array:
        return 0.5 * jnp.tanh(0.5 * v) + 0.5

    i, f, g, o = (x_k + h @ w_k for x_k, w_k in zip(x_proj, w, strict=True))
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
    x_proj: jax.Array,
    keep: jax.Array | None,
    save: bool,
) -> tuple[Carry, tuple]:
    """One step: carry and x_proj [B, G*H] -> new carry and (when ``save``) backward residuals.

    The residuals are the products of partial derivatives the backward step needs, with the
    length mask folded in, so the reverse scan does a few multiplies and one matmul per step.
    """
    h = hidden_state(cell, carry)
    hid = h.shape[-1]
    if cell == "gru":
        return _gru_fwd_step(w, b_rec, h, x_proj, keep, save)
    if cell == "lstm" and not save:  # w and x_proj arrive split per gate (see _run_forward)
        return _lstm_infer_step(w, carry, x_proj, keep)
    hp = h @ w
    if cell == "lstm":
        a = x_proj + hp
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
    h_new = jnp.tanh(x_proj + hp)
    if keep is not None:
        h_new = jnp.where(keep, h_new, h)
    if not save:
        return h_new, ()
    d = 1.0 - h_new * h_new
    if keep is not None:
        d = d * keep.astype(x_proj.dtype)
    return h_new, (d,)


def _bwd_step(
    cell: str, w: jax.Array, res: tuple, pass_h: jax.Array | None, dcarry: Carry, dh_out: jax.Array
) -> tuple[Carry, jax.Array, jax.Array]:
    """Reverse of one step: returns (d carry_prev, d x_proj [B, G*H], d (h_prev @ w) [B, G*H])."""
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
        x_proj, k = inp
        new_carry, res = _fwd_step(cell, w, b_rec, carry, x_proj, k, save)
        return new_carry, (hidden_state(cell, new_carry), res)

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
    h0 = hidden_state(cell, carry)
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


def fused_layer(
    cell: str, params: Params, x: jax.Array, carry: Carry, lengths: jax.Array | None, unroll: int
) -> tuple[jax.Array, Carry]:
    """Fused layer: x [B, T, F] -> (outputs [B, T, H], carry); autodiff handles the projection."""
    xs = jnp.einsum("btf,fg->tbg", x, params["kernel_in"]) + params["bias"]
    keep = None
    if lengths is not None:
        keep = (jnp.arange(x.shape[1])[:, None] < lengths[None, :])[..., None]  # [T, B, 1]
    hs, carry = _fused(cell, unroll, xs, params["kernel_rec"], params.get("bias_rec"), carry, keep)
    return jnp.swapaxes(hs, 0, 1), carry
