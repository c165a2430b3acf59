"""CycleGAN (Zhu et al. 2017): unpaired translation A <-> B with two generators and two discriminators, as the official
``junyanz/pytorch-CycleGAN-and-pix2pix`` ``models/cycle_gan_model.py``.

Players (official names): ``G_A`` (A -> B), ``G_B`` (B -> A), ``D_A`` (judges domain B: real B vs G_A's fakes),
``D_B`` (judges domain A). Buffers: ``fake_B_pool`` and ``fake_A_pool`` (:mod:`jaxgen.tasks.image_pool`, 50
images each, in [-1, 1]).

Config section (``CycleGANTask.default_config``)::

    model={name: 'resnet', ngf: 64, n_blocks: 9, norm: 'instance', use_dropout: False}   # open (G_A, G_B)
    disc={name: 'patchgan', ndf: 64, n_layers: 3, norm: 'instance'}                      # open (D_A, D_B)
    losses={gan_kind: 'lsgan', lambda_A: 10.0, lambda_B: 10.0, lambda_identity: 0.5}
    pool_size=50
    optim=optim_config(lr=2e-4, b1=0.5, schedule='linear_decay', ...)   # all four players (official: one
                                                                          # Adam for G_A+G_B, one for D_A+D_B)
    data=translation_data_config()                                        # jaxgen.data.image_domains

One step (official ``optimize_parameters``), images mapped to [-1, 1]:

1. ``fake_B = G_A(A)``, ``rec_A = G_B(fake_B)``, ``fake_A = G_B(B)``, ``rec_B = G_A(fake_A)``;
   ``idt_A = G_A(B)``, ``idt_B = G_B(A)`` (when ``lambda_identity > 0``).
2. Generators (discriminators frozen, i.e. their current params, no update):
   ``L_G = gan(D_A(fake_B), real) + gan(D_B(fake_A), real) + lambda_A |rec_A - A| + lambda_B |rec_B - B|
   + lambda_identity (lambda_B |idt_A - B| + lambda_A |idt_B - A|)`` (L1 = mean); one Adam step of G_A and G_B.
3. Pools: ``fake_B' = query(fake_B_pool, fake_B)``, ``fake_A' = query(fake_A_pool, fake_A)`` (the fakes of step 1,
   i.e. of the generators *before* their update, gradient stopped).
4. Discriminators: ``L_D_A = 0.5 (gan(D_A(B), real) + gan(D_A(fake_B'), fake))``, ``L_D_B`` likewise; one Adam step.

LSGAN (``gan_kind='lsgan'``): ``gan(x, real) = mean((x - 1)^2)``, ``gan(x, fake) = mean(x^2)``. Randomness: the
pools draw from ``step_key(state, STREAM_POOL)``; dropout (off by default) from ``STREAM_DROPOUT``.
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

from jaxgen import losses as losses_lib
from jaxgen.config import ConfigError, optim_config
from jaxgen.image import grid, to_uint8
from jaxgen.train import optim
from jaxgen.train.state import (STREAM_DROPOUT, STREAM_POOL, TrainState, apply_gradients, init_key, new_player,
                                new_state, step_key)
from jaxgen.tasks import translation_base as tb
from jaxgen.tasks.common import float32_logits
from jaxgen.tasks.image_pool import new_pool, query_pool
from jaxgen.data.image_domains import check_data_config, eval_images, SYNTHETIC, translation_data_config
from jaxgen.data.unpaired import make_unpaired_iterator

Batch = dict[str, jax.Array]
GENERATORS, DISCRIMINATORS = ("G_A", "G_B"), ("D_A", "D_B")


class CycleGANTask:
    """Unpaired A <-> B translation (module doc)."""

    EXPORT_PLAYER = "G_A"
    DIRECTION_PLAYERS = {"AtoB": "G_A", "BtoA": "G_B"}
    EXPORT_SCALE = 1
    best_metric = "val_mae_AtoB"
    best_mode = "min"

    @staticmethod
    def default_config(c: ml_collections.ConfigDict) -> None:
        c.open_sections = ("model", "disc")  # sections that accept new keys (jaxgen.config.lock)

        c.batch_size = 1
        c.model = ml_collections.ConfigDict(dict(name="resnet", ngf=64, n_blocks=9, norm="instance", use_dropout=False))
        c.disc = ml_collections.ConfigDict(dict(name="patchgan", ndf=64, n_layers=3, norm="instance"))
        c.losses = ml_collections.ConfigDict(dict(gan_kind="lsgan", lambda_A=10.0, lambda_B=10.0, lambda_identity=0.5))
        c.pool_size = 50
        c.optim = optim_config(lr=2e-4, b1=0.5, b2=0.999, schedule="linear_decay", decay_start=c.total_steps // 2)
        c.data = translation_data_config()

    def __init__(self, config: ml_collections.ConfigDict) -> None:
        self.config = config
        self.generator = tb.build_section_model(config, "model")
        self.discriminator = tb.build_section_model(config, "disc")
        check_data_config(config.data, multiple=tb.size_multiple(self.generator))
        tb.check_model(self.generator, config, "model", 3)
        tb.check_model(self.discriminator, config, "disc", 3)
        losses = config.losses
        if losses.gan_kind not in losses_lib.GAN_KINDS:
            raise ConfigError(f"config.losses.gan_kind={losses.gan_kind!r}; expected one of {sorted(losses_lib.GAN_KINDS)}")
        for key in ("lambda_A", "lambda_B", "lambda_identity"):
            if not isinstance(losses[key], (int, float)) or losses[key] < 0:
                raise ConfigError(f"config.losses.{key}={losses[key]!r}: expected a number >= 0")
        if not isinstance(config.pool_size, int) or config.pool_size < 0:
            raise ConfigError(f"config.pool_size={config.pool_size!r}: expected an integer >= 0 (0 = no pool)")
        self.tx = optim.make_optimizer(config.optim, config.total_steps)
        self.schedule = optim.make_schedule(config.optim, config.total_steps)
        self.eval_a: list[np.ndarray] = []
        self.eval_b: list[np.ndarray] = []
        self._translate = None

    @property
    def export_min_size(self) -> int:
        """The smallest side (and the multiple) the exported generator accepts: 4 (ResNet), ``2**num_downs`` (U-Net)."""
        return tb.size_multiple(self.generator)

    @property
    def players(self) -> dict[str, tuple[nn.Module, optax.GradientTransformation]]:
        return {**{g: (self.generator, self.tx) for g in GENERATORS}, **{d: (self.discriminator, self.tx) for d in DISCRIMINATORS}}

    @staticmethod
    def architecture(config: ml_collections.ConfigDict) -> dict[str, Any]:
        g, d = config.model.to_dict(), config.disc.to_dict()
        return {**{name: g for name in GENERATORS}, **{name: d for name in DISCRIMINATORS}}

    # ------------------------------------------------------------------------------------------ state

    def init(self) -> TrainState:
        """Fresh players (official ``init_type='normal'``, gain 0.02) and empty pools (pure)."""
        s = int(self.config.data.crop_size)
        x = jnp.zeros((1, s, s, 3))
        players = {}
        for name, module in self.players.items():
            params = module[0].init(init_key(self.config.seed, name), x)["params"]
            players[name] = new_player(params, self.tx)
        pools = {k: new_pool(int(self.config.pool_size), (s, s, 3)) for k in ("fake_A_pool", "fake_B_pool")}
        return new_state(self.config.seed, players, pools)

    def consts(self) -> tuple[Any, dict[str, str]]:
        return {}, {}

    # ------------------------------------------------------------------------------------------ step

    def _g(self, params: Any, x: jax.Array, key: jax.Array) -> jax.Array:
        return self.generator.apply({"params": params}, x, train=True, rngs={"dropout": key}).astype(jnp.float32)

    def _d(self, params: Any, x: jax.Array) -> jax.Array:
        return float32_logits(self.discriminator.apply({"params": params}, x))

    def generator_losses(self, g_params: dict[str, Any], d_params: dict[str, Any], real_A: jax.Array,
                         real_B: jax.Array, key: jax.Array) -> tuple[jax.Array, tuple[dict[str, jax.Array], jax.Array, jax.Array]]:
        """``(L_G, (parts, fake_A, fake_B))`` of step 2 (module doc); images in [-1, 1]."""
        lam = self.config.losses
        kind = lam.gan_kind
        keys = [jax.random.fold_in(key, i) for i in range(6)]
        fake_B = self._g(g_params["G_A"], real_A, keys[0])
        rec_A = self._g(g_params["G_B"], fake_B, keys[1])
        fake_A = self._g(g_params["G_B"], real_B, keys[2])
        rec_B = self._g(g_params["G_A"], fake_A, keys[3])
        parts = {
            "G_A": losses_lib.gan_g_loss(self._d(d_params["D_A"], fake_B), kind=kind),
            "G_B": losses_lib.gan_g_loss(self._d(d_params["D_B"], fake_A), kind=kind),
            "cycle_A": lam.lambda_A * losses_lib.l1(rec_A, real_A),
            "cycle_B": lam.lambda_B * losses_lib.l1(rec_B, real_B),
        }
        if lam.lambda_identity > 0:
            parts["idt_A"] = lam.lambda_identity * lam.lambda_B * losses_lib.l1(self._g(g_params["G_A"], real_B, keys[4]), real_B)
            parts["idt_B"] = lam.lambda_identity * lam.lambda_A * losses_lib.l1(self._g(g_params["G_B"], real_A, keys[5]), real_A)
        return sum(parts.values()), (parts, fake_A, fake_B)

    def discriminator_loss(self, d_params: Any, real: jax.Array, fake: jax.Array) -> jax.Array:
        """``0.5 * (gan(D(real), real) + gan(D(fake), fake))`` (official ``backward_D_basic``)."""
        return 0.5 * losses_lib.gan_d_loss(self._d(d_params, real), self._d(d_params, fake), kind=self.config.losses.gan_kind)

    def step(self, state: TrainState, batch: Batch, consts: Any) -> tuple[TrainState, dict[str, jax.Array]]:
        """One CycleGAN iteration (module doc); ``batch = {'A', 'B'}`` float32 [B,H,W,3] in [0, 1]."""
        del consts
        real_A, real_B = tb.to_signed(batch["A"]), tb.to_signed(batch["B"])
        players = dict(state.players)
        g_params = {k: players[k].params for k in GENERATORS}
        d_params = {k: players[k].params for k in DISCRIMINATORS}
        (g_loss, (parts, fake_A, fake_B)), g_grads = jax.value_and_grad(self.generator_losses, has_aux=True)(
            g_params, d_params, real_A, real_B, step_key(state, STREAM_DROPOUT))
        for k in GENERATORS:
            players[k] = apply_gradients(players[k], g_grads[k], self.tx)

        pool_key = step_key(state, STREAM_POOL)
        pool_B, fake_B = query_pool(state.buffers["fake_B_pool"], jax.lax.stop_gradient(fake_B), jax.random.fold_in(pool_key, 0))
        pool_A, fake_A = query_pool(state.buffers["fake_A_pool"], jax.lax.stop_gradient(fake_A), jax.random.fold_in(pool_key, 1))

        def d_loss_fn(dp):
            d_a = self.discriminator_loss(dp["D_A"], real_B, fake_B)
            d_b = self.discriminator_loss(dp["D_B"], real_A, fake_A)
            return d_a + d_b, (d_a, d_b)

        (_, (d_a, d_b)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d_params)
        for k in DISCRIMINATORS:
            players[k] = apply_gradients(players[k], d_grads[k], self.tx)

        g_norm, d_norm = optax.tree.norm(g_grads), optax.tree.norm(d_grads)
        metrics = {"loss": g_loss, "D_A": d_a, "D_B": d_b, "g_grad_norm": g_norm, "d_grad_norm": d_norm,
                   "lr": jnp.asarray(self.schedule(state.step), jnp.float32),
                   **{f"loss_{k}": v for k, v in parts.items()}}
        metrics["finite"] = jnp.isfinite(g_loss) & jnp.isfinite(d_a + d_b) & jnp.isfinite(g_norm) & jnp.isfinite(d_norm)
        buffers = {**state.buffers, "fake_A_pool": pool_A, "fake_B_pool": pool_B}
        return state.replace(step=state.step + 1, players=players, buffers=buffers), metrics

    # ------------------------------------------------------------------------------------------ host side

    def prepare(self, workdir: Path) -> None:
        """Loads the evaluation images: A from ``data.val_dir_a`` (held-out photos if empty); B = the synthetic
        transform of A when ``data.synthetic``, else ``data.val_dir_b`` (none if empty)."""
        data = self.config.data
        if data.source == "builtin" or data.val_dir_a:
            self.eval_a = eval_images(data, data.val_dir_a)
        if data.synthetic:
            self.eval_b = [SYNTHETIC[data.synthetic](a) for a in self.eval_a]
        elif data.val_dir_b:
            self.eval_b = eval_images(data, data.val_dir_b)

    def make_data(self, process_index: int, process_count: int) -> Any:
        return make_unpaired_iterator(self.config.data, global_batch_size=self.config.batch_size, seed=self.config.seed,
                                      process_index=process_index, process_count=process_count)

    def evaluate(self, state: TrainState) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """MAE against the truth and the identity baseline when ``data.synthetic`` (module docs of
        :mod:`jaxgen.tasks.translation_base`); grids ``A | G_A(A) | [true B |] G_B(G_A(A))`` per evaluation image
        (``AtoB``) and the same from B (``BtoA``)."""
        if self._translate is None:
            self._translate = tb.make_translate_fn(self.export_module())
        tr = self._translate
        p_a, p_b = state.players["G_A"].params, state.players["G_B"].params
        scalars: dict[str, float] = {}
        grids: dict[str, np.ndarray] = {}
        synthetic = bool(self.config.data.synthetic)
        if self.eval_a:
            rows, errs, base = [], [], []
            for i, a in enumerate(self.eval_a):
                fake_b = tr(p_a, a)
                rec_a = tr(p_b, to_uint8(fake_b))
                row = [a, fake_b] + ([self.eval_b[i]] if synthetic else []) + [rec_a]
                rows.append(row)
                if synthetic:
                    errs.append(tb.mae(fake_b, self.eval_b[i]))
                    base.append(tb.mae(a, self.eval_b[i]))
            grids["AtoB"] = grid(rows)
            if synthetic:
                scalars.update(val_mae_AtoB=float(np.mean(errs)), val_mae_identity_AtoB=float(np.mean(base)))
        if self.eval_b:
            rows, errs = [], []
            for i, b in enumerate(self.eval_b):
                fake_a = tr(p_b, b)
                rows.append([b, fake_a] + ([self.eval_a[i]] if synthetic else []) + [tr(p_a, to_uint8(fake_a))])
                if synthetic:
                    errs.append(tb.mae(fake_a, self.eval_a[i]))
            grids["BtoA"] = grid(rows)
            if synthetic:
                scalars.update(val_mae_BtoA=float(np.mean(errs)), val_mae_identity_BtoA=scalars["val_mae_identity_AtoB"])
        return scalars, grids

    def export_module(self) -> nn.Module:
        """``G_A`` (or ``G_B``: same module, other params) on ``[B,H,W,3]`` in [0, 1] -> [0, 1]; H, W multiples of 4."""
        return tb.export_generator(self.generator)
