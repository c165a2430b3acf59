"""Training tasks: what is trained, how one step updates it, how it is evaluated and exported.

The loop (``jaxgen.train.loop.train``) never imports a task: a command picks ``TASKS[config.task]`` and
hands the built task to the loop. A task is a small class; its instance ``task = TASKS[name](config)`` has:

=========================  ===========================================================================
``default_config(c)``      (static) adds the task's section to a base config (``jaxgen.config``)
``OPEN_SECTIONS``          dotted config paths that accept new keys (model kwargs, loss entries, ...)
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

Things that are not training loops (Gatys optimisation) do not go through the loop.
"""

from __future__ import annotations

from typing import Any

from jaxgen.tasks.adain import AdaINTask
from jaxgen.tasks.cyclegan import CycleGANTask
from jaxgen.tasks.fast_style import FastStyleTask
from jaxgen.tasks.pix2pix import Pix2PixTask
from jaxgen.tasks.sr import RealESRGANTask, RealESRNetTask, SRGANTask, SRTask

TASKS: dict[str, Any] = {
    "sr": SRTask,
    "sr_gan": SRGANTask,
    "cyclegan": CycleGANTask,
    "pix2pix": Pix2PixTask,
    "fast_style": FastStyleTask,
    "adain": AdaINTask,
    "real_sr": RealESRNetTask,
    "real_sr_gan": RealESRGANTask,
}


def get_task(name: str) -> Any:
    """``TASKS[name]``; an unknown name is a ``ValueError`` listing the known ones."""
    if name not in TASKS:
        raise ValueError(f"config.task={name!r}; expected one of {sorted(TASKS)}")
    return TASKS[name]


__all__ = ["TASKS", "AdaINTask", "CycleGANTask", "FastStyleTask", "Pix2PixTask", "RealESRGANTask", "RealESRNetTask",
           "SRGANTask", "SRTask", "get_task"]
