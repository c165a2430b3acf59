"""Every RealSR / waifu2x / Real-CUGAN zoo model (``jaxgen.zoo_sr_vulkan``) against the ncnn runtime on three photos
the tests do not use, picked without a human choice: of ``../shared/data/style/contents/*.jpg`` and
``../shared/data/sr-benchmarks/Set14/image_SRF_2/*_HR.png`` (minus ``tubingen``, the tests' photo), the three
files with the smallest sha256 of their bytes. Each photo's centre ``--crop`` x ``--crop`` pixels (RGB, [0,1]) go
through jaxgen (``zoo.load(name)``: the model with its own padding, float32) and through the ncnn program's
computation (the ``.param``/``.bin`` in ncnn's CPU runtime, fp32 storage and arithmetic, the input padded and the
output cropped as waifu2x-ncnn-vulkan / realcugan-ncnn-vulkan do: ``tests/test_zoo_sr_vulkan.ncnn_program``). Both
outputs are clamped to [0,1]; the table gives PSNR (dB) and max |diff|.

    PYTHONPATH=. python benchmarks/zoo_ncnn_parity.py [--crop 96] [--only realcugan]

Writes ``benchmarks/results/zoo_ncnn_parity_<date>.md`` (with the CPU model) and prints it.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jaxgen import models  # noqa: E402
from jaxgen.weights import zoo_sr_vulkan  # noqa: E402
from tests.test_zoo_sr_vulkan import ncnn_program  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
TEST_PHOTOS = {"tubingen.jpg"}


def pick_photos(n: int = 3) -> list[Path]:
    pool = sorted((SHARED / "style" / "contents").glob("*.jpg"))
    pool += sorted((SHARED / "sr-benchmarks" / "Set14" / "image_SRF_2").glob("*_HR.png"))
    pool = [p for p in pool if p.name not in TEST_PHOTOS]
    return sorted(pool, key=lambda p: hashlib.sha256(p.read_bytes()).hexdigest())[:n]


def centre_crop(path: Path, size: int) -> np.ndarray:
    rgb = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0
    h, w, _ = rgb.shape
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(rgb[top : top + size, left : left + size])


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return "unknown"
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "unknown")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crop", type=int, default=96)
    ap.add_argument("--only", default="", help="substring of the model names to run")
    args = ap.parse_args()
    photos = pick_photos()
    crops = [centre_crop(p, args.crop) for p in photos]
    compiled: dict = {}
    rows = []
    for name, entry in zoo_sr_vulkan.ENTRIES.items():
        if args.only not in name:
            continue
        conv = zoo_sr_vulkan.read(name)
        key = (conv.arch, tuple(sorted(conv.kwargs.items())))
        if key not in compiled:  # one compilation per architecture, shared by its weight variants
            module = models.build(conv.arch, **conv.kwargs)
            compiled[key] = jax.jit(lambda p, x, m=module: m.apply({"params": p}, x))
        params = jax.tree.map(jnp.asarray, conv.params)
        cells = []
        t0 = time.time()
        for x in crops:
            got = np.clip(np.asarray(compiled[key](params, jnp.asarray(x[None])))[0], 0, 1)
            ref = np.clip(ncnn_program(name, x), 0, 1)
            mse = float(np.mean((got.astype(np.float64) - ref) ** 2))
            cells.append((10 * np.log10(1.0 / mse) if mse > 0 else float("inf"), float(np.abs(got - ref).max())))
        rows.append((name, entry.scale, cells))
        print(f"{name}: " + ", ".join(f"{p:.1f} dB / {m:.1e}" for p, m in cells) + f" ({time.time() - t0:.0f}s)",
              flush=True)
    date = datetime.date.today().isoformat()
    head = [f"# ncnn parity of the zoo models ({date})", "",
            f"CPU: {cpu_model()}; jax {jax.__version__} ({jax.default_backend()}), float32; ncnn CPU, fp32.",
            f"Photos (centre {args.crop}x{args.crop} crops): " + ", ".join(p.relative_to(SHARED).as_posix()
                                                                          for p in photos), "",
            "| model | scale | " + " | ".join(f"{p.stem} PSNR dB / max abs" for p in photos) + " |",
            "|---|---|" + "---|" * len(photos)]
    body = [f"| {n} | {s} | " + " | ".join(f"{p:.1f} / {m:.1e}" for p, m in cells) + " |" for n, s, cells in rows]
    worst = min(p for _, _, cells in rows for p, _ in cells) if rows else float("nan")
    text = "\n".join(head + body + ["", f"Lowest PSNR: {worst:.1f} dB (bar: 45 dB)."]) + "\n"
    out = ROOT / "benchmarks" / "results" / f"zoo_ncnn_parity_{date}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    return 0 if worst >= 45 else 1


if __name__ == "__main__":
    sys.exit(main())
