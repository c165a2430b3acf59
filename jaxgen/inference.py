"""Super-resolving whole images with a generator and its params (used by validation, eval, upscale, demo)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from jaxgen import image, tiling

ApplyFn = Callable[[Any, jax.Array], jax.Array]


def make_apply(model: nn.Module, network: str | None = None) -> ApplyFn:
    """``jit((params, x [1,h,w,C] float32 in [0,1]) -> [1,h*s,w*s,C])``; compiles once per input shape, so make
    it once per run and reuse it across evaluations. ``network`` (the model's registry name) selects jaxgen's
    measured per-network compile options (``xla_setup.inference_compiler_options``; none when ``None``)."""
    from jaxgen import xla_setup

    options = xla_setup.inference_compiler_options(network) if network else {}
    return jax.jit(lambda params, x: model.apply({"params": params}, x), compiler_options=options or None)


def make_sr_fn(
    apply: ApplyFn, params: Any, scale: int, *, tile: int = 0, overlap: int = 16
) -> Callable[[np.ndarray], np.ndarray]:
    """``lr uint8 [h,w,C] -> sr float32 [h*s,w*s,C]`` (not clipped); tiled when ``tile > 0`` (see
    :func:`jaxgen.tiling.upscale_tiled`: equal to the untiled output when ``overlap`` covers the receptive field)."""

    def batch_fn(x: np.ndarray) -> np.ndarray:
        return np.asarray(apply(params, x))

    def sr_fn(lr_u8: np.ndarray) -> np.ndarray:
        lr = image.to_float(lr_u8)
        if tile:
            return tiling.upscale_tiled(batch_fn, lr, scale, tile=tile, overlap=overlap)
        return batch_fn(lr[None])[0]

    return sr_fn


def restore_generator(
    workdir: str | Path, *, step: int | None = None, which: str = "latest"
) -> tuple[ml_collections.ConfigDict, nn.Module, Any, int]:
    """``(config, exported module, eval params, step)`` from a workdir's checkpoint, on this host's devices
    whatever the device count it was trained on. Only the exported player's params (its EMA when the run kept
    one) are read.

    ``which``: ``latest`` or ``best`` (by the task's validation metric and direction); an explicit ``step`` wins.
    """
    from jaxgen.config import config_from_json
    from jaxgen.tasks import get_task
    from jaxgen.train import checkpoint

    workdir = Path(workdir)
    if not workdir.is_dir():
        raise ValueError(f"--workdir {workdir}: no such folder")
    config_path = workdir / "config.json"
    if not config_path.exists():
        raise ValueError(f"{config_path} not found: is {workdir} a jaxgen workdir?")
    config = config_from_json(config_path.read_text(), str(config_path))
    task_cls = get_task(config.task)
    manager = checkpoint.open_manager(
        workdir / "checkpoints", read_only=True, best_metric=task_cls.best_metric, best_mode=task_cls.best_mode
    )
    if step is None:
        step = manager.best_step() if which == "best" else manager.latest_step()
    elif step not in manager.all_steps():
        raise ValueError(f"no checkpoint at step {step} in {workdir / 'checkpoints'} (have {list(manager.all_steps())})")
    if step is None:
        raise ValueError(f"no checkpoint in {workdir / 'checkpoints'}")
    task = task_cls(config)
    player = checkpoint.restore_player(workdir / "checkpoints", step, task.EXPORT_PLAYER)
    params = player["ema"] if player["ema"] is not None else player["params"]
    return config, task.export_module(), params, step
