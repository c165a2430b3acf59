"""Flicker of fast style transfer (or AdaIN: ``--adain-workdir``) on a real clip, before / after previous-frame blending (docs/video.md).

A slow pan across a built-in photo (``jaxgen.video.pan_clip``, x264 like any user clip, decoded back) is stylised
frame by frame by a trained fast_style network; the outputs are then blended (``jaxgen.style.temporal``) with
strengths ``--blends``, with and without the global motion compensation. For each strength: ``jaxgen.metrics.temporal_flicker`` (output change / input change),
the output's change after the pan's known shift (the warping error with exact flow; absolute, as the input's
is near 0), the fast_style task's own VGG16 content and style losses (per frame, mean; the quantities the network was trained
to lower, so blending that only blurs would raise them), the mean absolute difference to the unblended frames and
the relative sharpness (mean gradient magnitude vs unblended). Writes ``--out`` (JSON).

    PYTHONPATH=. python experiments/video_flicker.py --workdir workdirs/fs_flicker \\
        --out experiments/results/video_flicker_<date>.json   [--adain-workdir workdirs/adain_flicker]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import av
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import video
from jaxgen.data.samples import load_sample
from jaxgen.image import resize_to
from jaxgen.inference import make_apply
from jaxgen.metrics import frame_change, temporal_flicker
from jaxgen.models.adain_net import AdaINEncoder
from jaxgen.models.adain_ops import adain
from jaxgen.style.temporal import ALPHA, blend_frames
from jaxgen.tasks import get_task, restore_generator


def decoded(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(np.float32) / 255.0


def cpu_model() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return next((l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name")), platform.processor())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True, help="a fast_style training run (its VGG16 losses measure every method)")
    p.add_argument("--adain-workdir", help="an adain training run: measure AdaIN (style: the fast run's style image)")
    p.add_argument("--photo", default="chelsea")
    p.add_argument("--size", default="96,128", help="frame h,w")
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--speeds", default="1,4", help="pan speeds in pixels per frame")
    p.add_argument("--blends", default="0,0.3,0.5,0.7,0.8,0.9")
    p.add_argument("--motions", default="global,none", help="jaxgen.style.temporal motion models to compare")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    h, w = (int(v) for v in args.size.split(","))
    config, module, params, step = restore_generator(args.workdir)
    task = get_task("fast_style")(config)
    consts, sources = task.consts()
    apply = make_apply(module, "transformer_net")
    stylise = lambda x: np.asarray(apply(params, jnp.asarray(x)[None]))[0]
    method = "fast"
    if args.adain_workdir:  # the decoder of a trained adain run, jaxgen stylize --method adain's steps (alpha 1)
        a_config, _, dec_params, step = restore_generator(args.adain_workdir)
        a_task = get_task("adain")(a_config)
        decoder = a_task.decoder
        encoder = AdaINEncoder(taps=("relu4_1",), input_conv=a_task.input_conv)
        enc_params = a_task.consts()[0]["encoder"]
        encode = jax.jit(lambda x: encoder.apply({"params": enc_params}, x)["relu4_1"])
        decode = jax.jit(lambda t: decoder.apply({"params": dec_params}, t))
        style_feat = encode(jnp.asarray(task.style_image())[None])
        stylise = lambda x: resize_to(np.asarray(decode(adain(encode(jnp.asarray(x)[None]), style_feat)))[0], x.shape[:2])
        method = f"adain ({a_config.model.features} decoder features)"
    losses = jax.jit(lambda y, x: task.losses(y, x, consts))
    photo = load_sample(args.photo)
    result = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu_model(), "workdir": str(args.workdir), "step": step,
              "method": method,
              "fast_network": f"transformer_net channels {config.model.channels}, res blocks {config.model.num_res_blocks}",
              "adain_workdir": args.adain_workdir,
              "style": sources["style"], "vgg": sources["vgg"], "mask_alpha": ALPHA, "clips": []}
    for speed in (int(s) for s in args.speeds.split(",")):
        strip_w = w + speed * (args.frames - 1)
        top, left = (photo.shape[0] - h) // 2, max(0, (photo.shape[1] - strip_w) // 2)
        strip = photo[top : top + h, left : left + strip_w]
        with tempfile.TemporaryDirectory() as tmp:
            clip = video.pan_clip(Path(tmp) / "pan.mp4", strip, size=(h, w), frames=args.frames, fps=24, tone_hz=None)
            inp = decoded(clip)
        outs = np.stack([np.clip(stylise(x), 0, 1) for x in inp])
        grad = lambda y: float(np.mean(np.abs(np.diff(y, axis=1))) + np.mean(np.abs(np.diff(y, axis=2))))
        rows = []
        settings = [(0.0, "none")] + [(float(v), m) for m in args.motions.split(",")
                                      for v in args.blends.split(",") if float(v) > 0]
        for a, motion in settings:
            y = blend_frames(outs, inp, a, motion=motion)
            l = [losses(jnp.asarray(y[i : i + 8]), jnp.asarray(inp[i : i + 8])) for i in range(0, len(y), 8)]
            n = [len(y[i : i + 8]) for i in range(0, len(y), 8)]
            mean = lambda k: float(sum(float(d[k]) * m for d, m in zip(l, n)) / sum(n))
            rows.append({"blend": a, "motion": motion, "flicker": float(temporal_flicker(y, inp)),
                         "output_change_motion_compensated": float(frame_change(y, (0, -speed))), "output_change": float(frame_change(y)),
                         "content_loss": mean("content"), "style_loss": mean("style"),
                         "mean_abs_diff_to_unblended": float(np.mean(np.abs(y - outs))),
                         "sharpness_vs_unblended": grad(y) / grad(outs)})
            print(json.dumps({"speed": speed, **rows[-1]}))
        result["clips"].append({"photo": args.photo, "size": [h, w], "frames": args.frames, "pan_px_per_frame": speed,
                                "input_change": float(frame_change(inp)),
                                "input_change_motion_compensated": float(frame_change(inp, (0, -speed))), "rows": rows})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
