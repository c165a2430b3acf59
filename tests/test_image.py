"""jaxgen.image: MATLAB-exact bicubic imresize, BT.601 luma, dtype helpers and robust image I/O."""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from skimage.color import rgb2ycbcr

from jaxgen import image
from jaxgen.image import imresize

# ------------------------------------------------------------------------------------------- golden values
# Keys cubic, a = -0.5:  k(t) = 1.5|t|^3 - 2.5|t|^2 + 1 (|t| <= 1),  -0.5|t|^3 + 2.5|t|^2 - 4|t| + 2 (1 < |t| <= 2).
#   k(0.25) = 0.8671875   k(0.75) = 0.2265625   k(1.25) = -0.0703125   k(1.75) = -0.0234375
# x2 upscale of n = 4 samples: output x (1-based) samples input coordinate u = x/2 + 1/4 = 0.75, 1.25, ..., 4.25,
# taps at the integers within distance 2; out-of-range taps take the edge sample (index clamped). E.g. x = 1,
# u = 0.75: taps -1, 0, 1, 2 with weights k(1.75), k(0.75), k(-0.25), k(-1.25); taps -1 and 0 clamp to 1, so
# row 1 = [k(1.75) + k(0.75) + k(0.25), k(1.25), 0, 0] = [1.0703125, -0.0703125, 0, 0].
UP2_N4 = np.array([
    [1.0703125, -0.0703125, 0.0, 0.0],
    [0.796875, 0.2265625, -0.0234375, 0.0],            # u = 1.25: taps 0 (=1), 1, 2, 3
    [0.203125, 0.8671875, -0.0703125, 0.0],            # u = 1.75: taps 0 (=1), 1, 2, 3
    [-0.0703125, 0.8671875, 0.2265625, -0.0234375],    # u = 2.25: taps 1..4
    [-0.0234375, 0.2265625, 0.8671875, -0.0703125],    # u = 2.75: taps 1..4
    [0.0, -0.0703125, 0.8671875, 0.203125],            # mirror images of rows 3, 2, 1
    [0.0, -0.0234375, 0.2265625, 0.796875],
    [0.0, 0.0, -0.0703125, 1.0703125],
])
# x1/2 downscale (antialiased): h(t) = k(t/2)/2 over width 8; output x samples u = 2x - 1/2, i.e. halfway between
# inputs 2x-1 and 2x; taps at distances 3.5, 2.5, ..., 0.5, ..., 3.5 weigh k(1.75)/2, k(1.25)/2, k(.75)/2, k(.25)/2.
DOWN2_TAPS = np.array([-0.01171875, -0.03515625, 0.11328125, 0.43359375, 0.43359375, 0.11328125, -0.03515625,
                       -0.01171875])


def _matlab_round(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_golden_upscale_x2_float():
    signal = np.array([[10.0, 20.0, 40.0, 80.0]])  # [1,4]: the single row is clamped -> rows are copies
    out = imresize(signal, 2)
    assert out.shape == (2, 8) and out.dtype == np.float64
    np.testing.assert_array_equal(out, np.stack([UP2_N4 @ signal[0]] * 2))
    assert out[0, 0] == 9.296875  # 1.0703125 * 10 - 0.0703125 * 20


def test_golden_downscale_x2_float_replicates_edges():
    signal = np.arange(1.0, 9.0)[None] ** 2  # [1,8]: 1, 4, 9, ..., 64
    out = imresize(signal, 0.5)[0]
    assert out.shape == (4,)
    # output x (1-based) taps inputs 2x-4 .. 2x+3; padded[i + 2] holds input i, out-of-range inputs = edge value
    padded = np.concatenate([[signal[0, 0]] * 3, signal[0], [signal[0, -1]] * 3])
    expected = [padded[2 * x - 2: 2 * x + 6] @ DOWN2_TAPS for x in range(1, 5)]
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    mirrored = np.concatenate([signal[0, 2::-1], signal[0], signal[0, :-4:-1]])  # MATLAB-doc style mirror
    assert abs(out[0] - mirrored[0:8] @ DOWN2_TAPS) > 1e-3  # the test tells the two borders apart


def test_golden_uint8_rounds_half_away_from_zero():
    # row 1 of UP2_N4: 99 * 1.0703125 - 163 * 0.0703125 = 99 - 9/128 * 64 = 94.5 exactly -> 95 (not 94)
    x = np.array([[99, 163, 163, 163]], np.uint8)
    assert imresize(x, 2)[0, 0] == 95
    assert imresize(x.astype(np.float64), 2)[0, 0] == 94.5


def test_uint8_rounds_after_each_axis_pass():
    x = _rng(1).integers(0, 256, (4, 4), dtype=np.uint8)
    xf = x.astype(np.float64)
    two_pass = np.clip(_matlab_round(np.clip(_matlab_round(UP2_N4 @ xf), 0, 255) @ UP2_N4.T), 0, 255)
    one_pass = np.clip(_matlab_round(UP2_N4 @ xf @ UP2_N4.T), 0, 255)
    assert (two_pass != one_pass).any()  # the input discriminates the two conventions
    out = imresize(x, 2)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, two_pass.astype(np.uint8))


def test_smallest_scale_axis_first():
    # 8x8 -> 16x4: columns (scale 0.5) are resized before rows (scale 2), rounding in between.
    x = _rng(2).integers(0, 256, (8, 8), dtype=np.uint8)
    cols_first = imresize(imresize(x, output_shape=(8, 4)), output_shape=(16, 4))  # scale-1 passes are identity
    rows_first = imresize(imresize(x, output_shape=(16, 8)), output_shape=(16, 4))
    assert (cols_first != rows_first).any()
    np.testing.assert_array_equal(imresize(x, output_shape=(16, 4)), cols_first)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7, 9), (7, 9, 3), (2, 7, 9, 1)])
def test_identity_at_scale_one(dtype, shape):
    x = _rng(3).integers(0, 256, shape).astype(dtype)
    out = imresize(x, 1)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize(
    "shape,scale,expected",
    [((12, 9), 0.5, (6, 5)), ((12, 9, 3), 0.25, (3, 3, 3)), ((10, 7), 1 / 3, (4, 3)), ((255, 510), 1 / 3, (85, 170)),
     ((7, 5), 1.5, (11, 8)), ((2, 5, 6, 3), 4, (2, 20, 24, 3)), ((5, 6), 1 / 6, (1, 1))],
)
def test_output_shape_is_matlab_ceil(shape, scale, expected):
    out = imresize(np.zeros(shape, np.float32), scale)
    assert out.shape == expected
    assert out.shape[-2 if len(shape) == 2 else -3] == math.ceil(scale * shape[-2 if len(shape) == 2 else -3])


def test_exact_integer_fraction_sizes():
    for s in (2, 3, 4, 5, 6, 7, 8):
        for k in (1, 17, 85, 170, 341):
            assert imresize(np.zeros((s * k, 1), np.float32), 1 / s).shape == (k, 1)


@pytest.mark.parametrize("scale", [0.25, 1 / 3, 0.5, 2, 3, 4])
def test_constant_stays_constant(scale):
    for x in (np.full((13, 11, 3), 0.4, np.float64), np.full((13, 11), 77, np.uint8)):
        out = imresize(x, scale)
        np.testing.assert_allclose(out.astype(np.float64), float(x.flat[0]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_linear_ramp_stays_linear_when_upscaling(scale):
    n = 12
    ramp = np.tile(np.arange(1.0, n + 1), (3, 1))  # value = 1-based column coordinate
    out = imresize(ramp, scale)[0]
    x = np.arange(1, n * scale + 1)
    u = x / scale + 0.5 * (1 - 1 / scale)  # input coordinate sampled by output x
    interior = (u >= 3) & (u <= n - 2)  # all 4 taps inside the image
    assert interior.sum() >= n * scale // 2
    np.testing.assert_allclose(out[interior], u[interior], rtol=0, atol=1e-12)
    assert not np.allclose(out[~interior], u[~interior])  # edge replication bends it at the borders


@pytest.mark.parametrize("scale", [0.25, 0.5, 2, 4, 1 / 3, 3])
def test_flip_symmetry(scale):
    n = 24  # divisible by 3 and 4: output grid is symmetric
    xf = _rng(4).random((n, n, 3))
    xu = _rng(5).integers(0, 256, (n, n, 3), dtype=np.uint8)
    for axis in (0, 1):
        np.testing.assert_allclose(imresize(np.flip(xf, axis), scale), np.flip(imresize(xf, scale), axis),
                                   rtol=0, atol=1e-12)
        diff = imresize(np.flip(xu, axis), scale).astype(int) - np.flip(imresize(xu, scale), axis)
        if scale in (0.25, 0.5, 2, 4):  # dyadic weights: exact arithmetic, so exactly symmetric
            assert not diff.any()
        else:
            assert np.abs(diff).max() <= 1 and (diff != 0).mean() < 1e-3


def test_float_dtype_kept_and_not_clipped():
    x = np.zeros((8, 8), np.float32)
    x[3:5, 3:5] = 1.0
    out = imresize(x, 2)
    assert out.dtype == np.float32
    assert out.min() < 0 and out.max() > 1  # cubic overshoot is kept
    with pytest.raises(ValueError, match="uint8 or float"):
        imresize(x.astype(np.int16), 2)


def test_batch_matches_per_image():
    x = _rng(6).integers(0, 256, (3, 10, 13, 3), dtype=np.uint8)
    batched = imresize(x, 0.5)
    assert batched.shape == (3, 5, 7, 3)
    np.testing.assert_array_equal(batched, np.stack([imresize(im, 0.5) for im in x]))
    np.testing.assert_array_equal(imresize(x[0, ..., 1], 0.5), batched[0, ..., 1])  # [H,W] = one channel


@pytest.mark.parametrize("scale", [0.25, 0.5, 2, 4, 1 / 3, 3])
def test_jit_matches_numpy(scale):
    xf = _rng(7).random((2, 12, 15, 3)).astype(np.float32)
    xu = _rng(8).integers(0, 256, (2, 12, 15, 3), dtype=np.uint8)
    f = jax.jit(lambda v: imresize(v, scale))
    out_f = f(jnp.asarray(xf))
    assert isinstance(out_f, jax.Array) and out_f.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out_f), imresize(xf, scale), rtol=0, atol=2e-6)
    out_u = np.asarray(f(jnp.asarray(xu)))
    diff = out_u.astype(int) - imresize(xu, scale)
    assert out_u.dtype == np.uint8
    if scale in (0.25, 0.5, 2, 4):  # dyadic weights are exact in float32 too
        assert not diff.any()
    else:  # float32 can only flip a value sitting within rounding of a .5 tie
        assert np.abs(diff).max() <= 1 and (diff != 0).mean() < 1e-2


def test_jax_uint8_under_x64_is_exact():
    xu = _rng(16).integers(0, 256, (2, 12, 15, 3), dtype=np.uint8)
    with jax.enable_x64(True):
        for scale in (1 / 3, 3):  # non-dyadic weights: float64 arithmetic as the numpy path
            out = np.asarray(jax.jit(lambda v: imresize(v, scale))(jnp.asarray(xu)))
            np.testing.assert_array_equal(out, imresize(xu, scale))


def test_jit_output_shape_and_gradient():
    f = jax.jit(lambda v: imresize(v, output_shape=(5, 9)))
    assert f(jnp.ones((2, 10, 6, 1))).shape == (2, 5, 9, 1)
    g = jax.jit(jax.grad(lambda v: imresize(v, 0.5).sum()))(jnp.ones((8, 8), jnp.float32))
    np.testing.assert_allclose(np.asarray(g).sum(), 16.0, rtol=1e-6)  # weights sum to 1 per output pixel


def test_imresize_rejects_bad_arguments():
    x = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(x)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(x, 2, output_shape=(8, 8))
    with pytest.raises(ValueError, match="positive"):
        imresize(x, 0)
    with pytest.raises(ValueError, match="output_shape"):
        imresize(x, output_shape=(0, 3))
    with pytest.raises(ValueError, match=r"\[B,H,W,C\]"):
        imresize(np.zeros((1, 1, 4, 4, 1), np.float32), 2)


def _sr_files(root: Path) -> list[tuple[Path, Path, int]]:
    out = []
    for name in ("Set5", "Set14"):
        for s in (2, 3, 4):
            for hr in sorted((root / "sr-benchmarks" / name / f"image_SRF_{s}").glob("*_HR.png")):
                out.append((hr, hr.with_name(hr.name.replace("_HR", "_LR")), s))
    return out


@pytest.mark.shared
def test_matches_matlab_lr_files_exactly(shared_data):
    files = _sr_files(shared_data)
    assert len(files) == 3 * (5 + 14)
    grays = 0
    for hr_path, lr_path, s in files:
        hr, lr = image.read_image(hr_path, keep_gray=True), image.read_image(lr_path, keep_gray=True)
        grays += hr.shape[-1] == 1
        out = imresize(hr, 1 / s)
        assert out.shape == lr.shape, hr_path
        mismatches = int((out != lr).sum())
        assert mismatches == 0, f"{hr_path.name}: {mismatches} of {lr.size} values differ from MATLAB"
    assert grays == 3  # Set14 img_003 at each scale


@pytest.mark.shared
def test_jit_matches_matlab_lr_file(shared_data):
    hr_path = shared_data / "sr-benchmarks" / "Set5" / "image_SRF_3" / "img_002_SRF_3_HR.png"
    hr, lr = image.read_image(hr_path), image.read_image(hr_path.with_name("img_002_SRF_3_LR.png"))
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda v: imresize(v, 1 / 3))(jnp.asarray(hr))), lr)


# ------------------------------------------------------------------------------------------------ colour


def test_rgb_to_y_known_values_and_skimage():
    rgb = np.array([[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float64)
    np.testing.assert_allclose(image.rgb_to_y(rgb)[:, 0], [16, 235, 16 + 65.481, 16 + 128.553, 16 + 24.966],
                               rtol=0, atol=1e-12)
    x = _rng(9).random((2, 5, 7, 3))
    y = image.rgb_to_y(x)
    assert y.shape == (2, 5, 7, 1)
    np.testing.assert_allclose(y[..., 0], rgb2ycbcr(x)[..., 0], rtol=0, atol=1e-10)  # second implementation
    y_jax = jax.jit(image.rgb_to_y)(jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(np.asarray(y_jax), y, rtol=1e-6)


def test_rgb_to_y_gray_passthrough_and_errors():
    g = _rng(10).random((4, 4, 1)).astype(np.float32)
    assert image.rgb_to_y(g) is g
    with pytest.raises(ValueError, match=r"\[\.\.\.,3\]"):
        image.rgb_to_y(np.zeros((4, 4, 2), np.float32))
    with pytest.raises(ValueError, match="float"):
        image.rgb_to_y(np.zeros((4, 4, 3), np.uint8))


def test_rgb_to_gray_is_full_range_luma():
    x = _rng(11).random((3, 4, 3))
    np.testing.assert_allclose(image.rgb_to_gray(x), (image.rgb_to_y(x) - 16) / 219, rtol=0, atol=1e-12)
    gray3 = np.repeat(_rng(12).random((3, 4, 1)).astype(np.float32), 3, axis=-1)
    np.testing.assert_array_equal(image.rgb_to_gray(gray3), gray3[..., :1])  # exact on gray input


# ------------------------------------------------------------------------------------------------- dtype


def test_to_float_to_uint8_roundtrip_and_rounding():
    u = np.arange(256, dtype=np.uint8)
    f = image.to_float(u)
    assert f.dtype == np.float32 and f.max() == 1.0
    np.testing.assert_array_equal(image.to_uint8(f), u)
    np.testing.assert_array_equal(image.to_uint8(u.astype(np.float64) / 255), u)
    np.testing.assert_array_equal(image.to_uint8(np.array([-0.3, 0.0, 1.0, 1.7, np.inf])), [0, 0, 255, 255, 255])
    half = np.float64(126.5) / 255
    assert half * 255 == 126.5  # a true .5 tie
    assert image.to_uint8(np.array([half]))[0] == 127  # half away from zero (round-half-even gives 126)
    np.testing.assert_array_equal(np.asarray(jax.jit(image.to_uint8)(jnp.asarray(f))), u)
    assert image.to_uint8(u) is u
    with pytest.raises(ValueError, match="uint8"):
        image.to_float(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="float"):
        image.to_uint8(np.zeros(3, np.int32))


def test_mod_crop():
    assert image.mod_crop(np.zeros((10, 13)), 4).shape == (8, 12)
    assert image.mod_crop(np.zeros((10, 13, 3)), 3).shape == (9, 12, 3)
    x = np.arange(2 * 7 * 5 * 1).reshape(2, 7, 5, 1)
    np.testing.assert_array_equal(image.mod_crop(x, 2), x[:, :6, :4])  # top-left kept
    assert image.mod_crop(jnp.zeros((5, 5, 3)), 2).shape == (4, 4, 3)
    with pytest.raises(ValueError, match="positive integer"):
        image.mod_crop(x, 0)


# --------------------------------------------------------------------------------------------------- I/O


def test_png_roundtrip_rgb_gray_and_float(tmp_path):
    rgb = _rng(13).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    path = image.write_image(tmp_path / "a" / "b" / "rgb.png", rgb)  # creates parents
    np.testing.assert_array_equal(image.read_image(path), rgb)
    gray = _rng(14).integers(0, 256, (6, 5, 1), dtype=np.uint8)
    image.write_image(tmp_path / "gray.png", gray)
    assert Image.open(tmp_path / "gray.png").mode == "L"
    np.testing.assert_array_equal(image.read_image(tmp_path / "gray.png", keep_gray=True), gray)
    np.testing.assert_array_equal(image.read_image(tmp_path / "gray.png"), np.repeat(gray, 3, axis=-1))
    image.write_image(tmp_path / "f.png", np.full((2, 2, 3), 0.5, np.float32))
    assert (image.read_image(tmp_path / "f.png") == 128).all()  # 127.5 rounds up
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "f.png", "gray.png"]  # no temp files left


def test_write_image_errors_and_atomicity(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="extension"):
        image.write_image(tmp_path / "x.gif2", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        image.write_image(tmp_path / "x.png", np.zeros((2, 2, 4), np.uint8))
    with pytest.raises(ValueError, match="dtype"):
        image.write_image(tmp_path / "x.png", np.zeros((2, 2, 3), np.int64))
    target = tmp_path / "keep.png"
    old = np.full((3, 3, 3), 7, np.uint8)
    image.write_image(target, old)

    def failing_save(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        image.write_image(target, np.zeros((3, 3, 3), np.uint8))
    monkeypatch.undo()
    np.testing.assert_array_equal(image.read_image(target), old)  # old file intact
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]  # temp file removed


def test_read_16bit_png(tmp_path):
    v = np.array([[0, 257, 65535, 128, 129, 32896, 385, 386]], np.uint16)  # v/257: 0, 1, 255, .498, .502, 128
    Image.fromarray(v).save(tmp_path / "d16.png")
    assert Image.open(tmp_path / "d16.png").mode.startswith("I")
    out = image.read_image(tmp_path / "d16.png", keep_gray=True)
    assert out.shape == (1, 8, 1) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 255, 0, 1, 128, 1, 2])
    assert image.read_image(tmp_path / "d16.png").shape == (1, 8, 3)


def test_read_palette_with_and_without_transparency(tmp_path):
    pal = Image.new("P", (3, 1))
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    pal.putdata([0, 1, 2])
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(image.read_image(tmp_path / "p.png")[0], [[255, 0, 0], [0, 255, 0], [0, 0, 255]])
    pal.save(tmp_path / "pt.png", transparency=1)  # green entry fully transparent -> white
    np.testing.assert_array_equal(image.read_image(tmp_path / "pt.png")[0],
                                  [[255, 0, 0], [255, 255, 255], [0, 0, 255]])


def test_read_rgba_and_la_composite_on_white(tmp_path):
    rgba = np.array([[[255, 0, 0, 255], [255, 0, 0, 0], [0, 0, 255, 128]]], np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    out = image.read_image(tmp_path / "rgba.png")
    assert out.shape == (1, 3, 3)
    np.testing.assert_array_equal(out[0, :2], [[255, 0, 0], [255, 255, 255]])
    np.testing.assert_allclose(out[0, 2], [127, 127, 255], atol=1)  # 128/255 blue over white
    la = Image.fromarray(np.array([[[0, 255], [0, 0]]], np.uint8), "LA")
    la.save(tmp_path / "la.png")
    np.testing.assert_array_equal(image.read_image(tmp_path / "la.png", keep_gray=True)[0, :, 0], [0, 255])


def test_read_applies_exif_orientation(tmp_path):
    stored = np.zeros((16, 32, 3), np.uint8)  # stored landscape: red left half, blue right half
    stored[:, :16, 0] = 255
    stored[:, 16:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(stored).save(tmp_path / "rot.jpg", exif=exif, quality=95)
    out = image.read_image(tmp_path / "rot.jpg").astype(int)
    assert out.shape == (32, 16, 3)  # displayed portrait
    assert out[4, 8, 0] > 200 and out[4, 8, 2] < 50  # red on top
    assert out[27, 8, 2] > 200 and out[27, 8, 0] < 50  # blue at the bottom


def test_read_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=95)  # pure red
    out = image.read_image(tmp_path / "cmyk.jpg")
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    np.testing.assert_allclose(out.reshape(-1, 3).mean(0), [255, 0, 0], atol=6)


def test_read_errors_name_the_file(tmp_path):
    good = tmp_path / "good.png"
    image.write_image(good, _rng(15).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    (tmp_path / "folder.png").mkdir()
    for bad in (truncated, text, tmp_path / "missing.png", tmp_path / "folder.png"):
        with pytest.raises(ValueError, match=bad.name):
            image.read_image(bad)


def test_to_uint8_rounds_half_away_from_zero_not_to_even():
    # k + 0.5 in 255 units: np.rint would give the even neighbour (2, 2, 4); MATLAB im2uint8 rounds up (2, 3, 4)
    x = np.array([1.5, 2.5, 3.5], np.float64) / 255.0
    assert image.to_uint8(x).tolist() == [2, 3, 4]


def test_grid_lays_out_rows_with_white_gutters():
    red = np.zeros((2, 3, 3), np.float32)
    red[..., 0] = 1.0
    gray_u8 = np.full((2, 1), 7, np.uint8)  # gray -> 3 equal channels
    wide = np.full((3, 5, 3), 2.5 / 255, np.float64)  # -> 3 (half away), where np.rint gives 2
    g = image.grid([[red, gray_u8], [wide]], gutter=1)
    assert g.dtype == np.uint8 and g.shape == (2 + 1 + 3, 5, 3)
    np.testing.assert_array_equal(g[:2, :3], np.broadcast_to([255, 0, 0], (2, 3, 3)))
    np.testing.assert_array_equal(g[:2, 3], 255)  # gutter between images
    np.testing.assert_array_equal(g[:2, 4], 7)
    np.testing.assert_array_equal(g[2], 255)  # gutter between rows
    np.testing.assert_array_equal(g[3:], 3)
    with pytest.raises(ValueError, match="differ in height"):
        image.grid([[red, wide]])


def test_grid_height_resizes_with_the_aspect_kept():
    a = np.linspace(0, 1, 4 * 6 * 3, dtype=np.float32).reshape(4, 6, 3)
    b = np.full((8, 8, 3), 100, np.uint8)
    g = image.grid([[a, b]], gutter=8, height=4)
    assert g.shape == (4, 6 + 8 + 4, 3)
    np.testing.assert_array_equal(g[:, :6], image.to_uint8(a))  # already 4 high: unchanged
    np.testing.assert_array_equal(g[:, 6:14], 255)
    np.testing.assert_array_equal(g[:, 14:], image.to_uint8(image.resize_to(b, (4, 4))))
