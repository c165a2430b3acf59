"""The loop end to end: CLI, exact resume (also after SIGKILL), preemption, NaN stop, arch mismatch, eval,
upscale. Uses ``configs/edsr.py:x2,tiny`` on the built-in sample photos, for 8 steps (``RUN``).

Training runs are real ``jaxgen train`` processes (the CPU split into 2 devices, signals, process death); the
commands that only read a workdir, and the runs that stop at their first step, run in this process
(``tests.inprocess_cli``)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxgen import image
from jaxgen.config import load_config
from jaxgen.tasks import restore_generator
from jaxgen.tasks import get_task
from jaxgen.models import conv_vjp, onednn_conv
from jaxgen.train import NonFiniteLossError, train
from jaxgen.train.loop import steps_per_call
from jaxgen.train.checkpoint import open_manager, restore_numpy
from tests.inprocess_cli import run_jaxgen

REPO = Path(__file__).resolve().parents[1]
TINY = f"{REPO / 'configs' / 'edsr.py'}:x2,tiny"
QUIET = ["--config.progress_bar=False"]
# The tiny config's run, shortened (20 -> 8 steps): log every 2, checkpoint and validate every 4.
TOTAL = 8
RUN = [f"--config.total_steps={TOTAL}", "--config.log_every=2", "--config.ckpt_every=4", "--config.eval_every=4"]


def cli(*args: str, check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "jaxgen.cli", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"jaxgen {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def train_cli(workdir: Path, *overrides: str, **kw) -> subprocess.CompletedProcess:
    return cli("train", f"--config={TINY}", f"--workdir={workdir}", *QUIET, *overrides, **kw)


def jaxgen(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``jaxgen ARGS`` in this process; a non-zero exit fails with the end of stderr unless ``check=False``."""
    proc = run_jaxgen(*args)
    if check and proc.returncode != 0:
        raise AssertionError(f"jaxgen {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def restored_params(workdir: Path, step: int | None = None) -> dict[str, np.ndarray]:
    manager = open_manager(workdir / "checkpoints", read_only=True)
    step = manager.latest_step() if step is None else step
    state = restore_numpy(workdir / "checkpoints", step)  # any device count (jaxgen train may use 2 CPU devices)
    flat = jax.tree_util.tree_flatten_with_path(state["players"]["generator"]["params"])[0]
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in flat}


def assert_bitwise_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys() and a
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), f"{k} differs"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny run trained for 8 steps through the CLI (checkpoints and validations at 4 and 8)."""
    workdir = tmp_path_factory.mktemp("tiny_run")
    proc = train_cli(workdir, *RUN)
    assert "validation" in proc.stdout
    return workdir


def test_workdir_layout_and_logs(trained):
    steps = sorted(int(p.name) for p in (trained / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [4, 8]
    for item in ("state", "data", "meta"):
        assert (trained / "checkpoints" / "8" / item).is_dir()
    meta = json.loads((trained / "checkpoints" / "8" / "meta" / "metadata").read_text())
    assert meta["step"] == 8 and meta["config"]["model"]["name"] == "edsr"
    assert "val_psnr" in meta["metrics"]
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in records if "loss" in r]
    assert train_steps == [2, 4, 6, 8]
    assert all(r["lr"] > 0 and "g_grad_norm" in r for r in records if "loss" in r)
    assert all(r["images_per_s"] > 0 for r in records if "loss" in r)
    assert any("val_psnr" in r for r in records)
    assert list((trained / "tensorboard").glob("events.out.tfevents.*"))
    grids = sorted((trained / "images").glob("lr_bicubic_sr_hr_*.png"))
    assert [g.name for g in grids] == ["lr_bicubic_sr_hr_0000004.png", "lr_bicubic_sr_hr_0000008.png"]
    grid = image.read_image(grids[-1])
    assert grid.shape[1] == 4 * (grid.shape[1] // 4)  # LR | bicubic | SR | HR


def test_restored_tree_has_generator_params_and_optimizer(trained):
    state = restore_numpy(trained / "checkpoints", 8)
    assert int(state["step"]) == 8
    assert set(state["players"]) == {"generator"}
    assert "params" in state["players"]["generator"] and "opt_state" in state["players"]["generator"]


def test_resume_after_sigkill_then_a_second_call_with_more_steps_is_bitwise_exact(trained, tmp_path):
    """A run killed after its first checkpoint (every 2 steps), resumed to step 4 (a run that ends there), then a
    second call with more steps to 8 == the fixture's 8 steps straight (bitwise, CPU; at step 4 too). If the kill
    came after step 2, the same from there: resumed 2 steps past the last checkpoint, called again for 2 more, ==
    a straight run to that step. (One process chain for the former test_resume_after_sigkill_is_bitwise_exact and
    test_second_call_with_more_steps_resumes_exactly.)"""
    killed = tmp_path / "killed"
    args = [sys.executable, "-m", "jaxgen.cli", "train", f"--config={TINY}", f"--workdir={killed}", *QUIET,
            "--config.total_steps=100000", "--config.ckpt_every=2", "--config.eval_every=0", "--config.log_every=1"]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            if any(p.name.isdigit() for p in (killed / "checkpoints").glob("*")):
                break
            time.sleep(0.05)
        else:
            pytest.fail("no checkpoint appeared")
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    last = open_manager(killed / "checkpoints", read_only=True).latest_step()
    assert last and last % 2 == 0
    if last < TOTAL // 2:
        middle, target, straight = TOTAL // 2, TOTAL, trained
    else:
        middle, target, straight = last + 2, last + 4, tmp_path / "straight"
        train_cli(straight, *RUN, f"--config.total_steps={target}")
    first = train_cli(killed, *RUN, f"--config.total_steps={middle}")  # the last value of an option wins
    assert f"steps {last} -> {middle}" in first.stdout
    second = train_cli(killed, *RUN, f"--config.total_steps={target}")
    assert f"steps {middle} -> {target}" in second.stdout
    assert_bitwise_equal(restored_params(killed, target), restored_params(straight, target))
    if straight == trained:
        assert_bitwise_equal(restored_params(killed, middle), restored_params(trained, middle))


def test_sigterm_checkpoints_current_step_and_exits_zero(tmp_path):
    workdir = tmp_path / "preempted"
    args = [sys.executable, "-m", "jaxgen.cli", "train", f"--config={TINY}", f"--workdir={workdir}", *QUIET,
            "--config.total_steps=100000", "--config.ckpt_every=100000", "--config.eval_every=0",
            "--config.log_every=1"]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = workdir / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-3000:]
    steps = [int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()]
    assert len(steps) == 1 and 3 <= steps[0] < 100000
    assert "stopped by SIGTERM" in out


def test_nan_loss_stops_and_keeps_last_good_checkpoint(trained, tmp_path):
    workdir = tmp_path / "nan"
    config = load_config(TINY)
    config.progress_bar = False
    config.total_steps = 2
    train(config, workdir, get_task(config.task)(config))
    good = restored_params(workdir, 2)
    config.total_steps, config.log_every = 4, 1
    config.losses.l1 = float("nan")
    with pytest.raises(NonFiniteLossError, match="step 3.*last good checkpoint is step 2"):
        train(config, workdir, get_task(config.task)(config))
    manager = open_manager(workdir / "checkpoints", read_only=True)
    assert manager.latest_step() == 2
    assert_bitwise_equal(restored_params(workdir, 2), good)


def test_nan_run_cli_exits_nonzero_with_message(trained, tmp_path):
    nan_file = tmp_path / "nan_edsr.py"  # the command line refuses non-finite numbers: NaN from a config file
    nan_file.write_text("from jaxgen.config import exec_python_file\ndef get_config(arg=None):\n"
                        f"    c = exec_python_file({str(REPO / 'configs' / 'edsr.py')!r}, 'config').get_config('x2,tiny')\n"
                        "    c.losses.l1 = float('nan')\n    return c\n")
    proc = jaxgen("train", f"--config={nan_file}", f"--workdir={tmp_path / 'nan_cli'}", *QUIET, "--config.log_every=1",
                  check=False)
    assert proc.returncode == 1 and "non-finite loss at step 1" in proc.stderr and "Traceback" not in proc.stderr


def test_resuming_with_another_architecture_says_what_to_do(trained, tmp_path):
    proc = jaxgen("train", f"--config={REPO / 'configs' / 'rcan.py'}:x2,tiny", f"--workdir={trained}", *QUIET,
                  check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "trained as edsr" in proc.stderr and "the config is rcan" in proc.stderr and "new --workdir" in proc.stderr
    proc = jaxgen("train", f"--config={TINY}", f"--workdir={trained}", *QUIET, "--config.model.num_feat=24",
                  check=False)
    assert proc.returncode == 2 and "num_feat=16" in proc.stderr and "num_feat=24" in proc.stderr


def test_checkpoint_shape_check_names_the_paths(trained, tmp_path):
    """Below the config check: a state whose shapes differ from the checkpoint's is refused path by path (the
    train state's layout: EDSR's two residual blocks stacked under ``body_0..1``), by the check and by restore."""
    from jaxgen.train import checkpoint

    config = load_config(TINY, [("model.num_feat", "24")])
    task = get_task("sr")(config)
    abstract = jax.eval_shape(task.init)
    manager = open_manager(trained / "checkpoints", read_only=True)
    wanted = (r"shape mismatch at players/generator/params/body_0\.\.1/conv1/kernel: "
              r"checkpoint \(2, 3, 3, 16, 16\) vs model \(2, 3, 3, 24, 24\)")
    with pytest.raises(ValueError, match=wanted):
        checkpoint.check_compatible(manager, 8, abstract)
    with pytest.raises(ValueError, match=wanted):
        checkpoint.restore(manager, 8, abstract)


def test_eval_cli_bicubic_and_checkpoint(trained, tmp_path):
    folder = tmp_path / "hr"
    rng = np.random.default_rng(0)
    for i in range(2):
        smooth = np.cumsum(np.cumsum(rng.random((40, 36, 3)), 0), 1)
        image.write_image(folder / f"img_{i}.png", (smooth / smooth.max() * 255).astype(np.uint8))
    out = tmp_path / "bicubic.json"
    jaxgen("eval", "--model", "bicubic", "--data", str(folder), "--scale", "2", "--out", str(out))
    res = json.loads(out.read_text())
    assert res["datasets"]["hr"]["bicubic"]["psnr"] > 20
    assert "| bicubic |" in out.with_suffix(".md").read_text()
    out2 = tmp_path / "model.json"
    jaxgen("eval", "--workdir", str(trained), "--data", str(folder), "--scale", "2", "--out", str(out2))
    res2 = json.loads(out2.read_text())
    assert set(res2["methods"]) == {"edsr", "bicubic"}
    assert res2["datasets"]["hr"]["bicubic"]["psnr"] == pytest.approx(res["datasets"]["hr"]["bicubic"]["psnr"])
    assert np.isfinite(res2["datasets"]["hr"]["edsr"]["psnr"])
    bad = jaxgen("eval", "--workdir", str(trained), "--data", str(folder), "--scale", "3", "--out", str(out2),
                 check=False)
    assert bad.returncode == 2 and "x2" in bad.stderr


def test_upscale_cli_tiled_equals_untiled(trained, tmp_path):
    rng = np.random.default_rng(1)
    src = tmp_path / "in.png"
    image.write_image(src, rng.integers(0, 256, (45, 38, 3), dtype=np.uint8))
    whole, tiled = tmp_path / "whole.png", tmp_path / "tiled.png"
    jaxgen("upscale", "--workdir", str(trained), str(src), "-o", str(whole))
    jaxgen("upscale", "--workdir", str(trained), str(src), "-o", str(tiled), "--tile", "32", "--tile-overlap", "10")
    a, b = image.read_image(whole), image.read_image(tiled)
    assert a.shape == (90, 76, 3)
    # Equal away from rounding: uint8 values differ by at most 1 where float sums round differently.
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert np.mean(a != b) < 0.01


def test_restore_generator_uses_config_of_the_run(trained):
    config, model, params, step = restore_generator(trained)
    assert step == 8 and config.scale == 2
    x = np.zeros((1, 6, 5, 3), np.float32)
    assert model.apply({"params": params}, x).shape == (1, 12, 10, 3)


def test_steps_per_call_takes_the_same_steps(trained, tmp_path):
    """``config.steps_per_call=2``: two steps a call of the compiled step (one ``lax.scan``) -- the same
    checkpoints, logged steps and losses, and the same parameters as the fixture's one step a call: bitwise with
    oneDNN's convolutions (``conv_backend`` auto on the CPUs that take them), else to float32 summation order
    (inside the scan XLA's convolutions take ``conv_vjp``'s gradients, outside autodiff's at this batch)."""
    single, paired = tmp_path / "single", tmp_path / "paired"
    train_cli(single, *RUN, "--config.steps_per_call=1")
    train_cli(paired, *RUN, "--config.steps_per_call=2")
    assert sorted(int(p.name) for p in (paired / "checkpoints").iterdir() if p.name.isdigit()) == [4, 8]
    logged = {}
    for run in (single, paired):
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        logged[run] = {r["step"]: r["loss"] for r in records if "loss" in r}
    assert list(logged[paired]) == [2, 4, 6, 8]
    np.testing.assert_allclose([logged[paired][s] for s in (2, 4, 6, 8)], [logged[single][s] for s in (2, 4, 6, 8)],
                               rtol=1e-5)
    ours, theirs = restored_params(paired, 8), restored_params(single, 8)
    meta = json.loads((paired / "checkpoints" / "8" / "meta" / "metadata").read_text())
    assert meta["steps_per_call"] == 2
    if meta["conv_backend"] == "onednn":
        assert_bitwise_equal(ours, theirs)
        assert_bitwise_equal(restored_params(trained, 8), theirs)  # the fixture: auto, 2 steps a call here
    assert ours.keys() == theirs.keys()
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_steps_per_call_auto_takes_the_largest_divisor_with_onednn():
    """``steps_per_call = 0`` (the default): 4 or 2 steps a call where every count allows it, with oneDNN's
    convolutions on CPU; 1 with XLA's; an explicit value as given."""
    c = load_config(TINY)
    c.total_steps, c.log_every, c.eval_every, c.ckpt_every = 8, 2, 4, 4
    assert c.steps_per_call == 0
    with conv_vjp.overridden(lambda *args, **kwargs: None):  # what onednn_conv.configure("onednn") installs
        assert onednn_conv.current_backend() == "onednn"
        assert steps_per_call(c) == 2 and steps_per_call(c, start_step=6) == 2 and steps_per_call(c, start_step=3) == 1
        c.log_every = 4
        assert steps_per_call(c) == 4 and steps_per_call(c, start_step=6) == 2
        c.eval_every = 0  # only at the end
        assert steps_per_call(c) == 4
        c.steps_per_call = 1
        assert steps_per_call(c) == 1
    c.steps_per_call = 0
    with conv_vjp.overridden(None):
        assert steps_per_call(c) == 1


def test_steps_per_call_must_divide_the_schedule_and_the_resumed_step(trained, tmp_path):
    """A ``steps_per_call`` that does not divide ``total_steps`` / ``log_every`` / ``eval_every`` / ``ckpt_every``,
    or a checkpoint's step (a resume): exit 2, one line naming the keys / the step, nothing written (but the
    workdir's lock file, as for any config error)."""
    proc = jaxgen("train", f"--config={TINY}", f"--workdir={tmp_path / 'odd'}", *QUIET, *RUN,
                  "--config.steps_per_call=3", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "steps_per_call=3" in proc.stderr and "config.total_steps=8" in proc.stderr
    assert "config.log_every=2" in proc.stderr and [p.name for p in (tmp_path / "odd").iterdir()] == [".jaxgen.lock"]
    before = sorted(p.name for p in (trained / "checkpoints").iterdir())
    proc = jaxgen("train", f"--config={TINY}", f"--workdir={trained}", *QUIET, "--config.total_steps=12",
                  "--config.log_every=3", "--config.ckpt_every=6", "--config.eval_every=6", "--config.steps_per_call=3",
                  check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "at step 8 with config.steps_per_call=3" in proc.stderr
    assert sorted(p.name for p in (trained / "checkpoints").iterdir()) == before
