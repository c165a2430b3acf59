"""Running one trial: ``python -m jaxgen.cli train --config BASE --workdir W/<trial> --config.k=v ...``.

A trial is a subprocess of the trainer, so it is isolated (a crash, a NaN or a bad config ends that trial
only), it resumes from its own checkpoints when run again, and it can be stopped cleanly: SIGTERM makes the
trainer checkpoint at the current step and exit 0.

Each attempt appends the trainer's output to ``W/<trial>/trial.log`` and rewrites ``W/<trial>/sweep_trial.json``::

    {name, overrides, index, status, error, returncode, final_step, total_steps, wall_s, attempts, history}

Status: ``running`` (written at start: a sweep killed with SIGKILL leaves it, and a rerun resumes the trial),
``finished`` (latest checkpoint step == ``total_steps``, or the trainer stopped on its ``time_budget_s``),
``interrupted`` (stopped by a signal before ``total_steps``: resumed on rerun), ``pruned`` (stopped by the
Optuna pruner: not resumed) or ``failed`` (non-zero exit: ``error`` holds the trainer's one-line error or the
last line of its traceback).

Stopping a running trial from anywhere that sees the sweep folder (another thread, a Ray driver on another
host): write the reason (``interrupted`` or ``pruned``) to ``W/<trial>/STOP``.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import jaxgen
from jaxgen.atomic_file import write_text_atomic
from jaxgen.sweeps import naming

STATUS_FILE = "sweep_trial.json"
LOG_FILE = "trial.log"
STOP_FILE = "STOP"
TERMINAL = ("finished", "failed", "pruned")
POLL_S = 0.25


@dataclass
class Resources:
    """What one trial may use: CPU cores to pin it to, its thread count, the GPU ids it sees."""

    cpus: tuple[int, ...] = ()  # pin with sched_setaffinity (empty: no pinning)
    threads: int = 0  # OMP/MKL/OpenBLAS threads (0: leave as is)
    gpus: tuple[int, ...] | None = None  # CUDA_VISIBLE_DEVICES (None: leave as is)
    share_gpu: bool = False  # several trials on one GPU: no XLA preallocation
    env: dict[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        root = str(Path(jaxgen.__file__).resolve().parents[1])  # the same jaxgen as the sweep's
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        if self.threads:
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
                env[var] = str(self.threads)
        if self.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, self.gpus))
        if self.share_gpu:
            env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        env.update(self.env)
        return env


def trial_command(base_config: str, overrides: dict[str, Any], trial_dir: str | Path,
                  python: str = sys.executable) -> list[str]:
    """The trainer command line of a trial (the progress bar off; the trial's own overrides last)."""
    cmd = [python, "-m", "jaxgen.cli", "train", "--config", base_config, "--workdir", str(trial_dir),
           "--config.progress_bar=false"]
    return cmd + [f"--config.{key}={naming.format_value(value)}" for key, value in overrides.items()]


def latest_checkpoint_step(trial_dir: str | Path) -> int | None:
    """The largest finished checkpoint step in ``trial_dir/checkpoints`` (Orbax renames a checkpoint to its
    bare step number only once it is complete), or None."""
    steps = [int(p.name) for p in (Path(trial_dir) / "checkpoints").glob("*") if p.name.isdigit() and p.is_dir()]
    return max(steps) if steps else None


def saved_config(trial_dir: str | Path) -> dict[str, Any]:
    path = Path(trial_dir) / "config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def read_status(trial_dir: str | Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(trial_dir) / STATUS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def write_status(trial_dir: str | Path, status: dict[str, Any]) -> None:
    write_text_atomic(Path(trial_dir) / STATUS_FILE, json.dumps(status, indent=2))


def request_stop(trial_dir: str | Path, reason: str = "interrupted") -> None:
    """Asks a running trial to checkpoint and stop (see the module docstring)."""
    path = Path(trial_dir)
    if path.is_dir():
        (path / STOP_FILE).write_text(reason)


_ERROR = re.compile(r"^jaxgen: error: (.*)$", re.M)


def error_line(output: str, returncode: int) -> str:
    """The trainer's one-line error, else the last line of a traceback, else the exit status."""
    found = _ERROR.findall(output)
    if found:
        return found[-1].strip()
    if "Traceback (most recent call last)" in output:
        tail = output.split("Traceback (most recent call last)")[-1].strip().splitlines()
        lines = [line for line in tail if line.strip() and not line.startswith((" ", "\t"))]
        if lines:
            return lines[-1].strip()
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


def _summary(trial_dir: Path) -> dict[str, Any] | None:
    path = Path(trial_dir) / "summary.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def classify(returncode: int, output: str, trial_dir: Path, stop_reason: str | None) -> tuple[str, str]:
    """``(status, error)`` of a finished attempt (rules in the module docstring)."""
    config = saved_config(trial_dir)
    total = config.get("total_steps")
    step = latest_checkpoint_step(trial_dir)
    done = total is not None and step is not None and step >= total
    if returncode == 0 and done:
        return "finished", ""
    if stop_reason == "pruned":
        return "pruned", ""
    ended = _summary(trial_dir)
    if ended is not None:  # the trainer's own record of how it stopped (W/summary.json)
        signalled = str(ended.get("stopped_by") or "").startswith(("SIG", "a signal"))
    else:
        signalled = re.search(r"stopped by SIG\w+: checkpoint saved", output) is not None
    if stop_reason is not None and (returncode == 0 or returncode in (-signal.SIGTERM, -signal.SIGKILL)):
        return "interrupted", ""
    if returncode == 0:
        if signalled:
            return "interrupted", ""
        if config.get("time_budget_s"):
            return "finished", ""  # stopped on its time budget
        return "failed", f"the trainer exited 0 at step {step} before total_steps={total}"
    return "failed", error_line(output, returncode)


def run_trial(
    *,
    name: str,
    overrides: dict[str, Any],
    base_config: str,
    sweep_dir: str | Path,
    base_overrides: dict[str, Any] | None = None,
    index: int = 0,
    resources: Resources | None = None,
    stop_event: threading.Event | None = None,
    extra: dict[str, Any] | None = None,
    monitor: Callable[[], str | None] | None = None,
) -> dict[str, Any]:
    """Runs (or resumes) one attempt of the trial in ``sweep_dir/name``; returns its status dict.

    The trainer gets ``base_overrides`` then the trial's ``overrides`` (the swept values, recorded in the status).

    ``stop_event`` set, a ``STOP`` file written, or ``monitor()`` (called about once a second) returning a
    reason (``'pruned'``) sends SIGTERM to the trainer (it checkpoints and exits).
    """
    resources = resources or Resources()
    trial_dir = Path(sweep_dir) / name
    trial_dir.mkdir(parents=True, exist_ok=True)
    (trial_dir / STOP_FILE).unlink(missing_ok=True)
    previous = read_status(trial_dir) or {}
    status: dict[str, Any] = {
        "name": name, "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
        "index": index, "status": "running", "error": "", "returncode": None,
        "final_step": latest_checkpoint_step(trial_dir), "total_steps": saved_config(trial_dir).get("total_steps"),
        "wall_s": float(previous.get("wall_s", 0.0)), "attempts": int(previous.get("attempts", 0)) + 1,
        "history": list(previous.get("history", [])), "host": os.uname().nodename,
        "resources": {"cpus": list(resources.cpus), "threads": resources.threads,
                      "gpus": None if resources.gpus is None else list(resources.gpus)},
    }
    status.update(extra or {})
    write_status(trial_dir, status)
    cmd = trial_command(base_config, dict(base_overrides or {}, **overrides), trial_dir)
    log_path = trial_dir / LOG_FILE
    with open(log_path, "ab") as log:
        start_offset = log.tell()
        log.write(f"=== attempt {status['attempts']} {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(cmd)}\n".encode())
        log.flush()
        t0 = time.time()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=resources.environment(),
                                start_new_session=True, preexec_fn=lambda: _child_setup(resources.cpus))
        _RUNNING.add(proc)
        try:
            stop_reason = _wait(proc, trial_dir, stop_event, monitor)
        finally:
            _RUNNING.discard(proc)
        t1 = time.time()
    output = log_path.read_bytes()[start_offset:].decode("utf-8", "replace")
    state, error = classify(proc.returncode, output, trial_dir, stop_reason)
    config = saved_config(trial_dir)
    status.update(status=state, error=error, returncode=proc.returncode, final_step=latest_checkpoint_step(trial_dir),
                  total_steps=config.get("total_steps"), wall_s=status["wall_s"] + (t1 - t0), start_time=t0, end_time=t1)
    status["history"].append({"start": t0, "end": t1, "returncode": proc.returncode, "status": state})
    (trial_dir / STOP_FILE).unlink(missing_ok=True)
    write_status(trial_dir, status)
    return status


def _load_libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


_LIBC = _load_libc()  # loaded here: the child must not import anything between fork and exec


def _child_setup(cpus: tuple[int, ...]) -> None:
    """In the trainer's process between fork and exec (no imports, no locks): pin it to ``cpus``; on Linux, ask for SIGTERM when the thread that
    started it dies (a sweep killed with SIGKILL), so that no orphaned trainer keeps writing its folder."""
    if cpus:
        os.sched_setaffinity(0, cpus)
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _wait(proc: subprocess.Popen, trial_dir: Path, stop_event: threading.Event | None,
          monitor: Callable[[], str | None] | None) -> str | None:
    """Waits for the trainer; forwards one SIGTERM when asked to stop. Returns the stop reason, if any."""
    reason = None
    last_monitor = time.monotonic()
    while True:
        try:
            proc.wait(timeout=POLL_S)
            return reason
        except subprocess.TimeoutExpired:
            pass
        if reason is None:
            stop_file = trial_dir / STOP_FILE
            if stop_file.exists():
                reason = stop_file.read_text().strip() or "interrupted"
            elif stop_event is not None and stop_event.is_set():
                reason = "interrupted"
            elif monitor is not None and time.monotonic() - last_monitor > 1.0:
                last_monitor = time.monotonic()
                reason = monitor()
            if reason is not None:
                proc.send_signal(signal.SIGTERM)


_RUNNING: set[subprocess.Popen] = set()


def kill_all() -> None:
    """SIGKILL every trainer this process started that still runs (a second Ctrl-C of the sweep)."""
    for proc in list(_RUNNING):
        try:
            proc.kill()
        except OSError:
            pass


class TrialFailedError(RuntimeError):
    """A trial's trainer failed (raised inside a Ray task so that Ray's ``max_retries`` retries it)."""


def run_with_retries(retries: int, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Runs ``fn`` (one attempt) again while it fails, at most ``retries`` more times."""
    status = fn()
    for _ in range(retries):
        if status["status"] != "failed":
            break
        status = fn()
    return status
