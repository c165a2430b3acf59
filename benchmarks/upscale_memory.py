"""Memory of ``jaxgen upscale`` on a large input, tiled vs untiled, plus the pre-pad border measurement.

    PYTHONPATH=. python benchmarks/upscale_memory.py [--size 1000x750] [--tile 200] [--model realesr-animevideov3]

Each configuration runs in a fresh subprocess (``--child``) so its peak RSS (``ru_maxrss``) is its own; device memory
is JAX's ``peak_bytes_in_use`` where the backend reports it (GPU/TPU; ``null`` on CPU, where device = host memory).
The input is the scikit-image ``astronaut`` photo resized (Pillow bicubic) to ``--size``. Results are appended to
``benchmarks/results_upscale_memory.json`` with the date and machine.

``--prepad`` instead measures how far the outermost 4 HR pixels of a 32x32 crop move from a larger-context run
(96x96 around it), with ``pre_pad`` 0 and 10, for three photos and the zoo models (mean |diff| in [0,1] units).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("results_upscale_memory.json")


def _input(size: tuple[int, int]):
    import numpy as np
    from PIL import Image

    from jaxgen.data.samples import load_sample

    w, h = size
    return np.asarray(Image.fromarray(load_sample("astronaut")).resize((w, h), Image.Resampling.BICUBIC)) / np.float32(
        255.0)


def child(args: argparse.Namespace) -> None:
    import jax
    import numpy as np

    from jaxgen import inference as upscaling
    from jaxgen.weights import zoo

    lr = _input(args.size).astype(np.float32)
    model = zoo.load(args.model)
    up = upscaling.Upscaler(model, tile=args.tile, tile_overlap=args.tile_overlap)
    start = time.perf_counter()
    out = up.upscale_rgb(lr)
    seconds = time.perf_counter() - start
    stats = jax.devices()[0].memory_stats() or {}
    print(json.dumps({
        "model": args.model,
        "input_hw": list(lr.shape[:2]),
        "output_hw": list(out.shape[:2]),
        "tile": args.tile,
        "tile_overlap": args.tile_overlap,
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "output_mb": round(out.nbytes / 2**20, 1),
        "device_peak_mb": round(stats["peak_bytes_in_use"] / 2**20, 1) if "peak_bytes_in_use" in stats else None,
    }))


def prepad(models: list[str]) -> list[dict]:
    import numpy as np

    from jaxgen import inference as upscaling
    from jaxgen.weights import zoo
    from jaxgen.data.samples import load_sample

    rows = []
    for name in models:
        model = zoo.load(name)
        s = model.scale
        for sample, y, x in (("chelsea", 100, 150), ("coffee", 150, 200), ("astronaut", 200, 200)):
            big = (load_sample(sample)[y : y + 96, x : x + 96] / 255.0).astype(np.float32)
            ref = upscaling.Upscaler(model).upscale_rgb(big)[32 * s : 64 * s, 32 * s : 64 * s]
            row = {"model": name, "photo": sample}
            for p in (0, 10):
                d = np.abs(upscaling.Upscaler(model, pre_pad=p).upscale_rgb(big[32:64, 32:64]) - ref)
                rim = np.concatenate([d[:4].ravel(), d[-4:].ravel(), d[:, :4].ravel(), d[:, -4:].ravel()])
                row[f"rim_mean_abs_prepad{p}"] = round(float(rim.mean()), 5)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def machine() -> dict:
    import jax

    dev = jax.devices()[0]
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "backend": jax.default_backend(),
            "device": getattr(dev, "device_kind", str(dev)), "python": platform.python_version(),
            "jax": jax.__version__}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", default="1000x750", help="input WxH")
    p.add_argument("--tile", type=int, default=200)
    p.add_argument("--tile-overlap", type=int, default=10)
    p.add_argument("--model", default="realesr-animevideov3")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--prepad", action="store_true", help="run the pre-pad border measurement instead")
    args = p.parse_args()
    args.size = tuple(int(v) for v in args.size.lower().split("x"))
    if args.child:
        return child(args)
    record = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine()}
    if args.prepad:
        record["prepad_rim"] = prepad(["realesr-animevideov3", "realesrgan-x4plus"])
    else:
        runs = []
        for tile in (0, args.tile):
            cmd = [sys.executable, __file__, "--child", "--size", "x".join(map(str, args.size)), "--tile", str(tile),
                   "--tile-overlap", str(args.tile_overlap), "--model", args.model]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            runs.append(json.loads(out))
            print(out, flush=True)
        record["upscale_memory"] = runs
    history = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    history.append(record)
    RESULTS.write_text(json.dumps(history, indent=1) + "\n")


if __name__ == "__main__":
    main()
