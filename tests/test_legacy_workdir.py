"""A workdir written by the jaxgen of before the architecture-v3 split (a 2-step tiny EDSR ``sr`` run,
``tests/goldens/legacy_workdir_v2``; its images/ and tensorboard/ removed) still restores to the same network,
evaluates, upscales and resumes. ``legacy_workdir_v2_sr.npz`` holds that network's output on a fixed input,
computed by the code that wrote the checkpoint. The commands run in this process (``tests.inprocess_cli``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from jaxgen import image, inference
from jaxgen.tasks import restore_generator
from tests.inprocess_cli import run_jaxgen

REPO = Path(__file__).resolve().parents[1]
LEGACY = REPO / "tests" / "goldens" / "legacy_workdir_v2"
TINY = f"{REPO / 'configs' / 'edsr.py'}:x2,tiny"


@pytest.fixture()
def workdir(tmp_path) -> Path:
    copy = tmp_path / "legacy"
    shutil.copytree(LEGACY, copy)
    return copy


def test_restores_the_same_network(workdir):
    golden = np.load(REPO / "tests" / "goldens" / "legacy_workdir_v2_sr.npz")
    config, model, params, step = restore_generator(workdir)
    assert (config.task, config.model.name, step) == ("sr", "edsr", 2)
    sr = inference.make_sr_fn(inference.make_apply(model), params, config.scale)(golden["lr"])
    np.testing.assert_allclose(sr, golden["sr"], atol=1e-5)


def test_eval_upscale_and_resume(workdir, tmp_path):
    rng = np.random.default_rng(0)
    smooth = np.cumsum(np.cumsum(rng.random((24, 20, 3)), 0), 1)
    image.write_image(tmp_path / "hr" / "a.png", (smooth / smooth.max() * 255).astype(np.uint8))
    proc = run_jaxgen("eval", "--workdir", str(workdir), "--data", str(tmp_path / "hr"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| edsr |" in proc.stdout

    proc = run_jaxgen("upscale", str(tmp_path / "hr" / "a.png"), "--workdir", str(workdir), "-o",
                      str(tmp_path / "up.png"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert image.read_image(tmp_path / "up.png").shape == (48, 40, 3)

    proc = run_jaxgen("train", f"--config={TINY}", f"--workdir={workdir}", "--config.total_steps=3",
                      "--config.ckpt_every=2", "--config.eval_every=0", "--config.keep_ckpts=1",
                      "--config.progress_bar=False")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "steps 2 -> 3" in proc.stdout
    assert json.loads((workdir / "summary.json").read_text())["final_step"] == 3
