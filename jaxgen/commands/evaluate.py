"""``jaxgen eval``: Y-PSNR/SSIM (crop = scale) of a checkpoint or of bicubic on benchmark folders.

    jaxgen eval --model bicubic --data ../shared/data/sr-benchmarks/Set5 --scale 2 --out set5.json
    jaxgen eval --workdir W --data DIR [DIR ...] --scale 2 --out results.json   # + results.md

A data folder is either HR images (LR made with MATLAB-exact ``imresize``) or the ``image_SRF_s/*_{HR,LR}.png``
layout. The JSON holds per-dataset means and per-image values; the Markdown table adds the bicubic row.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
from jaxgen import evaluation, inference, storage
from jaxgen.commands.common import HelpFormatter, run_guarded, set_verbosity
from jaxgen.tasks import restore_generator

from jaxgen import evaluation


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jaxgen eval", description=__doc__, formatter_class=HelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--workdir", help="run folder; evaluates its latest (or --which best) checkpoint")
    src.add_argument("--checkpoint", help="a checkpoint folder W/checkpoints/<step>")
    src.add_argument("--model", choices=["bicubic"], help="evaluate a baseline without a checkpoint")
    p.add_argument("--data", nargs="+", required=True, action="extend", help="benchmark folders")
    p.add_argument("--scale", type=int, help="upscaling factor (default: the run's config.scale)")
    p.add_argument("--out", help="JSON output path; a Markdown table is written beside it (.md); the table is "
                   "printed either way")
    p.add_argument("--which", choices=["latest", "best"], default="latest")
    p.add_argument("--tile", type=_non_negative, default=0, help="LR tile size for tiled inference (0 = whole image)")
    p.add_argument("--tile-overlap", type=_non_negative, default=16, help="LR pixels of context around each tile")
    return p


def _model_sr_fn(args: argparse.Namespace) -> tuple[Callable[[np.ndarray], np.ndarray], int, dict[str, Any]]:
    if args.checkpoint:
        ckpt = storage.as_path(args.checkpoint)
        if not ckpt.name.isdigit():
            raise ValueError(f"--checkpoint {ckpt}: expected a step folder like W/checkpoints/1000")
        config, model, params, step = restore_generator(ckpt.parents[1], step=int(ckpt.name))
        workdir = ckpt.parents[1]
    else:
        config, model, params, step = restore_generator(args.workdir, which=args.which)
        workdir = storage.as_path(args.workdir)
    if args.scale is not None and args.scale != config.scale:
        raise ValueError(f"--scale {args.scale} but the checkpoint in {workdir} was trained for x{config.scale}")
    apply = inference.make_apply(model)
    sr_fn = inference.make_sr_fn(apply, params, config.scale, tile=args.tile, overlap=args.tile_overlap)
    info = {"workdir": str(workdir), "step": step, "model": config.model.name}
    return sr_fn, config.scale, info


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    if args.model == "bicubic":
        if args.scale is None:
            raise ValueError("--model bicubic needs --scale")
        methods: dict[str, Callable | None] = {"bicubic": None}
        scale, info = args.scale, {"model": "bicubic"}
    else:
        sr_fn, scale, info = _model_sr_fn(args)
        methods = {info["model"]: sr_fn, "bicubic": None}
    results = evaluation.evaluate_folders(methods, args.data, scale)
    return {"scale": scale, "source": info, "methods": results["methods"], "datasets": results["datasets"]}


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv[1:])
    set_verbosity(False)
    results = run_guarded(lambda: evaluate(args))
    table = evaluation.markdown_table(results)
    print(table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2, default=float))
        out.with_suffix(".md").write_text(table)
        print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0
