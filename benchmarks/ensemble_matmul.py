"""The ensemble's recurrent matmul two ways: vmapped (one batched dot) against one wider
block-diagonal matmul, and one member alone.

    python -m benchmarks.ensemble_matmul [--rounds 3]

What it measures, how, and what it found: ``docs/results/core-speed.md``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import jax
import jax.numpy as jnp

from benchmarks.train_profile import timed

MEMBERS, BATCH, HIDDEN = 5, 256, 128


def micros(fn: Callable[..., jax.Array], *args: jax.Array) -> float:
    """Microseconds per call of ``fn(*args)``, compiled and warm (200 calls)."""
    return timed(lambda: fn(*args), 200) * 1e3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    kh, kw = jax.random.split(jax.random.PRNGKey(0))
    h = jax.random.normal(kh, (MEMBERS, BATCH, HIDDEN))  # [members, batch, hidden]
    w = jax.random.normal(kw, (MEMBERS, HIDDEN, 4 * HIDDEN))  # [members, hidden, 4 hidden]
    side_by_side = jnp.transpose(h, (1, 0, 2)).reshape(BATCH, MEMBERS * HIDDEN)
    block = jax.scipy.linalg.block_diag(*w)  # [members hidden, members 4 hidden]
    matmul = jax.jit(jnp.matmul)
    flops = 2 * MEMBERS * BATCH * HIDDEN * 4 * HIDDEN
    for _ in range(args.rounds):
        vmapped = micros(jax.jit(jax.vmap(jnp.matmul)), h, w)
        wide = micros(matmul, side_by_side, block)
        one = micros(matmul, h[0], w[0])
        line = {
            "benchmark": "ensemble_matmul",
            "vmapped_us": round(vmapped),
            "block_diagonal_us": round(wide),
            "one_member_us": round(one),
            "vmapped_gflops": round(flops / vmapped / 1e3, 1),
            "block_diagonal_gflops": round(flops / wide / 1e3, 1),
            "devices": [str(d) for d in jax.devices()],
        }
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
