"""jaxgen.evaluation: benchmark loading and the bicubic rows of EDSR Table 4 (Lim et al. 2017)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from jaxgen import evaluation, image, metrics
from jaxgen.evaluation import SRPair

# EDSR paper (Lim et al., CVPRW 2017) Table 4, bicubic: PSNR (dB) / SSIM on Y, crop = scale.
PUBLISHED_BICUBIC = [
    ("Set5", 2, 33.66, 0.9299), ("Set5", 3, 30.39, 0.8682), ("Set5", 4, 28.42, 0.8104),
    ("Set14", 2, 30.24, 0.8688), ("Set14", 3, 27.55, 0.7742), ("Set14", 4, 26.00, 0.7027),
]
PSNR_TOL, SSIM_TOL = 0.05, 0.002


def _bicubic(scale: int):
    return lambda lr: evaluation.bicubic_upscale(lr, scale)


# ----------------------------------------------------------------------------------- published numbers


@pytest.mark.shared
@pytest.mark.parametrize("name,scale,want_psnr,want_ssim", PUBLISHED_BICUBIC)
def test_bicubic_reproduces_published_table(shared_data, name, scale, want_psnr, want_ssim):
    set_dir = shared_data / "sr-benchmarks" / name
    hr_files = sorted((set_dir / f"image_SRF_{scale}").glob("*_HR.png"))
    assert len(hr_files) == {"Set5": 5, "Set14": 14}[name]
    # from the HR images alone: LR = imresize(HR, 1/s) (uint8), SR = imresize(LR, s) (uint8)
    from_hr = [evaluation.pair_from_hr(p.name, image.read_image(p, keep_gray=True), scale) for p in hr_files]
    result = evaluation.evaluate_pairs(_bicubic(scale), from_hr, scale)
    assert abs(result["psnr"] - want_psnr) <= PSNR_TOL, result["psnr"]
    assert abs(result["ssim"] - want_ssim) <= SSIM_TOL, result["ssim"]
    assert [r["name"] for r in result["per_image"]] == [p.name for p in hr_files]

    # the provided MATLAB LR files (set folder resolves to image_SRF_s): same LR, same numbers
    provided = evaluation.load_sr_pairs(set_dir, scale)
    assert [p.name for p in provided] == [p.name for p in from_hr]
    for a, b in zip(provided, from_hr):
        np.testing.assert_array_equal(a.hr, b.hr)
        np.testing.assert_array_equal(a.lr, b.lr)
        assert a.gray == b.gray == (name == "Set14" and a.name.startswith("img_003"))
    assert evaluation.evaluate_bicubic(set_dir, scale) == result


@pytest.mark.shared
def test_gray_convention_matters_for_set14(shared_data):
    """Evaluating img_003 on Y of its replicated channels (16 + 219 g) misses the published Set14 number."""
    pairs = evaluation.load_sr_pairs(shared_data / "sr-benchmarks" / "Set14", 2)
    as_rgb = [dataclasses.replace(p, gray=False) for p in pairs]
    psnr_rgb = evaluation.evaluate_pairs(_bicubic(2), as_rgb, 2)["psnr"]
    assert psnr_rgb - 30.24 > 0.05


# ------------------------------------------------------------------------------------- generated folders


def _smooth_u8(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.random(shape)
    for axis in (0, 1):  # cheap smoothing so SSIM/PSNR are image-like
        x = (x + np.roll(x, 1, axis) + np.roll(x, -1, axis)) / 3
    return image.to_uint8(x)


def test_hr_only_folder(tmp_path):
    image.write_image(tmp_path / "b.png", _smooth_u8(0, (26, 31, 3)))
    image.write_image(tmp_path / "a.jpg", _smooth_u8(1, (24, 24, 3)))
    image.write_image(tmp_path / "c_gray.png", _smooth_u8(2, (25, 27, 1)))
    (tmp_path / "notes.txt").write_text("ignored")
    pairs = evaluation.load_sr_pairs(tmp_path, 3)
    assert [p.name for p in pairs] == ["a.jpg", "b.png", "c_gray.png"]
    b = pairs[1]
    assert b.hr.shape == (24, 30, 3) and b.lr.shape == (8, 10, 3) and b.hr.dtype == b.lr.dtype == np.uint8
    np.testing.assert_array_equal(b.hr, image.read_image(tmp_path / "b.png")[:24, :30])  # mod-crop bottom/right
    np.testing.assert_array_equal(b.lr, image.imresize(b.hr, 1 / 3))
    gray = pairs[2]
    assert gray.gray and not b.gray and gray.hr.shape == (24, 27, 3)
    assert (gray.hr == gray.hr[..., :1]).all() and (gray.lr == gray.lr[..., :1]).all()


def test_paired_folder_and_subfolder_resolution(tmp_path):
    folder = tmp_path / "MySet" / "image_SRF_2"
    hr = _smooth_u8(3, (20, 22, 3))
    lr = _smooth_u8(4, (10, 11, 3))  # any LR: the files are used as given
    image.write_image(folder / "img_001_SRF_2_HR.png", hr)
    image.write_image(folder / "img_001_SRF_2_LR.png", lr)
    for directory in (folder, tmp_path / "MySet"):
        (pair,) = evaluation.load_sr_pairs(directory, 2)
        assert pair.name == "img_001_SRF_2_HR.png" and not pair.gray
        np.testing.assert_array_equal(pair.hr, hr)
        np.testing.assert_array_equal(pair.lr, lr)
    with pytest.raises(ValueError, match="image_SRF_3"):
        evaluation.load_sr_pairs(tmp_path / "MySet", 3)


def test_paired_folder_errors(tmp_path):
    image.write_image(tmp_path / "x_HR.png", _smooth_u8(5, (20, 20, 3)))
    image.write_image(tmp_path / "x_LR.png", _smooth_u8(6, (9, 10, 3)))
    with pytest.raises(ValueError, match="x_HR.png"):  # 20x20 is not 9x10 x2
        evaluation.load_sr_pairs(tmp_path, 2)
    image.write_image(tmp_path / "x_LR.png", _smooth_u8(6, (10, 10, 1)))
    with pytest.raises(ValueError, match="x_HR.png"):  # RGB HR, gray LR
        evaluation.load_sr_pairs(tmp_path, 2)
    image.write_image(tmp_path / "x_LR.png", _smooth_u8(6, (10, 10, 3)))
    assert len(evaluation.load_sr_pairs(tmp_path, 2)) == 1
    image.write_image(tmp_path / "y_LR.png", _smooth_u8(7, (10, 10, 3)))
    with pytest.raises(ValueError, match="y_LR.png"):  # orphan LR
        evaluation.load_sr_pairs(tmp_path, 2)


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(ValueError, match="nowhere"):
        evaluation.load_sr_pairs(tmp_path / "nowhere", 2)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images")
    with pytest.raises(ValueError, match="empty"):
        evaluation.load_sr_pairs(tmp_path / "empty", 2)
    with pytest.raises(ValueError, match="scale"):
        evaluation.load_sr_pairs(tmp_path / "empty", 0)


# ------------------------------------------------------------------------------------------- evaluation


def _pair(seed: int, shape: tuple[int, int, int], scale: int, gray: bool = False) -> SRPair:
    return evaluation.pair_from_hr(f"img{seed}.png", _smooth_u8(seed, shape), scale, gray=gray)


def test_evaluate_pairs_perfect_and_quantised_float_output():
    pairs = [_pair(8, (24, 24, 3), 2), _pair(9, (26, 28, 1), 2)]
    hr_of = {id(p.lr): p.hr for p in pairs}
    perfect = evaluation.evaluate_pairs(lambda lr: hr_of[id(lr)], pairs, 2)
    assert np.isposinf(perfect["psnr"]) and perfect["ssim"] == pytest.approx(1.0, abs=1e-6)
    # float output within half a level of HR quantises back to HR exactly
    near = evaluation.evaluate_pairs(lambda lr: image.to_float(hr_of[id(lr)]) + 0.4 / 255, pairs, 2)
    assert np.isposinf(near["psnr"])
    assert [r["name"] for r in near["per_image"]] == ["img8.png", "img9.png"]


def test_evaluate_pairs_matches_direct_metrics_with_crop_scale():
    pair = _pair(10, (33, 36, 3), 3)
    sr = np.clip(pair.hr.astype(int) + np.random.default_rng(0).integers(-9, 10, pair.hr.shape), 0, 255)
    sr = sr.astype(np.uint8)
    result = evaluation.evaluate_pairs(lambda lr: sr, [pair], 3)
    pred, target = image.to_float(sr)[None], image.to_float(pair.hr)[None]
    assert result["psnr"] == pytest.approx(float(metrics.psnr(pred, target, crop_border=3, y_channel=True)[0]))
    assert result["ssim"] == pytest.approx(float(metrics.ssim(pred, target, crop_border=3, y_channel=True)[0]))
    rgb0 = evaluation.evaluate_pairs(lambda lr: sr, [pair], 3, y_channel=False, crop_border=0)
    assert rgb0["psnr"] == pytest.approx(float(metrics.psnr(pred, target)[0]))


def test_gray_pair_evaluated_on_gray_values():
    pair = _pair(11, (24, 26, 1), 2)
    assert pair.gray
    hr = pair.hr.astype(int)
    sr = np.where(hr < 250, hr + 4, hr - 4).astype(np.uint8)  # |error| = 4 levels everywhere, all channels
    result = evaluation.evaluate_pairs(lambda lr: sr, [pair], 2)
    np.testing.assert_allclose(result["psnr"], 20 * np.log10(255 / 4), rtol=1e-5)  # not 255 / (4 * 219/255)
    one_channel = evaluation.evaluate_pairs(lambda lr: sr[..., :1], [pair], 2)  # a gray-output sr_fn
    assert one_channel["psnr"] == pytest.approx(result["psnr"])


def test_evaluate_pairs_errors():
    pair = _pair(12, (24, 24, 3), 2)
    with pytest.raises(ValueError, match="img12.png"):
        evaluation.evaluate_pairs(lambda lr: np.zeros((10, 10, 3), np.uint8), [pair], 2)
    with pytest.raises(ValueError, match="no pairs"):
        evaluation.evaluate_pairs(lambda lr: lr, [], 2)


def test_bicubic_upscale():
    lr = _smooth_u8(13, (7, 9, 3))
    up = evaluation.bicubic_upscale(lr, 3)
    assert up.shape == (21, 27, 3) and up.dtype == np.uint8
    np.testing.assert_array_equal(up, image.imresize(lr, 3))
    with pytest.raises(ValueError, match="uint8"):
        evaluation.bicubic_upscale(lr.astype(np.float32), 3)


def test_comparison_grid_columns_and_central_crop():
    """LR | bicubic | SR_1 | SR_2 | HR on one central crop (aligned to the scale), panels in that order."""
    from jaxgen.evaluation import comparison_grid

    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    lr = hr[::2, ::2]
    a, b = np.zeros((40, 48, 3), np.float32), np.ones((40, 48, 3), np.float32)
    grid = comparison_grid(lr, [a, b], hr, 2, crop=16)
    assert grid.shape == (16, 5 * 16, 3)
    np.testing.assert_array_equal(grid[:, 64:], hr[12:28, 16:32])  # centre: top (40-16)//2=12, left 16
    np.testing.assert_array_equal(grid[:, :16], np.repeat(np.repeat(lr[6:14, 8:16], 2, 0), 2, 1))
    assert (grid[:, 32:48] == 0).all() and (grid[:, 48:64] == 255).all()
    assert comparison_grid(lr, a, hr, 2).shape == (40, 4 * 48, 3)  # one SR output, whole image


def test_evaluate_folders_and_markdown_table(tmp_path):
    for d, seed in (("SetA", 0), ("SetB", 1)):
        image.write_image(tmp_path / d / "x.png", _smooth_u8(seed, (24, 24, 3)))
    nearest = lambda lr: np.repeat(np.repeat(lr, 2, axis=0), 2, axis=1)  # noqa: E731
    results = evaluation.evaluate_folders({"nearest": nearest, "bicubic": None},
                                          [tmp_path / "SetA", tmp_path / "SetB"], 2)
    assert results["scale"] == 2 and results["methods"] == ["nearest", "bicubic"]
    assert list(results["datasets"]) == ["SetA", "SetB"]
    pairs = evaluation.load_sr_pairs(tmp_path / "SetB", 2)
    assert results["datasets"]["SetB"]["nearest"] == evaluation.evaluate_pairs(nearest, pairs, 2)
    assert results["datasets"]["SetB"]["bicubic"] == evaluation.evaluate_pairs(_bicubic(2), pairs, 2)
    table = evaluation.markdown_table(results).splitlines()
    assert table[0] == "| method | SetA PSNR / SSIM | SetB PSNR / SSIM |" and table[1] == "|---|---|---|"
    a, b = results["datasets"]["SetA"]["bicubic"], results["datasets"]["SetB"]["bicubic"]
    assert table[3] == f"| bicubic | {a['psnr']:.2f} / {a['ssim']:.4f} | {b['psnr']:.2f} / {b['ssim']:.4f} |"
