"""Colour handling of style transfer: luminance-only transfer (Gatys et al. 2016, "Preserving colour in neural
artistic style transfer"; jcjohnson/neural-style ``-original_colors 1``) and CORAL colour matching (naoto0804/
pytorch-AdaIN ``--preserve_color``).

Images are ``[..., H, W, 3]`` float RGB in ``[0,1]`` (numpy or JAX; JAX in -> JAX out).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

__all__ = ["RGB_TO_YUV", "YUV_TO_RGB", "coral", "original_colors", "rgb_to_yuv", "yuv_to_rgb"]

# Torch7 ``image.rgb2yuv`` / ``image.yuv2rgb`` (the ones jcjohnson/neural-style calls), row = output channel.
RGB_TO_YUV = np.array([[0.299, 0.587, 0.114],
                       [-0.14713, -0.28886, 0.436],
                       [0.615, -0.51499, -0.10001]], np.float64)
YUV_TO_RGB = np.array([[1.0, 0.0, 1.13983],
                       [1.0, -0.39465, -0.58060],
                       [1.0, 2.03211, 0.0]], np.float64)


def _xp(x: Any) -> Any:
    return np if isinstance(x, np.ndarray) else jnp


def rgb_to_yuv(x: Any) -> Any:
    """RGB ``[...,3]`` -> YUV ``[...,3]`` (Torch7 ``image.rgb2yuv`` coefficients)."""
    xp = _xp(x)
    return xp.einsum("...c,dc->...d", x, xp.asarray(RGB_TO_YUV, x.dtype))


def yuv_to_rgb(x: Any) -> Any:
    """YUV ``[...,3]`` -> RGB ``[...,3]`` (Torch7 ``image.yuv2rgb``; the inverse of :func:`rgb_to_yuv` to ~1e-5)."""
    xp = _xp(x)
    return xp.einsum("...c,dc->...d", x, xp.asarray(YUV_TO_RGB, x.dtype))


def original_colors(stylized: Any, content: Any) -> Any:
    """Luminance-only transfer: the stylised image's Y with the content's U, V (jcjohnson ``original_colors``).

    ``stylized``, ``content``: same shape ``[...,H,W,3]`` float RGB in ``[0,1]``. Not clipped (callers clip when
    writing); jcjohnson applies it to the de-processed image before saving, as here.
    """
    if stylized.shape != content.shape:
        raise ValueError(f"original_colors: stylized {tuple(stylized.shape)} and content {tuple(content.shape)} differ")
    xp = _xp(stylized)
    y = rgb_to_yuv(stylized)[..., :1]
    uv = rgb_to_yuv(content)[..., 1:]
    return yuv_to_rgb(xp.concatenate([y, uv], axis=-1))


def coral(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """naoto0804/pytorch-AdaIN ``coral(source, target)``: recolour ``source`` so its RGB mean and (normalised)
    covariance match ``target``'s. Used with ``source`` = the style image, ``target`` = the content image
    (``--preserve_color``), before the style's features are taken.

    Exactly the official steps: per channel mean and *unbiased* std over the pixels; ``f_norm = (f - mean) / std``;
    ``C = f_norm f_norm^T + I`` (a sum over pixels, not a mean: the official quirk, kept); ``out =
    sqrt(C_t) sqrt(C_s)^-1 f_norm_s * std_t + mean_t`` with matrix square roots from the SVD. The output's
    channel means equal the target's exactly and its channel correlations the target's (up to the ``+ I``); because the
covariances are sums, its stds are the target's times ``sqrt((N_t - 1) / (N_s - 1))`` for images of ``N_t`` and
``N_s`` pixels (as the official code). ``[H,W,3]`` float in ``[0,1]`` -> ``[H,W,3]`` float32 (not clipped).
    """
    src, tgt = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if src.ndim != 3 or src.shape[-1] != 3 or tgt.ndim != 3 or tgt.shape[-1] != 3:
        raise ValueError(f"coral expects two [H,W,3] images; got {src.shape} and {tgt.shape}")

    def stats(img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = img.reshape(-1, 3).T  # [3, N]
        mean, std = f.mean(axis=1, keepdims=True), f.std(axis=1, ddof=1, keepdims=True)
        return f, mean, std

    def mat_sqrt(m: np.ndarray) -> np.ndarray:
        u, d, vt = np.linalg.svd(m)
        return u @ np.diag(np.sqrt(d)) @ vt

    fs, ms, ss = stats(src)
    ft, mt, st = stats(tgt)
    ns, nt = (fs - ms) / ss, (ft - mt) / st
    cov_s, cov_t = ns @ ns.T + np.eye(3), nt @ nt.T + np.eye(3)
    transfer = mat_sqrt(cov_t) @ np.linalg.inv(mat_sqrt(cov_s)) @ ns
    out = transfer * st + mt
    return out.T.reshape(src.shape).astype(np.float32)
