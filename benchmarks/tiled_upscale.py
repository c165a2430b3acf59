"""Tiled vs untiled upscale of a 3840x2160 output: peak memory over the model's size, and time.

    python benchmarks/tiled_upscale.py [--model edsr] [--scale 2] [--tiles 0,256,128] [--overlap 16]
                                       [--lr-size 1080x1920] [--out tiled.json]

Each tile setting runs in a fresh process: the generator (random init: timing and memory do not depend on the
weights) is applied through ``jaxgen.inference.make_apply`` + ``make_sr_fn`` exactly as ``jaxgen upscale`` does
(``tile=0``: one call on the whole image). Reported: wall time of the second call (the first compiles), the
process's peak RSS minus its RSS before the first call (CPU) or the allocator peak (accelerators), both over the
parameter bytes, and the max abs difference to the untiled output (overlap below the receptive field shows as a
small difference at tile seams; see ``jaxgen.inference.tiling``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def one(model_name: str, scale: int, tile: int, overlap: int, h: int, w: int, save: str | None) -> dict:
    sys.path.insert(0, str(ROOT))
    from jaxgen import xla_setup

    xla_setup.configure_process()
    import jax
    import jax.numpy as jnp

    from jaxgen import inference, models

    model = models.build(model_name, scale=scale)
    params = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))["params"]
    param_mb = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(params)) / 2**20
    lr = (np.random.default_rng(0).random((h, w, 3)) * 255).astype(np.uint8)
    sr_fn = inference.make_sr_fn(inference.make_apply(model), params, scale, tile=tile, overlap=overlap)
    base = _rss_mb()
    t0 = time.perf_counter()
    sr_fn(lr)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = sr_fn(lr)
    second = time.perf_counter() - t0
    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    peak_mb = peak / 2**20 if peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
    if save:
        np.save(save, out)
    return {"model": model_name, "tile": tile, "overlap": overlap, "lr": [h, w], "sr": list(out.shape),
            "first_call_s": first, "time_s": second, "param_mb": param_mb, "peak_mb": peak_mb,
            "peak_over_params": peak_mb / param_mb, "memory_kind": "allocator peak" if peak else "peak RSS growth",
            "load": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="edsr")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--tiles", default="0,256,128", help="LR tile sides; 0 = untiled")
    ap.add_argument("--overlap", type=int, default=16)
    ap.add_argument("--lr-size", default="1080x1920", help="HxW of the LR input (3840x2160 output at x2)")
    ap.add_argument("--out")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--save", help=argparse.SUPPRESS)
    args = ap.parse_args()
    h, w = (int(v) for v in args.lr_size.split("x"))
    if args.one is not None:
        print(json.dumps(one(args.model, args.scale, int(args.one), args.overlap, h, w, args.save)))
        return
    tmp = Path(tempfile.mkdtemp(prefix="jaxgen_tiled_"))
    results, ref = [], None
    for tile in map(int, args.tiles.split(",")):
        save = tmp / f"sr_{tile}.npy"
        proc = subprocess.run([sys.executable, __file__, "--model", args.model, "--scale", str(args.scale),
                               "--overlap", str(args.overlap), "--lr-size", args.lr_size, "--one", str(tile),
                               "--save", str(save)], capture_output=True, text=True)
        if proc.returncode:
            r = {"tile": tile, "error": proc.stderr.strip().splitlines()[-1:]}
        else:
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            out = np.load(save)
            if tile == 0:
                ref = out
            elif ref is not None:
                r["max_abs_diff_vs_untiled"] = float(np.max(np.abs(out - ref)))
            save.unlink()
        results.append(r)
        print(json.dumps(r), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
