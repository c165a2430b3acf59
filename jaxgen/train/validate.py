"""Validation on full benchmark images (Y-PSNR/SSIM, crop = scale) and LR | bicubic | SR | HR grids."""

from __future__ import annotations

from typing import Callable

import numpy as np

from jaxgen import evaluation, image


def validate(
    sr_fn: Callable[[np.ndarray], np.ndarray],
    val_sets: dict[str, list[evaluation.SRPair]],
    scale: int,
) -> dict[str, float]:
    """``{'<set>/psnr', '<set>/ssim', 'val_psnr'}``; ``val_psnr`` is the mean over sets (drives best-ckpt)."""
    out: dict[str, float] = {}
    for name, pairs in val_sets.items():
        result = evaluation.evaluate_pairs(sr_fn, pairs, scale)
        out[f"{name}/psnr"], out[f"{name}/ssim"] = float(result["psnr"]), float(result["ssim"])
    if val_sets:
        out["val_psnr"] = float(np.mean([out[f"{n}/psnr"] for n in val_sets]))
    return out


def comparison_grid(lr_u8: np.ndarray, sr: np.ndarray, hr_u8: np.ndarray, scale: int) -> np.ndarray:
    """``uint8 [H, 4W, C]``: LR (nearest-upsampled) | bicubic | SR | HR side by side."""
    near = np.repeat(np.repeat(lr_u8, scale, axis=0), scale, axis=1)
    bicubic = evaluation.bicubic_upscale(lr_u8, scale)
    sr_u8 = image.to_uint8(np.asarray(sr))
    h, w = hr_u8.shape[:2]
    return np.concatenate([near[:h, :w], bicubic[:h, :w], sr_u8[:h, :w], hr_u8], axis=1)
