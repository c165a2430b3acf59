"""pix2pix (Isola et al. 2017): paired translation with a conditional GAN, as the official
``junyanz/pytorch-CycleGAN-and-pix2pix`` ``models/pix2pix_model.py``.

Players: ``G`` (U-Net-256 with batch norm and dropout) and ``D`` (conditional 70x70 PatchGAN with batch norm on the
6-channel ``[input, output]`` pair). No buffers (official ``pool_size=0``).

Config section (``Pix2PixTask.default_config``)::

    direction='AtoB'          # AtoB: learn A -> B; BtoA: B -> A (official --direction)
    model={name: 'unet', num_downs: 8, ngf: 64, norm: 'batch', use_dropout: True}     # open
    disc={name: 'patchgan_bn', ndf: 64, n_layers: 3}                                   # open
    losses={gan_kind: 'vanilla', lambda_L1: 100.0}
    optim=optim_config(lr=2e-4, b1=0.5, schedule='linear_decay', ...)   # both players
    data=translation_data_config()

One step (official ``optimize_parameters``), images in [-1, 1], ``x`` the input, ``y`` the target:

1. ``fake = G(x)`` once (training mode: batch statistics, a dropout mask from ``step_key(state, STREAM_DROPOUT)``).
2. Discriminator first: ``L_D = 0.5 (gan(D([x, fake]), fake) + gan(D([x, y]), real))`` with ``fake`` detached;
   the two D calls are separate (separate batch statistics, as the official). One Adam step.
3. Generator against the *updated* D: ``L_G = gan(D'([x, fake]), real) + lambda_L1 |fake - y|`` (L1 = mean),
   differentiated through the step-1 forward (same dropout mask and statistics). One Adam step.

``vanilla`` GAN = ``BCEWithLogits`` with targets 1 / 0 (the generator's is the non-saturating ``-log D``).
Batch norm: statistics of the global batch (see :class:`jaxgen.models.translation.BatchStatNorm`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxgen import image, losses as losses_lib
from jaxgen.image import grid, list_image_files
from jaxgen.config import ConfigError, optim_config
from jaxgen.train import optim
from jaxgen.train.state import STREAM_DROPOUT, TrainState, apply_gradients, init_key, new_player, new_state, step_key
from jaxgen.tasks import translation_base as tb
from jaxgen.tasks.common import float32_logits, mean_logit
from jaxgen.data.image_domains import (center_square, check_data_config, eval_images, eval_size, SYNTHETIC, translation_data_config)
from jaxgen.data.paired import make_paired_iterator, split_ab

Batch = dict[str, jax.Array]


class Pix2PixTask:
    """Paired translation ``direction`` (module doc)."""

    EXPORT_PLAYER = "G"
    EXPORT_SCALE = 1
    best_metric = "val_mae"
    best_mode = "min"

    @staticmethod
    def default_config(c: ml_collections.ConfigDict) -> None:
        c.open_sections = ("model", "disc")  # sections that accept new keys (jaxgen.config.lock)

        c.batch_size = 1
        c.direction = "AtoB"
        c.model = ml_collections.ConfigDict(dict(name="unet", num_downs=8, ngf=64, norm="batch", use_dropout=True))
        c.disc = ml_collections.ConfigDict(dict(name="patchgan_bn", ndf=64, n_layers=3))
        c.losses = ml_collections.ConfigDict(dict(gan_kind="vanilla", lambda_L1=100.0))
        c.optim = optim_config(lr=2e-4, b1=0.5, b2=0.999, schedule="linear_decay", decay_start=c.total_steps // 2)
        c.data = translation_data_config()

    def __init__(self, config: ml_collections.ConfigDict) -> None:
        self.config = config
        if config.direction not in ("AtoB", "BtoA"):
            raise ConfigError(f"config.direction={config.direction!r}; expected 'AtoB' or 'BtoA'")
        self.generator = tb.build_section_model(config, "model")
        disc_kwargs = {} if "num_in_ch" in config.disc else {"num_in_ch": 6}
        self.discriminator = tb.build_section_model(config, "disc", **disc_kwargs)
        check_data_config(config.data, multiple=tb.size_multiple(self.generator))
        tb.check_model(self.generator, config, "model", 3)
        tb.check_model(self.discriminator, config, "disc", 6)
        if config.losses.gan_kind not in losses_lib.GAN_KINDS:
            raise ConfigError(f"config.losses.gan_kind={config.losses.gan_kind!r}; expected one of "
                              f"{sorted(losses_lib.GAN_KINDS)}")
        if not isinstance(config.losses.lambda_L1, (int, float)) or config.losses.lambda_L1 < 0:
            raise ConfigError(f"config.losses.lambda_L1={config.losses.lambda_L1!r}: expected a number >= 0")
        self.tx = optim.make_optimizer(config.optim, config.total_steps)
        self.schedule = optim.make_schedule(config.optim, config.total_steps)
        self.eval_pairs: list[tuple[np.ndarray, np.ndarray]] = []
        self._translate = None

    @property
    def export_min_size(self) -> int:
        """The smallest side (and the multiple) the exported generator accepts: 4 (ResNet), ``2**num_downs`` (U-Net)."""
        return tb.size_multiple(self.generator)

    @property
    def players(self) -> dict[str, tuple[nn.Module, optax.GradientTransformation]]:
        return {"G": (self.generator, self.tx), "D": (self.discriminator, self.tx)}

    @staticmethod
    def architecture(config: ml_collections.ConfigDict) -> dict[str, Any]:
        return {"G": config.model.to_dict(), "D": config.disc.to_dict()}

    def init(self) -> TrainState:
        s = int(self.config.data.crop_size)
        g = self.generator.init(init_key(self.config.seed, "G"), jnp.zeros((1, s, s, 3)))["params"]
        d = self.discriminator.init(init_key(self.config.seed, "D"), jnp.zeros((1, s, s, 6)))["params"]
        return new_state(self.config.seed, {"G": new_player(g, self.tx), "D": new_player(d, self.tx)})

    def consts(self) -> tuple[Any, dict[str, str]]:
        return {}, {}

    def io(self, batch: Batch) -> tuple[jax.Array, jax.Array]:
        """``(input, target)`` in [-1, 1] for the configured direction."""
        a, b = tb.to_signed(batch["A"]), tb.to_signed(batch["B"])
        return (a, b) if self.config.direction == "AtoB" else (b, a)

    def _d(self, params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        return float32_logits(self.discriminator.apply({"params": params}, jnp.concatenate([x, y], axis=-1)))

    def step(self, state: TrainState, batch: Batch, consts: Any) -> tuple[TrainState, dict[str, jax.Array]]:
        """One pix2pix iteration (module doc); ``batch = {'A', 'B'}`` float32 [B,H,W,3] in [0, 1]."""
        del consts
        kind, lam = self.config.losses.gan_kind, float(self.config.losses.lambda_L1)
        x, y = self.io(batch)
        g, d = state.players["G"], state.players["D"]
        key = step_key(state, STREAM_DROPOUT)

        def forward(params):
            return self.generator.apply({"params": params}, x, train=True, rngs={"dropout": key}).astype(jnp.float32)

        fake, g_vjp = jax.vjp(forward, g.params)

        def d_loss_fn(dp):
            pred_fake = self._d(dp, x, jax.lax.stop_gradient(fake))
            pred_real = self._d(dp, x, y)
            return 0.5 * losses_lib.gan_d_loss(pred_real, pred_fake, kind=kind), (mean_logit(pred_real), mean_logit(pred_fake))

        (d_loss, (real_logit, fake_logit)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d.params)
        d = apply_gradients(d, d_grads, self.tx)

        def g_loss_fn(fake_img):
            parts = {"G_GAN": losses_lib.gan_g_loss(self._d(d.params, x, fake_img), kind=kind),
                     "G_L1": lam * losses_lib.l1(fake_img, y)}
            return sum(parts.values()), parts

        (g_loss, parts), d_fake = jax.value_and_grad(g_loss_fn, has_aux=True)(fake)
        (g_grads,) = g_vjp(d_fake)
        g = apply_gradients(g, g_grads, self.tx)
        g_norm, d_norm = optax.tree.norm(g_grads), optax.tree.norm(d_grads)
        metrics = {"loss": g_loss, "D": d_loss, "d_real_logit": real_logit, "d_fake_logit": fake_logit,
                   "g_grad_norm": g_norm, "d_grad_norm": d_norm, "lr": jnp.asarray(self.schedule(state.step), jnp.float32),
                   **{f"loss_{k}": v for k, v in parts.items()}}
        metrics["finite"] = jnp.isfinite(g_loss) & jnp.isfinite(d_loss) & jnp.isfinite(g_norm) & jnp.isfinite(d_norm)
        return state.replace(step=state.step + 1, players={**state.players, "G": g, "D": d}), metrics

    # ------------------------------------------------------------------------------------------ host side

    def prepare(self, workdir: Path) -> None:
        """Evaluation pairs ``(input, target)`` uint8 at ``crop_size``: synthetic -> (photo, transform(photo)) of the
        held-out photos (or ``val_dir_a``); ``aligned`` -> the AB images of ``val_dir_a``; ``folder`` ->
        ``val_dir_a`` / ``val_dir_b`` in file-name order."""
        data = self.config.data
        pairs: list[tuple[np.ndarray, np.ndarray]] = []
        if data.synthetic:
            pairs = [(a, SYNTHETIC[data.synthetic](a)) for a in eval_images(data, data.val_dir_a)]
        elif data.source == "aligned" and data.val_dir_a:
            files = list_image_files(Path(data.val_dir_a), "evaluation folder")[: int(data.num_eval)]
            for f in files:
                a, b = split_ab(image.read_image(f))
                pairs.append((center_square(a, eval_size(data)), center_square(b, eval_size(data))))
        elif data.val_dir_a and data.val_dir_b:
            pairs = list(zip(eval_images(data, data.val_dir_a), eval_images(data, data.val_dir_b)))
        if self.config.direction == "BtoA":
            pairs = [(b, a) for a, b in pairs]
        self.eval_pairs = pairs

    def make_data(self, process_index: int, process_count: int) -> Any:
        return make_paired_iterator(self.config.data, global_batch_size=self.config.batch_size, seed=self.config.seed,
                                    process_index=process_index, process_count=process_count)

    def evaluate(self, state: TrainState) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """``val_mae`` = mean ``|G(input) - target|`` and ``val_mae_identity`` = mean ``|input - target|`` over the
        evaluation pairs (each translated alone: batch 1, dropout off); grid ``input | G(input) | target``."""
        if not self.eval_pairs:
            return {}, {}
        if self._translate is None:
            self._translate = tb.make_translate_fn(self.export_module())
        params = state.players["G"].params
        rows, errs, base = [], [], []
        for x, y in self.eval_pairs:
            out = self._translate(params, x)
            rows.append([x, out, y])
            errs.append(tb.mae(out, y))
            base.append(tb.mae(x, y))
        scalars = {"val_mae": float(np.mean(errs)), "val_mae_identity": float(np.mean(base))}
        return scalars, {self.config.direction: grid(rows)}

    def export_module(self) -> nn.Module:
        """``G`` on ``[B,H,W,3]`` in [0, 1] -> [0, 1] (dropout off; batch norm with the input batch's statistics);
        H, W multiples of ``2**num_downs``."""
        return tb.export_generator(self.generator)
