"""``jaxgen upscale --workdir W IN.png [more ...] -o OUT [--tile 128 --tile-overlap 16]``.

With one input, ``-o`` is the output file; with several, a folder (``<stem>_x<s>.png`` each). Tiling bounds
memory for any image size (a 4000x3000 photo included); with an overlap at least the model's receptive-field
radius the tiled result equals the untiled one.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

import flax.linen as nn
import jax
import numpy as np


def make_image_sr_fn(
    model: nn.Module, params: Any, scale: int, *, tile: int = 0, overlap: int = 16
) -> Callable[[np.ndarray], np.ndarray]:
    """``lr uint8 [h,w,C] -> sr float32 [h*s,w*s,C]``, tiled when ``tile > 0``."""
    from jaxgen import image, tiling

    apply = jax.jit(lambda p, x: model.apply({"params": p}, x))

    def batch_fn(x: np.ndarray) -> np.ndarray:
        return np.asarray(apply(params, x))

    def sr_fn(lr_u8: np.ndarray) -> np.ndarray:
        lr = image.to_float(lr_u8)
        if tile:
            return tiling.upscale_tiled(batch_fn, lr, scale, tile=tile, overlap=overlap)
        return batch_fn(lr[None])[0]

    return sr_fn


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jaxgen upscale", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("inputs", nargs="+", help="input images")
    p.add_argument("-o", "--output", required=True, help="output file (one input) or folder")
    p.add_argument("--workdir", required=True, help="run folder with checkpoints")
    p.add_argument("--which", choices=["latest", "best"], default="latest")
    p.add_argument("--tile", type=int, default=0, help="LR tile size (0 = whole image)")
    p.add_argument("--tile-overlap", type=int, default=16, help="LR pixels of context around each tile")
    return p


def upscale(args: argparse.Namespace) -> list[Path]:
    from jaxgen import image
    from jaxgen.train import restore_generator

    config, model, params, step = restore_generator(args.workdir, which=args.which)
    sr_fn = make_image_sr_fn(model, params, config.scale, tile=args.tile, overlap=args.tile_overlap)
    out = Path(args.output)
    written = []
    for path in map(Path, args.inputs):
        target = out if len(args.inputs) == 1 else out / f"{path.stem}_x{config.scale}.png"
        image.write_image(target, image.to_uint8(sr_fn(image.read_image(path))))
        written.append(target)
        print(f"{path} -> {target} (x{config.scale}, step {step})")
    return written


def run(argv: list[str]) -> int:
    from jaxgen.commands.common import run_guarded

    args = _parser().parse_args(argv[1:])
    run_guarded(lambda: upscale(args))
    return 0
