"""The issue's video acceptance run: a ``--seconds`` long 854x480 clip (a slow pan over the built-in ``astronaut``
photo, resized, with a 440 Hz AAC tone) upscaled x2 by ``jaxgen upscale --model M in.mp4 -o out.mp4``; checks that
the frame count, frame rate and audio packets are unchanged and the size doubled, and reports frames/s.

    PYTHONPATH=. python benchmarks/video_upscale.py [--seconds 10] [--fps 30] [--model realesr-animevideov3-x2]
        [--tile 0] [--keep DIR]

Appends a line (date, ``lscpu`` CPU model, JAX backend, timings) to ``benchmarks/results/video_upscale.jsonl``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jaxgen import video  # noqa: E402
from jaxgen.commands import upscale as upscale_cmd  # noqa: E402
from jaxgen.data.samples import load_sample  # noqa: E402


def cpu_model() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "unknown")


def audio_packets(path: Path) -> list[bytes]:
    import av  # optional dependency (jaxgen[video])

    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--model", default="realesr-animevideov3-x2")
    ap.add_argument("--tile", type=int, default=0)
    ap.add_argument("--keep", default="", help="folder to keep the clips in (default: a temp dir)")
    args = ap.parse_args()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="jaxgen_video_"))
    folder.mkdir(parents=True, exist_ok=True)
    photo = np.asarray(Image.fromarray(load_sample("astronaut")).resize((1280, 720), Image.Resampling.BICUBIC))
    frames = int(round(args.seconds * args.fps))
    src = video.pan_clip(folder / "in_480p.mp4", photo, size=(480, 854), frames=frames, fps=args.fps)
    dst = folder / "out_x2.mp4"
    t0 = time.time()
    rc = upscale_cmd.run(["upscale", "--model", args.model, str(src), "-o", str(dst), "--tile", str(args.tile)])
    seconds = time.time() - t0
    a, b = video.probe(src), video.probe(dst)
    checks = {
        "frames_kept": a.frames == b.frames == frames,
        "rate_kept": a.rate == b.rate,
        "size_doubled": (b.width, b.height) == (2 * a.width, 2 * a.height),
        "audio_copied": audio_packets(src) == audio_packets(dst),
    }
    row = {"date": datetime.date.today().isoformat(), "cpu": cpu_model(), "backend": jax.default_backend(),
           "device": str(jax.devices()[0]), "model": args.model, "tile": args.tile, "frames": frames,
           "input": f"{a.width}x{a.height}@{a.rate}", "output": f"{b.width}x{b.height}@{b.rate}", "rc": rc,
           "seconds": round(seconds, 1), "frames_per_s": round(frames / seconds, 3), **checks}
    out = ROOT / "benchmarks" / "results" / "video_upscale.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))
    return 0 if rc == 0 and all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
