"""Data parallelism: ``jax.jit`` over a 1-D device mesh with the batch sharded on axis ``data``.

The same code runs on 1 device, N local devices and several hosts (after ``jax.distributed.initialize``):
each process feeds its own slice of the global batch and :func:`global_batch` assembles the global array.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_mesh(devices: list[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh over all (global) devices with axis ``data`` (Auto axis type: GSPMD propagation)."""
    devices = jax.devices() if devices is None else devices
    return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(AxisType.Auto,), devices=devices)


def devices_for_batch(global_batch_size: int) -> list[jax.Device]:
    """All devices, or, in a single process whose device count does not divide the batch (e.g. jaxgen's
    default 2 CPU devices and an odd batch), the first ``gcd(batch, devices)`` of them."""
    devices = jax.devices()
    if jax.process_count() == 1 and global_batch_size > 0 and global_batch_size % len(devices):
        return devices[: math.gcd(global_batch_size, len(devices))]
    return devices


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over ``data``; the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def init_sharding(mesh: Mesh) -> jax.sharding.Sharding:
    """Where a fresh train state is computed: in a single process, the mesh's first device (then
    ``jax.device_put`` onto :func:`replicated`; the values are bitwise the same), else :func:`replicated`.

    A program with replicated outputs runs whole on every device: on jaxgen's CPU split (2 XLA devices sharing the
    cores) RRDBNet x4's init ran 0.275 s replicated, 0.145 s on one device + 0.05 s copying (benchmarks/RESULTS.md).
    Across processes every device must compute its own replica, so there it stays replicated."""
    if jax.process_count() == 1 and mesh.devices.size > 1:
        return jax.sharding.SingleDeviceSharding(mesh.devices.flat[0])
    return replicated(mesh)


def check_batch_size(global_batch_size: int, mesh: Mesh) -> None:
    devices, processes = mesh.devices.size, jax.process_count()
    if global_batch_size % devices or global_batch_size % processes:
        raise ValueError(
            f"config.batch_size={global_batch_size} must be divisible by the number of devices ({devices}) "
            f"and of processes ({processes})"
        )


def steps_batch_sharding(mesh: Mesh) -> NamedSharding:
    """Several steps' batches stacked ``[steps, B, ...]``: the batch dimension (the second) split over ``data``."""
    return NamedSharding(mesh, PartitionSpec(None, DATA_AXIS))


def global_batch(local_batch: dict[str, np.ndarray], mesh: Mesh, stacked: bool = False) -> dict[str, jax.Array]:
    """Process-local ``[B/P, ...]`` numpy arrays -> global ``[B, ...]`` arrays sharded on ``data``; ``stacked``:
    ``[steps, B/P, ...]`` -> ``[steps, B, ...]`` (:func:`steps_batch_sharding`)."""
    sharding = steps_batch_sharding(mesh) if stacked else batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local_batch.items()}


def to_host(tree: Any) -> Any:
    """Fetches a (replicated) pytree to host numpy arrays."""
    return jax.tree.map(lambda x: np.asarray(jax.device_get(x)), tree)
