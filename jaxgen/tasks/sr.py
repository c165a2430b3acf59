"""Super-resolution tasks: ``sr`` (PSNR-oriented, one player) and ``sr_gan`` (generator + discriminator).

Config section (added by :meth:`SRTask.default_config`)::

    scale=2
    model={name: 'edsr', **generator kwargs}             # open: any kwarg of the model
    losses={l1: 1.0}                                      # open: name -> weight or {weight, **kwargs}
    optim=optim_config()                                  # the generator's optimizer
    ema_decay=0.0                                         # 0 = no EMA; ESRGAN / Real-ESRGAN use 0.999
    data=default_data_config()                            # aligned LR/HR patches (jaxgen.data)
    # sr_gan only:
    losses.gan={weight: 5e-3, kind: 'nonsaturating'}      # adversarial term (kinds: jaxgen.losses.GAN_KINDS)
    disc={name: 'vgg128', kwargs: {...}, optim: ...}      # discriminator and its optimizer

Batches are ``{'lr': [B,h,w,C], 'hr': [B,h*s,w*s,C]}`` float32 in [0,1]. Losses are computed in float32
whatever ``compute_dtype``. The generator loss is ``sum_i weight_i * loss_i(sr, hr, **kwargs_i)``; with a
discriminator (``sr_gan``) it adds ``losses.gan.weight * gan_g_loss(D(sr))`` and, after the generator
update, the discriminator is updated on the real HR batch and the stopped-gradient SR batch of the same
step (SRGAN / ESRGAN / BasicSR ``SRGANModel.optimize_parameters`` order: G first with D frozen, then D).
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
from jaxgen import models
from jaxgen.config import ConfigError, optim_config
from jaxgen.train import optim
from jaxgen.train.state import Player, TrainState, apply_gradients, init_key, new_player, new_state

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
Batch = dict[str, jax.Array]


def compute_dtype(config: ml_collections.ConfigDict) -> Any:
    if config.compute_dtype not in DTYPES:
        raise ConfigError(f"config.compute_dtype={config.compute_dtype!r}; expected one of {sorted(DTYPES)}")
    return DTYPES[config.compute_dtype]


def _kwargs(section: ml_collections.ConfigDict, where: str, skip: tuple[str, ...] = ("name",)) -> dict[str, Any]:
    """A model section's kwargs (JSON lists back to tuples); negative integers are refused."""
    kwargs = {}
    for key, value in section.items():
        if key in skip:
            continue
        value = value.to_dict() if isinstance(value, ml_collections.ConfigDict) else value
        value = tuple(value) if isinstance(value, list) else value
        ints = value if isinstance(value, tuple) else (value,)
        if any(isinstance(v, int) and not isinstance(v, bool) and v < 0 for v in ints):
            raise ConfigError(f"config.{where}.{key}={value!r}: sizes must be >= 0")
        kwargs[key] = value
    return kwargs


def build_model(name: str, kwargs: dict[str, Any], where: str) -> nn.Module:
    """``models.build`` with config errors (unknown model, unknown/invalid kwargs) as one-line ConfigErrors."""
    try:
        return models.build(name, **kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config.{where}: {e}") from None


def build_generator(config: ml_collections.ConfigDict) -> nn.Module:
    """``models.build(config.model.name, scale=config.scale, dtype=..., **other model keys)``."""
    if not isinstance(config.scale, int) or config.scale < 1:
        raise ConfigError(f"config.scale={config.scale!r}: expected an integer >= 1")
    kwargs = _kwargs(config.model, "model")
    return build_model(config.model.name, dict(kwargs, scale=config.scale, dtype=compute_dtype(config)), "model")


def build_discriminator(config: ml_collections.ConfigDict) -> nn.Module:
    kwargs = _kwargs(config.disc.kwargs, "disc.kwargs", skip=())
    return build_model(config.disc.name, dict(kwargs, dtype=compute_dtype(config)), "disc")


LossTerm = tuple[str, float, Callable[..., jax.Array], dict[str, Any]]


def pixel_terms(losses: ml_collections.ConfigDict, *, skip: tuple[str, ...] = ()) -> list[LossTerm]:
    """``[(name, weight, fn, kwargs)]`` of the non-zero entries of ``config.losses`` (each a weight or a
    ``{weight, **kwargs}`` map); unknown names are an error naming the known ones."""
    terms = []
    for name, entry in losses.items():
        if name in skip:
            continue
        if name not in losses_lib.PIXEL_LOSSES:
            raise ConfigError(f"config.losses.{name}: unknown loss; known: {sorted(losses_lib.PIXEL_LOSSES)}")
        if isinstance(entry, ml_collections.ConfigDict):
            kwargs = entry.to_dict()
            weight = kwargs.pop("weight", 1.0)
        else:
            weight, kwargs = entry, {}
        if not isinstance(weight, (int, float)) or isinstance(weight, bool):
            raise ConfigError(f"config.losses.{name}: weight {weight!r} is not a number")
        if weight:
            terms.append((name, float(weight), losses_lib.PIXEL_LOSSES[name], kwargs))
    return terms


def sum_terms(terms: list[LossTerm], sr: jax.Array, hr: jax.Array) -> dict[str, jax.Array]:
    """``{name: weight * fn(sr, hr, **kwargs)}``."""
    return {name: weight * fn(sr, hr, **kwargs) for name, weight, fn, kwargs in terms}


class SRTask:
    """PSNR-oriented super-resolution: one player, ``generator``, trained with pixel losses."""

    NAME = "sr"
    OPEN_SECTIONS: tuple[str, ...] = ("model", "losses")
    EXPORT_PLAYER = "generator"
    best_metric = "val_psnr"
    best_mode = "max"

    @staticmethod
    def default_config(c: ml_collections.ConfigDict) -> None:
        from jaxgen.data import default_data_config

        c.scale = 2
        c.model = ml_collections.ConfigDict({"name": "edsr"})
        c.losses = ml_collections.ConfigDict({"l1": 1.0})
        c.optim = optim_config()
        c.ema_decay = 0.0
        c.data = default_data_config()

    def __init__(self, config: ml_collections.ConfigDict) -> None:
        self.config = config
        self.scale = int(config.scale)
        self.generator = build_generator(config)
        self.g_tx = optim.make_optimizer(config.optim, config.total_steps)
        self.g_schedule = optim.make_schedule(config.optim, config.total_steps)
        self.terms = pixel_terms(config.losses, skip=("gan",))
        self.ema_decay = float(config.ema_decay)
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"config.ema_decay={self.ema_decay}: expected 0 (off) or a decay in (0, 1)")
        self._check_losses()
        self.val_sets: dict[str, list] = {}
        self._apply = None

    def _check_losses(self) -> None:
        if not self.terms:
            raise ConfigError("config.losses has no non-zero pixel loss: nothing to train")

    @property
    def players(self) -> dict[str, tuple[nn.Module, optax.GradientTransformation]]:
        return {"generator": (self.generator, self.g_tx)}

    @staticmethod
    def architecture(config: ml_collections.ConfigDict) -> dict[str, Any]:
        """What must match for a resume: the generator's name, kwargs and scale."""
        return {"generator": dict(config.model.to_dict(), scale=config.scale)}

    # ------------------------------------------------------------------------------------------ state

    def _example_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        p, s = int(self.config.data.patch_size), self.scale
        return (1, p, p, 3), (1, p * s, p * s, 3)

    def _init_generator(self) -> Player:
        lr_shape, _ = self._example_shapes()
        params = self.generator.init(init_key(self.config.seed, "generator"), jnp.zeros(lr_shape))["params"]
        return new_player(params, self.g_tx, ema=self.ema_decay > 0)

    def init(self) -> TrainState:
        """Fresh state (pure)."""
        return new_state(self.config.seed, {"generator": self._init_generator()})

    def consts(self) -> tuple[Any, dict[str, str]]:
        """No frozen networks."""
        return {}, {}

    # ------------------------------------------------------------------------------------------ step

    def step(self, state: TrainState, batch: Batch, consts: Any) -> tuple[TrainState, dict[str, jax.Array]]:
        """One generator update on ``batch``; ``consts`` is unused (no frozen network)."""
        del consts
        g = state.players["generator"]

        def loss_fn(params):
            sr = self.generator.apply({"params": params}, batch["lr"]).astype(jnp.float32)
            parts = sum_terms(self.terms, sr, batch["hr"])
            return sum(parts.values()), parts

        (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(g.params)
        g = apply_gradients(g, grads, self.g_tx, ema_decay=self.ema_decay)
        grad_norm = optax.tree.norm(grads)
        metrics = {"loss": loss, "g_grad_norm": grad_norm, "lr": jnp.asarray(self.g_schedule(state.step), jnp.float32)}
        metrics.update({f"loss_{k}": v for k, v in parts.items()})
        metrics["finite"] = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        return state.replace(step=state.step + 1, players={**state.players, "generator": g}), metrics

    # ------------------------------------------------------------------------------------------ host side

    def prepare(self, workdir: Path) -> None:
        """Fills in the built-in photos (empty ``data.train_dir`` or ``source='builtin'``; empty ``val_dirs``)
        and loads the validation sets."""
        from jaxgen import evaluation

        self.config = resolve_data_config(self.config)
        for directory in self.config.data.val_dirs:
            pairs = evaluation.load_sr_pairs(directory, self.scale)
            if self.config.eval_max_images:
                pairs = pairs[: self.config.eval_max_images]
            self.val_sets[Path(directory).name] = pairs

    def make_data(self, process_index: int, process_count: int) -> Any:
        from jaxgen import data as data_lib

        return data_lib.make_train_iterator(
            self.config.data,
            scale=self.scale,
            global_batch_size=self.config.batch_size,
            seed=self.config.seed,
            process_index=process_index,
            process_count=process_count,
        )

    def sr_fn(self, params: Any, *, tile: int = 0, overlap: int = 16) -> Callable[[np.ndarray], np.ndarray]:
        """``lr uint8 [h,w,3] -> sr float32 [h*s,w*s,3]`` with the generator jitted once per task."""
        from jaxgen import inference

        if self._apply is None:
            self._apply = inference.make_apply(self.generator)
        return inference.make_sr_fn(self._apply, params, self.scale, tile=tile, overlap=overlap)

    def evaluate(self, state: TrainState) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """Y-PSNR/SSIM (crop = scale) per validation set and ``val_psnr`` (their mean); the LR | bicubic | SR |
        HR grid of the first validation image."""
        from jaxgen import evaluation

        if not self.val_sets:
            return {}, {}
        sr_fn = self.sr_fn(state.players[self.EXPORT_PLAYER].eval_params)
        results = evaluation.validate(sr_fn, self.val_sets, self.scale)
        first = next(iter(self.val_sets.values()))[0]
        grid = evaluation.comparison_grid(first.lr, sr_fn(first.lr), first.hr, self.scale)
        return results, {"lr_bicubic_sr_hr": grid}

    def export_module(self) -> nn.Module:
        """The generator (``[B,h,w,3]`` float32 in [0,1] -> ``[B,h*s,w*s,3]``)."""
        return self.generator


class SRGANTask(SRTask):
    """Adversarial super-resolution: ``generator`` + ``discriminator`` (SRGAN / ESRGAN without perceptual
    loss, which joins with the pretrained networks)."""

    NAME = "sr_gan"
    OPEN_SECTIONS = ("model", "losses", "disc.kwargs")

    @staticmethod
    def default_config(c: ml_collections.ConfigDict) -> None:
        SRTask.default_config(c)
        c.losses.gan = ml_collections.ConfigDict({"weight": 5e-3, "kind": "nonsaturating"})
        c.disc = ml_collections.ConfigDict(dict(name="vgg128", kwargs=ml_collections.ConfigDict(), optim=optim_config()))

    def __init__(self, config: ml_collections.ConfigDict) -> None:
        gan = config.losses.get("gan")
        if not isinstance(gan, ml_collections.ConfigDict) or "weight" not in gan:
            raise ConfigError("task sr_gan needs config.losses.gan = {weight, kind}")
        self.gan_weight = float(gan.weight)
        self.gan_kind = str(gan.get("kind", "nonsaturating"))
        if self.gan_kind not in losses_lib.GAN_KINDS:
            raise ConfigError(f"config.losses.gan.kind={self.gan_kind!r}; expected one of {sorted(losses_lib.GAN_KINDS)}")
        super().__init__(config)
        self.discriminator = build_discriminator(config)
        self.d_tx = optim.make_optimizer(config.disc.optim, config.total_steps)

    def _check_losses(self) -> None:
        if not self.terms and not self.gan_weight:
            raise ConfigError("config.losses has no non-zero weight: nothing to train")

    @property
    def players(self) -> dict[str, tuple[nn.Module, optax.GradientTransformation]]:
        return {"generator": (self.generator, self.g_tx), "discriminator": (self.discriminator, self.d_tx)}

    @staticmethod
    def architecture(config: ml_collections.ConfigDict) -> dict[str, Any]:
        disc = {"name": config.disc.name, **config.disc.kwargs.to_dict()}
        return dict(SRTask.architecture(config), discriminator=disc)

    def init(self) -> TrainState:
        _, hr_shape = self._example_shapes()
        d_params = self.discriminator.init(init_key(self.config.seed, "discriminator"), jnp.zeros(hr_shape))["params"]
        players = {"generator": self._init_generator(), "discriminator": new_player(d_params, self.d_tx)}
        return new_state(self.config.seed, players)

    def step(self, state: TrainState, batch: Batch, consts: Any) -> tuple[TrainState, dict[str, jax.Array]]:
        """Generator update (pixel terms + adversarial term through the current D), then D update on HR (real)
        and the same step's SR (fake, gradient stopped)."""
        del consts
        g, d = state.players["generator"], state.players["discriminator"]
        kind, hr = self.gan_kind, batch["hr"]

        def d_logits(d_params, x):
            return self.discriminator.apply({"params": d_params}, x).astype(jnp.float32)

        def g_loss_fn(params):
            sr = self.generator.apply({"params": params}, batch["lr"]).astype(jnp.float32)
            parts = sum_terms(self.terms, sr, hr)
            real = jax.lax.stop_gradient(d_logits(d.params, hr)) if kind == "ragan" else None
            parts["gan"] = self.gan_weight * losses_lib.gan_g_loss(d_logits(d.params, sr), kind=kind, real_logits=real)
            return sum(parts.values()), (parts, sr)

        (g_loss, (parts, sr)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(g.params)
        g = apply_gradients(g, g_grads, self.g_tx, ema_decay=self.ema_decay)
        sr = jax.lax.stop_gradient(sr)

        def d_loss_fn(d_params):
            real, fake = d_logits(d_params, hr), d_logits(d_params, sr)
            return losses_lib.gan_d_loss(real, fake, kind=kind), (real.mean(), fake.mean())

        (d_loss, (real_mean, fake_mean)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d.params)
        d = apply_gradients(d, d_grads, self.d_tx)
        g_norm, d_norm = optax.tree.norm(g_grads), optax.tree.norm(d_grads)
        metrics = {
            "loss": g_loss,
            "g_grad_norm": g_norm,
            "lr": jnp.asarray(self.g_schedule(state.step), jnp.float32),
            "d_loss": d_loss,
            "d_grad_norm": d_norm,
            "d_real_logit": real_mean,
            "d_fake_logit": fake_mean,
        }
        metrics.update({f"loss_{k}": v for k, v in parts.items()})
        metrics["finite"] = jnp.isfinite(g_loss) & jnp.isfinite(g_norm) & jnp.isfinite(d_loss) & jnp.isfinite(d_norm)
        players = {**state.players, "generator": g, "discriminator": d}
        return state.replace(step=state.step + 1, players=players), metrics


def resolve_data_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Fills in the built-in sample photos: an empty ``data.train_dir`` (folder source) or ``source='builtin'``
    trains on them, and an empty ``data.val_dirs`` validates on the held-out photos. Returns a copy."""
    from jaxgen import data as data_lib

    config = ml_collections.ConfigDict(config.to_dict())
    data = config.data
    builtin_train = data.source == "builtin" or (data.source == "folder" and not data.train_dir)
    if builtin_train or not data.val_dirs:
        train_dir, val_dir = data_lib.write_sample_images(data_lib.cache_root(data) / "samples", holdout=data.holdout)
        if builtin_train:
            data.source, data.train_dir, data.train_lr_dir = "folder", str(train_dir), ""
        if not data.val_dirs:
            data.val_dirs = (str(val_dir),)
    return config
