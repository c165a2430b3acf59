"""Generator weights to start a run from (``config.init_from``): the ESRGAN / Real-ESRGAN protocols start the GAN
stage from a PSNR-oriented model (``pretrain_network_g`` in BasicSR's options).

``init_from`` is one of:

* a model-zoo name (``jaxgen.weights.zoo``, e.g. ``realesrgan-x4plus``): the official weights from the installed ncnn files;
* an official PyTorch weight file (``.pth``/``.pt``/``.safetensors``/``.npz``; BasicSR's ``params_ema`` wrapper
  key first), converted by ``jaxgen.weights.load_pretrained`` for the config's generator;
* a jaxgen workdir: its latest checkpoint's exported generator params (the EMA when it kept one).

The loaded tree must have exactly the generator's parameter shapes; otherwise a ``ValueError`` names the source
and the first mismatches. :func:`describe` gives ``'source + sha256'`` for the run's metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxgen.files import file_sha256
from jaxgen.train import checkpoint
from jaxgen.weights import zoo
from jaxgen.weights.convert import ARCHS, load_pretrained

__all__ = ["describe", "load_generator_params"]

_WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors", ".npz", ".ckpt")


def describe(source: str) -> str:
    """``'<source> sha256 <hex>'`` for a file, the zoo's files for a zoo name, ``'<workdir> (jaxgen run)'``."""
    if source in zoo.ZOO:
        param, bin_ = zoo.find_files(source)
        return f"zoo {source}: {bin_} sha256 {file_sha256(bin_)}"
    path = Path(source)
    if path.is_file():
        return f"{path} sha256 {file_sha256(path)}"
    return f"{path} (jaxgen workdir)"


def _raw(source: str, config: ml_collections.ConfigDict) -> Any:
    if source in zoo.ZOO:
        conv = zoo.read(source)
        if conv.arch != config.model.name or conv.scale != config.scale:
            raise ValueError(f"config.init_from={source!r} is a x{conv.scale} {conv.arch}; the config trains a "
                             f"x{config.scale} {config.model.name}")
        return conv.params
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"config.init_from={source!r}: a folder without config.json is not a jaxgen workdir")
        record = checkpoint.read_task_record(path)  # workdirs of before task.json: SR runs export the generator
        params, _ = checkpoint.restore_exported(path, player=record["export_player"] if record else "generator")
        return params
    if path.is_file() and path.suffix.lower() in _WEIGHT_SUFFIXES:
        name = config.model.name
        if name not in ARCHS:
            raise ValueError(f"config.init_from={source!r}: no official weight converter for model {name!r} "
                             f"(known: {sorted(ARCHS)})")
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in config.model.to_dict().items() if k != "name"}
        _, params = load_pretrained(name, str(path), scale=config.scale, **kwargs)
        return params
    raise ValueError(f"config.init_from={source!r}: not a zoo model ({', '.join(zoo.ZOO)}), a weight file "
                     f"({', '.join(_WEIGHT_SUFFIXES)}) or a jaxgen workdir")


def load_generator_params(source: str, config: ml_collections.ConfigDict, abstract: Any) -> Any:
    """The params of ``source`` as numpy float32, checked against ``abstract`` (the generator's param shapes)."""
    params = jax.tree.map(lambda x: np.asarray(x, np.float32), _raw(source, config))
    want = jax.tree_util.tree_flatten_with_path(abstract)[0]
    got = dict(jax.tree_util.tree_flatten_with_path(params)[0])
    problems = []
    for path, leaf in want:
        have = got.pop(path, None)
        name = jax.tree_util.keystr(path)
        if have is None:
            problems.append(f"missing {name}")
        elif tuple(have.shape) != tuple(leaf.shape):
            problems.append(f"{name} has shape {tuple(have.shape)}, the model {tuple(leaf.shape)}")
    problems += [f"unexpected {jax.tree_util.keystr(p)}" for p in got]
    if problems:
        raise ValueError(f"config.init_from={source!r} does not fit config.model ({len(problems)} problems: "
                         + "; ".join(problems[:4]) + ")")
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(abstract), [got_leaf for got_leaf in
                                        (dict(jax.tree_util.tree_flatten_with_path(params)[0])[p] for p, _ in want)])
