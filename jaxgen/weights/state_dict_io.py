"""Weight files <-> flat ``{name: np.ndarray}`` state dicts, by file extension.

======================================  ==================================================================
extension                               reader / writer
======================================  ==================================================================
``.pth`` ``.pt`` ``.bin`` ``.ckpt``     ``torch.save`` zip or legacy file (``torch_checkpoint``, no PyTorch, no
``.pkl`` ``.pickle``                    pickled code), or a plain numpy pickle (``safe_pickle.load_pickle``);
                                        chosen by content. Writing ``.pth``/``.pt`` needs PyTorch installed.
``.safetensors``                        the ``safetensors`` library (numpy API)
``.npz``                                ``np.load(allow_pickle=False)`` / ``np.savez``
``.h5`` ``.hdf5``                       ``h5py``, Keras weight files (read only; see ``read_keras_h5``)
======================================  ==================================================================

Pickled checkpoints are unwrapped first: while the object is a dict holding a dict under one of
``WRAPPER_KEYS`` (``params_ema``, then ``params``, ``state_dict``, ``model``; BasicSR/Real-ESRGAN store
``params_ema`` and ``params``), that dict is taken. Nested dicts/lists are then flattened with ``.`` (torch
style: ``{'body': {'0': {'weight': w}}}`` -> ``body.0.weight``).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from typing import Any

import ml_dtypes
import numpy as np

from jaxgen.weights.safe_pickle import load_pickle
from jaxgen.weights.torch_checkpoint import is_legacy_torch_file, read_torch_checkpoint

__all__ = ["WRAPPER_KEYS", "flatten_state_dict", "load_state_dict", "read_keras_h5", "save_state_dict",
           "unwrap_checkpoint"]

WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model")
PICKLE_EXTS = (".pth", ".pt", ".bin", ".ckpt", ".pkl", ".pickle")
READ_EXTS = PICKLE_EXTS + (".safetensors", ".npz", ".h5", ".hdf5")
WRITE_EXTS = (".safetensors", ".npz", ".pth", ".pt")

StateDict = dict[str, np.ndarray]


def unwrap_checkpoint(obj: Any) -> Any:
    """Descend into ``obj[k]`` for the first ``k`` of ``WRAPPER_KEYS`` whose value is a dict, while there is one."""
    while isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
        else:
            return obj
    return obj


def flatten_state_dict(obj: Any, source: str, prefix: str = "") -> StateDict:
    """Nested dicts/lists/tuples of arrays -> ``{'a.b.0.c': np.ndarray}``. Python/numpy numbers become 0-d arrays;
    any other leaf (string, None, an object) -> ``ValueError`` naming ``source`` and the key."""
    out: StateDict = {}
    if isinstance(obj, Mapping):
        items = [(str(k), v) for k, v in obj.items()]
    elif isinstance(obj, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(obj)]
    else:
        raise ValueError(f"{source}: expected a dict of tensors, found a {type(obj).__name__}")
    for key, value in items:
        name = f"{prefix}{key}"
        if isinstance(value, np.ndarray):
            out[name] = value
        elif isinstance(value, (bool, int, float, np.generic)):
            out[name] = np.asarray(value)
        elif isinstance(value, (Mapping, list, tuple)):
            out.update(flatten_state_dict(value, source, name + "."))
        else:
            raise ValueError(f"{source}: entry {name!r} is a {type(value).__name__}, not a tensor")
    return out


def _read_pickled(path: str) -> Any:
    if zipfile.is_zipfile(path):
        return read_torch_checkpoint(path)
    with open(path, "rb") as f:
        head = f.read(32)
    if is_legacy_torch_file(head):
        return read_torch_checkpoint(path)
    return load_pickle(path)


def _read_safetensors(path: str) -> StateDict:
    import safetensors
    import safetensors.numpy

    try:
        return dict(safetensors.numpy.load_file(path))
    except (safetensors.SafetensorError, OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0] if str(e) else e!r})") from None


def _read_npz(path: str) -> StateDict:
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ValueError("a single .npy array, not an .npz archive")
            return {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise ValueError(f"{path}: not a readable .npz archive ({e})") from None


def _strip_tf_suffix(name: str) -> str:
    return name[:-2] if name.endswith(":0") else name


def read_keras_h5(path: str) -> StateDict:
    """Keras weight file (``model.save_weights(...h5)`` or a full ``model.save(...h5)``) -> ``{'layer/weight': array}``.

    Keras 1/2 HDF5 layout: a root (or ``model_weights``) group with attribute ``layer_names``; each layer group
    lists its datasets in ``weight_names`` (``'block1_conv1/kernel:0'``). Keys are ``<layer>/<weight name>``
    without the TensorFlow ``:0`` suffix and without a repeated ``<layer>/`` prefix: ``block1_conv1/kernel``,
    ``block1_conv1/bias`` (Keras 2), ``block1_conv1/block1_conv1_W_1`` (Keras 1). Arrays keep Keras layouts
    (conv kernels HWIO, dense ``(in, out)``). A file without ``layer_names`` (e.g. Keras 3 ``.weights.h5``) gives
    every dataset under its full path, ``:0`` stripped (``layers/conv2d/vars/0``).
    """
    import h5py

    out: StateDict = {}
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            if "layer_names" in root.attrs:
                for layer in root.attrs["layer_names"]:
                    layer = layer.decode() if isinstance(layer, bytes) else str(layer)
                    group = root[layer]
                    for wname in group.attrs.get("weight_names", []):
                        wname = wname.decode() if isinstance(wname, bytes) else str(wname)
                        short = _strip_tf_suffix(wname)
                        if short.startswith(layer + "/"):
                            short = short[len(layer) + 1 :]
                        out[f"{layer}/{short}"] = np.asarray(group[wname][()])
            else:

                def visit(name: str, obj: Any) -> None:
                    if isinstance(obj, h5py.Dataset):
                        out[_strip_tf_suffix(name)] = np.asarray(obj[()])

                root.visititems(visit)
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"{path}: not a readable Keras HDF5 weight file ({e})") from None
    return out


def _check_path(path: str | os.PathLike, exts: tuple[str, ...], verb: str) -> tuple[str, str]:
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in exts:
        raise ValueError(f"{path}: cannot {verb} a {ext or 'extension-less'} file; supported: {', '.join(exts)}")
    return path, ext


def load_state_dict(path: str | os.PathLike) -> StateDict:
    """A weight file -> flat ``{name: np.ndarray}`` (torch-style ``.``-joined names; ``layer/weight`` for Keras .h5).

    See the module docstring for formats and wrapper unwrapping. Arrays keep the file's layout and dtype (torch
    conv weights ``OIHW``; bfloat16 as ``ml_dtypes.bfloat16``); convert with ``jaxgen.weights.convert``. Missing
    file, unknown extension or a corrupt file -> ``ValueError`` (``UnsafePickleError`` for a pickle naming a
    forbidden global).
    """
    path, ext = _check_path(path, READ_EXTS, "read weights from")
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    if ext in PICKLE_EXTS:
        obj = unwrap_checkpoint(_read_pickled(path))
        state = flatten_state_dict(obj, path)
    elif ext == ".safetensors":
        state = _read_safetensors(path)
    elif ext == ".npz":
        state = _read_npz(path)
    else:
        state = read_keras_h5(path)
    if not state:
        raise ValueError(f"{path}: holds no tensors")
    return state


def _as_arrays(state_dict: Mapping[str, Any], path: str) -> StateDict:
    out: StateDict = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise ValueError(f"{path}: state dict keys must be strings; got {key!r}")
        arr = np.asarray(value)
        if arr.dtype == object:
            raise ValueError(f"{path}: entry {key!r} is not a numeric array")
        out[key] = np.ascontiguousarray(arr)
    return out


def save_state_dict(path: str | os.PathLike, state_dict: Mapping[str, Any]) -> None:
    """Write a flat ``{name: array}`` (numpy or JAX arrays) by extension: ``.safetensors`` (safetensors library),
    ``.npz`` (``np.savez``), ``.pth``/``.pt`` (``torch.save`` of CPU tensors; needs PyTorch, else ``ValueError``).
    Other extensions -> ``ValueError``."""
    path, ext = _check_path(path, WRITE_EXTS, "write weights to")
    arrays = _as_arrays(state_dict, path)
    if ext == ".safetensors":
        import safetensors.numpy

        safetensors.numpy.save_file(arrays, path)
    elif ext == ".npz":
        np.savez(path, **arrays)
    else:
        try:
            import torch
        except ImportError:
            raise ValueError(
                f"{path}: writing {ext} needs PyTorch (pip install torch); write .safetensors or .npz instead"
            ) from None
        def to_torch(a: np.ndarray) -> Any:
            if a.dtype == ml_dtypes.bfloat16:  # numpy has no bfloat16: reinterpret the bits
                return torch.from_numpy(a.view(np.uint16).copy()).view(torch.bfloat16)
            return torch.from_numpy(a.copy())

        torch.save({k: to_torch(v) for k, v in arrays.items()}, path)
