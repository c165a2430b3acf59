"""What a train step asks of the kernel: wall time, system time, minor page faults and peak RSS, step by step.

    .venv/bin/python benchmarks/step_memory.py [--steps 30] [--malloc system|keep|jemalloc] [--out F.json] [--smoke]
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 .venv/bin/python benchmarks/step_memory.py   # glibc's own knobs

The step is ``compile_time.py``'s: RRDBNet x4 (23 RRDBs, 64 features; ``sr`` task, batch 4 of 32x32 LR patches,
Adam) on jaxgen's CPU split, made as ``jaxgen.train.loop`` makes it (``--smoke``: 2 blocks, 16 features, 4 steps).
Each step is timed alone (``block_until_ready``) with ``getrusage`` around it.

Why: XLA:CPU allocates each execution's temporary buffer afresh (RRDBNet x4 at batch 2 a device: one 478 MB
``mmap`` a device a step, ``strace``), and glibc hands blocks that large back to the kernel when they are freed, so
every step faults its temporaries in again (~245k minor faults, 0.4-0.6 s of system time a step) -- and on a VM
that returns freed guest memory to its host, re-faulting it costs seconds (``compare_torch.py`` records ``sys_s``
and ``minor_faults`` for the same reason). ``--malloc keep`` calls glibc's ``mallopt`` before JAX loads
(``M_ARENA_MAX`` 1, ``M_MMAP_MAX`` 0, ``M_TRIM_THRESHOLD`` 2^31-1: one heap that is never given back) -- the
measured alternative, not what jaxgen does (benchmarks/RESULTS.md: faster steps, but the heap ratchets up by the
temporary's size every few dozen steps). ``--malloc jemalloc`` runs the script again under jemalloc
(``LD_PRELOAD`` of the system's ``libjemalloc``, ``MALLOC_CONF`` ``xla_setup.JEMALLOC_CONF`` unless set).

Writes one JSON object: ``steps`` (``[wall_s, sys_s, minor_faults, max_rss_mb]`` per step), ``median_s`` (steps 4
on), the settings, the machine (``lscpu`` model and flags).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cpuinfo import cpu_info, write_record  # noqa: E402
from jaxgen import xla_setup  # noqa: E402  (imports no JAX)

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8


def keep_heap() -> dict[str, int]:
    """glibc keeps what it frees: one arena, no mmapped blocks, no trimming (before any thread allocates)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    if not hasattr(libc, "mallopt"):
        raise SystemExit("jaxgen: error: --malloc keep needs glibc's mallopt; this C library has none")
    return {name: libc.mallopt(param, value) for name, param, value in
            (("M_ARENA_MAX", M_ARENA_MAX, 1), ("M_MMAP_MAX", M_MMAP_MAX, 0),
             ("M_TRIM_THRESHOLD", M_TRIM_THRESHOLD, 2**31 - 1))}


def with_jemalloc() -> None:
    """Runs this script again under jemalloc as ``jaxgen train`` runs (``xla_setup.jemalloc_preloaded``: the
    allocator must be there before the process starts), unless it already is -- whatever ``JAXGEN_MALLOC`` says:
    asked for here; ``jaxgen: error:`` when no libjemalloc is installed."""
    if "jemalloc" in os.environ.get("LD_PRELOAD", ""):
        return
    env = xla_setup.jemalloc_preloaded(os.environ)
    if env is None:
        raise SystemExit("jaxgen: error: --malloc jemalloc needs libjemalloc (apt-get install libjemalloc2)")
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--malloc", choices=["system", "keep", "jemalloc"], default="system")
    ap.add_argument("--smoke", action="store_true", help="a tiny RRDBNet, 4 steps (checks the script)")
    ap.add_argument("--out", help="write the JSON record here")
    args = ap.parse_args()
    if args.malloc == "jemalloc":
        with_jemalloc()
    mallopt = keep_heap() if args.malloc == "keep" else {}
    xla_setup.configure_process()

    import jax  # here, after configure_process and mallopt: JAX and its threads must start with them
    import ml_collections
    import numpy as np

    from jaxgen.config import optim_config
    from jaxgen.tasks import base_config, get_task
    from jaxgen.train import parallel

    feat, blocks, steps = (16, 2, 4) if args.smoke else (64, 23, args.steps)
    c = base_config("sr")
    c.scale, c.batch_size, c.data.patch_size = 4, 4, 32
    c.model = ml_collections.ConfigDict(dict(name="rrdbnet", num_feat=feat, num_blocks=blocks, num_grow_ch=32,
                                             scan_blocks=True))
    c.optim = optim_config(lr=1e-4)
    task = get_task("sr")(c)
    mesh = parallel.make_mesh(parallel.devices_for_batch(c.batch_size))
    repl = parallel.replicated(mesh)
    state = jax.device_put(jax.jit(task.init, out_shardings=parallel.init_sharding(mesh))(), repl)
    options = xla_setup.prepare_training(c.batch_size // mesh.devices.size, networks=["rrdbnet"],
                                         devices=mesh.devices.size)
    step = jax.jit(task.step, in_shardings=(repl, parallel.batch_sharding(mesh), repl), out_shardings=(repl, repl),
                   donate_argnums=(0,), compiler_options=options or None)
    rng = np.random.default_rng(0)
    batch = parallel.global_batch({"lr": rng.random((4, 32, 32, 3), dtype=np.float32),
                                   "hr": rng.random((4, 128, 128, 3), dtype=np.float32)}, mesh)
    rows = []
    for _ in range(steps):
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        state, metrics = jax.block_until_ready(step(state, batch, {}))
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        rows.append([round(time.perf_counter() - t0, 3), round(r1.ru_stime - r0.ru_stime, 3),
                     r1.ru_minflt - r0.ru_minflt, r1.ru_maxrss // 1024])
    record = {"benchmark": "step_memory", **cpu_info(), "jax": jax.__version__, "devices": mesh.devices.size,
              "model": {"name": "rrdbnet", "num_feat": feat, "num_blocks": blocks}, "malloc": args.malloc,
              "mallopt": mallopt, "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
              "ld_preload": os.environ.get("LD_PRELOAD", ""), "malloc_conf": os.environ.get("MALLOC_CONF", ""),
              "steps_columns": ["wall_s", "sys_s", "minor_faults", "max_rss_mb"], "steps": rows,
              "median_s": float(np.median([r[0] for r in rows[3:] or rows])), "loss": float(metrics["loss"])}
    print(json.dumps({k: record[k] for k in ("malloc", "glibc_tunables", "median_s")}
                     | {"faults_last": rows[-1][2], "max_rss_mb": rows[-1][3]}))
    if args.out:
        write_record(record, args.out)


if __name__ == "__main__":
    main()
