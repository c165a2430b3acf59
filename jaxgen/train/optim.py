"""Optax optimizers and learning-rate schedules built from an ``optim`` config (see ``jaxgen.config``)."""

from __future__ import annotations

import ml_collections
import optax


def make_schedule(cfg: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
    """Learning rate as a function of the step.

    - ``constant``: ``lr`` (after an optional linear warm-up).
    - ``multistep``: ``lr * gamma**k`` after the k-th milestone (EDSR: halve every 2e5 steps; ESRGAN:
      [5e4, 1e5, 2e5, 3e5] with gamma 0.5), after an optional linear warm-up.
    - ``cosine``: linear warm-up to ``lr`` over ``warmup_steps`` then cosine decay to ``min_lr`` at
      ``total_steps``.
    """
    warmup = int(cfg.warmup_steps)
    if cfg.schedule == "constant":
        main = optax.constant_schedule(cfg.lr)
    elif cfg.schedule == "multistep":
        boundaries = {int(m) - warmup: cfg.gamma for m in cfg.milestones}
        main = optax.piecewise_constant_schedule(cfg.lr, boundaries)
    elif cfg.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            init_value=0.0 if warmup else cfg.lr,
            peak_value=cfg.lr,
            warmup_steps=warmup,
            decay_steps=max(int(total_steps), warmup + 1),
            end_value=cfg.min_lr,
        )
    else:
        raise ValueError(f"optim.schedule={cfg.schedule!r}; expected one of constant, multistep, cosine")
    if not warmup:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, cfg.lr, warmup), main], [warmup])


def make_optimizer(cfg: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
    """Adam / AdamW with the configured betas, eps, schedule and optional global-norm clipping."""
    schedule = make_schedule(cfg, total_steps)
    if cfg.name == "adam":
        if cfg.weight_decay:
            raise ValueError("optim.weight_decay needs optim.name='adamw' (Adam's L2 would couple with the moments)")
        opt = optax.adam(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
    elif cfg.name == "adamw":
        opt = optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay)
    else:
        raise ValueError(f"optim.name={cfg.name!r}; expected adam or adamw")
    if cfg.grad_clip:
        opt = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), opt)
    return opt
