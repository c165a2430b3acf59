"""Optax optimizers and learning-rate schedules built from an ``optim`` config section, by name.

An ``optim`` section (see :func:`jaxgen.config.optim_config`)::

    name='adam'           # any optax optimizer taking ``learning_rate`` first: adam, adamw, sgd, rmsprop,
                          # lion, adabelief, lamb, ... and lbfgs (needs value_and_grad: see its docstring)
    lr=1e-4, schedule='constant'|'multistep'|'cosine'|'linear_decay', milestones, gamma, warmup_steps,
    min_lr, decay_start, grad_clip
    kwargs={b1: 0.9, b2: 0.999, eps: 1e-8}   # open map: passed to ``optax.<name>(lr, **kwargs)``
"""

from __future__ import annotations

import inspect

import ml_collections
import optax

SCHEDULES = ("constant", "multistep", "cosine", "linear_decay")


def make_schedule(cfg: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
    """Learning rate as a function of the (0-based) step ``t`` (the update that makes step ``t + 1``).

    - ``constant``: ``lr`` (after an optional linear warm-up from 0 over ``warmup_steps``).
    - ``multistep``: ``lr * gamma**k`` once ``t >= `` the k-th milestone (absolute steps, warm-up included; EDSR:
      halve every 2e5 steps; ESRGAN: [5e4, 1e5, 2e5, 3e5] with gamma 0.5), after an optional warm-up.
    - ``cosine``: linear warm-up to ``lr`` over ``warmup_steps`` then cosine decay to ``min_lr`` at ``total_steps``.
    - ``linear_decay``: ``lr`` until ``decay_start``, then linearly to ``min_lr`` at ``total_steps`` (CycleGAN /
      pix2pix ``lr_policy='linear'``: constant for ``n_epochs``, then to zero over ``n_epochs_decay``).
    """
    warmup = int(cfg.warmup_steps)
    lr = float(cfg.lr)
    if cfg.schedule == "constant":
        main = optax.constant_schedule(lr)
    elif cfg.schedule == "multistep":
        # join_schedules hands the second schedule ``t - warmup``: shift the absolute milestones by the warm-up.
        boundaries = {int(m) - warmup: float(cfg.gamma) for m in cfg.milestones}
        if any(b <= 0 for b in boundaries):
            raise ValueError(f"optim.milestones={tuple(cfg.milestones)} must all exceed optim.warmup_steps={warmup}")
        main = optax.piecewise_constant_schedule(lr, boundaries)
    elif cfg.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            init_value=0.0 if warmup else lr,
            peak_value=lr,
            warmup_steps=warmup,
            decay_steps=max(int(total_steps), warmup + 1),
            end_value=float(cfg.min_lr),
        )
    elif cfg.schedule == "linear_decay":
        start = int(cfg.decay_start)
        if not 0 <= start < int(total_steps):
            raise ValueError(f"optim.decay_start={start} must be in [0, total_steps={total_steps})")
        return optax.join_schedules(
            [optax.constant_schedule(lr), optax.linear_schedule(lr, float(cfg.min_lr), int(total_steps) - start)],
            [start],
        )
    else:
        raise ValueError(f"optim.schedule={cfg.schedule!r}; expected one of {', '.join(SCHEDULES)}")
    if not warmup:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def _optax_factory(name: str):
    factory = getattr(optax, name, None)
    if not callable(factory) or isinstance(factory, type):
        raise ValueError(f"optim.name={name!r} is not an optax optimizer (e.g. adam, adamw, sgd, lbfgs, lion)")
    params = list(inspect.signature(factory).parameters)
    if not params or params[0] != "learning_rate":
        raise ValueError(f"optim.name={name!r}: optax.{name} does not take a learning_rate; not an optimizer")
    return factory


def make_optimizer(cfg: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
    """``optax.<cfg.name>(schedule, **cfg.kwargs)``, optionally after global-norm clipping (``grad_clip``)."""
    factory = _optax_factory(str(cfg.name))
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in dict(cfg.get("kwargs", {}) or {}).items()}
    if cfg.name == "adam" and kwargs.get("weight_decay"):
        raise ValueError("optim.kwargs.weight_decay needs optim.name='adamw' (Adam's L2 would couple with the moments)")
    try:
        opt = factory(make_schedule(cfg, total_steps), **kwargs)
    except TypeError as e:
        raise ValueError(f"optim: optax.{cfg.name} rejected kwargs {sorted(kwargs)}: {e}") from None
    if cfg.grad_clip:
        opt = optax.chain(optax.clip_by_global_norm(float(cfg.grad_clip)), opt)
    return opt
