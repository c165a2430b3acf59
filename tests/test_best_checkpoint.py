"""The best checkpoint by LPIPS is the LOWEST value (LPIPS is a distance: Zhang et al. 2018), in the SR-GAN task's
declaration, in the checkpoint manager's preservation policy, and end to end through the training loop with fake
evaluations (step 2 has the lowest LPIPS: it is the one kept beside the latest, and the one ``which='best'``
restores)."""

from __future__ import annotations

import json

import jax
import ml_collections
import numpy as np

from jaxgen.config import optim_config
from jaxgen.tasks import SRGANTask, base_config, restore_generator
from jaxgen.train import checkpoint
from jaxgen.train.loop import train

LPIPS = {1: 0.30, 2: 0.10, 3: 0.20}  # step -> fake val_lpips: best (lowest) at 2, neither first nor last


def test_sr_gan_declares_lpips_lower_is_better():
    assert SRGANTask.best_metric == "val_lpips" and SRGANTask.best_mode == "min"


def test_manager_keeps_and_reports_the_lowest_lpips(tmp_path):
    manager = checkpoint.open_manager(tmp_path, keep=1, best_metric=SRGANTask.best_metric,
                                      best_mode=SRGANTask.best_mode)
    state = {"x": np.zeros(2, np.float32)}
    for step, value in LPIPS.items():
        checkpoint.save(manager, step, state, data_state={}, meta={}, metrics={"val_lpips": value})
        manager.wait_until_finished()
    assert manager.best_step() == 2
    assert sorted(manager.all_steps()) == [2, 3]  # latest (keep=1) + best; the worse step 1 deleted
    manager.close()


def _config() -> ml_collections.ConfigDict:
    c = base_config("sr_gan")
    c.scale, c.batch_size = 2, 2
    c.model = ml_collections.ConfigDict(dict(name="edsr", num_blocks=1, num_feat=4, res_scale=1.0))
    c.optim = optim_config(lr=1e-3)
    c.disc.name = "patchgan"
    c.disc.kwargs = ml_collections.ConfigDict(dict(ndf=4, n_layers=1))
    c.losses.gan.weight = 0.1
    c.data.patch_size, c.data.num_threads = 8, 1  # the built-in photos' prepared folder: the session's data cache
    c.data.source, c.data.train_dir, c.data.val_dirs = "folder", "", ()
    c.total_steps, c.eval_every, c.ckpt_every, c.keep_ckpts, c.log_every = 3, 1, 1, 1, 1
    c.progress_bar = False
    return c


def test_training_loop_keeps_and_restores_the_lowest_lpips(tmp_path):
    config = _config()
    task = SRGANTask(config)
    seen = []

    def fake_evaluate(state):  # two (here three) fake evaluations instead of the validation sets
        step = int(state.step)
        seen.append(step)
        return {"val_lpips": LPIPS[step]}, {}

    task.evaluate = fake_evaluate
    workdir = tmp_path / "run"
    summary = train(config, workdir, task)
    assert summary["final_step"] == 3 and seen == [1, 2, 3]
    assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == [2, 3]
    record = json.loads((workdir / checkpoint.TASK_FILE).read_text())
    assert record["best_metric"] == "val_lpips" and record["best_mode"] == "min"
    _, _, best, step = restore_generator(workdir, which="best")
    assert step == 2
    _, _, latest, step = restore_generator(workdir, which="latest")
    assert step == 3
    assert any(not np.array_equal(np.asarray(a), np.asarray(b))  # really the step-2 weights, not step 3's
               for a, b in zip(jax.tree.leaves(best), jax.tree.leaves(latest)))
