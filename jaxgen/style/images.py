"""Image helpers of the style code: reading as float RGB, resizing by the long side, picture grids."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from jaxgen import image

__all__ = ["as_float_rgb", "grid", "read_rgb", "resize_long_side", "resize_to"]


def as_float_rgb(img: np.ndarray, what: str = "image") -> np.ndarray:
    """uint8 or float ``[H,W,3]`` (gray ``[H,W]``/``[H,W,1]`` repeated; alpha dropped) -> float32 in ``[0,1]``."""
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{what}: expected an [H,W,3] RGB image; got shape {img.shape}")
    img = img[..., :3] if img.shape[-1] == 4 else np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img
    if img.dtype == np.uint8:
        return image.to_float(img)
    if not np.issubdtype(img.dtype, np.floating):
        raise ValueError(f"{what}: expected uint8 or float pixels; got {img.dtype}")
    return img.astype(np.float32)


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """An image file -> ``[H,W,3]`` float32 in ``[0,1]`` (``jaxgen.image.read_image``; a missing file is a
    ``ValueError`` naming it)."""
    if not os.path.isfile(path):
        raise ValueError(f"image file {path} not found")
    return as_float_rgb(image.read_image(path), str(path))


def resize_to(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Float ``[H,W,3]`` -> ``[h,w,3]`` float32 (MATLAB-exact antialiased bicubic, ``jaxgen.image.imresize``)."""
    img = as_float_rgb(img)
    if tuple(img.shape[:2]) == tuple(hw):
        return img
    return np.asarray(image.imresize(img.astype(np.float64), output_shape=(int(hw[0]), int(hw[1]))), np.float32)


def resize_long_side(img: np.ndarray, long_side: int) -> np.ndarray:
    """Resize so that the longer side is ``long_side`` pixels (aspect kept, each side at least 1); float32 [0,1]."""
    if not isinstance(long_side, (int, np.integer)) or long_side < 1:
        raise ValueError(f"size must be a positive number of pixels; got {long_side!r}")
    img = as_float_rgb(img)
    h, w = img.shape[:2]
    s = long_side / max(h, w)
    return resize_to(img, (max(1, round(h * s)), max(1, round(w * s))))


def grid(images: Sequence[np.ndarray], height: int = 0, gutter: int = 8) -> np.ndarray:
    """Side-by-side uint8 panel of float ``[H,W,3]`` images (each resized to ``height``, default the first's),
    separated by white gutters."""
    height = height or images[0].shape[0]
    panels = []
    for i, img in enumerate(images):
        img = as_float_rgb(img)
        h, w = img.shape[:2]
        img = resize_to(img, (height, max(1, round(w * height / h))))
        if i:
            panels.append(np.ones((height, gutter, 3), np.float32))
        panels.append(np.clip(img, 0, 1))
    return image.to_uint8(np.concatenate(panels, axis=1))
