"""bf16 on AMX from JAX: a 3x3 convolution (NHWC, stride 1, SAME) through XLA:CPU in f32 and bf16 and through
oneDNN as an XLA FFI custom call (``jaxgen.models.onednn_conv``'s forward in bf16: f32 -> bf16 casts in XLA, f32
result), against PyTorch's oneDNN (f32, and bf16 under ``torch.autocast('cpu')``) on the same shape.
GFLOP/s = 2 N H W C O 9 / best of 7 timed calls. Needs ``pip install 'jaxgen[onednn]'`` and g++.

    .venv/bin/python benchmarks/onednn_ffi/probe.py [--shape 16,96,96,64,64]
        [--torch-python /work/torchvenv/bin/python] [--out F.json]

Errors are relative to XLA's f32 result at ``precision='highest'`` (max |diff| / max |ref|).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from benchmarks.cpuinfo import cpu_info  # noqa: E402
from jaxgen.models import onednn_conv  # noqa: E402

DN = ("NHWC", "HWIO", "NHWC")
TORCH = """
import sys, time, json, torch
n, h, w, c, o = map(int, sys.argv[1:6]); torch.set_num_threads(int(sys.argv[6]))
x = torch.randn(n, c, h, w).contiguous(memory_format=torch.channels_last)
conv = torch.nn.Conv2d(c, o, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
out = {}
for name, ctx in (("torch_f32", torch.no_grad), ("torch_bf16_autocast", None)):
    def run():
        with torch.no_grad():
            if ctx is None:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return conv(x)
            return conv(x)
    run(); ts = []
    for _ in range(7):
        t = time.perf_counter(); run(); ts.append(time.perf_counter() - t)
    out[name] = min(ts)
print(json.dumps(out))
"""


def best(fn, *args) -> float:
    jax.block_until_ready(fn(*args))
    ts = []
    for _ in range(7):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        ts.append(time.perf_counter() - t)
    return min(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="16,96,96,64,64", help="N,H,W,C,O")
    ap.add_argument("--torch-python", default="")
    ap.add_argument("--out")
    args = ap.parse_args()
    n, h, w, c, o = map(int, args.shape.split(","))
    flops = 2 * n * h * w * c * o * 9
    onednn_conv.load()
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((n, h, w, c), np.float32))
    k = jnp.asarray(rng.standard_normal((3, 3, c, o), np.float32) * 0.05)

    def xla(dtype):
        return jax.jit(lambda x, k: jax.lax.conv_general_dilated(
            x.astype(dtype), k.astype(dtype), (1, 1), "SAME", dimension_numbers=DN, preferred_element_type=jnp.float32))

    def onednn(x, k):
        return onednn_conv.conv2d_nhwc(x, k, ((1, 1), (1, 1)), jnp.bfloat16)

    ref = np.asarray(jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=DN, precision="highest"))
    report = {**cpu_info(), "shape_nhwc_o": [n, h, w, c, o], "gflop": flops / 1e9, "jax": jax.__version__, "cases": {}}
    for name, fn in (("xla_f32", xla(jnp.float32)), ("xla_bf16", xla(jnp.bfloat16)),
                     ("onednn_ffi_bf16", jax.jit(onednn))):
        err = float(np.abs(np.asarray(fn(x, k)) - ref).max() / np.abs(ref).max())
        s = best(fn, x, k)
        report["cases"][name] = {"best_s": s, "gflops": flops / s / 1e9, "max_rel_err": err}
    if args.torch_python:
        r = subprocess.run([args.torch_python, "-c", TORCH, *map(str, (n, h, w, c, o, report["cores"]))],
                           capture_output=True, text=True, check=True)
        for name, s in json.loads(r.stdout.strip().splitlines()[-1]).items():
            report["cases"][name] = {"best_s": s, "gflops": flops / s / 1e9}
    for name, r in report["cases"].items():
        print(f"{name:22s} {r['gflops']:7.1f} GFLOP/s  best {1e3 * r['best_s']:8.2f} ms  "
              f"err {r.get('max_rel_err', float('nan')):.1e}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
