"""Coarse-to-fine Gatys optimisation for large outputs (as neural-style's multires recipe / Gatys et al. 2017
"Controlling perceptual factors", Sec. 5): optimise at a small size, upsample the result, continue at the next
size. Memory and time at the final size are only spent on the last, short stage."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from jaxgen.style.gatys import GatysResult, stylize_gatys
from jaxgen.style.objective import from_caffe
from jaxgen.image import as_float_rgb, resize_long_side, resize_to

__all__ = ["stylize_multires"]


def stylize_multires(content: np.ndarray, styles: Sequence[np.ndarray], consts: dict[str, Any], *,
                     sizes: Sequence[int], steps: Sequence[int], **kwargs: Any) -> GatysResult:
    """Run :func:`stylize_gatys` at each long side in ``sizes`` (increasing) for the matching ``steps``; stage
    ``k > 0`` starts from stage ``k-1``'s result resized (bicubic) to its size. ``kwargs`` go to every stage
    (``original_colors`` only to the last). History rows get a ``size`` key; seconds add up."""
    if len(sizes) != len(steps) or not sizes:
        raise ValueError(f"multires: {len(sizes)} sizes but {len(steps)} step counts")
    if list(sizes) != sorted(sizes):
        raise ValueError(f"multires sizes must increase; got {list(sizes)}")
    content = as_float_rgb(content, "content")
    colours = kwargs.pop("original_colors", False)
    history: list[dict[str, float]] = []
    seconds = compile_seconds = 0.0
    result: GatysResult | None = None
    for k, (size, n) in enumerate(zip(sizes, steps)):
        c = resize_long_side(content, int(size))
        init = None if result is None else resize_to(_unclipped(result), c.shape[:2])
        result = stylize_gatys(c, styles, consts, steps=int(n), init_image=init,
                               original_colors=colours and k == len(sizes) - 1, desc=f"gatys {size}px", **kwargs)
        history += [dict(row, size=int(size)) for row in result.history]
        seconds += result.seconds
        compile_seconds += result.compile_seconds
    assert result is not None
    return GatysResult(result.image, history, seconds, compile_seconds, result.raw)


def _unclipped(result: GatysResult) -> np.ndarray:
    return np.asarray(from_caffe(result.raw[0]))
