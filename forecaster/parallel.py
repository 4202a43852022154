"""Data-parallel training across every JAX device: one Mesh with a single ``batch`` axis.

Each step's batch of windows is split along its batch axis over the devices while the train
state (parameters, optimizer state, step, key) is replicated on all of them. Nothing else
changes: ``train_step`` stays one jitted function, and XLA's sharding propagation turns the mean
over the batch into a per-device partial sum plus an all-reduce, so the gradients every device
applies are those of the whole batch. On one device none of this is used and training runs
exactly as before.

Multi-host: call :func:`initialize_distributed` (or ``jax.distributed.initialize``) in every
process before JAX touches a device; ``jax.devices()`` then lists the devices of all hosts and
the same mesh spans them. Every process must run the same program on the same data and seed:
the sampler draws the same global batch everywhere and each device computes only its shard.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import AbstractMesh, Mesh, NamedSharding, PartitionSpec

BATCH_AXIS = "batch"
# Environment read by initialize_distributed; JAX itself only reads the coordinator address.
COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"
NUM_PROCESSES_ENV = "JAX_NUM_PROCESSES"
PROCESS_ID_ENV = "JAX_PROCESS_ID"


def batch_mesh(devices: list[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh over ``devices`` (default: every device of every process), axis ``batch``."""
    return Mesh(np.asarray(devices if devices is not None else jax.devices()), (BATCH_AXIS,))


def default_mesh() -> Mesh | None:
    """The mesh training should use, or None on a single device (no sharding at all)."""
    return batch_mesh() if jax.device_count() > 1 else None


def batch_sharding(mesh: Mesh, batch_dim: int = 1) -> NamedSharding:
    """Split dimension ``batch_dim`` over the mesh; the others stay whole.

    The default suits training batches ``[ensemble, batch, length]``: every device holds all
    members' windows for its slice of the batch, so members never need to communicate.
    """
    return NamedSharding(mesh, PartitionSpec(*([None] * batch_dim), BATCH_AXIS))


def replicated(mesh: Mesh | AbstractMesh) -> NamedSharding:
    """A full copy on every device of ``mesh``."""
    return NamedSharding(mesh, PartitionSpec())


def replicate(tree: Any, mesh: Mesh | AbstractMesh) -> Any:
    # AbstractMesh: what a NamedSharding's ``.mesh`` is typed as; a sampler's mesh is concrete.
    """``tree``'s arrays copied onto every device of ``mesh`` (PRNG keys included)."""
    return jax.device_put(tree, replicated(mesh))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """Refuse a batch that does not split evenly, naming the sizes that would."""
    n = mesh.devices.size
    if batch_size % n:
        lower = batch_size - batch_size % n
        raise ValueError(
            f"batch_size {batch_size} does not split evenly over {n} devices; "
            f"use a multiple of {n} such as {lower or n} or {lower + n}"
        )


def initialize_distributed() -> bool:
    """Join a multi-host run when ``JAX_COORDINATOR_ADDRESS`` is set; return whether it did.

    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` give the process count and this process's
    rank. Without them JAX's cluster auto-detection (SLURM, Open MPI, Kubernetes, Cloud TPU)
    fills them in. Must run before anything else uses JAX.
    """
    address = os.environ.get(COORDINATOR_ENV)
    if not address:
        return False
    count, rank = os.environ.get(NUM_PROCESSES_ENV), os.environ.get(PROCESS_ID_ENV)
    jax.distributed.initialize(
        coordinator_address=address,
        num_processes=int(count) if count else None,
        process_id=int(rank) if rank else None,
    )
    return True


def is_primary() -> bool:
    """Whether this process writes results (process 0); every process computes."""
    return jax.process_index() == 0
