"""Flicker reduction for per-frame video stylisation (fast style, AdaIN): motion-compensated previous-frame blending.

Each output frame is pulled towards the previous (already blended) output where the *input* matches the previous
input after the camera's motion:

    s_t   = the global integer shift from in_{t-1} to in_t (phase correlation; 0 with motion='none')
    m_t   = exp(-ALPHA * ||in_t - W_s(in_{t-1})||^2)     per pixel, RGB in [0,1], squared L2 over the channels;
                                                         0 where the shifted frame has no pixels
    out_t <- out_t + a * m_t * (W_s(out_{t-1}) - out_t)   a = blend strength in [0,1); a = 0: unchanged

``W_s`` shifts a frame by ``s`` (scaled to the output's size). ``m_t`` is the visibility weight of the
short-term temporal loss of Lai et al. 2018, "Learning Blind Video Temporal Consistency" (ECCV, eq. 3,
``alpha = 50``), there with an optical-flow warp, here with one global translation (pans, handheld drift): pixels
whose input is the same after the shift (where a per-frame network's output jitters) are smoothed over time,
pixels that do not match (objects moving against the background, cuts) keep the fresh output, so they do not
ghost. Without the shift (``motion='none'``) every pixel of a pan counts as changed or, in flat textures, is
blended with an unshifted frame (a blur). The previous frame is the blended one, so matched areas follow an
exponential moving average with factor ``a`` (noise variance shrinks by ``(1 - a) / (1 + a)``).

:class:`TemporalBlend` wraps a frame function (``[H,W,3]`` in ``[0,1]`` -> ``[H',W',3]``) statefully; frames must
come in order (``jaxgen.video.transcode`` does). With ``H',W' != H,W`` the mask is resized to the output (nearest).
A resumed ``jaxgen stylize`` video run starts the blend afresh at the first frame it processes (the outputs of
the finished segments are not kept in memory), so that one frame is not blended. ``jaxgen stylize
--temporal-blend`` is off by default, by measurement (docs/video.md): a TransformerNet's stride-4 grid makes its
texture change, not just move, under a 1-pixel pan, so blending there averages textures (style loss up 45% at
a = 0.1); on motion the texture follows (4-pixel pans) a = 0.3 cut the true flicker by a quarter for +6%.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["ALPHA", "MOTIONS", "TemporalBlend", "blend_frames", "change_mask", "global_shift", "shift_frame"]

ALPHA = 50.0  # Lai et al. 2018, visibility mask exp(-alpha * ||I_t - warp(I_{t-1})||^2)
MOTIONS = ("global", "none")


def global_shift(frame: np.ndarray, previous: np.ndarray) -> tuple[int, int]:
    """``(dy, dx)`` such that ``frame[y, x] ~ previous[y - dy, x - dx]``: the peak of the phase correlation of the
    two grey frames (Hann-windowed; Kuglin & Hines 1975), wrapped to ``[-H/2, H/2) x [-W/2, W/2)``."""
    a, b = np.mean(frame, axis=-1), np.mean(previous, axis=-1)
    win = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    cross = np.fft.rfft2((a - a.mean()) * win) * np.conj(np.fft.rfft2((b - b.mean()) * win))
    r = np.fft.irfft2(cross / (np.abs(cross) + 1e-9), s=a.shape)
    dy, dx = np.unravel_index(int(np.argmax(r)), r.shape)
    h, w = a.shape
    return (int(dy) - h if dy >= h // 2 + h % 2 else int(dy)), (int(dx) - w if dx >= w // 2 + w % 2 else int(dx))


def shift_frame(x: np.ndarray, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """``(y, valid)``: ``y[i, j] = x[i - dy, j - dx]`` (0 outside ``x``) and ``valid`` ``[H,W,1]`` where it is inside."""
    h, w = x.shape[:2]
    y = np.zeros_like(x)
    valid = np.zeros((h, w, 1), x.dtype)
    ys, yd = slice(max(0, -dy), min(h, h - dy)), slice(max(0, dy), min(h, h + dy))
    xs, xd = slice(max(0, -dx), min(w, w - dx)), slice(max(0, dx), min(w, w + dx))
    y[yd, xd] = x[ys, xs]
    valid[yd, xd] = 1
    return y, valid


def change_mask(frame: np.ndarray, previous: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """``exp(-alpha * sum_c (frame - previous)^2)``: ``[H,W,1]``, 1 where the input did not change."""
    d = np.asarray(frame, np.float32) - np.asarray(previous, np.float32)
    return np.exp(-alpha * np.sum(d * d, axis=-1, keepdims=True))


def _fit(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if mask.shape[:2] == shape:
        return mask
    rows = (np.arange(shape[0]) * mask.shape[0] // shape[0]).clip(0, mask.shape[0] - 1)
    cols = (np.arange(shape[1]) * mask.shape[1] // shape[1]).clip(0, mask.shape[1] - 1)
    return mask[rows][:, cols]


class TemporalBlend:
    """``frame_fn`` with previous-frame blending of strength ``a`` (see the module docstring); call in order."""

    def __init__(self, frame_fn: Callable[[np.ndarray], np.ndarray], a: float, alpha: float = ALPHA,
                 motion: str = "global") -> None:
        if not 0.0 <= a < 1.0:
            raise ValueError(f"--temporal-blend {a}: expected a strength in [0, 1)")
        if motion not in MOTIONS:
            raise ValueError(f"motion {motion!r}: expected one of {MOTIONS}")
        self.frame_fn, self.a, self.alpha, self.motion = frame_fn, float(a), float(alpha), motion
        self.prev_in: np.ndarray | None = None
        self.prev_out: np.ndarray | None = None

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        out = np.asarray(self.frame_fn(frame), np.float32)
        if self.a > 0.0 and self.prev_out is not None and self.prev_out.shape == out.shape:
            dy, dx = global_shift(frame, self.prev_in) if self.motion == "global" else (0, 0)
            prev_in, valid = shift_frame(self.prev_in, dy, dx)
            m = _fit(change_mask(frame, prev_in, self.alpha) * valid, out.shape[:2])
            sy, sx = out.shape[0] / frame.shape[0], out.shape[1] / frame.shape[1]
            prev_out, _ = shift_frame(self.prev_out, round(dy * sy), round(dx * sx))
            out = out + self.a * m * (prev_out - out)
        self.prev_in, self.prev_out = np.asarray(frame, np.float32), out
        return out


def blend_frames(outputs: np.ndarray, inputs: np.ndarray, a: float, alpha: float = ALPHA,
                 motion: str = "global") -> np.ndarray:
    """The blend over whole clips: ``outputs`` ``[T,H',W',3]`` (the per-frame results of ``inputs`` ``[T,H,W,3]``)
    -> ``[T,H',W',3]``, the same as :class:`TemporalBlend` frame by frame."""
    outs = iter(np.asarray(outputs, np.float32))
    blend = TemporalBlend(lambda _: next(outs), a, alpha, motion)
    return np.stack([blend(x) for x in np.asarray(inputs, np.float32)])
