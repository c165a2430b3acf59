"""``jaxgen upscale`` with and without ``--conv-backend onednn`` (and ``--bf16``): whole-command CPU and wall
seconds, as a user runs it.

    .venv/bin/python benchmarks/onednn_ffi/upscale_time.py [--model realesrgan-x4plus] [--image IMG]
        [--rounds 2] [--variants xla,onednn,xla_bf16,onednn_bf16] [--out F.json]

Each round runs every variant once (the order rotates) as a fresh ``python -m jaxgen --no-compile-cache upscale``
process -- imports, the model's load, its compile and the upscale of one image all count, as for a user's first
call -- and records wall seconds and the child's user + system CPU seconds (on a shared machine the CPU seconds
are the steadier number), plus each output's largest difference from the ``xla`` output in 8-bit levels.
Default image: Set5 ``baby`` at x4 (``image_SRF_4/img_001_SRF_4_LR.png``, 128x128 -> 512x512). ``onednn``
needs ``pip install 'jaxgen[onednn]'`` and g++ (its first build is done before the timed rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from cpuinfo import cpu_info  # noqa: E402  (benchmarks/cpuinfo.py)
from jaxgen import image  # noqa: E402
from jaxgen.models import onednn_conv  # noqa: E402

SET5_BABY = ROOT.parent / "shared" / "data" / "sr-benchmarks" / "Set5" / "image_SRF_4" / "img_001_SRF_4_LR.png"
VARIANTS = {
    "xla": [],
    "onednn": ["--conv-backend", "onednn"],
    "xla_bf16": ["--bf16"],
    "onednn_bf16": ["--conv-backend", "onednn", "--bf16"],
}


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_once(args: argparse.Namespace, variant: str, out: Path) -> dict:
    cmd = [sys.executable, "-m", "jaxgen", "--no-compile-cache", "upscale", str(args.image), "-o", str(out),
           "--model", args.model, *VARIANTS[variant]]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    c0, t0 = _children_cpu(), time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT))
    wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    if r.returncode != 0:
        raise SystemExit(f"upscale_time: error: {variant} failed: {r.stderr.strip().splitlines()[-1:]}")
    return {"wall_s": wall, "cpu_s": cpu, "load1": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="realesrgan-x4plus")
    ap.add_argument("--image", type=Path, default=SET5_BABY)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out")
    args = ap.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    if any(v.startswith("onednn") for v in variants):
        onednn_conv.build()  # the one-time build is not part of the timed commands
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        outs = {v: Path(tmp) / f"{v}.png" for v in variants}
        for i in range(args.rounds):
            for v in variants[i % len(variants):] + variants[:i % len(variants)]:
                runs[v].append(run_once(args, v, outs[v]))
                print(f"round {i} {v:<12} {runs[v][-1]}", file=sys.stderr, flush=True)
        pixels = {v: image.read_image(outs[v]).astype(np.int64) for v in variants}
    report = {**cpu_info(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "model": args.model,
              "image": str(args.image), "rounds": args.rounds, "variants": {}}
    report.pop("cpu_flags", None)
    for v in variants:
        report["variants"][v] = {
            "flags": VARIANTS[v], "runs": runs[v],
            "wall_s_median": statistics.median(r["wall_s"] for r in runs[v]),
            "cpu_s_median": statistics.median(r["cpu_s"] for r in runs[v]),
            "max_abs_diff_vs_xla_levels": int(np.abs(pixels[v] - pixels["xla"]).max()) if "xla" in pixels else None,
        }
        r = report["variants"][v]
        print(f"{v:<12} wall {r['wall_s_median']:6.2f} s  cpu {r['cpu_s_median']:6.2f} s  "
              f"max diff vs xla {r['max_abs_diff_vs_xla_levels']}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
