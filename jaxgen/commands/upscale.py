"""``jaxgen upscale --workdir W IN.png [more ...] -o OUT [--tile 128 --tile-overlap 16]``.

With one input, ``-o`` is the output file; with several, a folder (``<stem>_x<s>.png`` each). Tiling bounds
memory for any image size (a 4000x3000 photo included); with an overlap at least the model's receptive-field
radius the tiled result equals the untiled one.
"""

from __future__ import annotations

import argparse
from pathlib import Path


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
    from jaxgen import image, inference
    from jaxgen.inference import restore_generator

    config, model, params, step = restore_generator(args.workdir, which=args.which)
    apply = inference.make_apply(model)
    sr_fn = inference.make_sr_fn(apply, params, config.scale, tile=args.tile, overlap=args.tile_overlap)
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
