"""Flicker reduction for per-frame video stylisation (fast style, AdaIN): previous-frame blending, no optical flow.

Each output frame is pulled towards the previous (already blended) output where the *input* did not change:

    m_t   = exp(-ALPHA * ||in_t - in_{t-1}||^2)          per pixel, RGB in [0,1], squared L2 over the channels
    out_t <- out_t + a * m_t * (out_{t-1} - out_t)        a = blend strength in [0,1); a = 0: unchanged

``m_t`` is the visibility weight of the short-term temporal loss of Lai et al. 2018, "Learning Blind Video
Temporal Consistency" (ECCV, eq. 3, ``alpha = 50``), applied here to the un-warped previous frame instead of a
flow-warped one: pixels whose input stayed the same (static or flat areas, where a per-frame network's output
jitters) are smoothed over time, pixels that moved (edges in motion, cuts) keep the fresh output, so moving
content does not ghost. Because the previous frame is the blended one, static areas follow an exponential
moving average with factor ``a`` (noise variance shrinks by ``(1 - a) / (1 + a)``).

:class:`TemporalBlend` wraps a frame function (``[H,W,3]`` in ``[0,1]`` -> ``[H',W',3]``) statefully; frames must
come in order (``jaxgen.video.transcode`` does). With ``H',W' != H,W`` the mask is resized to the output (nearest).
A resumed ``jaxgen stylize`` video run starts the blend afresh at the first frame it processes (the outputs of
the finished segments are not kept in memory), so that one frame is not blended. The default strength of
``jaxgen stylize --temporal-blend`` was chosen by measurement (docs/video.md).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["ALPHA", "TemporalBlend", "blend_frames", "change_mask"]

ALPHA = 50.0  # Lai et al. 2018, visibility mask exp(-alpha * ||I_t - warp(I_{t-1})||^2)


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

    def __init__(self, frame_fn: Callable[[np.ndarray], np.ndarray], a: float, alpha: float = ALPHA) -> None:
        if not 0.0 <= a < 1.0:
            raise ValueError(f"--temporal-blend {a}: expected a strength in [0, 1)")
        self.frame_fn, self.a, self.alpha = frame_fn, float(a), float(alpha)
        self.prev_in: np.ndarray | None = None
        self.prev_out: np.ndarray | None = None

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        out = np.asarray(self.frame_fn(frame), np.float32)
        if self.a > 0.0 and self.prev_out is not None and self.prev_out.shape == out.shape:
            m = _fit(change_mask(frame, self.prev_in, self.alpha), out.shape[:2])
            out = out + self.a * m * (self.prev_out - out)
        self.prev_in, self.prev_out = np.asarray(frame, np.float32), out
        return out


def blend_frames(outputs: np.ndarray, inputs: np.ndarray, a: float, alpha: float = ALPHA) -> np.ndarray:
    """The blend over whole clips: ``outputs`` ``[T,H',W',3]`` (the per-frame results of ``inputs`` ``[T,H,W,3]``)
    -> ``[T,H',W',3]``, the same as :class:`TemporalBlend` frame by frame."""
    outs = iter(np.asarray(outputs, np.float32))
    blend = TemporalBlend(lambda _: next(outs), a, alpha)
    return np.stack([blend(x) for x in np.asarray(inputs, np.float32)])
