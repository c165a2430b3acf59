"""jaxgen's ncnn reader and Real-ESRGAN converters against the ncnn runtime itself (PyPI ``ncnn``, CPU, fp32 math).

Independent truth: ncnn's own C++ implementation running the same ``.param``/``.bin`` files. Synthetic tiny graphs
(written here in fp32 and fp16 storage) test the reader without the model package; the packaged Real-ESRGAN files
are checked on a 16x16 crop of a real photo. Measured max |jaxgen - ncnn| is ~1e-5 on outputs in ~[-0.5, 1.5]
(float32 summation order); the tolerance is 1e-4.
"""

from __future__ import annotations

import struct
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import models
from jaxgen.weights import ncnn as nc

ATOL = 1e-4


def _ncnn_run(param: Path, bin_: Path, x_hwc: np.ndarray, out_blob: str = "output") -> np.ndarray:
    """Run an ncnn model on CPU with fp16/bf16 storage and arithmetic off -> ``[H,W,C]`` float32."""
    ncnn = pytest.importorskip("ncnn")
    net = ncnn.Net()
    opt = net.opt
    opt.use_vulkan_compute = False
    opt.use_fp16_packed = opt.use_fp16_storage = opt.use_fp16_arithmetic = False
    opt.use_bf16_storage = False
    opt.num_threads = 1
    assert net.load_param(str(param)) == 0 and net.load_model(str(bin_)) == 0
    chw = np.ascontiguousarray(x_hwc.transpose(2, 0, 1), np.float32)
    mat = ncnn.Mat(chw)  # wraps chw's buffer: keep both alive while the extractor runs
    with net.create_extractor() as ex:
        assert ex.input("data", mat) == 0
        ret, out = ex.extract(out_blob)
        assert ret == 0
        return np.array(out).transpose(1, 2, 0).copy()


def _jaxgen_run(conv: nc.NcnnConversion, x_hwc: np.ndarray) -> np.ndarray:
    module = models.build(conv.arch, **conv.kwargs)
    y = module.apply({"params": conv.params}, jnp.asarray(x_hwc[None]))
    if conv.output_resize is not None:
        _, h, w, _ = y.shape
        y = nc.torch_bicubic_resize(y, (int(h * conv.output_resize), int(w * conv.output_resize)))
    return np.asarray(y[0])


# --------------------------------------------------------------------------------------------- synthetic graphs


def _tagged(w: np.ndarray, storage: str) -> bytes:
    if storage == "fp16":
        raw = w.astype("<f2").tobytes()
        return struct.pack("<I", nc.TAG_FP16) + raw + b"\0" * ((-len(raw)) % 4)
    return struct.pack("<I", 0) + w.astype("<f4").tobytes()


def _write_srvgg(tmp: Path, storage: str, *, feat=4, num_conv=1, r=4, resize: float | None = None, seed=0):
    """A tiny SRVGGNetCompact ncnn graph as the Real-ESRGAN export writes it; returns (param, bin, weights)."""
    rng = np.random.default_rng(seed)
    lines, blobs, data = ["Input input 0 1 data", "Split split0 1 2 data in0 in1"], 3, b""
    convs = []
    prev, c_in = "in1", 3
    for i in range(num_conv + 2):
        last = i == num_conv + 1
        c_out = 3 * r * r if last else feat
        w = (rng.standard_normal((c_out, c_in, 3, 3)) / np.sqrt(9 * c_in)).astype(np.float32)
        b = (0.1 * rng.standard_normal(c_out)).astype(np.float32)
        convs.append((w, b))
        lines.append(f"Convolution conv{i} 1 1 {prev} c{i} 0={c_out} 1=3 4=1 5=1 6={w.size}")
        data += _tagged(w, storage) + b.astype("<f4").tobytes()
        prev, blobs = f"c{i}", blobs + 1
        if not last:
            slope = rng.uniform(0.0, 0.5, c_out).astype(np.float32)
            lines.append(f"PReLU prelu{i} 1 1 {prev} p{i} 0={c_out}")
            data += slope.tobytes()
            prev, blobs = f"p{i}", blobs + 1
        c_in = c_out
    out_sum = "sum" if resize else "output"
    lines += [
        f"PixelShuffle shuffle 1 1 {prev} ps 0={r}",
        f"Interp skip 1 1 in0 up 0=1 1={float(r):e} 2={float(r):e}",
        f"BinaryOp add 2 1 ps up {out_sum} 0=0",
    ]
    blobs += 3
    if resize:
        lines.append(f"Interp down 1 1 sum output 0=3 1={resize:e} 2={resize:e}")
        blobs += 1
    param, bin_ = tmp / f"srvgg_{storage}.param", tmp / f"srvgg_{storage}.bin"
    param.write_text("7767517\n" + f"{len(lines)} {blobs}\n" + "\n".join(lines) + "\n")
    bin_.write_bytes(data)
    return param, bin_, convs


@pytest.mark.parametrize("storage", ["fp32", "fp16"])
def test_synthetic_srvgg_matches_ncnn_runtime(tmp_path, storage):
    param, bin_, convs = _write_srvgg(tmp_path, storage)
    layers = nc.read_ncnn(param, bin_)
    w0 = layers[2].weights["weight"]
    expected = convs[0][0].astype(np.float16).astype(np.float32) if storage == "fp16" else convs[0][0]
    np.testing.assert_array_equal(w0, expected)  # fp16 widened exactly, OIHW kept
    np.testing.assert_array_equal(layers[2].weights["bias"], convs[0][1])
    conv = nc.convert_realesrgan(layers)
    assert conv.arch == "srvgg_compact" and conv.scale == 4 and conv.output_resize is None
    assert conv.kwargs == dict(scale=4, num_in_ch=3, num_out_ch=3, num_feat=4, num_conv=1, act="prelu")
    x = np.random.default_rng(1).random((7, 9, 3), dtype=np.float32)
    np.testing.assert_allclose(_jaxgen_run(conv, x), _ncnn_run(param, bin_, x), atol=ATOL)


@pytest.mark.parametrize("resize", [0.5, 0.75])
def test_synthetic_bicubic_output_resize_matches_ncnn_interp(tmp_path, resize):
    """The animevideov3 x2/x3 tail: ncnn bicubic Interp == ``torch_bicubic_resize`` (a = -0.75, clamped)."""
    param, bin_, _ = _write_srvgg(tmp_path, "fp32", resize=resize)
    conv = nc.convert_realesrgan(nc.read_ncnn(param, bin_))
    assert conv.output_resize == resize and conv.scale == round(4 * resize)
    x = np.random.default_rng(2).random((8, 6, 3), dtype=np.float32)
    y = _jaxgen_run(conv, x)
    assert y.shape == (8 * conv.scale, 6 * conv.scale, 3)
    np.testing.assert_allclose(y, _ncnn_run(param, bin_, x), atol=ATOL)


def test_torch_bicubic_closed_form_on_a_ramp():
    """Cubic convolution reproduces linear functions away from the borders; at a clamped border it does not."""
    x = jnp.arange(16, dtype=jnp.float32)[None, :, None, None] * jnp.ones((1, 1, 5, 1))
    y = np.asarray(nc.torch_bicubic_resize(x, (8, 5)))[0, :, 0, 0]
    centres = (np.arange(8) + 0.5) * 2 - 0.5  # half-pixel source positions
    np.testing.assert_allclose(y[1:-1], centres[1:-1], atol=1e-5)
    assert abs(y[0] - centres[0]) > 1e-3  # edge clamping bends the ramp at the border


def test_parse_param_arrays_and_numbers():
    text = "7767517\n2 3\nInput in 0 1 data\nEltwise e 2 1 a b c 0=1 -23301=2,2.000000e-01,1.0 5=3\n"
    layers = nc.parse_param(text)
    assert [ly.type for ly in layers] == ["Input", "Eltwise"]
    e = layers[1]
    assert e.inputs == ("a", "b") and e.outputs == ("c",)
    assert e.params == {0: 1, 1: (0.2, 1.0), 5: 3} and isinstance(e.params[5], int)


@pytest.mark.parametrize(
    "text, match",
    [
        ("123\n0 0\n", "7767517"),
        ("7767517\n2 1\nInput in 0 1 data\n", "header says 2 layers"),
        ("7767517\n1 1\nEltwise e 2 1 a\n", "fewer than 3 blobs"),
        ("7767517\n1 1\nEltwise e 1 1 a b -23301=3,1.0,2.0\n", "announces 3"),
    ],
)
def test_parse_param_rejects_malformed(text, match):
    with pytest.raises(ValueError, match=match):
        nc.parse_param(text, source="m.param")


def _one_conv(tmp: Path, blob: bytes, extra: bytes = b"", typ: str = "Convolution") -> tuple[Path, Path]:
    param, bin_ = tmp / "m.param", tmp / "m.bin"
    param.write_text(f"7767517\n2 2\nInput in 0 1 data\n{typ} c 1 1 data out 0=2 1=3 4=1 5=1 6=54\n")
    bin_.write_bytes(blob + extra)
    return param, bin_


def test_read_rejects_int8_truncated_and_trailing_bytes(tmp_path):
    w = np.ones((2, 3, 3, 3), np.float32)
    bias = np.zeros(2, "<f4").tobytes()
    with pytest.raises(ValueError, match="int8"):
        nc.read_ncnn(*_one_conv(tmp_path, struct.pack("<I", nc.TAG_INT8) + b"\1" * 56 + bias))
    with pytest.raises(ValueError, match="file ends"):
        nc.read_ncnn(*_one_conv(tmp_path, _tagged(w, "fp32")))  # bias missing
    with pytest.raises(ValueError, match="bytes left"):
        nc.read_ncnn(*_one_conv(tmp_path, _tagged(w, "fp32") + bias, b"\0" * 8))
    with pytest.raises(ValueError, match="ConvolutionDepthWise"):
        nc.read_ncnn(*_one_conv(tmp_path, _tagged(w, "fp32") + bias, typ="ConvolutionDepthWise"))
    layers = nc.read_ncnn(*_one_conv(tmp_path, _tagged(w, "fp32") + bias))  # the well-formed one reads
    assert layers[1].weights["weight"].shape == (2, 3, 3, 3)
    with pytest.raises(ValueError, match="neither an RRDBNet nor an SRVGGNetCompact"):
        nc.convert_realesrgan(layers, source="m.param")


# --------------------------------------------------------------------------------------------- packaged files

ZOO_FILES = {
    "realesr-animevideov3-x4": ("srvgg_compact", 4, 16),
    "realesr-animevideov3-x3": ("srvgg_compact", 3, 16),
    "realesr-animevideov3-x2": ("srvgg_compact", 2, 16),
    "realesrgan-x4plus-anime": ("rrdbnet", 4, 6),
    "realesrgan-x4plus": ("rrdbnet", 4, 23),
}


def _zoo_files(name: str) -> tuple[Path, Path]:
    from jaxgen.weights import zoo

    try:
        return zoo.find_files(name)
    except ValueError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def photo_crop() -> np.ndarray:
    from jaxgen.data.samples import load_sample

    return (load_sample("chelsea")[100:116, 200:216] / 255.0).astype(np.float32)  # a 16x16 crop of a real photo


@pytest.mark.parametrize("name", list(ZOO_FILES))
def test_packaged_realesrgan_matches_ncnn_runtime(name, photo_crop):
    param, bin_ = _zoo_files(name)
    conv = nc.convert_realesrgan(nc.read_ncnn(param, bin_), source=str(param))
    arch, scale, depth = ZOO_FILES[name]
    assert (conv.arch, conv.scale) == (arch, scale)
    assert conv.kwargs["num_blocks" if arch == "rrdbnet" else "num_conv"] == depth
    got, ref = _jaxgen_run(conv, photo_crop), _ncnn_run(param, bin_, photo_crop)
    assert got.shape == ref.shape == (16 * scale, 16 * scale, 3)
    assert ref.std() > 0.05  # a real image, not a flat output
    np.testing.assert_allclose(got, ref, atol=ATOL)


def _trunc_fp16(v: np.ndarray) -> np.ndarray:
    """float32 -> the float16 value nearest zero (mantissa cut to 10 bits), in float32; normal fp16 range only."""
    return (np.asarray(v, np.float32).view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32)


def test_official_pth_and_its_ncnn_twin_agree_up_to_fp16(shared_data, photo_crop):
    """realesr-animevideov3.pth (official PyTorch file, read by jaxgen.weights) vs the packaged ncnn file: biases and
    PReLU slopes are bit-equal; every conv weight is the .pth weight cut to fp16 toward zero (ncnn's converter
    truncates; weights below the fp16 normal range 2^-14 are flushed to 0); outputs agree to 2e-3."""
    from jaxgen.inference import Upscaler, model_from_module
    from jaxgen.weights.convert import load_pretrained

    pth = shared_data / "weights" / "realesr-animevideov3.pth"
    if not pth.is_file():
        pytest.skip(f"{pth} not found")
    param, bin_ = _zoo_files("realesr-animevideov3-x4")
    conv = nc.convert_realesrgan(nc.read_ncnn(param, bin_))
    module, params = load_pretrained("srvgg_compact", str(pth), scale=4)
    import jax

    ours = dict(jax.tree_util.tree_flatten_with_path(params)[0])
    theirs = dict(jax.tree_util.tree_flatten_with_path(conv.params)[0])
    assert ours.keys() == theirs.keys() and len(ours) == 53
    n_normal = 0
    for path, v in ours.items():
        v, w = np.asarray(v, np.float32), theirs[path]
        assert v.shape == w.shape, path
        if path[-1].key != "kernel":
            np.testing.assert_array_equal(w, v, err_msg=str(path))
            continue
        normal = np.abs(v) >= 2.0**-14
        np.testing.assert_array_equal(w[normal], _trunc_fp16(v[normal]), err_msg=str(path))
        assert np.all(np.abs(w[~normal] - v[~normal]) < 2.0**-14)
        n_normal += normal.sum()
    assert n_normal > 600_000  # nearly all of the 621,424 parameters are conv weights in the normal range
    a = Upscaler(model_from_module(module, params, 4)).upscale_rgb(photo_crop)
    b = Upscaler(model_from_module(models.build(conv.arch, **conv.kwargs), conv.params, 4)).upscale_rgb(photo_crop)
    assert 0 < np.abs(a - b).max() < 2e-3
