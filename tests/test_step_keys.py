"""Every step draws fresh randomness, and a resumed run draws the uninterrupted run's: the key of stream ``s`` at
step ``t`` is ``fold_in(fold_in(key(seed), t), s)`` (``jaxgen.train.state`` docstring), checked here by formula and
end to end: a tiny Real-ESRGAN run's pair pool holds each step's degraded batch, and slot ``t`` must be the
degradation of that step's GT with step ``t``'s key -- in the straight run and in a run resumed from step 2."""

from __future__ import annotations

import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxgen import degradations as D
from jaxgen.config import optim_config
from jaxgen.tasks import base_config, get_task
from jaxgen.train import train
from jaxgen.train.checkpoint import open_manager
from jaxgen.train.state import STREAM_DEGRADE, STREAM_NOISE, new_state, step_key


def _key(seed: int, t: int, stream: int) -> np.ndarray:
    return np.asarray(jax.random.key_data(jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), t), stream)))


def test_step_key_changes_every_step_and_stream():
    state = new_state(7, {})
    keys = {}
    for t in range(3):
        st = state.replace(step=jnp.asarray(t, jnp.int32))
        for s in (STREAM_DEGRADE, STREAM_NOISE):
            got = np.asarray(jax.random.key_data(step_key(st, s)))
            np.testing.assert_array_equal(got, _key(7, t, s))
            keys[(t, s)] = got.tobytes()
    assert len(set(keys.values())) == 6


def _config(tmp_path) -> ml_collections.ConfigDict:
    c = base_config("real_sr")
    c.scale, c.batch_size, c.seed = 4, 4, 3
    c.model = ml_collections.ConfigDict(dict(name="rrdbnet", num_feat=4, num_blocks=1, num_grow_ch=4))
    c.optim = optim_config(lr=1e-3)
    c.data.patch_size, c.data.cache_dir, c.data.num_threads = 8, str(tmp_path / "cache"), 1
    c.data.source, c.data.train_dir, c.data.val_dirs = "folder", "", ()
    c.degradation.queue_size, c.degradation.context_size = 16, 0  # the pool keeps all 4 steps' pairs
    c.total_steps, c.eval_every, c.ckpt_every, c.keep_ckpts, c.log_every = 4, 0, 2, 3, 2
    c.eval_max_images, c.progress_bar = 1, False
    return c


def _pool(workdir) -> tuple[np.ndarray, np.ndarray]:
    manager = open_manager(workdir / "checkpoints", read_only=True)
    state = manager.restore(4, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
    pool = state["buffers"]["pool"]
    assert int(pool["ptr"]) == 16 and int(state["step"]) == 4
    return np.asarray(pool["lq"]), np.asarray(pool["gt"])


@pytest.mark.slow  # two tiny Real-ESRGAN runs (degradation compile): ~4 min on a loaded 2-core CPU
def test_each_step_degrades_with_its_own_key_also_after_a_resume(tmp_path):
    config = _config(tmp_path)
    straight = tmp_path / "straight"
    train(config, straight, get_task("real_sr")(config))
    resumed = tmp_path / "resumed"
    shutil.copytree(straight, resumed)
    shutil.rmtree(resumed / "checkpoints" / "4")
    summary = train(config, resumed, get_task("real_sr")(config))
    assert summary["start_step"] == 2

    cfg = D.DegradationConfig.from_config(config.degradation, config.scale)
    degrade = jax.jit(lambda k, x: D.degrade(k, D.usm_sharp(x), cfg))
    lq, gt = _pool(straight)
    lq_r, gt_r = _pool(resumed)
    np.testing.assert_array_equal(gt_r, gt)
    for t in range(4):
        rows = slice(4 * t, 4 * t + 4)
        hr = jnp.asarray(gt[rows].astype(np.float32) / 255)  # the step's GT (8-bit values: exact)
        for seed_t in (t, t - 1 if t else 1):  # the right key, and a neighbouring step's (a stale/fixed key)
            key = jax.random.wrap_key_data(jnp.asarray(_key(config.seed, seed_t, STREAM_DEGRADE)))
            want = np.round(np.asarray(degrade(key, hr)) * 255)
            for got in (lq[rows], lq_r[rows]):
                mismatch = np.mean(np.abs(got.astype(np.float32) - want) > 0.5)
                if seed_t == t:
                    assert mismatch < 0.01 and np.abs(got - want).max() <= 1, (t, mismatch)
                else:
                    assert mismatch > 0.2, (t, mismatch)  # step t's degradation is not step t-1's
