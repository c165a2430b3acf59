"""The command line as a new user meets it: help, quiet runs, one-line errors with exit status 2, Ctrl-C.

What a command prints and returns is checked in this process (``tests.inprocess_cli``); what a real ``jaxgen``
process does (its terminal output in quiet and verbose runs, Ctrl-C) runs in subprocesses."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxgen import image
from tests.inprocess_cli import run_jaxgen

REPO = Path(__file__).resolve().parents[1]
TINY = f"{REPO / 'configs' / 'edsr.py'}:x2,tiny"
QUIET = ["--config.progress_bar=False"]


def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jaxgen.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 2, one line on stderr starting with 'jaxgen: error:' (or argparse's usage error), no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr[-2000:])


@pytest.mark.parametrize("command", ["train", "eval", "demo"])
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_exits_zero_and_shows_options(command, flag):
    proc = run_jaxgen(command, flag)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"jaxgen {command}" in out and "(default" in out
    if command != "eval":
        for needle in ("--config", "--workdir", "--config.KEY=VALUE", "configs/edsr.py", "variants"):
            assert needle in out, needle


def test_top_level_help_and_unknown_command():
    proc = cli("--help")
    assert proc.returncode == 0 and "train" in proc.stdout and "upscale" in proc.stdout
    assert_user_error(cli("trian"), "did you mean 'train'")


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["--config=configs/nope.py"], ["config file 'configs/nope.py' not found"]),
        ([f"--config={REPO / 'configs' / 'edsr.py'}:x2,tinyy"], ["unknown config variant 'tinyy'", "did you mean 'tiny'"]),
        ([f"--config={TINY}", "--config.optim.lrr=1e-3"], ["no key 'lrr'", "did you mean 'optim.lr'"]),
        ([f"--config={TINY}", "--config.model.num_blocks=-1"], ["config.model.num_blocks=-1"]),
        ([f"--config={TINY}", "--config.total_steps=0"], ["config.total_steps=0"]),
        ([f"--config={TINY}", "--config.batch_size=abc"], ["expects an integer"]),
        ([f"--config={TINY}", "--bogus"], ["unrecognized argument '--bogus'"]),
    ],
)
def test_everyday_mistakes_are_one_line_exit_2(tmp_path, args, fragments):
    assert_user_error(run_jaxgen("train", *args, f"--workdir={tmp_path / 'w'}", *QUIET), *fragments)
    assert not (tmp_path / "w" / "checkpoints").exists()


def test_workdir_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    assert_user_error(cli("train", f"--config={TINY}", f"--workdir={tmp_path / 'file'}", *QUIET), "is a file")


def test_eval_and_upscale_argument_errors(tmp_path):
    assert_user_error(run_jaxgen("eval", "--model", "bicubic", "--data", tmp_path, "--scale", "2", "--tile", "-5"),
                      "expected an integer >= 0")
    assert_user_error(run_jaxgen("eval", "--workdir", tmp_path / "none", "--data", tmp_path), "no such folder")


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """Two real ``jaxgen train`` processes: a --verbose one logging every step from the first, then a quiet
    resume whose first step is a log step."""
    workdir = tmp_path_factory.mktemp("log_every_1")
    first = cli("train", f"--config={TINY}", f"--workdir={workdir}", "--config.total_steps=2", "--config.log_every=1",
                "--config.eval_every=0", "--verbose", *QUIET)
    assert first.returncode == 0, first.stderr[-3000:]
    second = cli("train", f"--config={TINY}", f"--workdir={workdir}", "--config.total_steps=4", "--config.log_every=1",
                 "--config.eval_every=0")
    assert second.returncode == 0, second.stderr[-3000:]
    return workdir, first, second


def test_log_every_one_and_resume_on_a_log_step(logged_run):
    workdir, _, second = logged_run
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]
    assert "steps 2 -> 4" in second.stdout
    ended = json.loads((workdir / "summary.json").read_text())
    assert ended["finished"] and ended["stopped_by"] is None and ended["final_step"] == ended["total_steps"] == 4


def test_training_is_quiet_by_default(logged_run):
    _, _, second = logged_run
    text = second.stdout + second.stderr
    assert "INFO" not in text and "WARNING:absl" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) <= 8, text


def test_verbose_brings_library_logs_back(logged_run):
    _, first, _ = logged_run
    assert first.returncode == 0 and "INFO" in first.stderr


def test_eval_prints_its_table_without_out(logged_run, tmp_path):
    workdir, _, _ = logged_run
    folder = tmp_path / "hr"
    rng = np.random.default_rng(0)
    smooth = np.cumsum(np.cumsum(rng.random((40, 36, 3)), 0), 1)
    image.write_image(folder / "a.png", (smooth / smooth.max() * 255).astype(np.uint8))
    proc = run_jaxgen("eval", "--workdir", str(workdir), "--data", str(folder), "--scale", "2")
    assert proc.returncode == 0, proc.stderr
    assert "| edsr |" in proc.stdout and "| bicubic |" in proc.stdout
    assert not list(tmp_path.glob("*.json"))


def test_resume_with_other_training_data_says_use_a_new_workdir(logged_run, tmp_path):
    workdir, _, _ = logged_run
    photos = tmp_path / "photos"
    rng = np.random.default_rng(1)
    for i in range(2):
        image.write_image(photos / f"p{i}.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    proc = run_jaxgen("train", f"--config={TINY}", f"--workdir={workdir}", f"--config.data.train_dir={photos}",
                      "--config.total_steps=6", *QUIET)
    assert_user_error(proc, "new --workdir")
    assert "strict=False" not in proc.stderr


def _wait_for_steps(path: Path, n: int, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and path.read_text().count("\n") >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"training exited early ({proc.returncode})")
        time.sleep(0.05)
    pytest.fail("training did not log")


def _long_run(workdir: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "jaxgen.cli", "train", f"--config={TINY}", f"--workdir={workdir}", *QUIET,
            "--config.total_steps=100000", "--config.ckpt_every=100000", "--config.eval_every=0",
            "--config.log_every=1"]
    return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


# Ctrl-C between steps (checkpoints the step reached, exits 0, "stopped by SIGINT", summary.json): tests/
# test_hardening_runs.py::test_second_trainer_is_refused_in_one_line_within_5_s_and_ctrl_c_checkpoints_the_current_
# step_and_exits_zero (one trainer process for the lock and the Ctrl-C checks).


def test_second_ctrl_c_exits_at_once(tmp_path):
    workdir = tmp_path / "twice"
    proc = _long_run(workdir)
    try:
        _wait_for_steps(workdir / "metrics.jsonl", 2, proc)
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode in (0, 130), out[-3000:]
    assert "Traceback" not in out
