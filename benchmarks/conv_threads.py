"""How many cores XLA:CPU's convolutions keep busy on one device: YNNPACK (XLA's default) vs Eigen.

    .venv/bin/python benchmarks/conv_threads.py [--out F.json] [--steps 10]

One XLA device with every core in its thread pool (what jaxgen's inference commands use). For 3x3 stride-1
convolutions of equal work spread differently over batch and map size (1 x 256^2 px = 4 x 128^2 = 16 x 64^2),
and for an RRDBNet x4 (23 RRDBs, 64 features) forward of one 64 px tile and of two, the median wall seconds and
the cores used (process CPU seconds / wall seconds) with YNNPACK convolutions and with Eigen's
(``xla_setup.CPU_EIGEN_CONV_OPTIONS`` as a per-jit option). The machine (``lscpu`` model and flags) goes with the
numbers; they are in ``benchmarks/RESULTS.md``, the section "Cores per convolution".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from benchmarks.cpuinfo import cpu_info, write_record  # noqa: E402
from benchmarks.timing import timed  # noqa: E402
from jaxgen import models, xla_setup  # noqa: E402

LIBRARIES = {"ynnpack": None, "eigen": xla_setup.CPU_EIGEN_CONV_OPTIONS}
CONVS = ((1, 256, 64, 64), (4, 128, 64, 64), (16, 64, 64, 64), (1, 64, 64, 64), (2, 64, 64, 64), (1, 64, 64, 32),
         (1, 128, 64, 32))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="", help="write the JSON here too")
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    record = {"benchmark": "conv_threads", **cpu_info(), "devices": jax.device_count(), "convs": [],
              "rrdbnet_x4_64px": []}
    for b, hw, ci, co in CONVS:
        x, k = jnp.ones((b, hw, hw, ci)), jnp.full((3, 3, ci, co), 0.01)
        for lib, options in LIBRARIES.items():
            fn = jax.jit(lambda x, k: lax.conv_general_dilated(x, k, (1, 1), ((1, 1), (1, 1)),
                                                               dimension_numbers=("NHWC", "HWIO", "NHWC")),
                         compiler_options=options)
            wall, cores = timed(fn, x, k, steps=args.steps)
            record["convs"].append({"batch": b, "side": hw, "cin": ci, "cout": co, "library": lib, "wall_s": wall,
                                    "cores": cores})
            print(f"conv {b:2d} x {hw:3d}^2 px, {ci}->{co}, {lib:7s}: {wall * 1e3:7.2f} ms on {cores:.2f} cores",
                  flush=True)
    net = models.build("rrdbnet", scale=4, num_feat=64, num_blocks=23, num_grow_ch=32)
    params = jax.jit(net.init)(jax.random.key(0), jnp.ones((1, 64, 64, 3)))
    for lib, options in LIBRARIES.items():
        fn = jax.jit(lambda p, x: net.apply(p, x), compiler_options=options)
        for b in (1, 2):
            wall, cores = timed(fn, params, jnp.ones((b, 64, 64, 3)), steps=max(3, args.steps // 3))
            record["rrdbnet_x4_64px"].append({"batch": b, "library": lib, "wall_s": wall, "cores": cores})
            print(f"RRDBNet x4 forward, {b} x 64 px, {lib:7s}: {wall:.3f} s on {cores:.2f} cores "
                  f"({wall / b:.3f} s a tile)", flush=True)
    write_record(record, args.out)


if __name__ == "__main__":
    main()
