"""Timing a JAX function in a benchmark script: the median wall time of its calls and the cores they kept busy."""

from __future__ import annotations

import os
import statistics
import time

import jax


def timed(fn, *args, steps: int) -> tuple[float, float]:
    """Median wall seconds of ``fn(*args)`` over ``steps`` calls after one warm-up call (each call waited for with
    ``jax.block_until_ready``), and the cores they kept busy (process CPU seconds / wall seconds over those calls)."""
    jax.block_until_ready(fn(*args))
    walls, cpus = [], []
    for _ in range(steps):
        t, c = time.perf_counter(), os.times()
        jax.block_until_ready(fn(*args))
        c2 = os.times()
        walls.append(time.perf_counter() - t)
        cpus.append(c2.user - c.user + c2.system - c.system)
    return statistics.median(walls), sum(cpus) / sum(walls)
