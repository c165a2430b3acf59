"""Temporal flicker of a processed video: how much the output changes between frames relative to the input.

``temporal_flicker(out, inp) = mean|out_t - out_{t-1}| / mean|in_t - in_{t-1}|`` over all frames t >= 1, pixels
and channels (``frame_change`` is the numerator / denominator alone). 1 means the output changes exactly as much
as the input does; a per-frame method that flickers (fast style transfer, AdaIN) gives values above 1; 0 is a
frozen output. The two clips may differ in size (e.g. an upscaled output): each mean is over its own pixels.

It is the flow-free counterpart of the warping error of Lai et al. 2018, "Learning Blind Video Temporal
Consistency" (ECCV; https://github.com/phoenix104104/fast_blind_video_consistency, ``evaluate_WarpError.py``),
which compares ``out_t`` with the optical-flow-warped ``out_{t-1}`` inside a visibility mask; without flow, the
ratio to the input's own change keeps real motion from counting as flicker. A clip whose motion is known and
global (a pan of ``shift = (dy, dx)`` pixels per frame: ``x_t[i, j] = x_{t-1}[i - dy, j - dx]``) can pass it:
frames are then compared after that shift, over the pixels both frames see (the warping error with exact flow),
so a stylised output's stronger texture moving with the camera does not count as flicker either.
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["frame_change", "temporal_flicker"]


def frame_change(frames, shift: tuple[int, int] = (0, 0)) -> jnp.ndarray:
    """Mean absolute change between consecutive frames of ``frames`` ``[T,H,W,C]`` (T >= 2): a scalar; with a
    ``shift`` ``(dy, dx)`` per frame, ``x_t[i, j]`` is compared with ``x_{t-1}[i - dy, j - dx]``."""
    x = jnp.asarray(frames, jnp.float32)
    if x.ndim != 4 or x.shape[0] < 2:
        raise ValueError(f"frame_change: expected frames [T>=2,H,W,C]; got shape {x.shape}")
    (dy, dx), (h, w) = shift, x.shape[1:3]
    if abs(dy) >= h or abs(dx) >= w:
        raise ValueError(f"frame_change: shift {shift} leaves no overlap in {h}x{w} frames")
    cur = x[1:, max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)]
    prev = x[:-1, max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
    return jnp.mean(jnp.abs(cur - prev))


def temporal_flicker(frames_out, frames_in, shift: tuple[int, int] = (0, 0)) -> jnp.ndarray:
    """``frame_change(frames_out) / frame_change(frames_in)`` (same T; same value range, e.g. [0,1]); ``inf``
    when the input never changes but the output does, ``nan`` when neither changes. ``shift``: the input's known
    global motion per frame (see the module docstring), scaled to the output's size for the output."""
    out, inp = jnp.asarray(frames_out), jnp.asarray(frames_in)
    if out.shape[0] != inp.shape[0]:
        raise ValueError(f"temporal_flicker: {out.shape[0]} output frames for {inp.shape[0]} input frames")
    out_shift = (round(shift[0] * out.shape[1] / inp.shape[1]), round(shift[1] * out.shape[2] / inp.shape[2]))
    return frame_change(out, out_shift) / frame_change(inp, shift)
