"""Adversarial super-resolution: the ``sr_gan`` task (``generator`` + ``discriminator``: SRGAN, ESRGAN) and
``real_sr_gan`` (RealESRGAN): the same task with a ``degradation`` section in its default config (its LR inputs
made on device; ``jaxgen.tasks.sr_common.make_pairs``). The config section, batches and the loss are described in
``jaxgen.tasks.sr``; this task adds ``losses.gan = {weight, kind, real_label, fake_label, gp_weight, r1_gamma}``
and ``disc = {name: 'vgg_style', kwargs: {...}, optim: ...}``, and validates by LPIPS (best checkpoint: lowest
``val_lpips``).

Step, top to bottom (SRGAN / ESRGAN / BasicSR ``SRGANModel.optimize_parameters`` order): the training pair; the
generator update (content terms + ``losses.gan.weight * gan_g_loss(D(sr))`` through the current D, frozen); then
the discriminator update on the GAN target (real) and the same step's SR (fake, gradient stopped), plus
``gp_weight * gradient_penalty`` and ``r1_gamma / 2 * r1_penalty`` when set. A spectrally normalised
discriminator (``unet_sn``) runs one power iteration per call in both updates (three per step, as PyTorch's
``spectral_norm`` in BasicSR's Real-ESRGAN step), its ``u`` vectors in the player's ``collections``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxgen import losses as losses_lib
from jaxgen.config import ConfigError, optim_config
from jaxgen.models.discriminators import is_stateful
from jaxgen.tasks.common import Batch, float32_logits, mean_logit
from jaxgen.tasks.sr_common import (ContentLoss, InitWeights, SRValidation, add_degradation, build_discriminator,
                                    build_generator, ema_decay, example_shapes, init_generator, make_pairs,
                                    make_sr_data, resolve_data_config, sr_default_config)
from jaxgen.train import optim
from jaxgen.train.state import STREAM_NOISE, TrainState, apply_gradients, init_key, new_player, new_state, step_key

__all__ = ["SRGANTask", "real_sr_gan_default_config", "sr_gan_default_config"]

STREAM_GP = STREAM_NOISE  # the gradient penalty's interpolation weights (the SR tasks draw no other noise)
GAN_KEYS = ("weight", "kind", "real_label", "fake_label", "gp_weight", "r1_gamma")


def sr_gan_default_config(c: ml_collections.ConfigDict) -> None:
    """The ``sr`` section plus ``losses.gan`` and ``disc``; LPIPS in validation."""
    sr_default_config(c)
    c.losses.gan = ml_collections.ConfigDict(
        {"weight": 5e-3, "kind": "nonsaturating", "real_label": 1.0, "fake_label": 0.0, "gp_weight": 0.0,
         "r1_gamma": 0.0})
    c.disc = ml_collections.ConfigDict(dict(name="vgg_style", kwargs=ml_collections.ConfigDict(), optim=optim_config()))
    c.open_sections = ("model", "losses", "disc.kwargs")
    c.eval_lpips = True


def real_sr_gan_default_config(c: ml_collections.ConfigDict) -> None:
    """``real_sr_gan`` (RealESRGAN): the ``sr_gan`` section plus ``degradation``."""
    sr_gan_default_config(c)
    add_degradation(c)


class SRGANTask:
    """Adversarial super-resolution: ``generator`` + ``discriminator``: content (pixel, perceptual) losses plus the
    adversarial term, on the config's training pairs."""

    EXPORT_PLAYER = "generator"
    best_metric = "val_lpips"
    best_mode = "min"
    default_config = staticmethod(sr_gan_default_config)

    def __init__(self, config: ml_collections.ConfigDict) -> None:
        self.config = config
        gan = config.losses.get("gan")
        if not isinstance(gan, ml_collections.ConfigDict) or "weight" not in gan:
            raise ConfigError("task sr_gan needs config.losses.gan = {weight, kind}")
        unknown = sorted(set(gan.keys()) - set(GAN_KEYS))
        if unknown:
            raise ConfigError(f"config.losses.gan: unknown keys {unknown}; known: {', '.join(GAN_KEYS)}")
        self.gan_weight = float(gan.weight)
        self.gan_kind = str(gan.get("kind", "nonsaturating"))
        if self.gan_kind not in losses_lib.GAN_KINDS:
            raise ConfigError(f"config.losses.gan.kind={self.gan_kind!r}; expected one of {sorted(losses_lib.GAN_KINDS)}")
        self.labels = dict(real_label=float(gan.get("real_label", 1.0)), fake_label=float(gan.get("fake_label", 0.0)))
        self.gp_weight = float(gan.get("gp_weight", 0.0))
        self.r1_gamma = float(gan.get("r1_gamma", 0.0))
        if self.gp_weight < 0 or self.r1_gamma < 0:
            raise ConfigError(f"config.losses.gan: gp_weight={self.gp_weight}, r1_gamma={self.r1_gamma}: expected >= 0")

        self.scale = int(config.scale)
        self.generator = build_generator(config)
        self.g_tx = optim.make_optimizer(config.optim, config.total_steps)
        self.g_schedule = optim.make_schedule(config.optim, config.total_steps)
        self.content = ContentLoss(config.losses)
        self.ema_decay = ema_decay(config)
        if self.content.empty and not self.gan_weight:
            raise ConfigError("config.losses has no non-zero weight: nothing to train")
        self.discriminator = build_discriminator(config)
        self.d_stateful = is_stateful(config.disc.name, config.disc.kwargs.to_dict())
        self.d_tx = optim.make_optimizer(config.disc.optim, config.total_steps)
        self.pairs = make_pairs(config)
        self.init_weights = InitWeights(config, self.generator)
        self.validation = SRValidation(self.generator, self.scale, self.init_weights)

    @property
    def players(self) -> dict[str, tuple[nn.Module, optax.GradientTransformation]]:
        return {"generator": (self.generator, self.g_tx), "discriminator": (self.discriminator, self.d_tx)}

    @staticmethod
    def architecture(config: ml_collections.ConfigDict) -> dict[str, Any]:
        """What must match for a resume: the generator's name, kwargs and scale, and the discriminator's."""
        disc = {"name": config.disc.name, **config.disc.kwargs.to_dict()}
        return {"generator": dict(config.model.to_dict(), scale=config.scale), "discriminator": disc}

    def init(self) -> TrainState:
        """Fresh state (pure)."""
        _, hr_shape = example_shapes(self.config)
        variables = dict(self.discriminator.init(init_key(self.config.seed, "discriminator"), jnp.zeros(hr_shape)))
        d_params = variables.pop("params")
        players = {"generator": init_generator(self.config, self.generator, self.g_tx, self.init_weights,
                                               self.ema_decay),
                   "discriminator": new_player(d_params, self.d_tx, collections=variables)}
        return new_state(self.config.seed, players, self.pairs.buffers())

    def consts(self) -> tuple[Any, dict[str, str]]:
        """The perceptual loss's frozen VGG (``{'vgg': {convention: params}}``), or nothing."""
        return self.content.consts()

    def d_apply(self, d_params: Any, collections: Any, x: jax.Array, *, update: bool = True) -> tuple[Any, Any]:
        """``(logits float32 (a tuple for multi-scale), collections)``; a spectral-norm D runs one power iteration
        and returns its updated vectors (``update=False``: none, for the penalties)."""
        if self.d_stateful:
            variables = {"params": d_params, **collections}
            if update:
                out, new = self.discriminator.apply(variables, x, update_stats=True, mutable=list(collections))
                collections = {**collections, **new}
            else:
                out = self.discriminator.apply(variables, x, update_stats=False)
        else:
            out = self.discriminator.apply({"params": d_params}, x)
        return float32_logits(out), collections

    def step(self, state: TrainState, batch: Batch, consts: Any) -> tuple[TrainState, dict[str, jax.Array]]:
        """Generator update (content terms + adversarial term through the current D), then D update on the GAN
        target (real) and the same step's SR (fake, gradient stopped), with the configured penalties."""
        g, d = state.players["generator"], state.players["discriminator"]
        kind = self.gan_kind
        lr, targets, buffers = self.pairs(state, batch)
        real_img = targets["gan"]
        relativistic = kind.startswith("ragan")

        def g_loss_fn(params):
            sr = self.generator.apply({"params": params}, lr).astype(jnp.float32)
            parts = self.content(sr, targets, consts)
            coll = d.collections
            real = None
            if relativistic:
                real, coll = self.d_apply(d.params, coll, real_img)
                real = jax.lax.stop_gradient(real)
            fake, coll = self.d_apply(d.params, coll, sr)
            parts["gan"] = self.gan_weight * losses_lib.gan_g_loss(fake, kind=kind, real_logits=real, **self.labels)
            return sum(parts.values()), (parts, sr, coll)

        (g_loss, (parts, sr, coll)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(g.params)
        g = apply_gradients(g, g_grads, self.g_tx, ema_decay=self.ema_decay)
        sr = jax.lax.stop_gradient(sr)
        gp_key = step_key(state, STREAM_GP)

        def d_loss_fn(d_params):
            c = coll
            if kind == "ragan_basicsr" and self.d_stateful:  # BasicSR ESRGANModel's extra D(fake) call first:
                c = self.d_apply(d_params, c, sr)[1]  # it only moves the running statistics (same logits)
            real, c = self.d_apply(d_params, c, real_img)
            fake, c = self.d_apply(d_params, c, sr)
            loss = losses_lib.gan_d_loss(real, fake, kind=kind, **self.labels)
            extra = {}
            critic = lambda x: self.d_apply(d_params, c, x, update=False)[0]  # noqa: E731
            if self.gp_weight:
                extra["d_gp"] = self.gp_weight * losses_lib.gradient_penalty(critic, real_img, sr, gp_key)
            if self.r1_gamma:
                extra["d_r1"] = 0.5 * self.r1_gamma * losses_lib.r1_penalty(critic, real_img)
            total = loss + sum(extra.values())
            return total, (mean_logit(real), mean_logit(fake), c, extra)

        (d_loss, (real_mean, fake_mean, coll, extra)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d.params)
        d = apply_gradients(d, d_grads, self.d_tx, collections=coll)
        g_norm, d_norm = optax.tree.norm(g_grads), optax.tree.norm(d_grads)
        metrics = {
            "loss": g_loss,
            "g_grad_norm": g_norm,
            "lr": jnp.asarray(self.g_schedule(state.step), jnp.float32),
            "d_loss": d_loss,
            "d_grad_norm": d_norm,
            "d_real_logit": real_mean,
            "d_fake_logit": fake_mean,
            **extra,
        }
        metrics.update({f"loss_{k}": v for k, v in parts.items()})
        metrics["finite"] = jnp.isfinite(g_loss) & jnp.isfinite(g_norm) & jnp.isfinite(d_loss) & jnp.isfinite(d_norm)
        players = {**state.players, "generator": g, "discriminator": d}
        return state.replace(step=state.step + 1, players=players, buffers=buffers), metrics

    # ------------------------------------------------------------------------------------------ host side

    def prepare(self, workdir: Path) -> None:
        """Fills in the built-in photos and loads the validation sets (as ``sr``)."""
        self.config = resolve_data_config(self.config)
        self.validation.load(self.config)

    @property
    def val_sets(self) -> dict[str, list]:
        return self.validation.val_sets

    def make_data(self, process_index: int, process_count: int) -> Any:
        return make_sr_data(self.config, process_index, process_count)

    def sr_fn(self, params: Any, *, tile: int = 0, overlap: int = 16) -> Callable[[np.ndarray], np.ndarray]:
        """``lr uint8 [h,w,3] -> sr float32 [h*s,w*s,3]`` with the generator jitted once per task."""
        return self.validation.sr_fn(params, tile=tile, overlap=overlap)

    def evaluate(self, state: TrainState) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """PSNR/SSIM and LPIPS (``eval_lpips``) of the generator's eval params (``SRValidation.evaluate``)."""
        return self.validation.evaluate(state.players[self.EXPORT_PLAYER].eval_params, self.config)

    def export_module(self) -> nn.Module:
        """The generator (``[B,h,w,3]`` float32 in [0,1] -> ``[B,h*s,w*s,3]``)."""
        return self.generator
