"""Issue 18 (hardening), runs: one trainer per workdir, one line per failure (disk full, read-only workdir,
out-of-range overrides), Ctrl-C during validation, sweeps with pruned/pending/retried trials."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jaxgen import workdir_lock

REPO = Path(__file__).resolve().parents[1]
TINY = f"{REPO / 'configs' / 'edsr.py'}:x2,tiny"
QUIET = ["--config.progress_bar=False"]


def cli(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jaxgen.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)


def assert_one_line(proc: subprocess.CompletedProcess, code: int, *fragments: str) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == code, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr[-3000:]
    errors = [line for line in lines if line.startswith("jaxgen: error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def long_run(workdir: Path, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "jaxgen.cli", "train", f"--config={TINY}", f"--workdir={workdir}", *QUIET,
            "--config.total_steps=100000", "--config.ckpt_every=100000", "--config.eval_every=0",
            "--config.log_every=1", *extra]
    return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_steps(path: Path, n: int, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and path.read_text().count("\n") >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"training exited early ({proc.returncode}): {proc.stdout.read()[-3000:]}")
        time.sleep(0.05)
    pytest.fail("training did not log")


# ------------------------------------------------------------------------------------------ workdir lock


def test_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    with workdir_lock.WorkdirLock(tmp_path / "w", "jaxgen train"):
        with pytest.raises(workdir_lock.WorkdirBusyError, match=rf"pid {os.getpid()} on host"):
            workdir_lock.WorkdirLock(tmp_path / "w", "jaxgen train").acquire()
    # released on exit: the next one gets it
    workdir_lock.WorkdirLock(tmp_path / "w", "jaxgen train").acquire().release()


def test_lock_is_released_when_its_process_dies(tmp_path):
    code = ("import sys, time; from jaxgen.workdir_lock import WorkdirLock; "
            f"held = WorkdirLock({str(tmp_path)!r}, 'x').acquire(); print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(workdir_lock.WorkdirBusyError, match=f"pid {proc.pid}"):
            workdir_lock.WorkdirLock(tmp_path, "jaxgen train").acquire()
    finally:
        proc.kill()
        proc.wait()
    workdir_lock.WorkdirLock(tmp_path, "jaxgen train").acquire().release()


def test_without_flock_a_stale_record_is_taken_over_and_a_live_one_refuses(tmp_path, monkeypatch):
    def no_flock(*_):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(workdir_lock.fcntl, "flock", no_flock)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    record = {"pid": dead.pid, "host": socket.gethostname(), "command": "jaxgen train", "time": time.time()}
    (tmp_path / workdir_lock.LOCK_NAME).write_text(json.dumps(record))
    held = workdir_lock.WorkdirLock(tmp_path, "jaxgen train").acquire()  # stale: its process is gone
    assert json.loads((tmp_path / workdir_lock.LOCK_NAME).read_text())["pid"] == os.getpid()
    held.release()
    alive = dict(record, pid=os.getppid())
    (tmp_path / workdir_lock.LOCK_NAME).write_text(json.dumps(alive))
    with pytest.raises(workdir_lock.WorkdirBusyError, match="delete"):
        workdir_lock.WorkdirLock(tmp_path, "jaxgen train").acquire()
    (tmp_path / workdir_lock.LOCK_NAME).write_text(json.dumps(dict(record, host="another-host")))
    with pytest.raises(workdir_lock.WorkdirBusyError, match="another-host"):
        workdir_lock.WorkdirLock(tmp_path, "jaxgen train").acquire()


def test_remote_workdirs_are_not_locked_locally():
    lock = workdir_lock.WorkdirLock("gs://bucket/run", "jaxgen train")
    assert not lock.enabled and lock.acquire() is lock


def test_second_trainer_on_one_workdir_is_refused_in_one_line_within_5_s(tmp_path):
    workdir = tmp_path / "run"
    first = long_run(workdir)
    try:
        wait_for_steps(workdir / "metrics.jsonl", 2, first)
        t0 = time.perf_counter()
        second = cli("train", f"--config={TINY}", f"--workdir={workdir}", *QUIET, "--config.total_steps=5",
                     timeout=60)
        elapsed = time.perf_counter() - t0
        assert_one_line(second, 2, str(workdir), f"pid {first.pid}", "another --workdir")
        assert elapsed < 5, elapsed
        assert first.poll() is None  # the first one goes on
        first.send_signal(signal.SIGTERM)
        out, _ = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, out[-3000:]
    assert (workdir / "summary.json").is_file()


# ------------------------------------------------------------------------------------------ overrides, NaN


def nan_config(tmp_path: Path) -> Path:
    """A config file whose L1 weight is NaN (the command line refuses non-finite numbers)."""
    path = tmp_path / "nan_edsr.py"
    path.write_text(
        "import runpy\n"
        "def get_config(arg=None):\n"
        f"    c = runpy.run_path({str(REPO / 'configs' / 'edsr.py')!r})['get_config']('x2,tiny')\n"
        "    c.losses.l1 = float('nan')\n"
        "    return c\n")
    return path


@pytest.mark.parametrize("override", ["--config.batch_size=1e400", "--config.optim.lr=1e400",
                                      "--config.optim.lr=nan", "--config.optim.lr=-inf",
                                      "--config.losses.l1=1e400", "--config.optim.kwargs.b2=1e400",
                                      "--config.optim.milestones=(10,1e400)", "--config.total_steps=-1e400"])
def test_non_finite_or_huge_numeric_overrides_are_one_line_exit_2(tmp_path, override):
    key = override.split("=")[0]
    proc = cli("train", f"--config={TINY}", f"--workdir={tmp_path / 'w'}", *QUIET, override, timeout=120)
    assert_one_line(proc, 2, key, "finite")
    assert not (tmp_path / "w" / "checkpoints").exists()


def test_config_module_refuses_non_finite_overrides():
    from jaxgen.config import ConfigError, load_config

    assert load_config(TINY, [("optim.lr", "1e30")]).optim.lr == 1e30  # the largest accepted magnitude
    for key, value in [("optim.lr", "1e31"), ("batch_size", "1e400"), ("optim.lr", "inf")]:
        with pytest.raises(ConfigError, match="finite"):
            load_config(TINY, [(key, value)])


def test_nan_before_any_checkpoint_says_there_is_none(tmp_path):
    proc = cli("train", f"--config={nan_config(tmp_path)}", f"--workdir={tmp_path / 'w'}", *QUIET,
               "--config.log_every=1", "--config.total_steps=3", timeout=300)
    line = assert_one_line(proc, 1, "non-finite loss at step 1", "No checkpoint was saved yet")
    assert "step None" not in line
