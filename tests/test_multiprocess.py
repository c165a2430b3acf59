"""Two JAX processes on CPU (``jax.distributed`` on a loopback coordinator, gloo collectives, 1 device each)
training ``configs/edsr.py:x2,tiny`` into one shared workdir, against one process with 2 devices.

With ``data.process_sharding=global_batch`` every process computes the whole global batch and feeds its rows,
so the global batch, the mesh (2 devices, one shard of 4 rows each) and the all-reduce are those of the
1-process, 2-device run: the params must be *bitwise* equal at every step (a 2-term float sum is
order-independent, so gloo vs in-process collectives cannot change a bit).

One scenario, checked by several tests (each starts a process pair 2-3 times, so they share it):

1. 2 processes, many steps, periodic checkpoints every 3 steps; SIGTERM to process 1 only (not the
   coordinator) once a checkpoint exists. The loop's per-step all-gather must stop *both* after the same
   step ``k``, checkpoint ``k`` and exit 0.
2. Both rerun (resume from ``k``); SIGKILL both once a new periodic checkpoint ``last > k`` exists.
3. Both rerun to ``last + 2`` (resume from the last finished periodic checkpoint).
4. Reference: 1 process, 2 devices, straight to ``last + 2``, a checkpoint every step.

Every checkpoint of the 2-process workdir (straight steps, the SIGTERM step, the steps after each resume)
must equal the reference at the same step.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.cli_runs import REPO, TINY, checkpoint_steps, cpu_env, generator_params, jaxgen_cli, small_val_dir

pytestmark = pytest.mark.slow  # ~1 min of CPU: `make test-slow` (CI runs it after `make test`)

WORKER = Path(__file__).with_name("multiprocess_worker.py")
CKPT_EVERY = 3
COMMON = {
    "progress_bar": "False",
    "eval_every": "0",
    "log_every": "1",
    "ckpt_every": str(CKPT_EVERY),
    "keep_ckpts": "1000",
    "data.process_sharding": "global_batch",
}
TIMEOUT = 240  # seconds for one process pair (2 shared cores: startup + compile take most of it)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ProcessPair:
    """Two worker processes of one run (process 0 hosts the coordinator); logs and summaries in ``logdir``."""

    def __init__(self, workdir: Path, logdir: Path, env: dict[str, str], **overrides: Any) -> None:
        logdir.mkdir(parents=True, exist_ok=True)
        self.logdir = logdir
        port = free_port()
        options = [f"{k}={v}" for k, v in {**COMMON, "distributed": "True", **overrides}.items()]
        self.procs = []
        for i in range(2):
            log = open(logdir / f"log{i}.txt", "w")
            args = [sys.executable, str(WORKER), str(i), "2", str(port), str(logdir / f"summary{i}.json"),
                    str(workdir), TINY, *options]
            self.procs.append(subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
            log.close()

    def wait(self, timeout: float = TIMEOUT) -> list[int]:
        deadline = time.time() + timeout
        try:
            return [p.wait(timeout=max(1.0, deadline - time.time())) for p in self.procs]
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"process pair did not finish in {timeout} s:\n{self.logs()}")

    def running(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            p.wait(timeout=30)

    def summaries(self) -> list[dict[str, Any]]:
        out = []
        for i in range(2):
            path = self.logdir / f"summary{i}.json"
            assert path.exists(), f"process {i} wrote no summary:\n{self.logs()}"
            out.append(json.loads(path.read_text()))
        return out

    def logs(self) -> str:
        return "\n".join(f"--- process {i}\n" + (self.logdir / f"log{i}.txt").read_text()[-3000:] for i in range(2))


def logged_steps(workdir: Path) -> int:
    path = workdir / "metrics.jsonl"
    return path.read_text().count('"loss"') if path.exists() else 0


def wait_for(condition, pair: ProcessPair, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        if not pair.running():
            pair.kill()
            pytest.fail(f"a process ended before {what}:\n{pair.logs()}")
        time.sleep(0.05)
    pair.kill()
    pytest.fail(f"timed out waiting for {what}:\n{pair.logs()}")


def assert_bitwise_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray], what: str) -> None:
    assert a.keys() == b.keys() and len(a) > 4
    for k in a:
        assert a[k].dtype == b[k].dtype == np.float32
        diff = float(np.abs(a[k] - b[k]).max())
        assert np.array_equal(a[k], b[k]), f"{what}: {k} differs (max abs diff {diff:g})"


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("multiprocess")
    workdir = root / "two_processes"
    out: dict[str, Any] = {"workdir": workdir}
    env = cpu_env(1, root / "jax_cache")
    run = {"data.val_dirs": f"('{small_val_dir(root / 'val')}',)"}

    # 1. SIGTERM to process 1 once checkpoint 3 exists and a few more steps ran.
    first = ProcessPair(workdir, root / "run1", env, **run, total_steps="100000")
    try:
        wait_for(lambda: checkpoint_steps(workdir) and logged_steps(workdir) >= CKPT_EVERY + 2, first,
                 "the first checkpoint")
        first.procs[1].send_signal(signal.SIGTERM)
        out["sigterm_codes"] = first.wait()
    finally:
        first.kill()
    out["sigterm_summaries"] = first.summaries()
    out["sigterm_logs"] = first.logs()
    out["after_sigterm"] = checkpoint_steps(workdir)

    # 2. Resume; SIGKILL both as soon as a periodic checkpoint after k is complete (mid-run, mid-save or not).
    k = out["after_sigterm"][-1]
    second = ProcessPair(workdir, root / "run2", env, **run, total_steps="100000")
    try:
        wait_for(lambda: any(s > k for s in checkpoint_steps(workdir)), second, "a checkpoint after the resume")
        for p in second.procs:
            p.send_signal(signal.SIGKILL)
        out["sigkill_codes"] = [p.wait(timeout=30) for p in second.procs]
    finally:
        second.kill()
    out["after_sigkill"] = checkpoint_steps(workdir)

    # 3. Resume from the last periodic checkpoint to a target.
    last = out["after_sigkill"][-1]
    target = last + 2
    third = ProcessPair(workdir, root / "run3", env, **run, total_steps=str(target))
    try:
        out["final_codes"] = third.wait()
    finally:
        third.kill()
    out["final_summaries"] = third.summaries()
    out["final_logs"] = third.logs()
    out["target"] = target

    # 4. Reference: 1 process, 2 devices, straight, a checkpoint every step.
    reference = root / "one_process"
    overrides = {**COMMON, **run, "ckpt_every": "1", "total_steps": str(target)}
    proc = jaxgen_cli(cpu_env(2, root / "jax_cache"), "train", f"--config={TINY}", f"--workdir={reference}",
                      *(f"--config.{k}={v}" for k, v in overrides.items()), timeout=TIMEOUT)
    assert f"steps 0 -> {target} on 2 device(s)" in proc.stdout
    out["reference"] = reference
    return out


def test_sigterm_to_one_process_stops_both_after_the_same_step(scenario):
    summaries, logs = scenario["sigterm_summaries"], scenario["sigterm_logs"]
    assert scenario["sigterm_codes"] == [0, 0], logs
    assert [s["process_index"] for s in summaries] == [0, 1]
    assert all(s["process_count"] == 2 and s["device_count"] == 2 and s["local_device_count"] == 1 for s in summaries)
    k = summaries[0]["final_step"]
    assert summaries[1]["final_step"] == k and k < 100000
    assert summaries[1].get("preempted") == "SIGTERM"
    # The checkpoint at the stop step exists, and nothing after it.
    steps = scenario["after_sigterm"]
    assert steps[-1] == k and k > CKPT_EVERY
    assert all(s % CKPT_EVERY == 0 for s in steps[:-1])


def test_sigterm_stop_is_reported_as_preemption_on_every_process(scenario):
    """Process 0 prints the CLI summary: it must say the run was preempted (and how to resume)."""
    summaries = scenario["sigterm_summaries"]
    assert all(s.get("preempted") and "time_budget" not in s for s in summaries)
    assert sorted(str(s["preempted"]) for s in summaries) == ["SIGTERM", "a signal on another process"]
    assert not any(s.get("time_budget") for s in scenario["sigterm_summaries"])


def test_sigkill_leaves_the_last_periodic_checkpoint(scenario):
    assert scenario["sigkill_codes"] == [-signal.SIGKILL, -signal.SIGKILL]
    k = scenario["after_sigterm"][-1]
    new = [s for s in scenario["after_sigkill"] if s > k]
    assert new and all(s % CKPT_EVERY == 0 for s in new)
    assert scenario["after_sigkill"][: len(scenario["after_sigterm"])] == scenario["after_sigterm"]


def test_resume_after_sigkill_runs_to_the_target(scenario):
    summaries, target = scenario["final_summaries"], scenario["target"]
    assert scenario["final_codes"] == [0, 0], scenario["final_logs"]
    last = scenario["after_sigkill"][-1]
    for s in summaries:
        assert (s["start_step"], s["final_step"]) == (last, target)
        assert "preempted" not in s and "time_budget" not in s
    assert checkpoint_steps(scenario["workdir"])[-1] == target
    # Both processes evaluated the same final params on the same validation image.
    assert summaries[0]["val"] == summaries[1]["val"] and summaries[0]["val"]["val_psnr"] > 15


def test_every_two_process_checkpoint_equals_one_process_two_devices(scenario):
    """Straight steps, the SIGTERM step, the steps after the SIGTERM resume and the target after the SIGKILL
    resume: all bitwise equal to the straight 1-process run."""
    steps = checkpoint_steps(scenario["workdir"])
    k, last, target = scenario["after_sigterm"][-1], scenario["after_sigkill"][-1], scenario["target"]
    assert {CKPT_EVERY, k, last, target} <= set(steps) and k < last < target
    for step in steps:
        assert_bitwise_equal(generator_params(scenario["workdir"], step), generator_params(scenario["reference"], step),
                             f"step {step}")
    # The runs really trained: the params moved between the first and the final checkpoint.
    first, final = generator_params(scenario["reference"], 1), generator_params(scenario["reference"], target)
    assert any(not np.array_equal(first[k_], final[k_]) for k_ in first)


def test_data_iterator_state_is_the_global_one(scenario):
    """The saved iterator state is the whole global batch's (process_count 1, batch 8), at the step."""
    workdir = scenario["workdir"]
    for step in checkpoint_steps(workdir):
        state = json.loads((workdir / "checkpoints" / str(step) / "data" / "metadata").read_text())["iterator"]
        assert state["next_batch"] == step
        assert (state["pipeline"]["process_count"], state["pipeline"]["batch_size"]) == (1, 8)
