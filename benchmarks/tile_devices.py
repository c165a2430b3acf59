"""A tiled upscale on one XLA CPU device vs the host split into two, one window per device.

    .venv/bin/python benchmarks/tile_devices.py [--tiles 64,128] [--steps 3] [--conv-backends xla] [--out F.json]

What ``jaxgen upscale --tile N`` runs (``jaxgen.inference.Upscaler``, tile overlap 10) for realesrgan-x4plus's
network (RRDBNet x4, 23 RRDBs, 64 features, random weights: the time does not depend on them), on an image of
2 x 2 windows, in a fresh process per device count (``JAX_NUM_CPU_DEVICES`` = 1: every window on one device, as
before 2026-12-07; = 2: the windows in pairs, one per device, as ``xla_setup.splits_host`` now sets up for
``upscale --tile``). Reported per tile size and device count: the median wall seconds of the whole upscale over
``--steps`` runs after one warm-up (the compile), seconds a window, and the cores kept busy (process CPU seconds /
wall seconds). ``--conv-backends xla,onednn`` repeats it with ``--conv-backend onednn``'s convolutions
(``OMP_NUM_THREADS`` = cores / devices, as ``xla_setup.configure_process`` sets it). The machine (``lscpu`` model
and flags) goes with the numbers; ``benchmarks/RESULTS.md``, section "Tiled upscale: windows per device".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cpuinfo import cpu_info, write_record  # noqa: E402
from jaxgen import xla_setup  # noqa: E402  (imports no JAX)

OVERLAP = 10

CHILD = r"""
import json, sys
import jax, jax.numpy as jnp, numpy as np
from benchmarks.timing import timed
from jaxgen import inference, models
from jaxgen.models import onednn_conv
tile, steps, overlap, backend = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
onednn_conv.configure(backend)
net = models.build("rrdbnet", scale=4, num_feat=64, num_blocks=23, num_grow_ch=32)
params = jax.jit(net.init)(jax.random.key(0), jnp.ones((1, 16, 16, 3)))["params"]
up = inference.Upscaler(inference.model_from_module(net, params, 4), tile=tile, tile_overlap=overlap)
side = 2 * tile - 2 * overlap  # 2 x 2 windows
image = np.random.default_rng(0).random((side, side, 3), dtype=np.float32)
wall, cores = timed(up.upscale_rgb, image, steps=steps)
print(json.dumps({"tile": tile, "devices": len(up.devices), "conv_backend": backend, "windows": 4, "wall_s": round(wall, 3),
                  "s_per_window": round(wall / 4, 3), "cores": round(cores, 2)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", default="64,128", help="LR tile sides, comma-separated")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--conv-backends", default="xla", help="comma-separated: xla, onednn")
    ap.add_argument("--out", default="", help="write the JSON here too")
    args = ap.parse_args()
    record = {"benchmark": "tile_devices", **cpu_info(), "overlap": OVERLAP, "runs": []}
    for tile in (int(t) for t in args.tiles.split(",")):
        for backend in args.conv_backends.split(","):
            for devices in (1, 2):
                env = dict(os.environ, JAX_NUM_CPU_DEVICES=str(devices), JAX_PLATFORMS="cpu",
                           PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
                if backend == "onednn":
                    env.setdefault("OMP_NUM_THREADS", str(xla_setup.omp_threads(devices)))
                argv = [sys.executable, "-c", CHILD, str(tile), str(args.steps), str(OVERLAP), backend]
                out = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=ROOT)
                if out.returncode:
                    raise SystemExit(f"child failed (tile {tile}, {backend}, {devices} devices):\n{out.stderr[-3000:]}")
                run = json.loads(out.stdout.strip().splitlines()[-1])
                record["runs"].append(run)
                print(f"tile {tile:4d}, {backend:6s}, {devices} device(s): {run['wall_s']:.3f} s for 4 windows, "
                      f"{run['s_per_window']:.3f} s a window on {run['cores']:.2f} cores", flush=True)
    write_record(record, args.out)


if __name__ == "__main__":
    main()
