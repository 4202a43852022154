"""Training (or inference) throughput of the recurrent core, optionally against PyTorch.

    python -m benchmarks.train_throughput --cell lstm --batch 256 --window 168 --hidden 128
    python -m benchmarks.train_throughput --cell gru --features 24 --window 7 --compare torch
    python -m benchmarks.train_throughput --cell lstm --forward-only --batch 1 --compare torch

What it measures, how, and what it found: ``docs/results/core-speed.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any, cast

import numpy as np

TCMALLOC_HINT = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"


def usable_cpus() -> int:
    """CPUs this process may run on (respects taskset/cgroups affinity, unlike cpu_count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def tcmalloc_loaded() -> bool:
    """Whether tcmalloc is mapped into this process (e.g. through LD_PRELOAD)."""
    try:
        with open("/proc/self/maps") as f:
            return "tcmalloc" in f.read()
    except OSError:
        return "tcmalloc" in os.environ.get("LD_PRELOAD", "")


def sgemm_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` float32 numpy matmul rate, n^3: the machine's practical peak."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up: thread pool start, page faults
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def model_flops(args: argparse.Namespace) -> float:
    """Matmul FLOPs per step: recurrent layers + head; backward counted as 2x forward."""
    from forecaster.recurrent import flops_per_step

    per_seq = 0
    features = args.features
    for _ in range(args.layers):
        per_seq += args.window * flops_per_step(args.cell, features, args.hidden)
        features = args.hidden
    per_seq += 2 * args.hidden * args.horizon
    return per_seq * args.batch * (1 if args.forward_only else 3)


def make_data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, args.window, args.features), dtype=np.float32)
    y = rng.standard_normal((args.batch, args.horizon), dtype=np.float32)
    return x, y


def jax_runner(args: argparse.Namespace, x: np.ndarray, y: np.ndarray) -> Callable[[int], None]:
    """Returns run(n): n jitted training (or inference) steps, blocking at the end."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import optax

    from forecaster.recurrent import StackedRecurrent

    dtype = jnp.dtype(args.dtype)

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            if args.impl == "flax":
                cells = {"lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell, "rnn": nn.SimpleCell}
                for _ in range(args.layers):
                    layer = nn.RNN(cells[args.cell](args.hidden), unroll=args.unroll)
                    x = cast(jax.Array, layer(x))  # no return_carry: the outputs alone
            else:
                rec = StackedRecurrent(args.cell, args.hidden, args.layers, unroll=args.unroll)
                x, _ = rec(x)
            return nn.Dense(args.horizon)(x[:, -1])

    net = Net()
    xj, yj = jnp.asarray(x, dtype), jnp.asarray(y)
    params = net.init(jax.random.key(0), xj)["params"]
    params = jax.tree.map(lambda a: a.astype(dtype), params)

    if args.forward_only:
        predict = jax.jit(lambda p, x: net.apply({"params": p}, x))

        def forward(n: int) -> None:
            for _ in range(n):
                out = predict(params, xj)
            out.block_until_ready()

        return forward

    opt = optax.adam(1e-3)
    state = {"params": params, "opt": opt.init(params)}

    def loss_fn(p: Any) -> jax.Array:
        pred = cast(jax.Array, net.apply({"params": p}, xj)).astype(jnp.float32)
        return jnp.mean((pred - yj) ** 2)

    # donating params and optimiser state lets XLA update them in place
    @jax.jit
    def train_step(params: Any, opt_state: Any) -> tuple[Any, Any, jax.Array]:
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    step = jax.jit(train_step, donate_argnums=(0, 1))

    @partial(jax.jit, donate_argnums=(0, 1))
    def steps(params: Any, opt_state: Any, n: jax.Array) -> tuple[Any, Any, jax.Array]:
        def body(_: jax.Array, carry: tuple) -> tuple:
            return train_step(*carry[:2])

        return jax.lax.fori_loop(0, n, body, (params, opt_state, jnp.zeros((), jnp.float32)))

    def run(n: int) -> None:
        if args.loop == "device":
            state["params"], state["opt"], loss = steps(state["params"], state["opt"], n)
        else:
            for _ in range(n):
                state["params"], state["opt"], loss = step(state["params"], state["opt"])
        loss.block_until_ready()

    return run


def torch_runner(args: argparse.Namespace, x: np.ndarray, y: np.ndarray) -> Callable[[int], None]:
    import torch

    torch.set_num_threads(usable_cpus())
    torch.manual_seed(0)
    rnn_cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[args.cell]
    rnn = rnn_cls(args.features, args.hidden, num_layers=args.layers, batch_first=True)
    head = torch.nn.Linear(args.hidden, args.horizon)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    if args.forward_only:
        rnn.eval()
        head.eval()

        def forward(n: int) -> None:
            with torch.inference_mode():
                for _ in range(n):
                    out, _ = rnn(xt)
                    head(out[:, -1])

        return forward

    params = [*rnn.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)

    def run(n: int) -> None:
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            out, _ = rnn(xt)
            loss = torch.nn.functional.mse_loss(head(out[:, -1]), yt)
            loss.backward()
            opt.step()

    return run


def time_rounds(
    runners: dict[str, Callable[[int], None]], steps: int, rounds: int, warmup: int
) -> dict[str, list[float]]:
    """Seconds per step for each runner, per round; runners alternate within every round."""
    for run in runners.values():
        run(warmup)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for r in range(rounds):
        order = list(runners) if r % 2 == 0 else list(runners)[::-1]
        for name in order:
            t0 = time.perf_counter()
            runners[name](steps)
            times[name].append((time.perf_counter() - t0) / steps)
    return times


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cell", choices=["lstm", "gru", "rnn"], default="lstm")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--window", type=int, default=168, help="time steps T")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--features", type=int, default=1)
    p.add_argument("--horizon", type=int, default=48, help="dense head outputs")
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--compare", choices=["none", "torch"], default="none")
    p.add_argument("--forward-only", action="store_true", help="time inference, no gradients")
    p.add_argument(
        "--impl",
        choices=["layer", "flax"],
        default="layer",
        help="layer: forecaster.recurrent; flax: nn.RNN over flax's cell, as reference",
    )
    p.add_argument("--unroll", type=int, default=None, help="default: the library's default")
    p.add_argument(
        "--loop",
        choices=["device", "python"],
        default="device",
        help="JAX training: steps looped on the device, as forecaster.train runs them, or one "
        "dispatch per step from Python",
    )
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--steps", type=int, default=None, help="steps per round (auto by default)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--warmup", type=int, default=3)
    args = p.parse_args(argv)
    if args.unroll is None:
        from forecaster.recurrent import default_unroll

        training = not args.forward_only
        args.unroll = default_unroll(args.window, training) if args.impl == "layer" else 1
    if args.steps is None:  # aim for roughly 0.3-1 s per round
        work = args.batch * args.window * args.hidden * (1 if args.forward_only else 3)
        args.steps = int(np.clip(2e8 / max(work, 1), 3, 200))
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    peak = sgemm_peak_gflops()
    x, y = make_data(args)
    runners = {"jax": jax_runner(args, x, y)}
    if args.compare == "torch":
        runners["torch"] = torch_runner(args, x, y)
    times = time_rounds(runners, args.steps, args.rounds, args.warmup)
    flops = model_flops(args)
    result: dict[str, Any] = {
        "benchmark": "forward_only" if args.forward_only else "train_step",
        **{k: v for k, v in vars(args).items() if k != "compare"},
        "compare": args.compare,
        "tcmalloc": tcmalloc_loaded(),
        "cpus": usable_cpus(),
        "jax_backend": __import__("jax").default_backend(),
        "machine": platform.processor() or platform.machine(),
        "loadavg_1min": os.getloadavg()[0],
        "sgemm_peak_gflops": round(peak, 1),
        "model_gflop_per_step": round(flops / 1e9, 4),
    }
    for name, ts in times.items():
        med = statistics.median(ts)
        result[f"{name}_ms_per_step"] = round(med * 1e3, 3)
        result[f"{name}_ms_rounds"] = [round(t * 1e3, 3) for t in ts]
        result[f"{name}_samples_per_s"] = round(args.batch / med, 1)
        result[f"{name}_gflops"] = round(flops / med / 1e9, 2)
        result[f"{name}_peak_fraction"] = round(flops / med / 1e9 / peak, 3)
    result["samples_per_s"] = result["jax_samples_per_s"]
    if "torch" in times:
        result["ratio_jax_over_torch"] = round(
            statistics.median(times["torch"]) / statistics.median(times["jax"]), 3
        )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
