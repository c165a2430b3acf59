"""Weight files <-> flat ``{name: np.ndarray}`` state dicts, by file extension.

======================================  ==================================================================
extension                               reader / writer
======================================  ==================================================================
``.pth`` ``.pt`` ``.bin`` ``.ckpt``     ``torch.save`` zip or legacy file (``torch_checkpoint``, no PyTorch, no
``.pkl`` ``.pickle``                    pickled code), or a plain numpy pickle (``safe_pickle.load_pickle``);
                                        chosen by content. Writing ``.pth``/``.pt`` needs PyTorch installed.
``.safetensors``                        read here from the format's spec (all dtypes incl. ``F8_E4M3``,
                                        ``F8_E5M2``, ``F8_E8M0`` via ``ml_dtypes``); written with the
                                        ``safetensors`` library
``.npz``                                ``numpy.lib.format`` per member (``allow_pickle=False``) / ``np.savez``
``.h5`` ``.hdf5``                       ``h5py``, Keras weight files (read only; see ``read_keras_h5``)
======================================  ==================================================================

Every reader bounds its work by the file (issue 18): the bytes it will allocate are computed from the file's
claims (Python integers, no overflow) and refused beyond ``MAX_EXPANSION`` times the file size plus
``EXPANSION_SLACK`` before anything is allocated (sparse HDF5 datasets, deflated ``.npz`` members); HDF5 links
other than hard links, external raw storage and virtual datasets are refused (no data from outside the file);
nested containers are flattened to at most ``MAX_ENTRIES`` names. Every failure is a one-line ``WeightsError``
(a ``ValueError``) naming the file.

Pickled checkpoints are unwrapped first: while the object is a dict holding a dict under one of
``WRAPPER_KEYS`` (``params_ema``, then ``params``, ``state_dict``, ``model``; BasicSR/Real-ESRGAN store
``params_ema`` and ``params``), that dict is taken. Nested dicts/lists are then flattened with ``.`` (torch
style: ``{'body': {'0': {'weight': w}}}`` -> ``body.0.weight``).
"""

from __future__ import annotations

import json
import math
import os
import struct
import zipfile
from collections.abc import Mapping
from typing import Any

import ml_dtypes
import numpy as np

from jaxgen.weights.safe_pickle import MAX_DEPTH, REDOWNLOAD, WeightsError, is_numeric_dtype, load_pickle, one_line
from jaxgen.weights.torch_checkpoint import (
    EXPANSION_SLACK,
    MAX_EXPANSION,
    is_legacy_torch_file,
    read_torch_checkpoint,
)

__all__ = ["MAX_ENTRIES", "MAX_NAME", "SAFETENSORS_DTYPES", "WRAPPER_KEYS", "flatten_state_dict", "load_state_dict",
           "read_keras_h5", "read_npz", "read_safetensors", "save_state_dict", "unwrap_checkpoint"]

MAX_ENTRIES = 200_000  # names in one flattened state dict (large models have a few thousand)
MAX_NAME = 4096  # characters in one flattened name (torch / Keras names are well under 200)

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
    any other leaf (string, None, an object) -> ``WeightsError`` naming ``source`` and the key; so do more than
    ``MAX_ENTRIES`` names (a shared sub-list referenced from many places can spell exponentially many paths),
    names longer than ``MAX_NAME`` (a long key shared by every level) and nesting deeper than ``MAX_DEPTH``."""
    out: StateDict = {}
    visited = 0

    def walk(node: Any, prefix: str, depth: int) -> None:
        nonlocal visited
        if depth > MAX_DEPTH:
            raise WeightsError(f"{source}: containers nested deeper than {MAX_DEPTH} levels; not a state dict")
        if isinstance(node, Mapping):
            items = [(str(k), v) for k, v in node.items()]
        elif isinstance(node, (list, tuple)):
            items = [(str(i), v) for i, v in enumerate(node)]
        else:
            raise WeightsError(f"{source}: expected a dict of tensors, found a {type(node).__name__}")
        for key, value in items:
            visited += 1
            if visited > MAX_ENTRIES:
                raise WeightsError(f"{source}: more than {MAX_ENTRIES} entries to flatten (shared containers "
                                   f"nested into exponentially many paths?); not a state dict: {REDOWNLOAD}")
            name = f"{prefix}{key}"
            if len(name) > MAX_NAME:
                raise WeightsError(f"{source}: an entry name is longer than {MAX_NAME} characters "
                                   f"({name[:60]!r}...); not a state dict: {REDOWNLOAD}")
            if isinstance(value, np.ndarray):
                out[name] = value
            elif isinstance(value, (bool, int, float, np.generic)):
                out[name] = np.asarray(value)
            elif isinstance(value, (Mapping, list, tuple)):
                walk(value, name + ".", depth + 1)
            else:
                raise WeightsError(f"{source}: entry {name!r} is a {type(value).__name__}, not a tensor")

    walk(obj, prefix, 0)
    return out


def _read_pickled(path: str) -> Any:
    if zipfile.is_zipfile(path):
        return read_torch_checkpoint(path)
    with open(path, "rb") as f:
        head = f.read(32)
    if head.startswith(b"PK\x03\x04"):
        raise WeightsError(f"{path}: corrupt zip archive (no readable central directory; truncated?)")
    if is_legacy_torch_file(head):
        return read_torch_checkpoint(path)
    return load_pickle(path)


# safetensors dtype names (huggingface/safetensors ``safetensors/src/tensor.rs`` ``Dtype``) -> numpy dtypes.
SAFETENSORS_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_), "U8": np.dtype(np.uint8), "I8": np.dtype(np.int8), "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"), "U32": np.dtype("<u4"), "I32": np.dtype("<i4"), "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"), "F16": np.dtype("<f2"), "F32": np.dtype("<f4"), "F64": np.dtype("<f8"),
    "C64": np.dtype("<c8"), "BF16": np.dtype(ml_dtypes.bfloat16), "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn),
    "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2), "F8_E8M0": np.dtype(ml_dtypes.float8_e8m0fnu),
}
SAFETENSORS_MAX_HEADER = 100_000_000  # the safetensors library's own limit


def read_safetensors(path: str) -> StateDict:
    """A ``.safetensors`` file -> ``{name: array}`` (writeable copies), read by the format's spec
    (huggingface/safetensors ``README.md`` "Format", release v0.8.0, the version jaxgen installs): an 8-byte
    little-endian header length N, N bytes of JSON ``{name: {"dtype", "shape", "data_offsets": [begin, end]},
    "__metadata__": {...}}``, then the data, every byte of it belonging to exactly one tensor. Little-endian data;
    dtypes of ``SAFETENSORS_DTYPES`` (float8 via ``ml_dtypes``); the packed sub-byte floats (``F4``, ``F6_*``)
    are refused. Any inconsistency -> ``WeightsError`` before the tensor data is read."""
    size = os.path.getsize(path)

    def bad(what: str) -> WeightsError:
        return WeightsError(f"{path}: not a readable safetensors file ({what}): {REDOWNLOAD}")

    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise bad("shorter than its 8-byte header length")
        (n,) = struct.unpack("<Q", head)
        if n > min(SAFETENSORS_MAX_HEADER, size - 8):
            raise bad(f"header length {n} exceeds the file's {size} bytes or the format's limit")
        try:
            header = json.loads(f.read(n))
        except (ValueError, UnicodeDecodeError) as e:
            raise bad(f"header is not JSON: {one_line(e)}") from None
        if not isinstance(header, dict):
            raise bad("header is not a JSON object")
        data_size = size - 8 - n
        entries = []
        for name, info in header.items():
            if name == "__metadata__":
                continue
            ok = isinstance(info, dict) and isinstance(info.get("dtype"), str) and isinstance(info.get("shape"), list)
            ok = ok and all(type(d) is int and d >= 0 for d in info["shape"]) and len(info["shape"]) <= 32
            offsets = info.get("data_offsets") if ok else None
            if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
                raise bad(f"tensor {name!r:.80}: malformed entry {json.dumps(info)[:120]}")
            dtype_name, shape = info["dtype"], tuple(info["shape"])
            if dtype_name not in SAFETENSORS_DTYPES:
                raise WeightsError(
                    f"{path}: tensor {name!r:.80} has dtype {dtype_name!r:.20}, which jaxgen does not read "
                    f"(supported: {', '.join(SAFETENSORS_DTYPES)}); save it as F32, F16 or BF16")
            dtype = SAFETENSORS_DTYPES[dtype_name]
            begin, end = offsets
            nbytes = math.prod(shape) * dtype.itemsize
            if not 0 <= begin <= end <= data_size or end - begin != nbytes:
                raise bad(f"tensor {name!r:.80} of shape {shape} {dtype_name} needs {nbytes} bytes; its offsets "
                          f"{offsets} do not hold them within the {data_size} data bytes")
            entries.append((begin, end, name, dtype, shape))
        entries.sort(key=lambda e: (e[0], e[1]))
        pos = 0
        for begin, end, name, _, _ in entries:
            if begin != pos:
                raise bad(f"tensor {name!r:.80} starts at {begin}, not at {pos} (overlapping tensors or a hole)")
            pos = end
        if pos != data_size:
            raise bad(f"{data_size - pos} data bytes belong to no tensor")
        out: StateDict = {}
        for begin, end, name, dtype, shape in entries:
            buf = bytearray(end - begin)
            f.seek(8 + n + begin)
            if f.readinto(buf) != len(buf):
                raise bad(f"tensor {name!r:.80} is truncated")
            out[name] = np.frombuffer(buf, dtype).reshape(shape)
    return out


def _budget(path: str) -> int:
    return MAX_EXPANSION * os.path.getsize(path) + EXPANSION_SLACK


def read_npz(path: str) -> StateDict:
    """An ``.npz`` archive -> ``{name: array}``: each member's ``.npy`` header (``numpy.lib.format``) is read
    first and its claim (``prod(shape) * itemsize``, numeric dtypes only, no pickles) checked against
    ``MAX_EXPANSION`` times the file size + ``EXPANSION_SLACK`` in all before the data is inflated."""
    fmt = np.lib.format
    headers = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}
    budget = _budget(path)
    out: StateDict = {}
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                with z.open(info) as fp:
                    version = fmt.read_magic(fp)
                    if version not in headers:
                        raise WeightsError(f"{path}: member {info.filename!r} is .npy format {version}; "
                                           "expected 1.0 or 2.0")
                    shape, fortran, dtype = headers[version](fp)
                    if not is_numeric_dtype(dtype):
                        raise WeightsError(f"{path}: member {info.filename!r} has dtype {dtype}, not a numeric one")
                    nbytes = math.prod(shape) * dtype.itemsize
                    budget -= nbytes
                    if budget < 0:
                        raise WeightsError(
                            f"{path}: member {info.filename!r} claims {nbytes} bytes (shape {shape}, {dtype}), more "
                            f"than {MAX_EXPANSION}x the file size + {EXPANSION_SLACK >> 20} MiB in all (a zip bomb?); "
                            f"refusing it: {REDOWNLOAD}")
                    raw = fp.read(nbytes)
                    if len(raw) != nbytes:
                        raise WeightsError(f"{path}: member {info.filename!r} is truncated: {REDOWNLOAD}")
                    arr = np.frombuffer(raw, dtype)
                    out[name] = np.array(arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape))
    except WeightsError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError, SyntaxError) as e:
        raise WeightsError(f"{path}: not a readable .npz archive ({one_line(e)}): {REDOWNLOAD}") from None
    return out


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

    Only data inside the file is read: external and soft links, external raw storage and virtual datasets are
    refused; numeric datasets only; the bytes of all datasets read may not exceed ``MAX_EXPANSION`` times the
    file size + ``EXPANSION_SLACK`` (a sparse or highly compressed dataset claiming gigabytes is refused before
    it is read). Any problem -> ``WeightsError`` naming the file.
    """
    import h5py  # optional dependency: only Keras .h5 files need it

    out: StateDict = {}
    budget = _budget(path)
    size = os.path.getsize(path)

    def child(group: Any, name: str, where: str) -> Any:
        link = group.get(name, getlink=True)
        if link is None:
            raise KeyError(f"{where!r} not found")
        if isinstance(link, h5py.ExternalLink):
            raise WeightsError(f"{path}: {where!r} is an external link to {link.filename}:{link.path}; refusing to "
                               "read data from outside the given file (save the weights as one self-contained file)")
        if not isinstance(link, h5py.HardLink):
            raise WeightsError(f"{path}: {where!r} is a {type(link).__name__} (Keras weight files have only hard "
                               "links); refusing it")
        return group[name]

    def at(group: Any, rel: str, where: str) -> Any:
        for part in [p for p in rel.split("/") if p]:
            group = child(group, part, where)
        return group

    def read(ds: Any, key: str) -> np.ndarray:
        nonlocal budget
        if not isinstance(ds, h5py.Dataset):
            raise WeightsError(f"{path}: {key!r} is not a dataset")
        if ds.is_virtual or ds.external:
            raise WeightsError(f"{path}: dataset {key!r} keeps its data in external files "
                               f"({'virtual dataset' if ds.is_virtual else ds.external[0][0]}); refusing to read "
                               "data from outside the given file (save the weights as one self-contained file)")
        if ds.shape is None or not is_numeric_dtype(ds.dtype):
            raise WeightsError(f"{path}: dataset {key!r} ({ds.dtype}, shape {ds.shape}) is not a numeric array")
        nbytes = math.prod(ds.shape) * ds.dtype.itemsize
        chunk = math.prod(ds.chunks) * ds.dtype.itemsize if ds.chunks else 0
        budget -= nbytes
        if budget < 0 or chunk > MAX_EXPANSION * size + EXPANSION_SLACK:
            raise WeightsError(
                f"{path}: dataset {key!r} claims {nbytes} bytes (shape {ds.shape}, {ds.dtype}), more than this "
                f"{size}-byte file can hold ({MAX_EXPANSION}x its size + {EXPANSION_SLACK >> 20} MiB in all: a sparse "
                f"or over-compressed dataset); refusing it: {REDOWNLOAD}")
        return np.asarray(ds[()])

    try:
        with h5py.File(path, "r") as f:
            root = child(f, "model_weights", "model_weights") if "model_weights" in f else f
            if "layer_names" in root.attrs:
                for layer in root.attrs["layer_names"]:
                    layer = layer.decode() if isinstance(layer, bytes) else str(layer)
                    group = at(root, layer, layer)
                    for wname in group.attrs.get("weight_names", []):
                        wname = wname.decode() if isinstance(wname, bytes) else str(wname)
                        short = _strip_tf_suffix(wname)
                        if short.startswith(layer + "/"):
                            short = short[len(layer) + 1 :]
                        key = f"{layer}/{short}"
                        out[key] = read(at(group, wname, key), key)
            else:

                def visit(group: Any, prefix: str, depth: int) -> None:
                    if depth > MAX_DEPTH:
                        raise WeightsError(f"{path}: groups nested deeper than {MAX_DEPTH} levels")
                    for name in group:
                        full = f"{prefix}{name}"
                        obj = child(group, name, full)
                        if isinstance(obj, h5py.Group):
                            visit(obj, full + "/", depth + 1)
                        else:
                            out[_strip_tf_suffix(full)] = read(obj, full)

                visit(root, "", 0)
    except WeightsError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:
        raise WeightsError(f"{path}: not a readable Keras HDF5 weight file ({one_line(e)}): {REDOWNLOAD}") from None
    return out


def _check_path(path: str | os.PathLike, exts: tuple[str, ...], verb: str) -> tuple[str, str]:
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in exts:
        raise WeightsError(f"{path}: cannot {verb} a {ext or 'extension-less'} file; supported: {', '.join(exts)}")
    return path, ext


def load_state_dict(path: str | os.PathLike) -> StateDict:
    """A weight file -> flat ``{name: np.ndarray}`` (torch-style ``.``-joined names; ``layer/weight`` for Keras .h5).

    See the module docstring for formats and wrapper unwrapping. Arrays keep the file's layout and dtype (torch
    conv weights ``OIHW``; bfloat16 as ``ml_dtypes.bfloat16``); convert with ``jaxgen.weights.convert``. Missing
    file, unknown extension or a corrupt file -> ``WeightsError`` (``UnsafePickleError`` for a pickle naming a
    forbidden global). Every such error is a ``WeightsError`` (a ``ValueError``): one line naming the file.
    """
    path, ext = _check_path(path, READ_EXTS, "read weights from")
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: no such file")
    if ext in PICKLE_EXTS:
        obj = unwrap_checkpoint(_read_pickled(path))
        state = flatten_state_dict(obj, path)
    elif ext == ".safetensors":
        state = read_safetensors(path)
    elif ext == ".npz":
        state = read_npz(path)
    else:
        state = read_keras_h5(path)
    if not state:
        raise WeightsError(f"{path}: holds no tensors")
    return state


def _as_arrays(state_dict: Mapping[str, Any], path: str) -> StateDict:
    out: StateDict = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise ValueError(f"{path}: state dict keys must be strings; got {key!r}")
        arr = np.asarray(value)
        if arr.dtype == object:
            raise ValueError(f"{path}: entry {key!r} is not a numeric array")
        out[key] = np.asarray(arr, order="C")
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
