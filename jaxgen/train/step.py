"""The pure update step ``(state, batch) -> (state, metrics)`` for one or two players.

The generator loss is a weighted sum of named terms: the pixel losses of ``config.losses`` (see
``jaxgen.losses.PIXEL_LOSSES``) plus, when a discriminator is configured, ``config.disc.weight`` times the
generator's adversarial loss of kind ``config.disc.gan_kind``. The discriminator is then updated on the
real HR batch and the (stopped-gradient) SR batch of the same step, as in SRGAN/ESRGAN/BasicSR.
Losses are computed in float32 whatever the compute dtype.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxgen import losses as losses_lib
from jaxgen.train.state import TrainState

Batch = dict[str, jax.Array]
StepFn = Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]


def pixel_terms(config: ml_collections.ConfigDict) -> list[tuple[str, float, Callable]]:
    """``[(name, weight, fn)]`` for the non-zero pixel loss weights; unknown names are an error."""
    terms = []
    for name, weight in config.losses.items():
        if name not in losses_lib.PIXEL_LOSSES:
            raise ValueError(f"config.losses.{name}: unknown loss; known: {sorted(losses_lib.PIXEL_LOSSES)}")
        if weight:
            terms.append((name, float(weight), losses_lib.PIXEL_LOSSES[name]))
    if not terms and not config.disc.name:
        raise ValueError("config.losses has no non-zero weight and there is no discriminator: nothing to train")
    return terms


def _ema(ema_params: Any, params: Any, decay: float) -> Any:
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema_params, params)


def make_train_step(
    config: ml_collections.ConfigDict,
    generator: nn.Module,
    g_tx: optax.GradientTransformation,
    *,
    discriminator: nn.Module | None = None,
    d_tx: optax.GradientTransformation | None = None,
    g_schedule: optax.Schedule | None = None,
) -> StepFn:
    """Builds the step. ``batch = {'lr': [B,h,w,C], 'hr': [B,h*s,w*s,C]}`` float32 in [0,1]."""
    terms = pixel_terms(config)
    gan_kind = config.disc.gan_kind
    adv_weight = float(config.disc.weight)
    ema_decay = float(config.ema_decay)

    def d_logits(d_params: Any, x: jax.Array) -> jax.Array:
        return discriminator.apply({"params": d_params}, x).astype(jnp.float32)

    def g_loss_fn(params, d_params, batch):
        sr = generator.apply({"params": params}, batch["lr"]).astype(jnp.float32)
        parts = {name: weight * fn(sr, batch["hr"]) for name, weight, fn in terms}
        if discriminator is not None:
            fake = d_logits(d_params, sr)
            real = jax.lax.stop_gradient(d_logits(d_params, batch["hr"])) if gan_kind == "ragan" else None
            parts["adv"] = adv_weight * losses_lib.gan_g_loss(fake, kind=gan_kind, real_logits=real)
        return sum(parts.values()), (parts, sr)

    def d_loss_fn(d_params, sr, hr):
        real, fake = d_logits(d_params, hr), d_logits(d_params, sr)
        loss = losses_lib.gan_d_loss(real, fake, kind=gan_kind)
        return loss, {"d_real_logit": real.mean(), "d_fake_logit": fake.mean()}

    def step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, jax.Array]]:
        (g_loss, (parts, sr)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(
            state.params, state.d_params, batch
        )
        updates, opt_state = g_tx.update(g_grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": g_loss, "g_grad_norm": optax.tree.norm(g_grads)}
        if g_schedule is not None:
            metrics["lr"] = jnp.asarray(g_schedule(state.step), jnp.float32)
        metrics.update({f"loss_{k}": v for k, v in parts.items()})
        d_params, d_opt_state = state.d_params, state.d_opt_state
        if discriminator is not None:
            sr = jax.lax.stop_gradient(sr)
            (d_loss, d_aux), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d_params, sr, batch["hr"])
            d_updates, d_opt_state = d_tx.update(d_grads, d_opt_state, d_params)
            d_params = optax.apply_updates(d_params, d_updates)
            metrics.update(d_loss=d_loss, d_grad_norm=optax.tree.norm(d_grads), **d_aux)
        ema_params = None if state.ema_params is None else _ema(state.ema_params, params, ema_decay)
        metrics["finite"] = jnp.isfinite(g_loss) & jnp.isfinite(metrics["g_grad_norm"])
        new_state = state.replace(
            step=state.step + 1,
            params=params,
            opt_state=opt_state,
            ema_params=ema_params,
            d_params=d_params,
            d_opt_state=d_opt_state,
        )
        return new_state, metrics

    return step
