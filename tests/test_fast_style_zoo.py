"""The fast-style network shipped with jaxgen (``jaxgen stylize --method fast --model candy-small``, zoo
``FAST_STYLE``): the packaged file against the official PyTorch network's output (golden from
``tools/make_fast_style_zoo_golden.py``), that it keeps the content's structure, the CLI path, and the errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import image
from jaxgen.commands import stylize
from jaxgen.weights import zoo

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "goldens" / "style" / "fast_style_zoo.npz"
NAME = "candy-small"
# Measured 2026-12-06 on the golden input (Set14 monarch, 96x64; edge_corr below): the shipped network 0.716; the
# same architecture after 126 steps at the official balance (style 1e10, content lost) 0.279, after 100 steps at
# 3e9 0.325 and at 1e9 0.361; three random-init networks 0.257-0.364. The bar sits between them.
EDGE_MIN = 0.55


def _edges(img: np.ndarray) -> np.ndarray:
    g = img.mean(-1)
    return np.hypot(g[1:-1, 2:] - g[1:-1, :-2], g[2:, 1:-1] - g[:-2, 1:-1]).ravel()


def edge_corr(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.corrcoef(_edges(y), _edges(x))[0, 1])


@pytest.fixture(scope="module")
def shipped():
    """``(golden, output)``: the shipped network (loaded as ``--model`` loads it) on the golden's input."""
    module, params = zoo.load_fast_style(NAME)
    g = np.load(GOLDEN)
    y = jax.jit(module.apply)({"params": params}, jnp.asarray(g["x"], jnp.float32) / 255.0)
    return g, np.asarray(y)


def test_entry_names_a_packaged_file_with_its_sha256():
    entry = zoo.FAST_STYLE[NAME]
    path = zoo.FILES_DIR / entry.file
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry.sha256
    setup = (REPO / "setup.cfg").read_text()  # ships with the package, not only in a checkout
    assert "jaxgen.weights = files/*.safetensors" in setup


def test_matches_the_official_network_on_the_shipped_file(shipped):
    g, y = shipped
    assert str(g["sha256"]) == zoo.FAST_STYLE[NAME].sha256  # the golden was made from this very file
    np.testing.assert_allclose(y, g["y"], atol=2e-4)


def test_keeps_the_content_structure(shipped):
    g, y = shipped
    x, y = g["x"][0].astype(np.float32) / 255.0, np.clip(y[0], 0, 1)
    assert np.abs(y - x).mean() > 0.05  # stylised, not the photo (measured 0.086)
    assert edge_corr(y, x) > EDGE_MIN


def test_stylize_cli_with_model(tmp_path):
    rng = np.random.default_rng(0)
    photo = image.write_image(tmp_path / "in.png", rng.integers(0, 256, (30, 22, 3), np.uint8))
    out = tmp_path / "out.png"
    assert stylize.run(["jaxgen stylize", "--method", "fast", "--model", NAME, str(photo), "-o", str(out), "-q"]) == 0
    y = image.read_image(out)
    assert y.shape == (30, 22, 3) and not np.array_equal(y, image.read_image(photo))


@pytest.mark.parametrize("extra, message", [
    (["--model", "no-such-style"], "unknown fast-style model 'no-such-style' (available: candy-small)"),
    (["--model", NAME, "--weights", "x.pth"], "--model and --weights both name a network"),
    (["--model", NAME, "--workdir", "w"], "--model and --workdir both name a network"),
])
def test_model_errors_are_one_line(tmp_path, capsys, extra, message):
    photo = image.write_image(tmp_path / "in.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SystemExit) as e:
        stylize.run(["jaxgen stylize", "--method", "fast", str(photo), "-o", str(tmp_path / "o.png"), *extra])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and err.startswith("jaxgen: error: ") and message in err


def test_model_needs_method_fast(tmp_path, capsys):
    photo = image.write_image(tmp_path / "in.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SystemExit) as e:
        stylize.run(["jaxgen stylize", "--method", "adain", str(photo), "--style", str(photo), "--model", NAME,
                     "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--model names a fast-style network: it needs --method fast, not adain" in err
