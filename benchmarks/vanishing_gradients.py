"""How fast gradients vanish through time for each cell, at init and after short training.

    python -m benchmarks.vanishing_gradients --out benchmarks/results

What it measures, how, and what it found: ``docs/results/vanishing-gradients.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from forecaster.configs import CellType
from forecaster.recurrent import RecurrentLayer, hidden_state

CELLS: tuple[CellType, ...] = ("lstm", "gru", "rnn")
MEAN_BASELINE_MSE = 1.0 / 6.0  # variance of the sum of two U(0, 1)


class Regressor(nn.Module):
    """Recurrent layer + dense head on the final hidden state: [B, T, 2] -> [B]."""

    cell: CellType
    hidden: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        _, carry = RecurrentLayer(self.cell, self.hidden, name="rec")(x)
        return nn.Dense(1)(hidden_state(self.cell, carry))[:, 0]


def adding_batch(key: jax.Array, batch: int, steps: int) -> tuple[jax.Array, jax.Array]:
    """Adding problem: x [B, T, 2] (value, marker), y [B] = sum of the two marked values."""
    kv, k1, k2 = jax.random.split(key, 3)
    values = jax.random.uniform(kv, (batch, steps))
    first = jax.random.randint(k1, (batch,), 0, steps // 2)
    second = jax.random.randint(k2, (batch,), steps // 2, steps)
    marks = jax.nn.one_hot(first, steps) + jax.nn.one_hot(second, steps)
    return jnp.stack([values, marks], axis=-1), jnp.sum(values * marks, axis=-1)


def jacobian_norms(model: Regressor, params: Any, x: jax.Array) -> np.ndarray:
    """||dh_T / dx_t|| for t = 0..T-1, mean over the batch; returns [T] indexed by T - 1 - t."""
    rec = RecurrentLayer(model.cell, model.hidden)

    def final_h(x: jax.Array) -> jax.Array:
        _, carry = cast(tuple[jax.Array, Any], rec.apply({"params": params["rec"]}, x))
        return hidden_state(model.cell, carry)  # [B, H]

    h, vjp = jax.vjp(final_h, x)
    eye = jnp.eye(h.shape[-1])
    # one VJP per hidden unit; each sequence's h_T depends only on its own inputs
    rows = jax.vmap(lambda e: vjp(jnp.broadcast_to(e, h.shape))[0])(eye)  # [H, B, T, F]
    norms = jnp.sqrt(jnp.sum(rows**2, axis=(0, 3)))  # [B, T]
    return np.asarray(jnp.mean(norms, axis=0))[::-1]


def train(
    model: Regressor, params: Any, args: argparse.Namespace, key: jax.Array
) -> tuple[Any, list[float]]:
    opt = optax.adam(args.lr)
    state = opt.init(params)

    @jax.jit
    def step(params: Any, state: Any, key: jax.Array) -> tuple[Any, Any, jax.Array]:
        x, y = adding_batch(key, args.batch, args.steps)

        def loss_fn(p: Any) -> jax.Array:
            pred = cast(jax.Array, model.apply({"params": p}, x))
            return jnp.mean((pred - y) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        grads = optax.clip_by_global_norm(1.0).update(grads, None)[0]
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    losses: list[float] = []
    deadline = float("inf")
    for i in range(args.train_steps):
        params, state, loss = step(params, state, jax.random.fold_in(key, i))
        losses.append(float(loss))
        if i == 0:  # the budget starts after compilation
            deadline = time.perf_counter() + args.train_seconds
        if time.perf_counter() > deadline:
            break
    return params, losses


def plot(curves: dict[str, dict[str, list[float]]], path: Path, steps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, stage in zip(axes, ("init", "trained"), strict=True):
        for cell, c in curves.items():
            ax.semilogy(np.arange(steps), c[stage], label=cell.upper())
        ax.set_title(f"{stage}: ||dh_T / dx_t||")
        ax.set_xlabel("distance T - t (steps)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("Jacobian norm (mean over batch)")
    axes[0].legend()
    fig.suptitle("Gradient decay through time (adding problem)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--steps", type=int, default=100, help="sequence length T")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--train-steps", type=int, default=400)
    p.add_argument("--train-seconds", type=float, default=12.0, help="per cell")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    key = jax.random.key(args.seed)
    probe, _ = adding_batch(jax.random.fold_in(key, 10**6), 16, args.steps)
    curves: dict[str, dict[str, list[float]]] = {}
    summary: dict[str, Any] = {}
    for cell in CELLS:
        model = Regressor(cell, args.hidden)
        params = model.init(jax.random.fold_in(key, 1), probe)["params"]
        init_curve = jacobian_norms(model, params, probe)
        params, losses = train(model, params, args, jax.random.fold_in(key, 2))
        trained_curve = jacobian_norms(model, params, probe)
        curves[cell] = {"init": init_curve.tolist(), "trained": trained_curve.tolist()}
        tail = float(np.mean(losses[-20:]))
        summary[cell] = {
            # how much weaker the gradient from the first step is than from the last one
            "init_decay_first_over_last": float(init_curve[-1] / init_curve[0]),
            "trained_decay_first_over_last": float(trained_curve[-1] / trained_curve[0]),
            "train_steps": len(losses),
            "final_mse": tail,
            "beats_mean_baseline": tail < 0.5 * MEAN_BASELINE_MSE,
        }

    png, js = args.out / "vanishing_gradients.png", args.out / "vanishing_gradients.json"
    plot(curves, png, args.steps)
    meta = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    js.write_text(json.dumps({"args": meta, "curves": curves, "summary": summary}, indent=1))
    result = {"benchmark": "vanishing_gradients", "png": str(png), "json": str(js), **summary}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
