"""The upscale pipeline (``jaxgen.inference``) and the ``jaxgen upscale`` CLI.

Truths: toy models whose output is known in closed form (nearest upsampling, channel mixing), symmetry (the x8
ensemble of an equivariant model is the model), a larger-context run (pre-pad), the untiled run (tiling), and
files read back by Pillow / pypng. The pretrained-model tests skip without the ``pretrained`` extra.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import png
import pytest
from PIL import Image, ImageOps

import jax
import jax.numpy as jnp

from jaxgen import image, inference
from jaxgen.commands import upscale as upscale_cmd
from jaxgen.image import ImageData
from tests.cli_runs import cpu_env


def _nearest(x: np.ndarray, s: int) -> np.ndarray:
    return np.repeat(np.repeat(x, s, axis=0), s, axis=1)


def nearest_model(scale: int = 2) -> inference.SRModel:
    return inference.SRModel(lambda p, x: jnp.repeat(jnp.repeat(x, scale, 1), scale, 2), {}, scale, "nearest")


def conv_model(kernel: np.ndarray, bias: np.ndarray, scale: int = 2, shapes: list | None = None) -> inference.SRModel:
    """``nearest(conv_kxk(x))``: zero-padded HWIO conv (a 1x1 kernel mixes channels), then nearest x``scale``.
    ``shapes`` collects the input shapes the jitted function is traced with (what reaches the device)."""

    def apply(p, x):
        if shapes is not None:
            shapes.append(tuple(x.shape))
        y = jax.lax.conv_general_dilated(x, p["k"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                         precision="highest") + p["b"]
        return jnp.repeat(jnp.repeat(y, scale, 1), scale, 2)

    return inference.SRModel(apply, {"k": jnp.asarray(kernel), "b": jnp.asarray(bias)}, scale, "conv")


def _img(h, w, c=3, seed=0):
    return np.random.default_rng(seed).random((h, w, c), dtype=np.float32)


def _zoo(name: str):
    from jaxgen.weights import zoo

    try:
        return zoo.load(name)
    except ValueError as e:
        pytest.skip(str(e))


# --------------------------------------------------------------------------------------------- pipeline


def test_ensemble_equals_plain_for_equivariant_model_and_differs_otherwise():
    rng = np.random.default_rng(1)
    mix = conv_model(rng.standard_normal((1, 1, 3, 3)).astype(np.float32) * 0.3, np.full(3, 0.2, np.float32))
    x = _img(9, 13)
    plain = inference.Upscaler(mix).upscale_rgb(x)
    np.testing.assert_allclose(inference.Upscaler(mix, ensemble=True).upscale_rgb(x), plain, atol=1e-6)
    skew = conv_model(rng.standard_normal((3, 3, 3, 3)).astype(np.float32) * 0.05, np.full(3, 0.5, np.float32))
    a, b = inference.Upscaler(skew).upscale_rgb(x), inference.Upscaler(skew, ensemble=True).upscale_rgb(x)
    assert 0.01 < a.min() and a.max() < 0.99  # nothing clipped: the comparison below is exact
    assert np.abs(a - b).max() > 0.05
    # the ensemble is the average of the 8 transformed runs, each transformed back
    runs = [inv(inference.Upscaler(skew).upscale_rgb(np.ascontiguousarray(fwd(x)))) for fwd, inv in
            inference.d4_transforms()]
    np.testing.assert_allclose(b, np.mean(runs, axis=0), atol=1e-6)


def test_d4_transforms_are_eight_distinct_inverse_pairs():
    x = np.arange(12).reshape(3, 4)
    outs = []
    for fwd, inv in inference.d4_transforms():
        np.testing.assert_array_equal(inv(fwd(x)), x)
        outs.append(fwd(x).tobytes() + bytes(fwd(x).shape))
    assert len(set(outs)) == 8


def test_pre_pad_removes_the_zero_padding_rim():
    """A zero-padded 3x3 box blur darkens the border of a flat image; reflect pre-padding gives the result of the
    same crop inside a larger image (closed form here: the flat value everywhere)."""
    blur = conv_model(np.eye(3, dtype=np.float32)[None, None].repeat(3, 0).repeat(3, 1) / 9, np.zeros(3, np.float32))
    big = np.full((20, 20, 3), 0.8, np.float32)
    ref = inference.Upscaler(blur).upscale_rgb(big)[10:30, 10:30]  # crop [5:15] of the big run, x2
    small = big[5:15, 5:15]
    rim = inference.Upscaler(blur, pre_pad=0).upscale_rgb(small)
    np.testing.assert_allclose(rim[:2, :2], 0.8 * 4 / 9, atol=1e-6)  # the corner: 4 of 9 taps inside
    np.testing.assert_allclose(rim[4:-4, 4:-4], ref[4:-4, 4:-4], atol=1e-6)
    padded = inference.Upscaler(blur, pre_pad=2).upscale_rgb(small)
    assert padded.shape == rim.shape == (20, 20, 3)
    np.testing.assert_allclose(padded, ref, atol=1e-6)


def test_pre_pad_crops_back_to_the_exact_region():
    """With a nearest model the pre-padded output must be the plain nearest upsampling (no shift, no border)."""
    x = _img(7, 10)
    for p in (0, 1, 5):
        np.testing.assert_array_equal(inference.Upscaler(nearest_model(3), pre_pad=p).upscale_rgb(x), _nearest(x, 3))


def test_tiles_equal_untiled_and_only_tiles_reach_the_device():
    rng = np.random.default_rng(2)
    k, b = rng.standard_normal((3, 3, 3, 3)).astype(np.float32) * 0.2, np.full(3, 0.4, np.float32)
    x = _img(37, 50, seed=3)
    whole = inference.Upscaler(conv_model(k, b)).upscale_rgb(x)
    shapes: list = []
    tiled = inference.Upscaler(conv_model(k, b, shapes=shapes), tile=16, tile_overlap=1).upscale_rgb(x)
    np.testing.assert_allclose(tiled, whole, atol=1e-6)
    assert shapes == [(1, 16, 16, 3)]  # one compiled window shape; never the whole image


MULTI_DEVICE_TILES = r"""
import json
import jax, numpy as np
from tests.test_upscale import conv_model, _img
from jaxgen import inference
rng = np.random.default_rng(2)
k, b = rng.standard_normal((3, 3, 3, 3)).astype(np.float32) * 0.2, np.full(3, 0.4, np.float32)
x = _img(37, 50, seed=3)  # 3 x 4 windows of 16 with overlap 1: 4 groups of 3
whole = inference.Upscaler(conv_model(k, b)).upscale_rgb(x)
shapes, one_shapes = [], []
up = inference.Upscaler(conv_model(k, b, shapes=shapes), tile=16, tile_overlap=1)
tiled = up.upscale_rgb(x)
tiled_shapes = list(shapes)
one = inference.Upscaler(conv_model(k, b, shapes=one_shapes), tile=16, tile_overlap=1,
                         devices=jax.devices()[:1]).upscale_rgb(x)
small = up.upscale_rgb(_img(5, 7, seed=4))  # one window, filled up to a group of 3
print(json.dumps(dict(devices=len(up.devices), shapes=tiled_shapes, small_shapes=shapes[1:], one_shapes=one_shapes,
                      sharding=str(up._replicated_params["k"].sharding.device_set.__len__()),
                      diff=float(np.abs(tiled - whole).max()), diff_one=float(np.abs(tiled - one).max()),
                      small_diff=float(np.abs(small - inference.Upscaler(conv_model(k, b)).upscale_rgb(
                          _img(5, 7, seed=4))).max()))))
"""


def test_tiles_go_one_per_device_on_a_split_host(tmp_path):
    """Three host devices: the windows run three at a time as one program sharded on the batch (one traced
    shape ``(3, 16, 16, 3)``, the parameters placed on every device once), and the image equals the untiled and
    the one-device tiled runs; an image of one window fills the group up and still comes out right."""
    env = cpu_env(3, tmp_path / "cache")
    proc = subprocess.run([sys.executable, "-c", MULTI_DEVICE_TILES], env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["devices"] == 3 and got["sharding"] == "3"
    assert got["shapes"] == [[3, 16, 16, 3]] and got["one_shapes"] == [[1, 16, 16, 3]]
    assert got["small_shapes"] == [[3, 5, 7, 3]]
    assert got["diff"] < 1e-6 and got["diff_one"] < 1e-6 and got["small_diff"] < 1e-6


def test_tiles_equal_untiled_for_a_pretrained_model():
    model = _zoo("realesr-animevideov3")  # 18 3x3 convs: receptive-field radius 18 LR pixels
    from jaxgen.data.samples import load_sample

    x = image.to_float(load_sample("coffee")[100:140, 200:252])
    whole = inference.Upscaler(model).upscale_rgb(x)
    tiled = inference.Upscaler(model, tile=38, tile_overlap=18).upscale_rgb(x)
    np.testing.assert_allclose(tiled, whole, atol=2e-5)
    seams = inference.Upscaler(model, tile=20, tile_overlap=2).upscale_rgb(x)
    assert np.abs(seams - whole).max() > 1e-3  # too little overlap shows: the check above can fail


def test_outscale_sizes_and_resampling():
    up = inference.Upscaler(nearest_model(2), outscale=3.5)
    out = up.upscale(ImageData(np.full((10, 13, 3), 0.25, np.float32)))
    assert out.array.shape == (35, 45, 3)  # int(10 * 3.5), int(13 * 3.5), as Real-ESRGAN
    np.testing.assert_allclose(out.array, 0.25, atol=1e-6)  # Lanczos keeps a flat image flat
    down = inference.Upscaler(nearest_model(4), outscale=1.5).upscale(ImageData(_img(9, 8)))
    assert down.array.shape == (13, 12, 3)
    x = _img(6, 5)
    same = inference.Upscaler(nearest_model(2), outscale=2.0).upscale(ImageData(x))
    np.testing.assert_array_equal(same.array, _nearest(x, 2))  # outscale == scale: no resampling


def test_gray_in_gray_out_without_tint():
    """A model that tints (channel mixing) must not tint gray images: the output is the luma of its RGB output."""
    mix = conv_model(np.diag([1.1, 0.9, 0.7]).astype(np.float32)[None, None], np.zeros(3, np.float32))
    g = _img(6, 7, c=1)
    out = inference.Upscaler(mix).upscale(ImageData(g, mode="L"))
    assert out.is_gray and out.array.shape == (12, 14, 1)
    rgb = np.clip(g * np.array([1.1, 0.9, 0.7], np.float32), 0, 1)  # the model's RGB output, clamped
    expected = _nearest(rgb @ np.array([0.299, 0.587, 0.114], np.float32), 2)
    np.testing.assert_allclose(out.array[..., 0], expected, atol=1e-6)


def test_alpha_upsamplers():
    x, a = _img(5, 6), _img(5, 6, c=1, seed=9)[..., 0]
    out = inference.Upscaler(nearest_model(2)).upscale(ImageData(x, a))
    np.testing.assert_allclose(out.alpha, _nearest(a, 2), atol=1e-6)  # alpha through the model, luma of 3 equal
    flat = inference.Upscaler(nearest_model(2), alpha_upsampler="bilinear").upscale(
        ImageData(x, np.full((5, 6), 0.6, np.float32)))
    assert flat.alpha.shape == (10, 12)
    np.testing.assert_allclose(flat.alpha, 0.6, atol=1e-6)
    with pytest.raises(ValueError, match="alpha_upsampler"):
        inference.Upscaler(nearest_model(2), alpha_upsampler="magic")


def test_bad_options_are_value_errors():
    m = nearest_model(2)
    for kw in ({"tile": -5}, {"tile": 8, "tile_overlap": 4}, {"pre_pad": -1}, {"outscale": 0}, {"outscale": np.nan}):
        with pytest.raises(ValueError):
            inference.Upscaler(m, **kw)
    with pytest.raises(ValueError, match=r"\[H,W,3\]"):
        inference.Upscaler(m).upscale_rgb(np.zeros((4, 4, 2), np.float32))


def test_bf16_close_to_fp32():
    from jaxgen.weights import zoo

    fp32 = _zoo("realesr-animevideov3")
    bf16 = zoo.load("realesr-animevideov3", compute_dtype=jnp.bfloat16)
    x = _img(12, 12, seed=4)
    a, b = inference.Upscaler(fp32).upscale_rgb(x), inference.Upscaler(bf16).upscale_rgb(x)
    assert 0 < np.abs(a - b).max() < 0.05  # bf16 really computes in bf16, and stays close


# --------------------------------------------------------------------------------------------- files


def test_file_rgba_and_16bit_round_trip_through_nearest_model(tmp_path):
    up = inference.Upscaler(nearest_model(2))
    rgba = np.random.default_rng(5).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    up.upscale_file(tmp_path / "a.png", tmp_path / "a_out.png")
    back = Image.open(tmp_path / "a_out.png")
    assert back.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(back), _nearest(rgba, 2))
    v = np.random.default_rng(6).integers(0, 65536, (4, 6, 3), dtype=np.uint16)
    with open(tmp_path / "w.png", "wb") as f:
        png.Writer(6, 4, greyscale=False, bitdepth=16).write(f, v.reshape(4, -1))
    up.upscale_file(tmp_path / "w.png", tmp_path / "w_out.png")
    w, h, rows, info = png.Reader(filename=str(tmp_path / "w_out.png")).asDirect()
    assert info["bitdepth"] == 16 and (w, h) == (12, 8)
    np.testing.assert_array_equal(np.vstack([np.asarray(r) for r in rows]).reshape(8, 12, 3), _nearest(v, 2))


def test_file_exif_rotated_input(tmp_path):
    rgb = np.random.default_rng(7).integers(0, 256, (4, 9, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(rgb).save(tmp_path / "r.png", exif=exif.tobytes())
    inference.Upscaler(nearest_model(2)).upscale_file(tmp_path / "r.png", tmp_path / "r_out.png")
    upright = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "r.png")))
    assert upright.shape == (9, 4, 3)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "r_out.png")), _nearest(upright, 2))


# --------------------------------------------------------------------------------------------- CLI


def _run(argv, capsys):
    code = upscale_cmd.run(["jaxgen upscale", *map(str, argv)])
    return code, capsys.readouterr().err


def test_cli_folder_to_folder_with_pretrained_model(tmp_path, capsys):
    _zoo("realesr-animevideov3-x2")
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.random.default_rng(8).integers(0, 256, (6, 8, 4), dtype=np.uint8)).save(src / "a.png")
    Image.fromarray(np.random.default_rng(9).integers(0, 256, (5, 7), dtype=np.uint8)).save(src / "g.png")
    (src / "notes.txt").write_text("not an image")
    code, err = _run([src, "-o", tmp_path / "out", "--model", "realesr-animevideov3-x2", "--outscale", "3"], capsys)
    assert code == 0, err
    a, g = Image.open(tmp_path / "out" / "a_x3.png"), Image.open(tmp_path / "out" / "g_x3.png")
    assert (a.mode, a.size) == ("RGBA", (24, 18)) and (g.mode, g.size) == ("L", (21, 15))


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "nope"], "unknown pretrained model"),
        (["--model", "realesrgan-x4plsu"], "did you mean 'realesrgan-x4plus'"),
        (["--model", "realesrgan-x4plus", "--tile", "-5"], "tile"),
        (["--model", "realesrgan-x4plus", "--outscale", "-1"], "outscale"),
        (["--workdir", "/nonexistent/run"], "workdir"),
        (["--checkpoint", "/nonexistent/run/ckpt"], "WORKDIR/checkpoints/STEP"),
        (["--weights", "/nonexistent/w.pth"], "--arch"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, extra, message):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "x.png")
    code, err = _run([tmp_path / "x.png", "-o", tmp_path / "y.png", *extra], capsys)
    assert code == 2
    assert err.startswith("jaxgen: error: ") and err.count("\n") == 1 and message in err


def test_cli_missing_input_and_missing_source(tmp_path, capsys):
    code, err = _run([tmp_path / "missing.png", "-o", tmp_path / "o.png", "--model", "realesrgan-x4plus"], capsys)
    assert code == 2 and "no such file" in err
    with pytest.raises(SystemExit) as e:  # argparse: no model source
        upscale_cmd.run(["jaxgen upscale", str(tmp_path / "x.png"), "-o", str(tmp_path / "o.png")])
    assert e.value.code == 2


def test_parse_arch_kwargs():
    assert upscale_cmd._parse_kwargs("num_conv=32, act=prelu,x=0.5,f=true") == {
        "num_conv": 32, "act": "prelu", "x": 0.5, "f": True}
    with pytest.raises(ValueError, match="key=value"):
        upscale_cmd._parse_kwargs("num_conv")


def test_cli_weights_pth_matches_the_zoo_twin(tmp_path, capsys, shared_data):
    """``--weights realesr-animevideov3.pth --arch srvgg_compact`` (official PyTorch file) and ``--model
    realesr-animevideov3`` (its fp16 ncnn twin) write the same image up to fp16 weight rounding (<= 2/255 here)."""
    _zoo("realesr-animevideov3")
    pth = shared_data / "weights" / "realesr-animevideov3.pth"
    if not pth.is_file():
        pytest.skip(f"{pth} not found")
    from jaxgen.data.samples import load_sample

    Image.fromarray(load_sample("coffee")[200:216, 300:320]).save(tmp_path / "c.png")
    code_a, err = _run([tmp_path / "c.png", "-o", tmp_path / "a.png", "--weights", pth, "--arch", "srvgg_compact"],
                       capsys)
    code_b, _ = _run([tmp_path / "c.png", "-o", tmp_path / "b.png", "--model", "realesr-animevideov3"], capsys)
    assert code_a == code_b == 0, err
    a = np.asarray(Image.open(tmp_path / "a.png")).astype(int)
    b = np.asarray(Image.open(tmp_path / "b.png")).astype(int)
    assert a.shape == (64, 80, 3) and np.abs(a - b).max() <= 2
    # the wrong architecture, at 1 block (each scale tried traces the model's parameter shapes: 23 blocks take seconds)
    code, err = _run([tmp_path / "c.png", "-o", tmp_path / "d.png", "--weights", pth, "--arch", "rrdbnet",
                      "--arch-kwargs", "num_blocks=1"], capsys)
    assert code == 2 and err.count("\n") == 1 and "does not match" in err and len(err) < 800


def test_pixel_unshuffle_model_odd_sizes_and_tiles():
    """RRDBNet x2 pixel-unshuffles its input: odd sizes are padded (Real-ESRGAN mod_pad) and tiles stay on the
    unshuffle grid, so tiled == untiled (receptive field of this 1-block net: < 40 LR pixels)."""
    from jaxgen import models

    net = models.build("rrdbnet", scale=2, num_feat=8, num_blocks=1, num_grow_ch=4)
    shapes = jax.eval_shape(net.init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)))["params"]
    rng = np.random.default_rng(12)  # random weights without compiling flax's init (slow on XLA:CPU)
    params = jax.tree.map(lambda s: jnp.asarray(0.2 * rng.standard_normal(s.shape), jnp.float32), shapes)
    model = inference.model_from_module(net, params, 2)
    assert model.size_multiple == 2
    x = _img(13, 97, seed=11)
    whole = inference.Upscaler(model).upscale_rgb(x)
    assert whole.shape == (26, 194, 3)
    np.testing.assert_allclose(inference.Upscaler(model, tile=91, tile_overlap=41).upscale_rgb(x), whole, atol=1e-5)


def test_cli_computes_in_float32_unless_bf16_is_asked():
    """The default precision is float32 (an argparse default once made it bfloat16 silently)."""
    from jaxgen.commands.upscale import _parser

    assert _parser().parse_args(["in.png", "-o", "out.png", "--model", "realesrgan-x4plus"]).bf16 is False
    assert _parser().parse_args(["in.png", "-o", "o.png", "--model", "realesrgan-x4plus", "--bf16"]).bf16 is True
    assert _parser().parse_args(["in.png", "-o", "o.png", "--model", "realesrgan-x4plus", "--fp32"]).bf16 is False
