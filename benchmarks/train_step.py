"""Time per train step and peak memory of the real update step (run by hand; results go in the README).

    .venv/bin/python benchmarks/train_step.py [--steps 10] [--warmup 2] [--only edsr] [--out results.json]

Cases (the issue's): EDSR-baseline x2, batch 16, 48x48 LR patches; RRDBNet x4 (23 blocks), batch 4, 32x32.
Reports the median wall time of ``--steps`` steps after ``--warmup`` (compile excluded), images/s, and the
peak memory: the device allocator's peak where the backend reports it (GPU/TPU), else the process's peak
resident set size (CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jaxgen import xla_setup

xla_setup.configure_process()  # as `jaxgen train` (JAXGEN_XLA_DEFAULTS=0: plain XLA); before JAX starts

import jax  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

from jaxgen.config import optim_config  # noqa: E402
from jaxgen.tasks import base_config
from jaxgen.tasks import get_task  # noqa: E402
from jaxgen.train import parallel  # noqa: E402

CASES = {
    "edsr_baseline_x2": dict(model=dict(name="edsr"), scale=2, batch=16, patch=48),
    "rrdbnet_x4": dict(model=dict(name="rrdbnet"), scale=4, batch=4, patch=32),
}


def bench(name: str, case: dict, steps: int, warmup: int, dtype: str) -> dict:
    c = base_config("sr")
    c.scale, c.batch_size, c.compute_dtype, c.data.patch_size = case["scale"], case["batch"], dtype, case["patch"]
    c.model = ml_collections.ConfigDict(case["model"])
    c.optim = optim_config(lr=1e-4)
    task = get_task("sr")(c)
    mesh = parallel.make_mesh()
    repl = parallel.replicated(mesh)
    p, s, b = case["patch"], case["scale"], case["batch"]
    state = jax.jit(task.init, out_shardings=repl)()
    options = xla_setup.prepare_training(b // mesh.devices.size, devices=mesh.devices.size)
    step = jax.jit(task.step, in_shardings=(repl, parallel.batch_sharding(mesh), repl), out_shardings=(repl, repl),
                   donate_argnums=(0,), compiler_options=options or None)
    rng = np.random.default_rng(0)
    batch = parallel.global_batch(
        {"lr": rng.random((b, p, p, 3), dtype=np.float32), "hr": rng.random((b, p * s, p * s, 3), dtype=np.float32)},
        mesh)
    t0 = time.perf_counter()
    state, m = step(state, batch, {})
    jax.block_until_ready((state, m))
    compile_s = time.perf_counter() - t0
    for _ in range(max(0, warmup - 1)):
        state, m = step(state, batch, {})
    jax.block_until_ready((state, m))
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        state, m = step(state, batch, {})
        jax.block_until_ready((state, m))
        times.append(time.perf_counter() - t0)
    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    median = statistics.median(times)
    params = state.players["generator"].params
    return {
        "case": name, "batch": b, "lr_patch": p, "scale": s, "compute_dtype": dtype, "devices": mesh.devices.size,
        "params": int(sum(np.prod(x.shape) for x in jax.tree.leaves(params))),
        "median_step_s": median, "images_per_s": b / median, "first_step_incl_compile_s": compile_s,
        "peak_memory_bytes": int(peak) if peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "peak_memory_kind": "device allocator peak" if peak else "process peak RSS",
        "load": os.getloadavg()[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--only", choices=sorted(CASES))
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--out", help="write the JSON here too")
    args = ap.parse_args()
    results = {
        "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind, "jax": jax.__version__, "machine": platform.machine(),
        "cases": [bench(n, c, args.steps, args.warmup, args.dtype) for n, c in CASES.items()
                  if not args.only or n == args.only],
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
