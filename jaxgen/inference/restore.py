"""A trained generator back from a jaxgen workdir: ``restore_generator(workdir) -> (config, module, params, step)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flax.linen as nn
import ml_collections

__all__ = ["restore_generator"]


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
