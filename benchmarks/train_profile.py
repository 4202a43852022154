"""Where one training step of the shipped M4 Hourly recipe goes, part by part.

    python -m benchmarks.train_profile [--data DIR] [--rounds 5]

What it measures, how, and what it found: ``docs/results/core-speed.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from forecaster import data
from forecaster.configs import ModelConfig, TrainConfig
from forecaster.predict import Predictor, score_model
from forecaster.scaling import fit_scale, normalize
from forecaster.train import (
    REPORT_EVERY,
    WindowSampler,
    create_train_state,
    loss_fn,
    train_step,
    train_steps,
)

M4 = Path(__file__).resolve().parents[2] / "shared" / "data" / "m4"
RECIPE = ModelConfig(cell="lstm", hidden=128, input_size=168, horizon=48, step=24, ensemble=5)
TRAIN = TrainConfig(steps=12_000, eval_every=1_000)


def timed(fn: Callable[[], Any], n: int) -> float:
    """Milliseconds per call of ``fn`` over ``n`` calls, waiting for the device at the end."""
    jax.block_until_ready(fn())  # compiled and warm
    start = time.perf_counter()
    out = None
    for _ in range(n):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / n * 1e3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=M4)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=20, help="calls per round")
    args = p.parse_args(argv)

    series = data.load_series(args.data / "Hourly-train.csv", freq="h")
    train, targets = data.train_val_split(series, RECIPE.horizon)
    sampler = WindowSampler.from_series(train.values, RECIPE.input_size, RECIPE.horizon)
    shape = (RECIPE.ensemble, TRAIN.batch_size)
    keys = jax.random.split(jax.random.key(0), args.steps)
    batches = [sampler.sample(k, shape) for k in keys]
    state = create_train_state(RECIPE, TRAIN)
    params = state.params

    normalise = jax.jit(lambda b: normalize(b["x"], fit_scale(b["x"], jnp), jnp))
    forward = jax.jit(lambda p, b: loss_fn(p, state, b, jax.random.key(1)))
    grads = jax.jit(jax.value_and_grad(lambda p, b: loss_fn(p, state, b, jax.random.key(1))))
    step_state = [create_train_state(RECIPE, TRAIN)]  # its own: train_step donates it

    def one_step(batch: dict) -> Any:
        step_state[0], metrics = train_step(step_state[0], batch)
        return metrics["loss"]

    def loop_step(key: jax.Array) -> Any:
        return one_step(sampler.sample(key, shape))

    loop_state = [create_train_state(RECIPE, TRAIN), jax.random.key(2)]

    def loop() -> Any:  # REPORT_EVERY steps a call, as fit runs them
        state, key, metrics = train_steps(
            loop_state[0], sampler, loop_state[1], shape, REPORT_EVERY
        )
        loop_state[:] = state, key
        return metrics["loss"]

    cycle = {"i": 0}

    def each(fn: Callable[[Any], Any], items: list) -> Callable[[], Any]:
        def call() -> Any:
            cycle["i"] = (cycle["i"] + 1) % len(items)
            return fn(items[cycle["i"]])

        return call

    parts = {
        "sample": each(lambda k: sampler.sample(k, shape), list(keys)),
        "normalise": each(normalise, batches),
        "forward": each(lambda b: forward(params, b), batches),
        "forward_backward": each(lambda b: grads(params, b), batches),
        "step": each(one_step, batches),
        "loop_per_step": each(loop_step, list(keys)),
        "loop": loop,
    }
    rounds: dict[str, list[float]] = {k: [] for k in parts}
    for _ in range(args.rounds):  # parts interleaved, so load from elsewhere hits all alike
        for name, fn in parts.items():
            if name == "loop":
                rounds[name].append(timed(fn, 1) / REPORT_EVERY)
            else:
                rounds[name].append(timed(fn, args.steps))
    ms = {k: round(statistics.median(v), 2) for k, v in rounds.items()}

    predictor = Predictor(RECIPE, jax.device_get(step_state[0].params))
    score_model(predictor, train.values, targets, 24)  # compile
    start = time.perf_counter()
    score_model(predictor, train.values, targets, 24)
    evaluate_ms = (time.perf_counter() - start) * 1e3

    line = {
        "benchmark": "train_profile",
        "ms_per_step": ms,
        "optimizer_ms": round(ms["step"] - ms["forward_backward"], 2),
        "backward_ms": round(ms["forward_backward"] - ms["forward"], 2),
        "evaluate_ms": round(evaluate_ms, 1),
        "evaluate_ms_per_step": round(evaluate_ms / TRAIN.eval_every, 3),
        "recipe_minutes_at_loop_rate": round(
            (ms["loop"] * TRAIN.steps + evaluate_ms * TRAIN.steps / TRAIN.eval_every) / 6e4, 2
        ),
        "devices": [str(d) for d in jax.devices()],
        "rounds": args.rounds,
        "steps_per_round": args.steps,
    }
    print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
