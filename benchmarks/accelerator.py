"""Accelerator benchmark: bf16 vs f32 train-step time, images/s, model FLOP utilisation (MFU), allocator peak.

    python benchmarks/accelerator.py [--out acc.json] [--steps 20] [--cases rrdbnet,edsr] [--smoke]

For each case (RRDBNet x4 and EDSR-baseline x2, official patch sizes), each compute dtype (float32, bfloat16)
and each device set (1 device; all local devices when there are more), the SR task's real step
(``get_task('sr')(config).step``) is jitted as ``jaxgen/train/loop.py`` does (state replicated, batch sharded on
``data``, state donated, ``jaxgen.xla_setup.prepare_training`` compile options) and timed over ``--steps`` steps
after 2 warm-up steps (median and min).

FLOPs per image come from XLA's cost analysis of the compiled one-device step (forward + backward + Adam, as XLA
counts them: 2 per multiply-add) divided by the per-device batch. MFU = FLOPs/image x images/s / (peak x
devices), with the dense peak of the device kind (:data:`PEAK_FLOPS`): the bf16 peak for bfloat16 and, for
float32, the TF32 peak on GPUs (XLA's default precision runs f32 convolutions as TF32 on Ampere and later) or the
bf16 peak on TPUs (default precision: bf16 passes). Unknown device kinds report MFU as null.

``--smoke`` runs tiny networks for 3 steps on whatever backend there is (CPU included), to check the script.
Made to run unchanged in one short call on an H100/H200 (~5 minutes with both cases).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# device_kind substring -> (bf16 dense peak, f32 peak under default precision) FLOP/s per device.
PEAK_FLOPS: list[tuple[str, float, float]] = [
    ("H100 PCIe", 756e12, 378e12),
    ("H100", 989e12, 494e12),  # SXM / HBM3 (NVIDIA datasheet, dense)
    ("H200", 989e12, 494e12),
    ("H20", 148e12, 74e12),
    ("A100", 312e12, 156e12),
    ("L4", 121e12, 60e12),
    ("TPU v4", 275e12, 275e12),
    ("TPU v5 lite", 197e12, 197e12),
    ("TPU v5e", 197e12, 197e12),
    ("TPU v5p", 459e12, 459e12),
    ("TPU v5", 459e12, 459e12),
    ("TPU v6", 918e12, 918e12),
]

# name: (model name, scale, per-device batch, LR patch, extra model kwargs)
CASES = {
    "rrdbnet": ("rrdbnet", 4, 16, 32, {}),
    "edsr": ("edsr", 2, 16, 48, {}),
}
SMOKE = {
    "rrdbnet": ("rrdbnet", 4, 2, 8, {"num_blocks": 1, "num_feat": 16, "num_grow_ch": 8}),
    "edsr": ("edsr", 2, 2, 12, {"num_blocks": 1, "num_feat": 16}),
}


def peak_flops(device_kind: str, dtype: str) -> float | None:
    for key, bf16, f32 in PEAK_FLOPS:
        if key.lower() in device_kind.lower():
            return bf16 if dtype == "bfloat16" else f32
    return None


def _flops(compiled) -> float | None:
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    return float(cost["flops"]) if cost and "flops" in cost else None


def bench(name: str, spec: tuple, dtype: str, devices: list, steps: int) -> dict:
    import jax
    import numpy as np

    from jaxgen import xla_setup
    from jaxgen.tasks import base_config
    from jaxgen.tasks import get_task
    from jaxgen.train import parallel

    model, scale, per_dev, patch, kwargs = spec
    n = len(devices)
    c = base_config("sr")
    c.scale, c.batch_size, c.compute_dtype, c.data.patch_size = scale, per_dev * n, dtype, patch
    c.model.name = model
    for k, v in kwargs.items():
        c.model[k] = v
    task = get_task("sr")(c)
    mesh = parallel.make_mesh(devices)
    repl, bsh = parallel.replicated(mesh), parallel.batch_sharding(mesh)
    options = xla_setup.prepare_training(per_dev, devices[0].platform)
    rng = np.random.default_rng(0)
    host = {"lr": rng.random((c.batch_size, patch, patch, 3), dtype=np.float32),
            "hr": rng.random((c.batch_size, patch * scale, patch * scale, 3), dtype=np.float32)}
    batch = parallel.global_batch(host, mesh)
    t0 = time.perf_counter()
    state = jax.jit(task.init, out_shardings=repl)()
    step = jax.jit(task.step, in_shardings=(repl, bsh, repl), out_shardings=(repl, repl), donate_argnums=(0,),
                   compiler_options=options or None)
    compiled = step.lower(state, batch, {}).compile()
    compile_s = time.perf_counter() - t0
    flops = _flops(compiled)
    for _ in range(2):
        state, m = compiled(state, batch, {})
    jax.block_until_ready((state, m))
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        state, m = compiled(state, batch, {})
        jax.block_until_ready((state, m))
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    images_s = c.batch_size / med
    # SPMD: the compiled module is the per-device program, so its FLOPs are per device (per_dev images).
    flops_per_image = flops / per_dev if flops else None
    peak = peak_flops(devices[0].device_kind, dtype)
    mfu = flops_per_image * images_s / (peak * n) if flops_per_image and peak else None
    stats = devices[0].memory_stats() or {}
    return {
        "case": name, "model": model, "scale": scale, "dtype": dtype, "devices": n, "global_batch": c.batch_size,
        "lr_patch": patch, "median_step_s": med, "min_step_s": min(times), "images_per_s": images_s,
        "flops_per_image": flops_per_image, "peak_flops_per_device": peak, "mfu": mfu,
        "compile_s": compile_s, "allocator_peak_bytes": stats.get("peak_bytes_in_use"),
        "loss": float(m["loss"]), "compiler_options": options,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cases", default="rrdbnet,edsr")
    ap.add_argument("--dtypes", default="bfloat16,float32")
    ap.add_argument("--smoke", action="store_true", help="tiny networks, 3 steps (any backend)")
    ap.add_argument("--out", help="JSON results file (default: $OUT/accelerator.json when $OUT is set)")
    args = ap.parse_args()
    from jaxgen import xla_setup

    xla_setup.configure_process()
    import jax

    table = SMOKE if args.smoke else CASES
    steps = 3 if args.smoke else args.steps
    devices = jax.local_devices()
    device_sets = [devices[:1]] + ([devices] if len(devices) > 1 else [])
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "host": platform.node(), "backend": jax.default_backend(),
               "device_kind": devices[0].device_kind, "devices": len(devices), "jax": jax.__version__,
               "smoke": args.smoke, "load_at_start": os.getloadavg(), "runs": []}
    for name in [n for n in args.cases.split(",") if n]:
        for dtype in [d for d in args.dtypes.split(",") if d]:
            for devs in device_sets:
                try:
                    r = bench(name, table[name], dtype, devs, steps)
                except Exception as e:  # keep the other runs of a one-shot device call
                    r = {"case": name, "dtype": dtype, "devices": len(devs), "error": f"{type(e).__name__}: {e}"}
                results["runs"].append(r)
                print(json.dumps(r), flush=True)
                jax.clear_caches()
    out = args.out or (os.path.join(os.environ["OUT"], "accelerator.json") if os.environ.get("OUT") else None)
    if out:
        Path(out).write_text(json.dumps(results, indent=1) + "\n")
    print("| case | dtype | devices | step (s) | images/s | MFU |")
    print("|---|---|---|---|---|---|")
    for r in results["runs"]:
        if "error" in r:
            print(f"| {r['case']} | {r['dtype']} | {r['devices']} | error: {r['error']} | | |")
        else:
            mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
            print(f"| {r['case']} | {r['dtype']} | {r['devices']} | {r['median_step_s']:.4f} | "
                  f"{r['images_per_s']:.1f} | {mfu} |")


if __name__ == "__main__":
    main()
