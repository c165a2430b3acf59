"""Training tasks: what is trained, how one step updates it, how it is evaluated and exported.

The loop (``jaxgen.train.loop.train``) never imports a task: a command picks ``TASKS[config.task]`` and
hands the built task to the loop. A task is a small class (or a :class:`jaxgen.tasks.common.TaskVariant`: a class with another default config);
its instance ``task = TASKS[name](config)`` has:

=========================  ===========================================================================
``default_config(c)``      (static) adds the task's section to the run keys, and ``c.open_sections``: the
                           dotted config paths that accept new keys (model kwargs, loss entries, ...)
``EXPORT_PLAYER``          the player whose (EMA) params inference uses
``best_metric/best_mode``  the validation metric that picks the best checkpoint and ``'max'|'min'``
``players``                ``{name: (flax module, optax transformation)}``
``architecture(config)``   (static) JSON summary of the networks (a resume with another one is refused)
``init()``                 pure ``-> TrainState`` (so ``jax.eval_shape(task.init)`` gives the shapes)
``step(state, batch, c)``  pure ``-> (state, metrics)``; ``c`` = the frozen constants (never closed over)
``consts()``               ``-> (pytree of frozen arrays, {name: source description})``
``make_data(pi, pc)``      the process's input iterator (``get_state``/``set_state`` for exact resume)
``prepare(workdir)``       host set-up before training (built-in data, validation sets)
``evaluate(state)``        host side ``-> (scalars, {name: uint8 image grid})``
``export_module()``        the inference module of ``EXPORT_PLAYER``
=========================  ===========================================================================

The :class:`jaxgen.tasks.common.Task` protocol types this. Things that are not training loops (Gatys
optimisation) do not go through the loop.

This module is the registry: :data:`TASKS`, :func:`get_task`, :func:`base_config` (a config file's start) and
:func:`restore_generator` (a workdir's exported network for inference).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flax.linen as nn
import ml_collections

from jaxgen import storage
from jaxgen.config import ConfigError, config_from_json, run_config
from jaxgen.tasks.adain import AdaINTask
from jaxgen.tasks.cyclegan import CycleGANTask
from jaxgen.tasks.fast_style import FastStyleTask
from jaxgen.tasks.pix2pix import Pix2PixTask
from jaxgen.tasks.common import TaskVariant
from jaxgen.tasks.sr import SRTask, real_sr_default_config
from jaxgen.tasks.sr_gan import SRGANTask, real_sr_gan_default_config
from jaxgen.train import checkpoint

TASKS: dict[str, Any] = {
    "sr": SRTask,
    "sr_gan": SRGANTask,
    "cyclegan": CycleGANTask,
    "pix2pix": Pix2PixTask,
    "fast_style": FastStyleTask,
    "adain": AdaINTask,
    "real_sr": TaskVariant(SRTask, real_sr_default_config),  # RealESRNet: sr on Real-ESRGAN pairs
    "real_sr_gan": TaskVariant(SRGANTask, real_sr_gan_default_config),  # RealESRGAN
}


def get_task(name: str) -> Any:
    """``TASKS[name]``; an unknown name is a ``ConfigError`` (a ``ValueError``) listing the known ones."""
    if name not in TASKS:
        raise ConfigError(f"config.task={name!r}; expected one of {sorted(TASKS)}")
    return TASKS[name]


def check_task(config: ml_collections.ConfigDict, where: str) -> None:
    """A ``ConfigError`` naming ``where`` (the config file) when ``config.task`` is not a registered task."""
    if config.get("task") not in TASKS:
        raise ConfigError(f"{where}: config.task={config.get('task')!r}; expected one of {sorted(TASKS)}")


def base_config(task: str = "sr") -> ml_collections.ConfigDict:
    """The run-level keys with defaults (``jaxgen.config.run_config``) plus ``task``'s own section."""
    c = run_config(task)
    get_task(task).default_config(c)
    return c


def restore_generator(
    workdir: str | Path, *, step: int | None = None, which: str = "latest"
) -> tuple[ml_collections.ConfigDict, nn.Module, Any, int]:
    """``(config, exported module, eval params, step)`` from a workdir's checkpoint, on this host's devices
    whatever the device count it was trained on. Only the exported player's params (its EMA when the run kept
    one) are read.

    ``which``: ``latest`` or ``best`` (by the task's validation metric and direction); an explicit ``step`` wins.
    """
    workdir = storage.as_path(workdir)  # a local folder or a URL (gs://...)
    if not workdir.is_dir():
        raise ValueError(f"--workdir {workdir}: no such folder")
    config_path = workdir / "config.json"
    if not config_path.exists():
        raise ValueError(f"{config_path} not found: is {workdir} a jaxgen workdir?")
    config = config_from_json(config_path.read_text(), str(config_path))
    check_task(config, str(config_path))
    task = get_task(config.task)(config)
    params, step = checkpoint.restore_exported(workdir, player=task.EXPORT_PLAYER, best_metric=task.best_metric,
                                               best_mode=task.best_mode, step=step, which=which)
    return config, task.export_module(), params, step


__all__ = ["TASKS", "AdaINTask", "CycleGANTask", "FastStyleTask", "Pix2PixTask", "SRGANTask", "SRTask", "base_config", "check_task", "get_task", "restore_generator"]
