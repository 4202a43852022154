"""Tests of forecaster.recurrent against flax.linen's reference cells and JAX autodiff."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from forecaster import recurrent as R

B, T, F, H = 3, 6, 2, 4
LENGTHS = jnp.array([6, 3, 1])
FLAX_CELLS = {"lstm": nn.LSTMCell, "gru": nn.GRUCell, "rnn": nn.SimpleCell}
CELLS = ["lstm", "gru", "rnn"]


def _perturb(params, key: int = 7, scale: float = 0.3):
    """Move params off their init (zero biases, exact orthogonality) so tests see every term."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(key), len(leaves))
    return tree.unflatten(
        [
            a + scale * jax.random.normal(k, a.shape, a.dtype)
            for a, k in zip(leaves, keys, strict=True)
        ]
    )


def _inputs(t: int = T, f: int = F, key: int = 0) -> jax.Array:
    return jax.random.normal(jax.random.key(key), (B, t, f))


def _stack_params(cell: str, layers: int, x: jax.Array, unroll: int | None = 1):
    model = R.StackedRecurrent(cell, H, layers=layers, unroll=unroll)
    return model, _perturb(model.init(jax.random.key(1), x)["params"])


def _flax_forward(cell: str, flax_layers: list, x: jax.Array, lengths):
    """Run flax cells through nn.RNN, layer after layer: (outputs [B, T, H], carries)."""
    carries = []
    for p in flax_layers:
        rnn = nn.RNN(FLAX_CELLS[cell](H), return_carry=True)
        carry, x = rnn.apply({"params": {"cell": p}}, x, seq_lengths=lengths)
        carries.append(carry)
    return x, tuple(carries)


def _valid(lengths, t: int = T) -> jax.Array:
    """[B, T, 1] float mask of valid steps (all ones without lengths)."""
    if lengths is None:
        return jnp.ones((B, t, 1))
    return (jnp.arange(t)[None, :] < lengths[:, None])[..., None].astype(jnp.float32)


def _loss(outputs, carries, mask) -> jax.Array:
    """Weighted sum over valid outputs and final carries; non-uniform weights catch mixups."""
    w = jnp.sin(jnp.arange(outputs.size).reshape(outputs.shape))
    total = jnp.sum(outputs * w * mask)
    for i, leaf in enumerate(jax.tree.leaves(carries)):
        total = total + (i + 1) * jnp.sum(jnp.cos(leaf))
    return total


def _close(a, b, tol: float = 1e-5) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        scale = max(1.0, float(jnp.max(jnp.abs(y))))
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol * scale)


@pytest.mark.slow  # 24 compiled value-and-grad pairs: most of this file's time
@pytest.mark.parametrize("unroll", [1, None])  # None: whole, so the plain input product
@pytest.mark.parametrize("use_lengths", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_matches_flax_cells(cell: str, layers: int, use_lengths: bool, unroll: int | None) -> None:
    x = _inputs()
    lengths = LENGTHS if use_lengths else None
    mask = _valid(lengths)
    model, params = _stack_params(cell, layers, x, unroll)

    def ours(params, x):
        out, carries = model.apply({"params": params}, x, lengths)
        return _loss(out, carries, mask), (out, carries)

    def theirs(params, x):
        flax_layers = [R.to_flax_params(cell, params[f"layer_{i}"]) for i in range(layers)]
        out, carries = _flax_forward(cell, flax_layers, x, lengths)
        return _loss(out, carries, mask), (out, carries)

    def run(f):
        return jax.value_and_grad(f, argnums=(0, 1), has_aux=True)(params, x)

    (_, (out, carries)), grads = run(ours)
    (_, (ref_out, ref_carries)), ref_grads = run(theirs)
    _close(out * mask, ref_out * mask)
    _close(carries, ref_carries)
    _close(grads, ref_grads)


def test_optimized_lstm_cell_layout() -> None:
    """flax OptimizedLSTMCell shares LSTMCell's layout: same outputs from converted params."""
    x = _inputs()
    params = _perturb(R.RecurrentLayer("lstm", H).init(jax.random.key(1), x)["params"])
    rnn = nn.RNN(nn.OptimizedLSTMCell(H), return_carry=True)
    flax_params = {"cell": R.to_flax_params("lstm", params)}
    carry, out = rnn.apply({"params": flax_params}, x)
    ref_init = nn.RNN(nn.OptimizedLSTMCell(H)).init(jax.random.key(0), x)["params"]
    assert jax.tree.map(jnp.shape, ref_init) == jax.tree.map(jnp.shape, flax_params)
    ours, our_carry = R.RecurrentLayer("lstm", H).apply({"params": params}, x)
    _close(ours, out)
    _close(our_carry, carry)


@pytest.mark.parametrize("cell", CELLS)
def test_flax_conversion_round_trip(cell: str) -> None:
    x = _inputs()
    ours = _perturb(R.RecurrentLayer(cell, H).init(jax.random.key(1), x)["params"])
    flax_params = R.to_flax_params(cell, ours)
    flax_init = nn.RNN(FLAX_CELLS[cell](H)).init(jax.random.key(2), x)["params"]["cell"]
    assert jax.tree.map(jnp.shape, flax_init) == jax.tree.map(jnp.shape, flax_params)
    assert jax.tree.map(np.asarray, R.from_flax_params(cell, flax_params)).keys() == ours.keys()
    jax.tree.map(np.testing.assert_array_equal, R.from_flax_params(cell, flax_params), ours)
    flax_init = _perturb(flax_init)
    back = R.to_flax_params(cell, R.from_flax_params(cell, flax_init))
    jax.tree.map(np.testing.assert_array_equal, back, flax_init)


@pytest.mark.parametrize("cell", CELLS)
def test_check_grads_float64(cell: str) -> None:
    """Finite differences vs autodiff through the scan, w.r.t. params, inputs and initial carry,
    with some sequences masked."""
    with jax.enable_x64(True):
        x = _inputs(t=4).astype(jnp.float64)
        p = R.RecurrentLayer(cell, H).init(jax.random.key(1), x)["params"]
        p = jax.tree.map(lambda a: a.astype(jnp.float64), _perturb(p))
        carry = jax.tree.map(lambda a: a + 0.2, R.zero_carry(cell, B, H, jnp.float64))
        lengths = jnp.array([4, 2, 3])

        def f(p, x, carry):
            out, last = R.scan_layer(cell, p, x, carry, lengths, unroll=2)
            return jnp.sum(jnp.sin(out)) + sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(last))

        check_grads(jax.jit(f), (p, x, carry), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(("cell", "t"), [("lstm", 7), ("gru", 7), ("rnn", 7), ("gru", 1)])
def test_matches_flax_rnn_from_a_given_carry(cell: str, t: int) -> None:
    """Against nn.RNN from the same initial carry, d/d carry included, with a ragged unroll
    tail (unroll 3 over 7 steps)."""
    x = _inputs(t=t)
    p = _perturb(R.RecurrentLayer(cell, H).init(jax.random.key(1), x)["params"])
    carry = jax.tree.map(lambda a: a - 0.4, R.zero_carry(cell, B, H))

    def ours(p, x, carry):
        out, last = R.scan_layer(cell, p, x, carry, unroll=3)
        return _loss(out, last, 1.0)

    def theirs(p, x, carry):
        rnn = nn.RNN(FLAX_CELLS[cell](H), return_carry=True)
        flax_params = {"cell": R.to_flax_params(cell, p)}
        last, out = rnn.apply({"params": flax_params}, x, initial_carry=carry)
        return _loss(out, last, 1.0)

    def run(f):
        return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))(p, x, carry)

    _close(run(ours), run(theirs))


@pytest.mark.parametrize("cell", CELLS)
def test_zero_state_matches_an_explicit_zero_carry(cell: str) -> None:
    """No carry (the zero state, whose first step skips the recurrent product) gives the same
    outputs, carries and gradients as a carry of zeros: with a sequence of length 0, and for a
    one-step scan."""
    for t, lengths in [(T, jnp.array([6, 0, 1])), (1, None)]:
        x = _inputs(t=t)
        p = _perturb(R.RecurrentLayer(cell, H).init(jax.random.key(1), x)["params"])

        def run(carry, t=t, lengths=lengths, x=x, p=p):
            def f(p, x):
                out, last = R.scan_layer(cell, p, x, carry, lengths)
                return _loss(out, last, _valid(lengths, t)), (out, last)

            return jax.jit(jax.value_and_grad(f, argnums=(0, 1), has_aux=True))(p, x)

        _close(run(None), run(R.zero_carry(cell, B, H)))


@pytest.mark.parametrize("cell", CELLS)
def test_zero_state_first_step_has_no_recurrent_product(cell: str) -> None:
    """XLA does not fold a product with zeros (0 * inf is not 0): the core must skip it."""
    x = _inputs(t=1)
    p = R.RecurrentLayer(cell, H).init(jax.random.key(1), x)["params"]

    def flops(carry) -> float:
        run = jax.jit(lambda p: R.scan_layer(cell, p, x, carry))
        return run.lower(p).compile().cost_analysis()["flops"]

    recurrent_product = 2 * B * H * R.GATES[cell] * H
    assert flops(None) <= flops(R.zero_carry(cell, B, H)) - recurrent_product


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA:CPU's fusion heuristics")
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_unrolled_gradient_work_grows_linearly_with_the_steps(cell: str) -> None:
    """An unrolled scan's gradient must not recompute the carry's elementwise recursion inside
    every later step (XLA duplicates cheap producers into each consumer): the compiled gradient
    of 16 steps touches about twice the memory of 8 steps (2.6-2.7 times when it did)."""
    hidden, batch = 32, 64

    def bytes_accessed(t: int) -> float:
        x = jnp.ones((batch, t, F))
        p = R.RecurrentLayer(cell, hidden).init(jax.random.key(1), x)["params"]
        grad = jax.jit(jax.grad(lambda p: jnp.sum(R.scan_layer(cell, p, x, unroll=t)[0][:, -1])))
        return grad.lower(p).compile().cost_analysis()["bytes accessed"]

    assert bytes_accessed(16) <= 2.2 * bytes_accessed(8)


def test_forward_mode_autodiff() -> None:
    """jvp works (the core is plain autodiff) and agrees with reverse mode."""
    x = _inputs(t=4)
    params, _, loss = _model_and_loss("gru", x)
    tangent = jax.tree.map(jnp.ones_like, params)
    _, forward = jax.jvp(lambda p: loss(p, x), (params,), (tangent,))
    grads = jax.grad(loss)(params, x)
    reverse = sum(jnp.sum(g) for g in jax.tree.leaves(grads))
    np.testing.assert_allclose(forward, reverse, rtol=1e-4)


@pytest.mark.parametrize("cell", CELLS)
def test_padding_does_not_change_carry(cell: str) -> None:
    x = _inputs()
    model = R.RecurrentLayer(cell, H, unroll=2)
    params = _perturb(model.init(jax.random.key(1), x)["params"])
    junk = jnp.where(_valid(LENGTHS) > 0, x, 1e3)  # huge values at padded steps
    out, carry = model.apply({"params": params}, x, LENGTHS)
    out_junk, carry_junk = model.apply({"params": params}, junk, LENGTHS)
    _close(carry, carry_junk, 1e-6)
    _close(out, out_junk, 1e-6)
    # the carry is each sequence's last valid step, as if run on the truncated sequence
    for b, n in enumerate(np.asarray(LENGTHS)):
        _, alone = model.apply({"params": params}, x[b : b + 1, :n])
        _close(jax.tree.map(lambda a, b=b: a[b : b + 1], carry), alone)
    np.testing.assert_array_equal(out[:, -1], R.hidden_state(cell, carry))


def _model_and_loss(cell: str, x: jax.Array):
    model = R.RecurrentLayer(cell, H, unroll=2)
    params = _perturb(model.init(jax.random.key(1), x)["params"])

    def apply(params, x):
        return model.apply({"params": params}, x, LENGTHS[: x.shape[0]])

    def loss(params, x):
        out, carry = apply(params, x)
        return _loss(out, carry, _valid(LENGTHS[: x.shape[0]], x.shape[1]))

    return params, apply, loss


def test_jit_and_eager_agree() -> None:
    """Fully eager (disable_jit runs the scan's Python op by op) vs jit, gradients too."""
    x = _inputs(t=3)
    params, apply, loss = _model_and_loss("lstm", x)
    with jax.disable_jit():
        eager, eager_grad = apply(params, x), jax.grad(loss)(params, x)
    _close(jax.jit(apply)(params, x), eager)
    _close(jax.jit(jax.grad(loss))(params, x), eager_grad)


@pytest.mark.parametrize("cell", CELLS)
def test_vmap_forward_and_per_example_grads(cell: str) -> None:
    x = _inputs()
    params, apply, loss = _model_and_loss(cell, x)
    xs = jnp.stack([x, 2 * x])  # vmap over an extra leading axis
    vout = jax.jit(jax.vmap(apply, in_axes=(None, 0)))(params, xs)
    _close(jax.tree.map(lambda a: a[1], vout), jax.jit(apply)(params, 2 * x))
    vgrad = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0)))(params, xs)
    _close(jax.tree.map(lambda a: a[1], vgrad), jax.jit(jax.grad(loss))(params, 2 * x))


def test_lstm_init_forget_bias_and_block_orthogonal() -> None:
    x = _inputs()
    for cell in CELLS:
        p = R.RecurrentLayer(cell, 8).init(jax.random.key(3), x)["params"]
        g = R.GATES[cell]
        assert p["kernel_rec"].shape == (8, g * 8)
        assert p["kernel_in"].shape == (F, g * 8)
        for k in range(g):
            block = p["kernel_rec"][:, k * 8 : (k + 1) * 8]
            np.testing.assert_allclose(block.T @ block, np.eye(8), atol=1e-5)
        expected_bias = np.zeros(g * 8)
        if cell == "lstm":
            expected_bias[8:16] = 1.0  # forget gate: second block in (i, f, g, o)
        np.testing.assert_array_equal(p["bias"], expected_bias)
    # blocks differ from each other (independent keys), so orthogonality is per gate
    k = R.RecurrentLayer("gru", 8).init(jax.random.key(3), x)["params"]["kernel_rec"]
    assert not np.allclose(k[:, :8], k[:, 8:16])


def test_lstm_forget_bias_position_matters() -> None:
    """A carry-holding LSTM (huge forget bias, shut input gate) keeps c: gate order check."""
    x = _inputs()
    p = R.RecurrentLayer("lstm", H).init(jax.random.key(1), x)["params"]
    p = dict(p, bias=p["bias"].at[:H].set(-50.0).at[H : 2 * H].set(50.0))
    c0 = jnp.full((B, H), 0.7)
    _, (c, _) = R.scan_layer("lstm", p, x, (c0, jnp.zeros((B, H))))
    np.testing.assert_allclose(c, c0, atol=1e-5)


def test_dropout_between_layers() -> None:
    x = _inputs()
    model = R.StackedRecurrent("gru", H, layers=2, dropout=0.5)
    params = model.init(jax.random.key(1), x)["params"]
    det, _ = model.apply({"params": params}, x)
    plain, _ = R.StackedRecurrent("gru", H, layers=2).apply({"params": params}, x)
    np.testing.assert_array_equal(det, plain)
    rngs = {"dropout": jax.random.key(5)}
    drop, _ = model.apply({"params": params}, x, deterministic=False, rngs=rngs)
    assert not np.allclose(drop, det)


def test_initial_carry_is_used() -> None:
    x = _inputs()
    model = R.RecurrentLayer("lstm", H)
    params = model.init(jax.random.key(1), x)["params"]
    out0, _ = model.apply({"params": params}, x)
    carry = (jnp.ones((B, H)), jnp.ones((B, H)))
    out1, _ = model.apply({"params": params}, x, None, carry)
    assert not np.allclose(out0[:, 0], out1[:, 0])
