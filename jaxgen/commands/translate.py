"""``jaxgen translate --workdir W --direction AtoB IN.png [more ...] -o OUT [--which latest|best]``.

Translates whole images with a trained CycleGAN or pix2pix workdir: CycleGAN ``AtoB`` uses ``G_A``, ``BtoA`` uses
``G_B``; pix2pix has one generator, trained for its config's ``direction`` (asking for the other is an error).
Each image is reflection-padded at the bottom/right to the generator's size multiple (4 for ResNet, 256 for
U-Net-256), translated alone (batch 1; dropout off) and cropped back. With one input ``-o`` is the output file;
with several, a folder (``<stem>_<direction>.png`` each).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from jaxgen import image, inference
from jaxgen.commands.common import run_guarded, set_verbosity
from jaxgen.config import config_from_json
from jaxgen.models import onednn_conv
from jaxgen.tasks import get_task
from jaxgen.tasks.translation_base import size_multiple
from jaxgen.train import checkpoint


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jaxgen translate", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("inputs", nargs="+", help="input images")
    p.add_argument("-o", "--output", required=True, help="output file (one input) or folder")
    p.add_argument("--workdir", required=True, help="run folder of a cyclegan or pix2pix config")
    p.add_argument("--direction", choices=["AtoB", "BtoA"], default="AtoB")
    p.add_argument("--which", choices=["latest", "best"], default="latest")
    onednn_conv.add_argument(p)  # auto: oneDNN where it measured faster (benchmarks/RESULTS.md)
    return p


def pad_to_multiple(x: np.ndarray, multiple: int) -> np.ndarray:
    """``[H,W,C]`` reflection-padded at the bottom/right to multiples of ``multiple`` (edge-padded beyond what a
    reflection can give for images smaller than the padding)."""
    h, w = x.shape[:2]
    ph, pw = -h % multiple, -w % multiple
    mode = "reflect" if ph < h and pw < w else "edge"
    return np.pad(x, ((0, ph), (0, pw), (0, 0)), mode=mode)


def load_translator(workdir: str | Path, direction: str, which: str = "latest") -> tuple[Any, Any, Any, int, int]:
    """``(config, inference module, params, step, size multiple)`` of the generator that translates ``direction``."""
    workdir = Path(workdir)
    config_path = workdir / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{config_path} not found: is {workdir} a jaxgen workdir?")
    config = config_from_json(config_path.read_text(), str(config_path))
    task_cls = get_task(config.task)
    if config.task == "cyclegan":
        player = task_cls.DIRECTION_PLAYERS[direction]
    elif config.task == "pix2pix":
        if direction != config.direction:
            raise ValueError(f"{workdir} is a pix2pix run trained {config.direction}; it cannot translate {direction}")
        player = task_cls.EXPORT_PLAYER
    else:
        raise ValueError(f"{workdir} is a {config.task!r} run; jaxgen translate needs a cyclegan or pix2pix workdir "
                         "(use jaxgen upscale for super-resolution)")
    manager = checkpoint.open_manager(workdir / "checkpoints", read_only=True, best_metric=task_cls.best_metric,
                                      best_mode=task_cls.best_mode)
    step = manager.best_step() if which == "best" else manager.latest_step()
    if step is None:
        raise ValueError(f"no checkpoint in {workdir / 'checkpoints'}")
    task = task_cls(config)
    params = checkpoint.restore_player(workdir / "checkpoints", step, player)["params"]
    return config, task.export_module(), params, step, size_multiple(task.generator)


def translate(args: argparse.Namespace) -> list[Path]:
    config, module, params, step, multiple = load_translator(args.workdir, args.direction, args.which)
    onednn_conv.configure(args.conv_backend, networks=(str(config.model.name),))  # auto: per network and CPU
    apply = inference.make_apply(module, str(config.model.name))
    out = Path(args.output)
    written = []
    for path in map(Path, args.inputs):
        img = image.read_image(path)
        x = pad_to_multiple(image.to_float(img), multiple)
        y = np.asarray(apply(params, x[None]))[0, : img.shape[0], : img.shape[1]]
        target = out if len(args.inputs) == 1 else out / f"{path.stem}_{args.direction}.png"
        image.write_image(target, image.to_uint8(np.clip(y, 0.0, 1.0)))
        written.append(target)
        print(f"{path} -> {target} ({args.direction}, step {step})")
    return written


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv[1:])
    set_verbosity(False)
    run_guarded(lambda: translate(args))
    return 0
