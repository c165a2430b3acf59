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
from tests.inprocess_cli import run_jaxgen

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


def test_second_trainer_is_refused_in_one_line_within_5_s_and_ctrl_c_checkpoints_the_current_step_and_exits_zero(
        tmp_path):
    """One trainer runs; a second on its workdir is refused at once, naming the first, which goes on. Then Ctrl-C
    between steps: the first checkpoints the step it had reached and exits 0, without the validation it would run
    at every stop. (The Ctrl-C checks of tests/test_cli.py's former test_ctrl_c_checkpoints_the_current_step_and_
    exits_zero are here: one trainer process for both.)"""
    workdir = tmp_path / "run"
    first = long_run(workdir, "--config.eval_every=100000")  # a validation at each stop if it were not skipped
    try:
        wait_for_steps(workdir / "metrics.jsonl", 2, first)
        t0 = time.perf_counter()
        second = cli("train", f"--config={TINY}", f"--workdir={workdir}", *QUIET, "--config.total_steps=5",
                     timeout=60)
        elapsed = time.perf_counter() - t0
        assert_one_line(second, 2, str(workdir), f"pid {first.pid}", "another --workdir")
        assert elapsed < 5, elapsed
        assert first.poll() is None  # the first one goes on
        wait_for_steps(workdir / "metrics.jsonl", 3, first)
        first.send_signal(signal.SIGINT)
        out, _ = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, out[-3000:]
    assert (workdir / "summary.json").is_file()
    logged = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert not [r for r in logged if "val_psnr" in r]  # no validation was run on the way out
    assert not list((workdir / "images").glob("*.png")) if (workdir / "images").exists() else True
    assert "stopped by SIGINT" in out and "Traceback" not in out
    steps = [int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()]
    assert len(steps) == 1 and steps[0] >= 3
    assert steps[0] == max(r["step"] for r in logged)  # the step it had reached, not an earlier one
    ended = json.loads((workdir / "summary.json").read_text())
    assert ended["stopped_by"] == "SIGINT" and ended["final_step"] == steps[0] and not ended["finished"]


# ------------------------------------------------------------------------------------------ overrides, NaN


def nan_config(tmp_path: Path) -> Path:
    """A config file whose L1 weight is NaN (the command line refuses non-finite numbers)."""
    path = tmp_path / "nan_edsr.py"
    path.write_text(
        "from jaxgen.config import exec_python_file\n"
        "def get_config(arg=None):\n"
        f"    c = exec_python_file({str(REPO / 'configs' / 'edsr.py')!r}, 'config').get_config('x2,tiny')\n"
        "    c.losses.l1 = float('nan')\n"
        "    return c\n")
    return path


@pytest.mark.parametrize("override", ["--config.batch_size=1e400", "--config.optim.lr=1e400",
                                      "--config.optim.lr=nan", "--config.optim.lr=-inf",
                                      "--config.losses.l1=1e400", "--config.optim.kwargs.b2=1e400",
                                      "--config.optim.milestones=(10,1e400)", "--config.total_steps=-1e400"])
def test_non_finite_or_huge_numeric_overrides_are_one_line_exit_2(tmp_path, override):
    key = override.split("=")[0]
    proc = run_jaxgen("train", f"--config={TINY}", f"--workdir={tmp_path / 'w'}", *QUIET, override)
    assert_one_line(proc, 2, key, "finite")
    assert not (tmp_path / "w" / "checkpoints").exists()


def test_config_module_refuses_non_finite_overrides():
    from jaxgen.config import ConfigError, load_config

    assert load_config(TINY, [("optim.lr", "1e30")]).optim.lr == 1e30  # the largest accepted magnitude
    for key, value in [("optim.lr", "1e31"), ("batch_size", "1e400"), ("optim.lr", "inf")]:
        with pytest.raises(ConfigError, match="finite"):
            load_config(TINY, [(key, value)])


def test_nan_before_any_checkpoint_says_there_is_none(tmp_path):
    proc = run_jaxgen("train", f"--config={nan_config(tmp_path)}", f"--workdir={tmp_path / 'w'}", *QUIET,
                          "--config.log_every=1", "--config.total_steps=3")
    line = assert_one_line(proc, 1, "non-finite loss at step 1", "No checkpoint was saved yet")
    assert "step None" not in line


# ------------------------------------------------------------------------------------------ sweeps


def test_pruned_trial_hparams_session_is_written_with_a_status_tensorboard_has(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.plugins.hparams import api_pb2, metadata

    from jaxgen.sweeps import tb_hparams, trial_runner

    expected = {"finished": api_pb2.STATUS_SUCCESS, "failed": api_pb2.STATUS_FAILURE,
                "pruned": api_pb2.STATUS_UNKNOWN, "interrupted": api_pb2.STATUS_RUNNING}
    assert set(trial_runner.TERMINAL) <= set(expected)
    for state, code in expected.items():
        tb_hparams.write_trial(tmp_path / state, {"optim.lr": 1e-3}, state)  # STATUS_ABORTED crashed the driver
        acc = event_accumulator.EventAccumulator(str(tmp_path / state / "tensorboard"))
        acc.Reload()
        end = metadata.parse_session_end_info_plugin_data(
            acc.SummaryMetadata(metadata.SESSION_END_INFO_TAG).plugin_data.content)
        assert end.status == code, state


def sweep_folder(w: Path, names: list[str]) -> None:
    w.mkdir()
    (w / "sweep.json").write_text(json.dumps({
        "base_config": "/x/configs/edsr.py:x2,tiny", "base_overrides": {}, "file": "/x/s.py", "metric": "val_psnr",
        "mode": "max", "search": "grid", "swept_keys": ["optim.lr"],
        "trials": [{"name": n, "overrides": {"optim.lr": 10.0 ** -(i + 2)}, "index": i} for i, n in enumerate(names)]}))


def test_pruned_and_not_yet_run_trials_are_rows_of_the_results(tmp_path):
    from jaxgen.sweeps import results, trial_runner

    w = tmp_path / "w"
    sweep_folder(w, ["a", "b", "c"])
    trial_runner.write_status(w / "a", {"name": "a", "overrides": {"optim.lr": 0.01}, "index": 0, "status": "pruned",
                                        "error": "", "wall_s": 3.0, "attempts": 1})
    (w / "c").mkdir()  # an --emit-commands trial whose job has not started: an empty folder
    rows = results.write_results(w)
    assert [(r["trial"], r["status"]) for r in rows] == [("a", "pruned"), ("b", "pending"), ("c", "pending")]
    assert rows[1]["optim.lr"] == 0.001 and rows[1]["attempts"] == 0
    md = (w / "results.md").read_text()
    assert "| b | pending |" in md and "| c | pending |" in md
    saved = json.loads((w / "results.json").read_text())
    assert [t["status"] for t in saved["trials"]] == ["pruned", "pending", "pending"]


def test_emit_commands_lists_every_trial_as_pending(tmp_path):
    f = tmp_path / "grid.py"
    f.write_text("from jaxgen.sweeps import sweep\n"
                 f"BASE_CONFIG = {TINY!r}\nBASE_OVERRIDES = {{'total_steps': 2}}\n"
                 "def get_sweep(arg=None):\n    return sweep('optim.lr', [1e-3, 1e-4])\n")
    w = tmp_path / "w"
    proc = run_jaxgen("sweep", str(f), "--workdir", str(w), "--emit-commands")  # starts no trainer
    assert proc.returncode == 0, proc.stderr
    report = run_jaxgen("report", str(w))
    assert report.returncode in (0, 2), report.stderr  # report.html needs matplotlib; the table does not
    from jaxgen.sweeps import results

    rows = results.write_results(w)
    assert [r["status"] for r in rows] == ["pending", "pending"]
    assert len((w / "commands.txt").read_text().splitlines()) == 2


def test_wall_time_sums_an_attempt_lost_without_recording_its_end(tmp_path, monkeypatch):
    from jaxgen.sweeps import trial_runner

    d = tmp_path / "w" / "t"
    # attempt 1 ran 4 s and ended; attempt 2 was lost (Ray worker killed) 30 s after it started
    trial_runner.write_status(d, {"name": "t", "overrides": {}, "index": 0, "status": "running", "error": "",
                                  "wall_s": 4.0, "attempts": 2, "start_time": 1000.0, "alive_time": 1030.0,
                                  "history": [{"start": 900.0, "end": 904.0, "returncode": 1, "status": "failed"}]})
    monkeypatch.setattr(trial_runner, "HEARTBEAT_S", 0.2)
    beats = []
    real_write = trial_runner.write_status

    def spy(trial_dir, status):
        beats.append(status.get("alive_time"))
        real_write(trial_dir, status)

    monkeypatch.setattr(trial_runner, "write_status", spy)
    monkeypatch.setattr(trial_runner, "trial_command",
                        lambda *a, **k: [sys.executable, "-c", "import time; time.sleep(1.5)"])
    status = trial_runner.run_trial(name="t", overrides={}, base_overrides={}, base_config="x.py",
                                    sweep_dir=tmp_path / "w", index=0)
    assert status["attempts"] == 3
    assert [h["status"] for h in status["history"]][:2] == ["failed", "lost"]
    last = status["end_time"] - status["start_time"]
    assert status["wall_s"] == pytest.approx(4.0 + 30.0 + last, abs=1e-6)
    assert len(beats) >= 4  # start, heartbeats while it ran, end
    saved = trial_runner.read_status(d)
    assert saved["wall_s"] == status["wall_s"]


def test_training_prints_progress_lines_when_stdout_is_not_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXGEN_HEARTBEAT_S", "1e-9")
    proc = run_jaxgen("train", f"--config={TINY}", f"--workdir={tmp_path / 'w'}", "--config.total_steps=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("train: step")]
    assert [line.split(",")[0] for line in lines] == ["train: step 1/3 (33%)", "train: step 2/3 (67%)",
                                                      "train: step 3/3 (100%)"], proc.stdout


# ------------------------------------------------------------------------------------------ XLA alarms

SLOW_FOLD = """
import sys, time
from jaxgen import cli
cli.quiet_native_logs(verbose=sys.argv[1] == "1")  # as jaxgen.cli.main does: before JAX is imported
import numpy as np, jax, jax.numpy as jnp
c = np.random.default_rng(0).random(int(sys.argv[2])).astype(np.float32)
t0 = time.perf_counter()
compiled = jax.jit(lambda: jnp.sort(jnp.asarray(c))[:2]).lower().compile()  # XLA constant-folds the sort
print(time.perf_counter() - t0)
print(compiled())
"""
FOLD_S = 1.3  # the alarm fires after 1 s of folding an instruction: a compile this long certainly set it off


def slow_fold(verbose: bool) -> subprocess.CompletedProcess:
    """SLOW_FOLD with a sort that takes more than FOLD_S to compile here: 15,000 numbers (~2 s of folding on an
    idle 2-core Xeon), doubled on a faster machine."""
    # A clean environment: no persistent compilation cache (each run must compile, and so fold) and no logging or
    # XLA variables another test of this worker left behind.
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env.update(PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    for n in (15_000, 30_000, 60_000, 120_000):
        proc = subprocess.run([sys.executable, "-c", SLOW_FOLD, "1" if verbose else "0", str(n)], capture_output=True,
                              text=True, env=env, timeout=300, cwd=REPO)
        assert proc.returncode == 0, proc.stderr
        if float(proc.stdout.split()[0]) > FOLD_S:
            return proc
    pytest.fail(f"no sort took {FOLD_S} s to fold: {proc.stdout}")


def test_xla_slow_operation_alarms_are_hidden_unless_verbose():
    """XLA's slow_operation_alarm ('Very slow compile? ...', 'Constant folding an instruction is taking > 1s')
    logs at ERROR level from C++; the CLI hides it unless --verbose (a user's own TF_CPP_MIN_LOG_LEVEL wins)."""
    quiet, loud = slow_fold(verbose=False), slow_fold(verbose=True)
    assert "slow_operation_alarm" in loud.stderr and "If you'd like to file a bug" in loud.stderr
    assert "slow_operation_alarm" not in quiet.stderr and quiet.stderr.strip() == "", quiet.stderr


def test_cli_sets_the_native_log_level_only_when_not_verbose_and_not_set(monkeypatch):
    from jaxgen import cli as cli_module

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    cli_module.quiet_native_logs(verbose=True)
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    cli_module.quiet_native_logs(verbose=False)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    cli_module.quiet_native_logs(verbose=False)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"


# ------------------------------------------------------------------------------------------ disk full, read-only


@pytest.fixture
def small_disk(tmp_path):
    """A 20 MB tmpfs (needs root and mount(2); skipped elsewhere), unmounted at the end."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mnt)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(mnt: Path, leave_kb: int) -> None:
    free_kb = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize // 1024
    with open(mnt / "filler", "wb") as f:
        f.write(b"\0" * max(0, free_kb - leave_kb) * 1024)


def finished_steps(workdir: Path) -> list[int]:
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def test_read_only_workdir_is_one_line_exit_2_and_disk_full_is_one_line_exit_1_keeping_the_last_checkpoint(
        small_disk):
    """One run on a small tmpfs, then: the file system remounted read-only (resuming it, or starting a new run
    there: one line, exit 2); writable again but full (one line, exit 1, the last checkpoint intact); space freed
    (the rerun resumes). The first run and the read-only refusals run in this process (what they write and say);
    the full disk and the resume are ``jaxgen`` processes (all a real process prints on a full disk, a resume in
    another process)."""
    from jaxgen.train.checkpoint import restore_numpy

    w = small_disk / "w"
    first = run_jaxgen("train", f"--config={TINY}", f"--workdir={w}", *QUIET, "--config.total_steps=2")
    assert first.returncode == 0, first.stderr[-3000:]
    before = restore_numpy(w / "checkpoints", 2)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        for workdir in (w, small_disk / "new"):  # a run to resume, a run to start
            proc = run_jaxgen("train", f"--config={TINY}", f"--workdir={workdir}", *QUIET, "--config.total_steps=3")
            assert_one_line(proc, 2, "read-only file system", str(workdir), "--workdir")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert finished_steps(w) == [2]

    fill(small_disk, 300)  # room for the small files, not for the next checkpoint
    full = cli("train", f"--config={TINY}", f"--workdir={w}", *QUIET, "--config.total_steps=4",
               "--config.ckpt_every=1")
    line = assert_one_line(full, 1, "no space left", "rerun the same command")
    assert len(full.stderr.splitlines()) == 1 and "ERROR:absl" not in full.stderr, full.stderr[:3000]
    assert finished_steps(w) == [2]
    after = restore_numpy(w / "checkpoints", 2)
    assert jax_trees_equal(before, after), line
    (small_disk / "filler").unlink()
    resumed = cli("train", f"--config={TINY}", f"--workdir={w}", *QUIET, "--config.total_steps=4")
    assert resumed.returncode == 0 and "steps 2 -> 4" in resumed.stdout, resumed.stderr[-3000:]


def jax_trees_equal(a, b) -> bool:
    import jax
    import numpy as np

    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def test_disk_errors_found_in_wrapped_exceptions():
    from jaxgen.commands.common import disk_error

    def chained(outer: Exception, inner: Exception) -> Exception:
        try:
            try:
                raise inner
            except Exception as e:
                raise outer from e
        except Exception as e:
            return e

    assert disk_error(OSError(errno.ENOSPC, "No space left on device", "/w/x"))[1] == 1
    assert "writing /w/x" in disk_error(OSError(errno.ENOSPC, "No space left on device", "/w/x"))[0]
    ts = ValueError("RESOURCE_EXHAUSTED: Failed to write 1372 bytes to file 11: No space left on device [os_error_code='28']")
    assert disk_error(ts)[1] == 1
    assert disk_error(chained(RuntimeError("save failed"), OSError(errno.EROFS, "Read-only file system")))[1] == 2
    assert disk_error(ValueError("batch_size must be > 0")) is None
    assert disk_error(FileNotFoundError(errno.ENOENT, "No such file", "x")) is None


# ------------------------------------------------------------------------------------------ Ctrl-C and validation


def test_ctrl_c_during_validation_checkpoints_and_leaves_without_finishing_it(tmp_path):
    import threading

    from jaxgen.config import load_config
    from jaxgen.tasks import get_task
    from jaxgen.train import train
    from jaxgen.train.checkpoint import open_manager

    config = load_config(TINY, [("progress_bar", "False"), ("total_steps", "6"), ("eval_every", "2"),
                                ("ckpt_every", "100")])
    task = get_task(config.task)(config)
    real_evaluate = task.evaluate
    calls = {"started": 0, "finished": 0, "slow_start": None}

    def slow_evaluate(state):  # a validation of ~60 s (many images on a busy CPU)
        calls["started"] += 1
        if calls["started"] == 2:  # the evaluation at step 4: Ctrl-C 0.2 s into it
            calls["slow_start"] = time.perf_counter()
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
            for _ in range(600):
                time.sleep(0.1)
        result = real_evaluate(state)
        calls["finished"] += 1
        return result

    task.evaluate = slow_evaluate
    summary = train(config, tmp_path / "w", task)
    # did not wait for the 60 s validation (timed from its start: compiling on a loaded machine takes its own time)
    assert time.perf_counter() - calls.pop("slow_start") < 55
    assert calls == {"started": 2, "finished": 1}
    assert summary["preempted"] == "SIGINT" and summary["final_step"] == 4
    manager = open_manager(tmp_path / "w" / "checkpoints", read_only=True)
    assert manager.all_steps() == [2, 4]  # step 2 (its evaluation), step 4: saved without one
    ended = json.loads((tmp_path / "w" / "summary.json").read_text())
    assert ended["stopped_by"] == "SIGINT" and ended["final_step"] == 4 and not ended["finished"]


# ------------------------------------------------------------------------------------------ remote paths


def test_checkpoint_paths_keep_urls_and_make_local_paths_absolute(tmp_path, monkeypatch):
    from etils import epath

    from jaxgen.train.checkpoint import as_path, open_manager

    remote = as_path("gs://bucket/runs/a/checkpoints")
    assert isinstance(remote, epath.Path) and str(remote) == "gs://bucket/runs/a/checkpoints"  # not gs:/bucket
    assert str(as_path("gs://bucket/runs/a") / "checkpoints" / "3") == "gs://bucket/runs/a/checkpoints/3"
    monkeypatch.chdir(tmp_path)
    assert as_path("w/checkpoints") == tmp_path / "w" / "checkpoints"
    manager = open_manager(epath.Path(tmp_path) / "w2" / "checkpoints")  # an epath works as well as a Path
    assert manager.latest_step() is None and (tmp_path / "w2" / "checkpoints").is_dir()
    manager.close()


# gs:// workdirs (training, resuming, the lock object, one-line refusals): tests/test_remote_workdir.py, against a
# local GCS emulator.


def test_second_sweep_on_one_folder_is_refused_naming_the_first(tmp_path):
    f = tmp_path / "grid.py"
    f.write_text("from jaxgen.sweeps import sweep\n"
                 f"BASE_CONFIG = {TINY!r}\nBASE_OVERRIDES = {{'total_steps': 2}}\n"
                 "def get_sweep(arg=None):\n    return sweep('optim.lr', [1e-3])\n")
    w = tmp_path / "w"
    with workdir_lock.WorkdirLock(w, "jaxgen sweep"):
        t0 = time.perf_counter()
        proc = run_jaxgen("sweep", str(f), "--workdir", str(w))  # refused: starts no trainer
        assert time.perf_counter() - t0 < 30
    assert_one_line(proc, 2, f"pid {os.getpid()}", "jaxgen sweep")
    assert not (w / "optim.lr=0.001").exists()


LATE_NOISE = """
import atexit, sys
atexit.register(lambda: print("Traceback (most recent call last): late noise from a library thread", file=sys.stderr))
from jaxgen import cli
sys.argv = ["jaxgen", "train", "--config", sys.argv[1], "--workdir", sys.argv[2]] + sys.argv[3:]
sys.exit(cli.main())
"""


def test_nothing_follows_the_error_line_unless_verbose(tmp_path):
    """What library threads print while the process shuts down after a failure (TensorStore's "Event loop is
    closed" after a full disk) does not follow the one error line; with --verbose it does."""
    missing, out = str(tmp_path / "missing.py"), str(tmp_path / "w")
    # the noise is registered in this wrapper process: it must stay the one running jaxgen (no jemalloc re-exec)
    env = {**os.environ, "JAXGEN_MALLOC": "system"}
    quiet = subprocess.run([sys.executable, "-c", LATE_NOISE, missing, out], cwd=REPO, capture_output=True,
                           text=True, timeout=120, env=env)
    assert quiet.returncode == 2 and quiet.stderr.startswith("jaxgen: error:"), quiet.stderr
    assert len(quiet.stderr.splitlines()) == 1, quiet.stderr
    loud = subprocess.run([sys.executable, "-c", LATE_NOISE, missing, out, "--verbose"], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env=env)
    assert loud.returncode == 2 and "late noise" in loud.stderr, loud.stderr


def test_closed_event_loop_echoes_of_a_failed_save_are_logged_and_other_unraisables_kept(monkeypatch, caplog):
    """The flaky full-disk traceback: TensorStore threads report Orbax's closed event loop as unraisable
    ``RuntimeError: Event loop is closed`` before the save's error reaches the main thread."""
    import types

    from jaxgen.commands.common import quiet_closed_loop_callbacks

    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    quiet_closed_loop_callbacks(verbose=True)
    assert sys.unraisablehook == seen.append  # --verbose: Python's report
    quiet_closed_loop_callbacks(verbose=False)

    def unraisable(error):
        return types.SimpleNamespace(exc_type=type(error), exc_value=error, exc_traceback=None, err_msg=None,
                                     object=None)

    with caplog.at_level("DEBUG", logger="jaxgen"):
        sys.unraisablehook(unraisable(RuntimeError("Event loop is closed")))
    assert seen == [] and "Event loop is closed" in caplog.text
    other = unraisable(RuntimeError("something else"))
    sys.unraisablehook(other)
    sys.unraisablehook(unraisable(ValueError("Event loop is closed")))
    assert [u.exc_value.args[0] for u in seen] == ["something else", "Event loop is closed"]
