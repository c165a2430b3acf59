"""``read_image_full`` / ``write_image_full``: alpha, gray, 16-bit, EXIF orientation and ICC profiles survive.

Truths: files written / read by independent code (Pillow for 8-bit and gray 16-bit, pypng for 16-bit colour), and
Pillow's ``ImageOps.exif_transpose`` for the eight EXIF orientations.
"""

from __future__ import annotations

import numpy as np
import png
import pytest
from PIL import Image, ImageCms, ImageOps

from jaxgen.image import ImageData, read_image_full, write_image_full


def _rng(seed=0):
    return np.random.default_rng(seed)


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_rgba_8bit_alpha_kept_and_round_trips(tmp_path):
    rgba = _rng().integers(0, 256, (9, 11, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    d = read_image_full(tmp_path / "a.png")
    assert d.array.shape == (9, 11, 3) and d.array.dtype == np.float32 and d.bit_depth == 8 and not d.is_gray
    np.testing.assert_allclose(d.array, rgba[..., :3] / 255.0, atol=1e-7)
    np.testing.assert_allclose(d.alpha, rgba[..., 3] / 255.0, atol=1e-7)
    write_image_full(tmp_path / "b.png", d)
    back = Image.open(tmp_path / "b.png")
    assert back.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(back), rgba)


def test_palette_with_transparency_reads_as_rgba(tmp_path):
    idx = _rng(1).integers(0, 4, (6, 5), dtype=np.uint8)
    im = Image.fromarray(idx, mode="P")
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
    im.save(tmp_path / "p.png", transparency=2)
    d = read_image_full(tmp_path / "p.png")
    np.testing.assert_array_equal(d.alpha, (idx != 2).astype(np.float32))
    np.testing.assert_array_equal(d.array[idx == 0], np.tile([1.0, 0, 0], ((idx == 0).sum(), 1)))


@pytest.mark.parametrize("alpha", [False, True])
def test_16bit_rgb_png_round_trip_exact(tmp_path, alpha):
    planes = 4 if alpha else 3
    v = _rng(2).integers(0, 65536, (7, 5, planes), dtype=np.uint16)
    v[0, 0, 0] = 257 * 3 + 1  # a value no 8-bit image can hold
    with open(tmp_path / "in.png", "wb") as f:
        png.Writer(5, 7, greyscale=False, alpha=alpha, bitdepth=16).write(f, v.reshape(7, -1))
    d = read_image_full(tmp_path / "in.png")
    assert d.bit_depth == 16 and d.array.shape == (7, 5, 3) and (d.alpha is not None) == alpha
    np.testing.assert_allclose(d.array, v[..., :3] / 65535.0, atol=1e-7)
    write_image_full(tmp_path / "out.png", d)
    w, h, rows, info = png.Reader(filename=str(tmp_path / "out.png")).asDirect()
    assert info["bitdepth"] == 16 and info["alpha"] == alpha and not info["greyscale"]
    np.testing.assert_array_equal(np.vstack([np.asarray(r) for r in rows]).reshape(7, 5, planes), v)


def test_16bit_gray_png_round_trip_exact(tmp_path):
    v = _rng(3).integers(0, 65536, (6, 8), dtype=np.uint16)
    Image.fromarray(v).save(tmp_path / "g16.png")  # Pillow writes I;16 as a 16-bit gray PNG
    d = read_image_full(tmp_path / "g16.png")
    assert d.is_gray and d.bit_depth == 16 and d.alpha is None
    write_image_full(tmp_path / "o16.png", d)
    back = Image.open(tmp_path / "o16.png")
    assert back.mode.startswith("I")
    np.testing.assert_array_equal(np.asarray(back).astype(np.int64), v)


def test_8bit_output_of_16bit_data_to_jpeg_is_quantised_to_8(tmp_path):
    d = ImageData(np.full((4, 4, 3), 0.5, np.float32), bit_depth=16)
    write_image_full(tmp_path / "x.jpg", d)
    assert Image.open(tmp_path / "x.jpg").mode == "RGB"


@pytest.mark.parametrize("mode", ["L", "LA"])
def test_gray_stays_gray(tmp_path, mode):
    a = _rng(4).integers(0, 256, (5, 7, len(mode)), dtype=np.uint8)
    Image.fromarray(a[..., 0] if mode == "L" else a, mode=mode).save(tmp_path / "g.png")
    d = read_image_full(tmp_path / "g.png")
    assert d.is_gray and d.array.shape == (5, 7, 1) and (d.alpha is not None) == (mode == "LA")
    write_image_full(tmp_path / "o.png", d)
    back = Image.open(tmp_path / "o.png")
    assert back.mode == mode
    np.testing.assert_array_equal(np.asarray(back).reshape(a.shape), a)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_like_pillow(tmp_path, orientation):
    rgba = _rng(5).integers(0, 256, (4, 6, 4), dtype=np.uint8)  # non-square: rotations change the shape
    im = Image.fromarray(rgba)
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.save(tmp_path / "o.png", exif=exif.tobytes())
    truth = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    d = read_image_full(tmp_path / "o.png")
    np.testing.assert_array_equal(np.round(d.array * 255).astype(np.uint8), truth[..., :3])
    np.testing.assert_array_equal(np.round(d.alpha * 255).astype(np.uint8), truth[..., 3])


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_icc_profile_kept(tmp_path, bit_depth):
    icc = _srgb_icc()
    Image.fromarray(_rng(6).integers(0, 256, (4, 4, 3), dtype=np.uint8)).save(tmp_path / "c.png", icc_profile=icc)
    d = read_image_full(tmp_path / "c.png")
    assert d.icc_profile == icc
    write_image_full(tmp_path / "o.png", ImageData(d.array, None, bit_depth, d.mode, d.icc_profile))
    assert Image.open(tmp_path / "o.png").info.get("icc_profile") == icc
    assert read_image_full(tmp_path / "o.png").bit_depth == bit_depth


def test_cmyk_is_converted_and_its_profile_dropped(tmp_path):
    Image.new("CMYK", (3, 2), (0, 255, 255, 0)).save(tmp_path / "c.jpg", icc_profile=b"not really cmyk")
    d = read_image_full(tmp_path / "c.jpg")
    assert d.array.shape == (2, 3, 3) and d.icc_profile is None
    assert d.array[..., 0].min() > 0.9 and d.array[..., 1:].max() < 0.1  # red


def test_errors_are_value_errors_naming_the_file(tmp_path):
    with pytest.raises(ValueError, match="no such image file"):
        read_image_full(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(ValueError, match="junk.png"):
        read_image_full(tmp_path / "junk.png")
    rgba = ImageData(np.zeros((2, 2, 3), np.float32), np.ones((2, 2), np.float32))
    with pytest.raises(ValueError, match="alpha"):
        write_image_full(tmp_path / "x.jpg", rgba)
    with pytest.raises(ValueError, match="shape"):
        write_image_full(tmp_path / "x.png", ImageData(np.zeros((2, 2, 2), np.float32)))
    with pytest.raises(ValueError, match="unknown extension"):
        write_image_full(tmp_path / "x.xyz", ImageData(np.zeros((2, 2, 3), np.float32)))
