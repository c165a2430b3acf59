"""Checkpoints are portable across device counts: ``configs/edsr.py:x2,tiny`` trained on 8 fake CPU devices
(steps 0 -> 7, checkpoints at 4 and 7) is evaluated, used for upscaling on 1 device, and resumed from step 4
on 1 and on 2 devices.

Truths used:
- The run's own validation at step 7 (computed on 8 devices during training, stored in the checkpoint's
  metrics) must equal ``jaxgen eval`` of that checkpoint on 1 device (Y-PSNR/SSIM, crop = scale).
- ``jaxgen upscale`` on 1 device must equal, bitwise, the generator built from the config by hand and applied
  to params restored through a second route (Orbax ``StandardRestore`` of the whole train state onto one
  device, not jaxgen's partial numpy restore).
- Resuming step 4 -> 7 on 2 devices and on 1 device must agree to float tolerance, and both with the
  8-device run's own step 7 (same batches; only the split of the batch-mean reductions over devices
  differs). A resume from scratch, from the wrong step or with the wrong data position differs by about
  one Adam step (lr 5e-4 per parameter), far above the tolerance.

The 8- and 2-device runs are subprocesses (a device count is fixed when JAX starts); what runs on 1 device runs
in this test process, which has one CPU device (``tests.inprocess_cli``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxgen import image
from tests.cli_runs import REPO, TINY, checkpoint_steps, cpu_env, generator_params, jaxgen_cli, small_val_dir
from tests.inprocess_cli import run_jaxgen

TOTAL = 7
FIRST_CKPT = 4
# 1 vs 2 vs 8 devices, 3 Adam steps from the same checkpoint: measured max abs diff 1.5e-8 (max rel 1.1e-5 on
# near-zero weights); the 3 steps themselves move weights by up to 1.5e-3.
ATOL, RTOL = 1e-6, 1e-5


def train_args(workdir: Path, val_dir: Path, **overrides: Any) -> list[str]:
    options = {"progress_bar": "False", "eval_every": "0", "log_every": "1", "ckpt_every": str(FIRST_CKPT),
               "total_steps": str(TOTAL), "data.val_dirs": f"('{val_dir}',)", **overrides}
    return ["train", f"--config={TINY}", f"--workdir={workdir}", *(f"--config.{k}={v}" for k, v in options.items())]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("portable")
    val_dir = small_val_dir(root / "val")
    workdir = root / "eight"
    cache = root / "jax_cache"
    proc = jaxgen_cli(cpu_env(8, cache), *train_args(workdir, val_dir))
    assert f"steps 0 -> {TOTAL} on 8 device(s)" in proc.stdout, proc.stdout
    return {"root": root, "workdir": workdir, "val_dir": val_dir, "cache": cache}


def test_eight_device_run_checkpoints(run):
    assert checkpoint_steps(run["workdir"]) == [FIRST_CKPT, TOTAL]
    meta = json.loads((run["workdir"] / "checkpoints" / str(TOTAL) / "meta" / "metadata").read_text())
    assert meta["step"] == TOTAL and np.isfinite(meta["metrics"]["val_psnr"])


def one_device_jaxgen(*args: str) -> subprocess.CompletedProcess:
    """``jaxgen ARGS`` in this process, on its one CPU device; a non-zero exit fails with the end of stderr."""
    assert jax.device_count() == 1, jax.devices()
    proc = run_jaxgen(*args)
    assert proc.returncode == 0, f"jaxgen {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc


def test_eval_on_one_device_reproduces_the_runs_validation(run):
    out = run["root"] / "eval" / "results.json"
    one_device_jaxgen("eval", "--workdir", str(run["workdir"]), "--data", str(run["val_dir"]), "--scale", "2",
                      "--out", str(out))
    results = json.loads(out.read_text())
    assert results["source"]["step"] == TOTAL and results["scale"] == 2
    ours, bicubic = results["datasets"]["val"]["edsr"], results["datasets"]["val"]["bicubic"]
    meta = json.loads((run["workdir"] / "checkpoints" / str(TOTAL) / "meta" / "metadata").read_text())
    # Same checkpoint, same image, same Y-PSNR/SSIM protocol: 8 devices in the loop vs 1 device here.
    assert ours["psnr"] == pytest.approx(meta["metrics"]["val/psnr"], abs=1e-3)
    assert ours["ssim"] == pytest.approx(meta["metrics"]["val/ssim"], abs=1e-4)
    assert 15 < ours["psnr"] < 60 and 15 < bicubic["psnr"] < 60
    assert out.with_suffix(".md").exists()


def restore_state_one_device(workdir: Path, step: int) -> Any:
    """The whole train state at ``step`` onto this process's first device (Orbax ``StandardRestore`` with the
    shapes of a freshly built task)."""
    from jaxgen.config import config_from_json
    from jaxgen.tasks import get_task

    config = config_from_json((workdir / "config.json").read_text())
    abstract = jax.eval_shape(get_task(config.task)(config).init)
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device), abstract)
    return ocp.StandardCheckpointer().restore(workdir / "checkpoints" / str(step) / "state", abstract)


def test_upscale_on_one_device_equals_the_restored_generator(run):
    from jaxgen.models import build

    lr = image.read_image(run["val_dir"] / "crop.png")[:40, :56]
    src, dst = run["root"] / "up" / "in.png", run["root"] / "up" / "out.png"
    src.parent.mkdir()
    image.write_image(src, lr)
    proc = one_device_jaxgen("upscale", "--workdir", str(run["workdir"]), str(src), "-o", str(dst))
    assert f"step {TOTAL}" in proc.stdout
    got = image.read_image(dst)
    assert got.shape == (80, 112, 3) and got.dtype == np.uint8

    state = restore_state_one_device(run["workdir"], TOTAL)
    assert int(state.step) == TOTAL
    model = build("edsr", scale=2, num_blocks=2, num_feat=16, res_scale=1.0)  # the tiny config's generator
    params = state.players["generator"].params
    sr = jax.jit(lambda p, x: model.apply({"params": p}, x))(params, image.to_float(lr)[None])[0]
    want = image.to_uint8(np.asarray(sr))
    assert np.array_equal(got, want), f"max diff {np.abs(got.astype(int) - want).max()}"


def copy_first_checkpoint(src: Path, dst: Path) -> Path:
    (dst / "checkpoints").mkdir(parents=True)
    shutil.copy(src / "config.json", dst / "config.json")
    shutil.copytree(src / "checkpoints" / str(FIRST_CKPT), dst / "checkpoints" / str(FIRST_CKPT))
    return dst


@pytest.fixture(scope="module")
def resumed(run) -> dict[int, dict[str, Any]]:
    """Copies of the 8-device workdir holding only checkpoint 4, resumed to step 7 on 2 devices (a subprocess)
    and, meanwhile, on 1 device (this process)."""
    runs = {devices: {"workdir": copy_first_checkpoint(run["workdir"], run["root"] / f"resume_{devices}")}
            for devices in (1, 2)}
    # 2 CPU devices the way jaxgen train makes them on a 2-core host (JAX_NUM_CPU_DEVICES, no XLA_FLAGS) and the
    # session's compilation cache: the train step other tests' jaxgen train processes compiled is reused.
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES="2",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    args = [sys.executable, "-m", "jaxgen.cli", *train_args(runs[2]["workdir"], run["val_dir"])]
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert jax.device_count() == 1, jax.devices()
        one = run_jaxgen(*train_args(runs[1]["workdir"], run["val_dir"]))
        runs[1].update(returncode=one.returncode, stdout=one.stdout, stderr=one.stderr)
        runs[2]["stdout"], runs[2]["stderr"] = proc.communicate(timeout=240)
        runs[2]["returncode"] = proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for devices, r in runs.items():
        assert r["returncode"] == 0, f"resume on {devices} device(s):\n{r['stderr'][-3000:]}"
    return runs


@pytest.mark.parametrize("devices", [1, 2])
def test_resume_continues_from_the_eight_device_checkpoint(resumed, devices):
    r = resumed[devices]
    assert f"steps {FIRST_CKPT} -> {TOTAL} on {devices} device(s)" in r["stdout"], r["stdout"]
    assert checkpoint_steps(r["workdir"]) == [FIRST_CKPT, TOTAL]
    data = json.loads((r["workdir"] / "checkpoints" / str(TOTAL) / "data" / "metadata").read_text())
    assert data["iterator"]["next_batch"] == TOTAL


@pytest.mark.parametrize("devices", [1, 2])
def test_resume_equals_the_eight_device_run(run, resumed, devices):
    """Steps 5-7 on ``devices`` devices from the 8-device checkpoint 4 == the 8-device run's own steps 5-7."""
    got, straight = generator_params(resumed[devices]["workdir"], TOTAL), generator_params(run["workdir"], TOTAL)
    start = generator_params(run["workdir"], FIRST_CKPT)
    assert got.keys() == straight.keys() and len(got) > 4
    for k in got:
        np.testing.assert_allclose(got[k], straight[k], rtol=RTOL, atol=ATOL, err_msg=k)
    # The 3 steps moved the params by far more than the tolerance, so a wrong resume cannot pass.
    assert max(float(np.abs(straight[k] - start[k]).max()) for k in straight) > 100 * ATOL


def test_resume_on_two_devices_equals_resume_on_one(resumed):
    one, two = generator_params(resumed[1]["workdir"], TOTAL), generator_params(resumed[2]["workdir"], TOTAL)
    assert one.keys() == two.keys() and len(one) > 4
    for k in one:
        np.testing.assert_allclose(two[k], one[k], rtol=RTOL, atol=ATOL, err_msg=k)
