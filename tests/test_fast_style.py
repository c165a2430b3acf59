"""The fast_style task (tiny variant with the PatchGAN player): training steps, checkpoints, exact resume, the
evaluation grid, and ``jaxgen stylize --method fast`` from the run (wrong checkpoint kind -> exit 2)."""

from __future__ import annotations

import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxgen import image
from jaxgen.config import load_config
from jaxgen.tasks import get_task
from jaxgen.train import train
from jaxgen.train.checkpoint import restore_player

REPO = Path(__file__).resolve().parents[1]
SPEC = f"{REPO / 'configs' / 'fast_style.py'}:tiny,gan"
# Style layers up to relu2_2 (the content layer): the frozen VGG16 runs 4 convolutions instead of 10, which about
# halves the train step's compile; nothing here depends on the depth of the taps.
RUN = [("total_steps", "6"), ("ckpt_every", "3"), ("eval_every", "3"), ("progress_bar", "false"),
       ("style_layers", "('relu1_2', 'relu2_2')"), ("batch_size", "2")]  # batch 2: nothing here needs 8


def _flat(tree) -> dict[str, np.ndarray]:
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, dict]:
    workdir = tmp_path_factory.mktemp("fast_style")
    config = load_config(SPEC, RUN)
    summary = train(config, workdir, get_task(config.task)(config))
    return workdir, summary


def test_trains_both_players_and_writes_checkpoints_and_grids(run):
    workdir, summary = run
    assert summary["final_step"] == 6 and set(summary["params"]) == {"generator", "discriminator"}
    steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [3, 6]
    last = summary["last_train"]
    for key in ("loss_content", "loss_style", "loss_tv", "loss_gan", "d_loss"):
        assert np.isfinite(last[key]), key
    assert set(summary["val"]) == {"val_content", "val_style", "val_tv", "val_loss"}
    grid = image.read_image(workdir / "images" / "content_style_result_0000006.png")
    assert grid.shape[0] == 32 and grid.shape[1] > 3 * 32  # content | style | result
    g0 = restore_player(workdir / "checkpoints", 3, "generator")["params"]
    g1 = restore_player(workdir / "checkpoints", 6, "generator")["params"]
    assert any(not np.array_equal(a, b) for a, b in zip(_flat(g0).values(), _flat(g1).values()))


def test_resume_is_exact(run, tmp_path):
    workdir, _ = run
    resumed = tmp_path / "resumed"
    shutil.copytree(workdir, resumed)
    shutil.rmtree(resumed / "checkpoints" / "6")
    config = load_config(SPEC, RUN)
    summary = train(config, resumed, get_task(config.task)(config))
    assert summary["start_step"] == 3 and summary["final_step"] == 6
    for player in ("generator", "discriminator"):
        a = _flat(restore_player(workdir / "checkpoints", 6, player)["params"])
        b = _flat(restore_player(resumed / "checkpoints", 6, player)["params"])
        assert a.keys() == b.keys()
        for k in a:
            assert np.array_equal(a[k], b[k]), f"{player} {k}"


def test_style_loss_target_is_the_style_images_gram(run):
    config = load_config(SPEC, RUN)
    task = get_task(config.task)(config)
    consts, sources = task.consts()
    style = task.style_image()
    assert style.shape[:2] == (64, 64) and "sha256" in sources["style"]
    feats = task.vgg.apply({"params": consts["vgg"]}, style[None])
    from jaxgen.losses import gram_matrix

    for layer in config.style_layers:
        np.testing.assert_allclose(np.asarray(consts["style_grams"][layer]), np.asarray(gram_matrix(feats[layer])),
                                   rtol=1e-5)
    parts = task.losses(style[None], style[None], consts)  # the style image itself: zero content/style loss
    assert float(parts["content"]) == 0.0 and float(parts["style"]) < 1e-6 * config.losses.style


def test_stylize_cli_from_the_run_and_wrong_kind(run, tmp_path, capsys):
    from jaxgen.commands import stylize

    workdir, _ = run
    photo = image.write_image(tmp_path / "in.png", np.random.default_rng(0).integers(0, 256, (30, 22, 3), np.uint8))
    out = tmp_path / "out"
    assert stylize.run(["jaxgen stylize", "--method", "fast", str(photo), str(photo), "--workdir", str(workdir),
                        "-o", str(out), "-q"]) == 0  # two inputs: a folder of outputs
    assert image.read_image(out / "in_fast.png").shape == (30, 22, 3)  # sides not multiples of 4 come back
    with pytest.raises(SystemExit) as e:
        stylize.run(["jaxgen stylize", "--method", "adain", str(photo), "--style", str(photo), "--workdir",
                     str(workdir), "-o", str(out)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "wrong checkpoint kind" in err and "'fast_style' run" in err
    with pytest.raises(SystemExit) as e:
        stylize.run(["jaxgen stylize", "--method", "fast", str(photo), "--style", str(photo), "--workdir",
                     str(workdir), "-o", str(out)])
    assert e.value.code == 2 and "takes no --style" in capsys.readouterr().err


def test_unknown_style_is_a_clear_error():
    config = load_config(SPEC, RUN + [("style", "no_such_style")])
    with pytest.raises(ValueError, match="style 'no_such_style': no such image file"):
        get_task(config.task)(config).consts()


def test_multiscale_discriminator_player():
    """``disc.name = 'multiscale_patchgan'`` (a tuple of logit maps): the D loss sums the scales and the logit
    metrics average the scales' means (the step cast one map to float32: a tuple crashed it)."""
    config = load_config(SPEC, RUN + [("disc.name", "multiscale_patchgan"), ("disc.kwargs.num_d", "2"),
                                      ("disc.kwargs.n_layers", "1")])
    task = get_task(config.task)(config)
    consts, _ = task.consts()
    state = jax.jit(task.init)()
    assert set(state.players["discriminator"].params) == {"scale0", "scale1"}
    batch = next(iter(task.make_data(0, 1)))
    new, metrics = jax.jit(task.step)(state, batch, consts)
    d_params = state.players["discriminator"].params
    real = jax.jit(task.discriminator.apply)({"params": d_params}, batch["style"])
    assert isinstance(real, tuple) and len(real) == 2
    assert float(metrics["d_real_logit"]) == pytest.approx(float((real[0].mean() + real[1].mean()) / 2), rel=1e-5)
    assert bool(metrics["finite"]) and int(new.players["discriminator"].opt_state[0].count) == 1
