"""Super-resolution, PSNR-oriented: the ``sr`` task (one player, ``generator``), and ``real_sr`` (RealESRNet): the
same task with a ``degradation`` section in its default config, so its LR inputs are made on device by the
second-order degradation (``jaxgen.degradations``; the pair functions are in ``jaxgen.tasks.sr_common``). The
adversarial tasks ``sr_gan``/``real_sr_gan`` are in ``jaxgen.tasks.sr_gan``.

Config section (added by :func:`jaxgen.tasks.sr_common.sr_default_config`)::

    scale=2
    model={name: 'edsr', **generator kwargs}             # open: any kwarg of the model
    losses={l1: 1.0}                                      # open: name -> weight or {weight, **kwargs}
    optim=optim_config()                                  # the generator's optimizer
    ema_decay=0.0                                         # 0 = no EMA; ESRGAN / Real-ESRGAN use 0.999
    data=default_data_config()                            # aligned LR/HR patches (jaxgen.data)
    init_from=''                                          # generator weights to start from (weights.init_from)
    eval_lpips=False                                      # validation also reports LPIPS (True for the GAN tasks)
    eval_lpips_crop=0                                     # LPIPS on the central crop of this HR side (0 = all)
    # sr_gan / real_sr_gan:
    losses.gan={weight, kind, real_label, fake_label, gp_weight, r1_gamma}   # adversarial term and regularisers
    disc={name: 'vgg_style', kwargs: {...}, optim: ...}   # discriminator and its optimizer
    # real_sr / real_sr_gan:
    degradation=default_degradation_config()              # every Real-ESRGAN setting (jaxgen.degradations)

Perceptual loss: ``losses.perceptual`` (``jaxgen.tasks.sr_common``).

Batches are ``{'lr': [B,h,w,C], 'hr': [B,h*s,w*s,C]}`` float32 in [0,1] (the Real-ESRGAN tasks use ``hr`` only).
Losses are computed in float32 whatever ``compute_dtype``. The generator loss is ``sum_i weight_i *
loss_i(sr, hr, **kwargs_i)`` (+ the perceptual terms); with a discriminator it adds ``losses.gan.weight *
gan_g_loss(D(sr))`` and, after the generator update, the discriminator is updated on the real HR batch and the
stopped-gradient SR batch of the same step (SRGAN / ESRGAN / BasicSR ``SRGANModel.optimize_parameters`` order:
G first with D frozen, then D), plus ``gp_weight * gradient_penalty`` and ``r1_gamma / 2 * r1_penalty`` when set.
A spectrally normalised discriminator (``unet_sn``) runs one power iteration per call in both updates (three
per step, as PyTorch's ``spectral_norm`` in BasicSR's Real-ESRGAN step), its ``u`` vectors in the player's
``collections``.
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

from jaxgen.config import ConfigError
from jaxgen.tasks.common import Batch
from jaxgen.tasks.sr_common import (ContentLoss, InitWeights, SRValidation, add_degradation, build_generator,
                                    ema_decay, init_generator, make_pairs, make_sr_data, resolve_data_config,
                                    sr_default_config)
from jaxgen.train import optim
from jaxgen.train.state import TrainState, apply_gradients, new_state

__all__ = ["SRTask", "real_sr_default_config"]


def real_sr_default_config(c: ml_collections.ConfigDict) -> None:
    """``real_sr`` (RealESRNet): the ``sr`` section plus ``degradation``."""
    sr_default_config(c)
    add_degradation(c)


class SRTask:
    """PSNR-oriented super-resolution: one player, ``generator``, trained with pixel (and perceptual) losses on the
    config's training pairs (the batch's LR/HR, or Real-ESRGAN's degradation with a ``degradation`` section)."""

    EXPORT_PLAYER = "generator"
    best_metric = "val_psnr"
    best_mode = "max"
    default_config = staticmethod(sr_default_config)

    def __init__(self, config: ml_collections.ConfigDict) -> None:
        self.config = config
        self.scale = int(config.scale)
        self.generator = build_generator(config)
        self.g_tx = optim.make_optimizer(config.optim, config.total_steps)
        self.g_schedule = optim.make_schedule(config.optim, config.total_steps)
        self.content = ContentLoss(config.losses)
        if self.content.empty:
            raise ConfigError("config.losses has no non-zero pixel or perceptual loss: nothing to train")
        self.ema_decay = ema_decay(config)
        self.pairs = make_pairs(config)
        self.init_weights = InitWeights(config, self.generator)
        self.validation = SRValidation(self.generator, self.scale, self.init_weights)

    @property
    def players(self) -> dict[str, tuple[nn.Module, optax.GradientTransformation]]:
        return {"generator": (self.generator, self.g_tx)}

    @staticmethod
    def architecture(config: ml_collections.ConfigDict) -> dict[str, Any]:
        """What must match for a resume: the generator's name, kwargs and scale."""
        return {"generator": dict(config.model.to_dict(), scale=config.scale)}

    def init(self) -> TrainState:
        """Fresh state (pure)."""
        generator = init_generator(self.config, self.generator, self.g_tx, self.init_weights, self.ema_decay)
        return new_state(self.config.seed, {"generator": generator}, self.pairs.buffers())

    def consts(self) -> tuple[Any, dict[str, str]]:
        """The perceptual loss's frozen VGG (``{'vgg': {convention: params}}``), or nothing."""
        return self.content.consts()

    def step(self, state: TrainState, batch: Batch, consts: Any) -> tuple[TrainState, dict[str, jax.Array]]:
        """One generator update on this step's training pair; ``consts``: the perceptual loss's VGG (when
        configured)."""
        g = state.players["generator"]
        lr, targets, buffers = self.pairs(state, batch)

        def loss_fn(params):
            sr = self.generator.apply({"params": params}, lr).astype(jnp.float32)
            parts = self.content(sr, targets, consts)
            return sum(parts.values()), parts

        (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(g.params)
        g = apply_gradients(g, grads, self.g_tx, ema_decay=self.ema_decay)
        grad_norm = optax.tree.norm(grads)
        metrics = {"loss": loss, "g_grad_norm": grad_norm, "lr": jnp.asarray(self.g_schedule(state.step), jnp.float32)}
        metrics.update({f"loss_{k}": v for k, v in parts.items()})
        metrics["finite"] = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        new = state.replace(step=state.step + 1, players={**state.players, "generator": g}, buffers=buffers)
        return new, metrics

    # ------------------------------------------------------------------------------------------ host side

    def prepare(self, workdir: Path) -> None:
        """Fills in the built-in photos (empty ``data.train_dir`` or ``source='builtin'``; empty ``val_dirs``)
        and loads the validation sets."""
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
        """PSNR/SSIM (and LPIPS with ``eval_lpips``) of the generator's eval params (``SRValidation.evaluate``)."""
        return self.validation.evaluate(state.players[self.EXPORT_PLAYER].eval_params, self.config)

    def export_module(self) -> nn.Module:
        """The generator (``[B,h,w,3]`` float32 in [0,1] -> ``[B,h*s,w*s,3]``)."""
        return self.generator
