"""Real-ESRGAN's second-order degradation (Wang et al., ICCV-W 2021, Sec. 3) on device, and its training-pair pool.

:func:`degrade` is ``RealESRGANModel.feed_data`` (``realesrgan/models/realesrgan_model.py``) plus the kernel
sampling of ``RealESRGANDataset``, as one pure, jittable function of a key and a batch of (USM-sharpened) HR
patches ``[B,H,W,3]`` in ``[0,1]`` -> LR ``[B,H/s,W/s,3]`` (8-bit values, float32):

1. blur with a random kernel (``kernel1``: Gaussian / generalized / plateau, iso or aniso, or sinc);
   resize by ``scale ~`` up ``U[1, r_max]`` / down ``U[r_min, 1]`` / keep (``resize_prob``) with a random mode
   (area, bilinear, bicubic); Gaussian (``gaussian_noise_prob``) or Poisson noise, gray with ``gray_noise_prob``;
   clamp, JPEG at ``quality ~ U[jpeg_range]``;
2. the same again (the blur with probability ``second_blur_prob``, kernel ``kernel2``), resized to
   ``int(H / s * scale2)``;
3. in random order (1/2 each): [resize to ``H/s`` (random mode) + final sinc] then JPEG, or JPEG then
   [resize + final sinc]; the final sinc is a sinc with probability ``final_sinc_prob``, else identity;
4. ``clamp(round(255 x), 0, 255) / 255``.

Randomness as the official code: per image -- the kernels, noise strengths and gray choices, JPEG qualities;
per group of the batch (``groups``, below) -- resize direction, factor and mode, Gaussian vs Poisson, whether the
second blur happens, the order of the final step. The changing image sizes run on fixed
canvases (``jaxgen.degradations.resize``), so the whole pipeline compiles once.

Context crop (``context_size``, default 400 as the official): ``RealESRGANDataset`` crops (or pads) each HR
image to 400x400, ``feed_data`` degrades the whole 400 px and then takes ``paired_random_crop`` of ``gt_size``
(256) from the degraded pair, one position per call. The SR tasks do the same (``jaxgen.tasks.sr_common``): the
data pipeline delivers HR crops of ``context_size`` (rounded down to a multiple of the scale), this function
degrades them whole, and :func:`paired_random_crop` cuts the training patch (one position per group).
``context_size=0`` degrades the training patch itself (no border context). Deviation: images smaller than the
context are skipped by the data pipeline (the official code reflect-pads them to 400). Gray Gaussian noise is drawn per image (see ``noise``). ``jpeg_flavour='diffjpeg'`` (default) is
BasicSR's DiffJPEG, as the official training; ``'libjpeg'`` models real JPEG files more closely.

Groups (``groups``, default 4 = the official run). What the official code draws where
(``xinntao/Real-ESRGAN@a4abfb2979a7bbff3f69f58f58ae324608821e27``): ``RealESRGANDataset.__getitem__``
(``realesrgan/data/realesrgan_dataset.py``) draws ``kernel1``, ``kernel2`` and the final sinc kernel per image;
``RealESRGANModel.feed_data`` (``realesrgan/models/realesrgan_model.py``) draws per image the JPEG qualities
(``new_zeros(b).uniform_``) and, inside BasicSR's ``random_add_gaussian_noise_pt`` / ``random_add_poisson_noise_pt``
(``basicsr/data/degradations.py``), the noise strengths and gray choices; it draws once per call -- once per GPU
batch, as every GPU runs its own ``feed_data`` on its 12 images -- the resize direction, factor and mode of each
stage, Gaussian vs Poisson, whether the second blur happens, the order of the final step, and the crop
(``paired_random_crop``). ``options/train_realesrgan_x4plus.yml`` trains on 4 GPUs x 12 images, so a global
batch of 48 holds 4 independent sets of per-call draws. Here the pipeline runs on the global batch (sharded
over the ``data`` mesh axis); ``groups = G`` splits it into ``G`` equal consecutive groups, each with its own
per-call draws: ``G = 4`` (default) is the official run at any batch size divisible by 4 (per-call draws for
``B/4`` images each, like one GPU's 12 of 48); ``G = B`` draws everything per image; ``G = 1`` one set for the
whole batch. The result depends on ``G``, not on the device count.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgen.degradations import filtering, jpeg as jpeg_lib, kernels, noise, resize

__all__ = ["DegradationConfig", "default_degradation_config", "degrade", "paired_random_crop", "pool_init",
           "pool_update"]


def default_degradation_config() -> ml_collections.ConfigDict:
    """``config.degradation``: every setting with the defaults of ``options/train_realesrgan_x4plus.yml``
    (Real-ESRGAN v0.3.0), under the same names."""
    kinds = kernels.KERNEL_TYPES
    probs = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    return ml_collections.ConfigDict(dict(
        # USM-sharpened GT as the target of each loss (the GAN sees the plain GT)
        l1_gt_usm=True, percep_gt_usm=True, gan_gt_usm=False,
        # first degradation
        blur_kernel_size=21, kernel_list=kinds, kernel_prob=probs, sinc_prob=0.1, blur_sigma=(0.2, 3.0),
        betag_range=(0.5, 4.0), betap_range=(1.0, 2.0),
        resize_prob=(0.2, 0.7, 0.1), resize_range=(0.15, 1.5),  # up, down, keep
        gaussian_noise_prob=0.5, noise_range=(1.0, 30.0), poisson_scale_range=(0.05, 3.0), gray_noise_prob=0.4,
        jpeg_range=(30.0, 95.0),
        # second degradation
        second_blur_prob=0.8,
        blur_kernel_size2=21, kernel_list2=kinds, kernel_prob2=probs, sinc_prob2=0.1, blur_sigma2=(0.2, 1.5),
        betag_range2=(0.5, 4.0), betap_range2=(1.0, 2.0),
        resize_prob2=(0.3, 0.4, 0.3), resize_range2=(0.3, 1.2),
        gaussian_noise_prob2=0.5, noise_range2=(1.0, 25.0), poisson_scale_range2=(0.05, 2.5), gray_noise_prob2=0.4,
        jpeg_range2=(30.0, 95.0),
        # final sinc + JPEG
        final_sinc_prob=0.8,
        # training-pair pool (queue) size; must divide by the global batch
        queue_size=180,
        # HR crop (pixels a side) degraded whole before the training patch is cut from the pair (module
        # docstring); rounded down to a multiple of the scale; 0 = degrade the training patch itself
        context_size=400,
        jpeg_flavour="diffjpeg",  # diffjpeg (BasicSR, official) | libjpeg (closer to real JPEG files)
        # independent per-call draws per group of the global batch: 4 = the official 4 GPUs (module docstring);
        # must divide config.batch_size; batch_size = per-image draws, 1 = one draw for the whole batch
        groups=4,
    ))


@dataclasses.dataclass(frozen=True)
class DegradationConfig:
    """Validated, hashable degradation settings (static under jit); see :func:`default_degradation_config`."""

    scale: int
    kernel1: kernels.KernelSpec
    kernel2: kernels.KernelSpec
    resize_prob: tuple[float, float, float]
    resize_range: tuple[float, float]
    gaussian_noise_prob: float
    noise_range: tuple[float, float]
    poisson_scale_range: tuple[float, float]
    gray_noise_prob: float
    jpeg_range: tuple[float, float]
    second_blur_prob: float
    resize_prob2: tuple[float, float, float]
    resize_range2: tuple[float, float]
    gaussian_noise_prob2: float
    noise_range2: tuple[float, float]
    poisson_scale_range2: tuple[float, float]
    gray_noise_prob2: float
    jpeg_range2: tuple[float, float]
    final_sinc_prob: float
    jpeg_flavour: str = "diffjpeg"
    groups: int = 4

    @classmethod
    def from_config(cls, c: ml_collections.ConfigDict, scale: int, where: str = "config.degradation"
                    ) -> "DegradationConfig":
        """From a ``default_degradation_config()``-shaped section; a bad value is a ``ValueError`` naming it."""
        def pair(name: str) -> tuple[float, float]:
            v = tuple(float(x) for x in c[name])
            if len(v) != 2 or v[0] > v[1]:
                raise ValueError(f"{where}.{name}={c[name]!r}: expected (low, high) with low <= high")
            return v

        def prob(name: str) -> float:
            v = float(c[name])
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{where}.{name}={v}: expected a probability in [0, 1]")
            return v

        def probs3(name: str) -> tuple[float, float, float]:
            v = tuple(float(x) for x in c[name])
            if len(v) != 3 or min(v) < 0 or sum(v) <= 0:
                raise ValueError(f"{where}.{name}={c[name]!r}: expected 3 non-negative weights (up, down, keep)")
            return v

        def spec(suffix: str) -> kernels.KernelSpec:
            try:
                return kernels.KernelSpec(
                    max_size=int(c["blur_kernel_size" + suffix]), kernel_list=tuple(c["kernel_list" + suffix]),
                    kernel_prob=tuple(float(x) for x in c["kernel_prob" + suffix]),
                    sinc_prob=float(c["sinc_prob" + suffix]), blur_sigma=pair("blur_sigma" + suffix),
                    betag_range=pair("betag_range" + suffix), betap_range=pair("betap_range" + suffix))
            except ValueError as e:
                raise ValueError(f"{where} (kernel{suffix or '1'}): {e}") from None

        for name in ("resize_range", "resize_range2"):
            lo, hi = pair(name)
            if lo <= 0 or lo > 1 or hi < 1:
                raise ValueError(f"{where}.{name}=({lo}, {hi}): expected 0 < low <= 1 <= high")
        for name in ("jpeg_range", "jpeg_range2"):
            lo, hi = pair(name)
            if lo < 1 or hi > 100:
                raise ValueError(f"{where}.{name}=({lo}, {hi}): JPEG qualities are in [1, 100]")
        if c.jpeg_flavour not in jpeg_lib.FLAVOURS:
            raise ValueError(f"{where}.jpeg_flavour={c.jpeg_flavour!r}; expected one of {jpeg_lib.FLAVOURS}")
        if not isinstance(c.groups, int) or c.groups < 1:
            raise ValueError(f"{where}.groups={c.groups!r}: expected an integer >= 1")
        return cls(
            scale=int(scale), kernel1=spec(""), kernel2=spec("2"),
            resize_prob=probs3("resize_prob"), resize_range=pair("resize_range"),
            gaussian_noise_prob=prob("gaussian_noise_prob"), noise_range=pair("noise_range"),
            poisson_scale_range=pair("poisson_scale_range"), gray_noise_prob=prob("gray_noise_prob"),
            jpeg_range=pair("jpeg_range"), second_blur_prob=prob("second_blur_prob"),
            resize_prob2=probs3("resize_prob2"), resize_range2=pair("resize_range2"),
            gaussian_noise_prob2=prob("gaussian_noise_prob2"), noise_range2=pair("noise_range2"),
            poisson_scale_range2=pair("poisson_scale_range2"), gray_noise_prob2=prob("gray_noise_prob2"),
            jpeg_range2=pair("jpeg_range2"), final_sinc_prob=prob("final_sinc_prob"),
            jpeg_flavour=str(c.jpeg_flavour), groups=int(c.groups))


def _ceil16(n: int) -> int:
    return -(-n // 16) * 16


def _resize_factor(u_dir: jax.Array, u_factor: jax.Array, probs: tuple[float, float, float],
                   rng: tuple[float, float]) -> tuple[jax.Array, jax.Array]:
    """``(direction, factor)`` from two uniforms: direction 0 up ``U[1, hi]``, 1 down ``U[lo, 1]``, 2 keep (1)."""
    p = np.asarray(probs, np.float64)
    cdf = jnp.asarray(np.cumsum(p / p.sum())[:-1], jnp.float32)
    direction = jnp.sum(u_dir >= cdf)
    factor = jnp.where(direction == 0, 1.0 + u_factor * (rng[1] - 1.0),
                       jnp.where(direction == 1, rng[0] + u_factor * (1.0 - rng[0]), 1.0))
    return direction, factor


def _mode(u: jax.Array) -> jax.Array:
    """Uniform choice of area / bilinear / bicubic (``random.choice``) from one uniform."""
    return jnp.minimum(jnp.floor(u * 3).astype(jnp.int32), 2)


def _noise(key: jax.Array, use_gaussian: jax.Array, x: jax.Array, valid_hw: tuple[Any, Any], sigma_range,
           poisson_range, gray_prob: float) -> jax.Array:
    mask = filtering.valid_mask(x.shape[1], x.shape[2], *valid_hw)
    out = jax.lax.cond(
        use_gaussian,
        lambda: noise.add_gaussian_noise(key, x, sigma_range, gray_prob),
        lambda: noise.add_poisson_noise(key, x, poisson_range, gray_prob, valid=mask),
    )
    return out * mask


def _degrade_batch(key: jax.Array, gt: jax.Array, cfg: DegradationConfig) -> tuple[jax.Array, dict[str, jax.Array]]:
    b, h, w, _ = gt.shape
    s = cfg.scale
    k_kernel1, k_kernel2, k_sinc, k_batch, k_noise1, k_noise2, k_quality = jax.random.split(key, 7)
    kernel1 = jax.vmap(kernels.sample_kernel, (0, None))(jax.random.split(k_kernel1, b), cfg.kernel1)
    kernel2 = jax.vmap(kernels.sample_kernel, (0, None))(jax.random.split(k_kernel2, b), cfg.kernel2)
    sinc = jax.vmap(kernels.sample_final_sinc, (0, None, None))(
        jax.random.split(k_sinc, b), cfg.final_sinc_prob, cfg.kernel1.max_size)
    u = jax.random.uniform(k_batch, (11,), jnp.float32)  # the per-batch choices
    quality = jax.random.uniform(k_quality, (2, b), jnp.float32)  # per image, first and final JPEG
    flav = cfg.jpeg_flavour

    # ----- first degradation: blur, resize (scale_factor), noise, JPEG
    out = filtering.filter2d(gt, kernel1)
    dir1, f1 = _resize_factor(u[0], u[1], cfg.resize_prob, cfg.resize_range)
    mode1 = _mode(u[2])
    c1 = (_ceil16(max(h, math.floor(h * cfg.resize_range[1]))), _ceil16(max(w, math.floor(w * cfg.resize_range[1]))))
    h1 = jnp.maximum(jnp.floor(h * f1).astype(jnp.int32), 1)
    w1 = jnp.maximum(jnp.floor(w * f1).astype(jnp.int32), 1)
    out = resize.resize_valid(out, mode1, (h, w), (h1, w1), c1, scale_factor=f1)
    gauss1 = u[3] < cfg.gaussian_noise_prob
    out = _noise(k_noise1, gauss1, out, (h1, w1), cfg.noise_range, cfg.poisson_scale_range, cfg.gray_noise_prob)
    q1 = cfg.jpeg_range[0] + quality[0] * (cfg.jpeg_range[1] - cfg.jpeg_range[0])
    out = jpeg_lib.jpeg_compress(jnp.clip(out, 0, 1), q1, flavour=flav, valid=(h1, w1))

    # ----- second degradation: blur (maybe), resize (size), noise
    blur2 = u[4] < cfg.second_blur_prob
    out = jax.lax.cond(blur2, lambda x: filtering.filter2d_valid(x, kernel2, h1, w1), lambda x: x, out)
    dir2, f2 = _resize_factor(u[5], u[6], cfg.resize_prob2, cfg.resize_range2)
    mode2 = _mode(u[7])
    hl, wl = h // s, w // s
    c2 = (_ceil16(max(hl, math.floor(h / s * cfg.resize_range2[1]))),
          _ceil16(max(wl, math.floor(w / s * cfg.resize_range2[1]))))
    h2 = jnp.maximum(jnp.floor(h / s * f2).astype(jnp.int32), 1)
    w2 = jnp.maximum(jnp.floor(w / s * f2).astype(jnp.int32), 1)
    out = resize.resize_valid(out, mode2, (h1, w1), (h2, w2), c2)
    gauss2 = u[8] < cfg.gaussian_noise_prob2
    out = _noise(k_noise2, gauss2, out, (h2, w2), cfg.noise_range2, cfg.poisson_scale_range2, cfg.gray_noise_prob2)

    # ----- final: [resize back + sinc] and JPEG, in random order
    mode3 = _mode(u[9])
    q3 = cfg.jpeg_range2[0] + quality[1] * (cfg.jpeg_range2[1] - cfg.jpeg_range2[0])
    sinc_first = u[10] < 0.5

    def resize_sinc(x):
        x = resize.resize_valid(x, mode3, (h2, w2), (hl, wl), (hl, wl))
        return filtering.filter2d(x, sinc)

    def order_a(x):  # resize + sinc, then JPEG
        return jpeg_lib.jpeg_compress(jnp.clip(resize_sinc(x), 0, 1), q3, flavour=flav)

    def order_b(x):  # JPEG, then resize + sinc
        return resize_sinc(jpeg_lib.jpeg_compress(jnp.clip(x, 0, 1), q3, flavour=flav, valid=(h2, w2)))

    out = jax.lax.cond(sinc_first, order_a, order_b, out)
    lq = jnp.clip(jnp.round(out * 255.0), 0, 255) / 255.0
    info = {"resize1": dir1, "factor1": f1, "mode1": mode1, "size1": h1, "gaussian1": gauss1, "blur2": blur2,
            "resize2": dir2, "factor2": f2, "mode2": mode2, "size2": h2, "gaussian2": gauss2, "mode3": mode3,
            "sinc_first": sinc_first, "quality1": q1, "quality3": q3}
    return lq, info


def degrade(key: jax.Array, gt: jax.Array, cfg: DegradationConfig, *, return_info: bool = False):
    """LR images ``[B,H/s,W/s,3]`` (float32, multiples of 1/255) from HR ``gt`` ``[B,H,W,3]`` in ``[0,1]``
    (Real-ESRGAN degrades the USM-sharpened GT). ``H, W`` must divide by ``cfg.scale``, ``B`` by ``cfg.groups``.
    ``return_info``: also the per-batch draws (``{name: [groups]}``) for inspection and tests."""
    if gt.ndim != 4 or gt.shape[-1] != 3:
        raise ValueError(f"degrade expects [B,H,W,3] RGB patches; got shape {gt.shape}")
    b, h, w, _ = gt.shape
    if h % cfg.scale or w % cfg.scale:
        raise ValueError(f"degrade: HR patches {h}x{w} do not divide by the scale {cfg.scale}")
    g = cfg.groups
    if b % g:
        raise ValueError(f"degrade: batch {b} does not divide into degradation.groups={g}")
    gt = gt.astype(jnp.float32)
    if g == 1:
        lq, info = _degrade_batch(key, gt, cfg)
        info = jax.tree.map(lambda x: x[None], info)
    else:
        grouped = gt.reshape(g, b // g, h, w, 3)
        lq, info = jax.vmap(lambda k, x: _degrade_batch(k, x, cfg))(jax.random.split(key, g), grouped)
        lq = lq.reshape(b, *lq.shape[2:])
    return (lq, info) if return_info else lq


def paired_random_crop(key: jax.Array, gts: list[jax.Array], lq: jax.Array, gt_size: int, scale: int,
                       groups: int = 1) -> tuple[list[jax.Array], jax.Array]:
    """BasicSR's ``paired_random_crop`` (``basicsr/data/transforms.py``@8d56e3a) on batches, as
    ``RealESRGANModel.feed_data`` calls it: one random LQ position ``(top, left)`` per call -- here per group of
    ``groups`` consecutive images -- ``top ~ U{0..h - gt_size/scale}``, the HR crops at ``scale`` x it.
    ``gts``: HR batches ``[B,H,W,C]`` (``H = scale h``); ``lq``: ``[B,h,w,C]``. Returns ``(gt crops, lq crop)``."""
    b, h, w, _ = lq.shape
    if gt_size % scale:
        raise ValueError(f"paired_random_crop: gt_size {gt_size} does not divide by the scale {scale}")
    p = gt_size // scale
    if h < p or w < p:
        raise ValueError(f"paired_random_crop: LQ {h}x{w} is smaller than the patch {p}x{p}")
    for g in gts:
        if g.shape[1:3] != (h * scale, w * scale):
            raise ValueError(f"paired_random_crop: GT {g.shape[1:3]} is not {scale}x the LQ {h}x{w}")
    if b % groups:
        raise ValueError(f"paired_random_crop: batch {b} does not divide into {groups} groups")
    k_top, k_left = jax.random.split(key)
    top = jnp.repeat(jax.random.randint(k_top, (groups,), 0, h - p + 1), b // groups)
    left = jnp.repeat(jax.random.randint(k_left, (groups,), 0, w - p + 1), b // groups)

    def crop(x, t, l, n):
        return jax.lax.dynamic_slice(x, (t * n, l * n, 0), (p * n, p * n, x.shape[-1]))

    lq_out = jax.vmap(lambda x, t, l: crop(x, t, l, 1))(lq, top, left)
    gt_out = [jax.vmap(lambda x, t, l: crop(x, t, l, scale))(g, top, left) for g in gts]
    return gt_out, lq_out


# ------------------------------------------------------------------------------------------ pair pool


def pool_init(queue_size: int, lq_shape: tuple[int, ...], gt_shape: tuple[int, ...]) -> dict[str, jax.Array]:
    """An empty training-pair pool (``state.buffers['pool']``): ``lq`` ``[Q,h,w,3]`` and ``gt`` ``[Q,H,W,3]`` as
    uint8 (the pairs are 8-bit values: exact and 4x smaller) and the fill pointer ``ptr``."""
    return {"lq": jnp.zeros((queue_size, *lq_shape[1:]), jnp.uint8),
            "gt": jnp.zeros((queue_size, *gt_shape[1:]), jnp.uint8),
            "ptr": jnp.zeros((), jnp.int32)}


def _u8(x: jax.Array) -> jax.Array:
    return jnp.clip(jnp.round(x * 255.0), 0, 255).astype(jnp.uint8)


def pool_update(pool: dict[str, jax.Array], lq: jax.Array, gt: jax.Array, key: jax.Array
                ) -> tuple[dict[str, jax.Array], jax.Array, jax.Array]:
    """``RealESRGANModel._dequeue_and_enqueue``: while the pool fills, enqueue the batch and train on it; once
    full, shuffle the pool, train on its first ``B`` pairs and put the new batch in their place.
    Returns ``(pool, lq, gt)`` (float32 in ``[0,1]``)."""
    q, b = pool["lq"].shape[0], lq.shape[0]
    if q % b:
        raise ValueError(f"degradation.queue_size={q} must be divisible by the global batch size {b}")
    new_lq, new_gt = _u8(lq), _u8(gt)

    def fill(p):
        ptr = p["ptr"]
        lqs = jax.lax.dynamic_update_slice_in_dim(p["lq"], new_lq, ptr, axis=0)
        gts = jax.lax.dynamic_update_slice_in_dim(p["gt"], new_gt, ptr, axis=0)
        return {"lq": lqs, "gt": gts, "ptr": ptr + b}, new_lq, new_gt

    def swap(p):
        idx = jax.random.permutation(key, q)
        lqs, gts = p["lq"][idx], p["gt"][idx]
        out_lq, out_gt = lqs[:b], gts[:b]
        return {"lq": lqs.at[:b].set(new_lq), "gt": gts.at[:b].set(new_gt), "ptr": p["ptr"]}, out_lq, out_gt

    pool, out_lq, out_gt = jax.lax.cond(pool["ptr"] >= q, swap, fill, pool)
    return pool, out_lq.astype(jnp.float32) / 255.0, out_gt.astype(jnp.float32) / 255.0
