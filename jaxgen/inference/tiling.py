"""Tiled super-resolution of arbitrarily large images with a fixed-size SR function.

The image is cut into windows of ``tile x tile`` LR pixels that overlap their neighbours; of each
window's SR output only the part whose LR pixels have at least ``overlap`` pixels of context inside the
window is kept (or touches the image border, where the untiled model sees the same border). The kept
parts partition the output, so when ``overlap`` is at least the model's receptive-field radius (in LR
pixels) the result equals the untiled one up to float rounding; with less, seams show. Windows never
extend past the image: the last row/column of windows is shifted inward, so every window has the same
shape ``(min(tile, H), min(tile, W))`` and a jitted SR function compiles once. With ``batch`` > 1 the windows go
to the SR function ``batch`` at a time (the last group filled up with copies of its last window, so the shape
stays fixed): :class:`jaxgen.inference.Upscaler` gives each device of a host split into several one window.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["tile_windows", "upscale_tiled"]

SRFn = Callable[[np.ndarray], np.ndarray]


def tile_windows(size: int, tile: int, overlap: int) -> list[tuple[int, int, int]]:
    """1-D plan ``[(window_start, keep_start, keep_end)]`` for a side of ``size`` LR pixels.

    Windows are ``min(tile, size)`` long and lie inside ``[0, size)``; the ``[keep_start, keep_end)``
    ranges partition ``[0, size)``, and each has ``overlap`` pixels of context inside its window on both
    sides, except at the image border. Needs ``0 <= overlap`` and ``2 * overlap < tile``.
    """
    if size <= tile:
        return [(0, 0, size)]
    plan, done, start = [], 0, 0
    while done < size:
        start = min(start, size - tile)
        keep_end = size if start + tile == size else start + tile - overlap
        plan.append((start, done, keep_end))
        done = keep_end
        start = done - overlap
    return plan


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int; got {value!r}")
    return int(value)


def upscale_tiled(sr_fn: SRFn, lr: np.ndarray, scale: int, *, tile: int | None, overlap: int,
                  fixed_shape: bool = False, batch: int = 1) -> np.ndarray:
    """Super-resolves ``lr`` ``[H,W,C]`` (float) with ``sr_fn`` tile by tile -> float32 ``[H*scale, W*scale, C']``.

    ``sr_fn``: ``[B,h,w,C]`` float32 -> ``[B,h*scale,w*scale,C']`` (numpy or JAX array), ``B`` = ``batch`` when
    tiled, 1 for the whole image. ``tile``: window
    side in LR pixels, context included; ``None`` or ``<= 0`` runs ``sr_fn`` once on the whole image.
    ``overlap``: LR pixels of context on each side of the kept part; needs ``0 <= overlap < tile / 2``
    (each window keeps at least ``tile - 2 * overlap`` pixels a side). Sides shorter than ``tile`` are
    not split (no padding), so an image smaller than a tile is one call on the whole image.
    ``fixed_shape``: every call gets a ``[batch, tile, tile, C]`` stack of windows -- a side shorter than ``tile`` is
    reflect-padded at its bottom/right end (as Real-ESRGAN's ``pre_pad``/``mod_pad``) and the result cropped --
    so one compiled ``sr_fn`` serves images of every size (``jaxgen upscale --tile``). Pixels within the
    network's receptive field of such a padded end then differ slightly from the unpadded run.
    ``batch``: windows per ``sr_fn`` call; a last group with fewer windows is filled up with copies of its last
    window (their outputs are dropped), so every call has the same shape. Each window's output is the network's
    on that window alone, whatever the batch (a per-sample network: no batch statistics).
    """
    lr = np.asarray(lr)
    if lr.ndim != 3:
        raise ValueError(f"lr must be an [H,W,C] image; got shape {lr.shape}")
    if not np.issubdtype(lr.dtype, np.floating):
        raise ValueError(f"lr must be a float image (e.g. float32 in [0, 1]); got dtype {lr.dtype}")
    scale = _check_int("scale", scale)
    if scale < 1:
        raise ValueError(f"scale must be >= 1; got {scale}")
    batch = _check_int("batch", batch)
    if batch < 1:
        raise ValueError(f"batch must be >= 1; got {batch}")
    lr = lr.astype(np.float32, copy=False)
    h, w, _ = lr.shape

    def run(windows: list[np.ndarray]) -> np.ndarray:
        stack = np.ascontiguousarray(np.stack(windows))
        out = np.asarray(sr_fn(stack))
        expected = (len(windows), stack.shape[1] * scale, stack.shape[2] * scale)
        if out.ndim != 4 or out.shape[:3] != expected:
            raise ValueError(
                f"sr_fn returned shape {out.shape} for input {stack.shape}; expected {expected} + (C,) "
                f"at scale {scale}"
            )
        return out

    if tile is None or _check_int("tile", tile) <= 0:
        return run([lr])[0].astype(np.float32, copy=False)
    tile = int(tile)
    overlap = _check_int("overlap", overlap)
    if overlap < 0 or 2 * overlap >= tile:
        raise ValueError(f"need 0 <= overlap < tile / 2; got tile={tile}, overlap={overlap}")

    if fixed_shape and (h < tile or w < tile):
        ph, pw = max(0, tile - h), max(0, tile - w)
        padded = np.pad(lr, ((0, ph), (0, pw), (0, 0)), mode="reflect" if min(h, w) > 1 else "edge")
        out = upscale_tiled(sr_fn, padded, scale, tile=tile, overlap=overlap, batch=batch)
        return out[: h * scale, : w * scale]
    th, tw = min(tile, h), min(tile, w)
    plan = [(y, x) for y in tile_windows(h, tile, overlap) for x in tile_windows(w, tile, overlap)]
    result: np.ndarray | None = None
    s = scale
    for first in range(0, len(plan), batch):
        group = plan[first : first + batch]
        windows = [lr[y0 : y0 + th, x0 : x0 + tw] for (y0, _, _), (x0, _, _) in group]
        outs = run(windows + windows[-1:] * (batch - len(windows)))
        if result is None:
            result = np.empty((h * s, w * s, outs.shape[-1]), np.float32)
        for ((y0, ky0, ky1), (x0, kx0, kx1)), out in zip(group, outs):
            keep = out[(ky0 - y0) * s : (ky1 - y0) * s, (kx0 - x0) * s : (kx1 - x0) * s]
            result[ky0 * s : ky1 * s, kx0 * s : kx1 * s] = keep
    assert result is not None
    return result
