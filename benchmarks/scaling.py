"""How the real train step scales: time vs batch size and patch size, 1 vs all CPU threads, peak memory, compile.

    python benchmarks/scaling.py [--model edsr] [--batches 2,4,8,16] [--patches 24,48,96] [--threads 1,0]
                                 [--steps 3] [--out scaling.json]

Every point runs in a fresh process (so peak memory and compile time are its own): ``jaxgen.xla_setup``
configures the process as ``jaxgen train`` does, the SR task's step is jitted as the loop does, then timed
(median of ``--steps`` after one warm-up). ``--threads 1`` pins the process to one core (``sched_setaffinity``,
one XLA CPU device); ``0`` = all cores (jaxgen's default). Memory: the device allocator's peak on accelerators,
else the process's peak RSS. Batches not divisible by the device count run on one device.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one(model: str, scale: int, batch: int, patch: int, threads: int, steps: int) -> dict:
    if threads:
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:threads]))
    sys.path.insert(0, str(ROOT))
    from jaxgen import xla_setup

    xla_setup.configure_process()
    import jax
    import numpy as np

    from jaxgen.tasks import base_config
    from jaxgen.tasks import get_task
    from jaxgen.train import parallel

    c = base_config("sr")
    c.scale, c.batch_size, c.data.patch_size, c.model.name = scale, batch, patch, model
    task = get_task("sr")(c)
    devices = jax.devices() if batch % len(jax.devices()) == 0 else jax.devices()[:1]
    mesh = parallel.make_mesh(devices)
    repl, bsh = parallel.replicated(mesh), parallel.batch_sharding(mesh)
    rng = np.random.default_rng(0)
    host = {"lr": rng.random((batch, patch, patch, 3), dtype=np.float32),
            "hr": rng.random((batch, patch * scale, patch * scale, 3), dtype=np.float32)}
    t0 = time.perf_counter()
    options = xla_setup.prepare_training(batch // len(devices), devices=len(devices))
    state = jax.jit(task.init, out_shardings=repl)()
    step = jax.jit(task.step, in_shardings=(repl, bsh, repl), out_shardings=(repl, repl), donate_argnums=(0,),
                   compiler_options=options or None)
    data = parallel.global_batch(host, mesh)
    state, m = step(state, data, {})
    jax.block_until_ready((state, m))
    first = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(steps):
        t, c0 = time.perf_counter(), sum(os.times()[:2])
        state, m = step(state, data, {})
        jax.block_until_ready((state, m))
        times.append(time.perf_counter() - t)
        cpu.append((sum(os.times()[:2]) - c0) / times[-1])
    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return {"model": model, "batch": batch, "patch": patch, "threads": threads or len(os.sched_getaffinity(0)),
            "devices": len(devices), "median_step_s": statistics.median(times), "min_step_s": min(times),
            "ms_per_image": 1000 * statistics.median(times) / batch, "cpu_util": statistics.median(cpu),
            "first_step_incl_compile_s": first,
            "peak_memory_mb": (peak if peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20,
            "peak_memory_kind": "allocator peak" if peak else "peak RSS", "load": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="edsr", choices=["edsr", "rrdbnet"])
    ap.add_argument("--batches", default="2,4,8,16")
    ap.add_argument("--patches", default="24,48,96")
    ap.add_argument("--base-batch", type=int, default=4, help="batch of the patch sweep")
    ap.add_argument("--base-patch", type=int, default=48, help="patch of the batch sweep")
    ap.add_argument("--threads", default="1,0", help="0 = all cores (default)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--out")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    scale = 2 if args.model == "edsr" else 4
    if args.one:
        b, p, t = (int(v) for v in args.one.split(","))
        print(json.dumps(one(args.model, scale, b, p, t, args.steps)))
        return
    points = [(b, args.base_patch, 0) for b in map(int, args.batches.split(","))]
    points += [(args.base_batch, p, 0) for p in map(int, args.patches.split(",")) if p != args.base_patch]
    points += [(args.base_batch, args.base_patch, t) for t in map(int, args.threads.split(",")) if t]
    results = []
    for b, p, t in points:
        proc = subprocess.run([sys.executable, __file__, "--model", args.model, "--steps", str(args.steps),
                               "--one", f"{b},{p},{t}"], capture_output=True, text=True)
        if proc.returncode:
            r = {"batch": b, "patch": p, "threads": t, "error": proc.stderr.strip().splitlines()[-1:]}
        else:
            r = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(r)
        print(json.dumps(r), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
