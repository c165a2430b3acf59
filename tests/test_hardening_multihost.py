"""Issue 18 (hardening), multi-host: a workdir that is not shared is refused within a minute (it hung forever),
processes agree on the restore step, and a SIGTERM reaches a process blocked in a collective (it was swallowed).
Two real processes on 127.0.0.1 (``tests/multiprocess_worker.py``) for the first and the last."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxgen.train import multihost
from tests.cli_runs import REPO, TINY, cpu_env

WORKER = Path(__file__).with_name("multiprocess_worker.py")
OPTIONS = ["progress_bar=False", "eval_every=0", "log_every=1", "distributed=True",
           "data.process_sharding=global_batch"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_pair(workdirs: list[Path], logdir: Path, env: dict[str, str], *options: str) -> list[subprocess.Popen]:
    logdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    procs = []
    for i, workdir in enumerate(workdirs):
        with open(logdir / f"log{i}.txt", "w") as log:
            args = [sys.executable, str(WORKER), str(i), "2", str(port), str(logdir / f"summary{i}.json"),
                    str(workdir), TINY, *OPTIONS, *options]
            procs.append(subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
    return procs


def logs(logdir: Path) -> list[str]:
    return [(logdir / f"log{i}.txt").read_text() for i in range(2)]


def kill(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)
            p.kill()
        p.wait(timeout=30)


def test_a_workdir_that_is_not_shared_is_refused_by_every_process(tmp_path):
    """Per-host disks (the same path on every TPU worker, or here two paths): both processes stop with the
    reason, instead of hanging forever after the first checkpoint."""
    # process 1 gives up on the marker after 1 s instead of the 10 s grace for NFS caches (the refusal is the same)
    env = dict(cpu_env(1, tmp_path / "cache"), JAXGEN_SHARED_WAIT_S="1")
    procs = start_pair([tmp_path / "host0" / "w", tmp_path / "host1" / "w"], tmp_path / "logs", env,
                       "total_steps=4", "ckpt_every=2")
    t0 = time.time()
    try:
        codes = [p.wait(timeout=150) for p in procs]
    except subprocess.TimeoutExpired:
        kill(procs)
        pytest.fail("a process pair on unshared workdirs hung:\n" + "\n".join(logs(tmp_path / "logs")))
    assert time.time() - t0 < 150
    out = logs(tmp_path / "logs")
    assert codes[0] != 0 and codes[1] != 0, out
    for text in out:
        assert "is not shared: process(es) [1] of 2 do not see" in text, text[-3000:]
    assert not (tmp_path / "host0" / "w" / "checkpoints").exists()


@pytest.mark.slow
def test_sigterm_reaches_a_process_blocked_in_a_collective(tmp_path):
    """Process 1 frozen (SIGSTOP): process 0's next all-gather never returns, so its SIGTERM handler never
    runs; the watchdog ends it JAXGEN_STOP_TIMEOUT_S after the signal with one line, exit 1."""
    env = dict(cpu_env(1, tmp_path / "cache"), JAXGEN_STOP_TIMEOUT_S="5")
    workdir = tmp_path / "w"
    procs = start_pair([workdir, workdir], tmp_path / "logs", env, "total_steps=100000", "ckpt_every=100000")
    try:
        deadline = time.time() + 240
        metrics = workdir / "metrics.jsonl"
        while not (metrics.exists() and metrics.read_text().count('"loss"') >= 3):
            assert time.time() < deadline and all(p.poll() is None for p in procs), logs(tmp_path / "logs")
            time.sleep(0.1)
        procs[1].send_signal(signal.SIGSTOP)
        time.sleep(1.0)
        t0 = time.time()
        procs[0].send_signal(signal.SIGTERM)
        code = procs[0].wait(timeout=60)
        elapsed = time.time() - t0
    finally:
        kill(procs)
    out = logs(tmp_path / "logs")[0]
    assert code == 1, out[-3000:]
    assert 4 < elapsed < 30, elapsed
    assert "jaxgen: error: SIGTERM received 5 s ago and process 0 is still blocked" in out


def test_processes_must_agree_on_the_restore_step(monkeypatch):
    gathered = {"value": None}

    def gather(values):
        gathered["value"] = values
        return np.asarray([[4], [2]], np.int32)

    with pytest.raises(ValueError, match=r"process 0: 4, process 1: 2"):
        multihost.agree_on_step(4, allgather=gather)
    assert gathered["value"].tolist() == [4]
    with pytest.raises(ValueError, match=r"process 0: 4, process 1: none"):
        multihost.agree_on_step(4, allgather=lambda v: np.asarray([[4], [-1]], np.int32))
    assert multihost.agree_on_step(6, allgather=lambda v: np.asarray([[6], [6]], np.int32)) == 6
    assert multihost.agree_on_step(None, allgather=lambda v: np.asarray([[-1], [-1]], np.int32)) is None


def test_shared_workdir_check_with_a_local_epath(tmp_path, monkeypatch):
    """Process 0 and process 1 simulated in turn on one epath folder (local here; gs:// goes the same way)."""
    monkeypatch.setattr(multihost.jax, "process_count", lambda: 2)
    state = {}

    def broadcast(token):
        state.setdefault("token", token)
        return state["token"]

    monkeypatch.setattr(multihost.jax, "process_index", lambda: 0)
    folder = tmp_path / "shared"
    seen0 = {}
    multihost.check_shared_workdir(folder, broadcast=broadcast,
                                   allgather=lambda f: seen0.setdefault("flags", np.asarray([[f[0]], [1]])))
    assert seen0["flags"].tolist() == [[1], [1]] and not (folder / multihost.MARKER).exists()  # cleaned up
    # process 1 on a disk where process 0's marker never appears
    monkeypatch.setattr(multihost.jax, "process_index", lambda: 1)
    with pytest.raises(ValueError, match=r"is not shared: process\(es\) \[1\] of 2"):
        multihost.check_shared_workdir(tmp_path / "elsewhere", wait_s=0.3, broadcast=lambda t: t + 1,
                                       allgather=lambda f: np.asarray([[1], [f[0]]]))


def test_watchdog_exits_a_blocked_process_after_the_timeout(tmp_path):
    """One process whose main thread stays blocked (a lock never released stands for a collective waiting for
    a dead peer): SIGTERM -> the watchdog's line and exit 1 after the timeout. Before that, in the same process,
    a watched block without a signal ends normally (the process lives on past that watchdog's timeout)."""
    code = ("import signal, threading, time\n"
            "from jaxgen.train.multihost import StopWatchdog\n"
            "with StopWatchdog(0.5):\n"
            "    pass\n"
            "time.sleep(1)  # no signal: that watchdog never fires\n"
            "signal.signal(signal.SIGTERM, lambda *a: None)  # the loop's handler: sets a flag nobody reads\n"
            "lock = threading.Lock()\n"
            "lock.acquire()\n"
            "with StopWatchdog(2.0):\n"
            "    print('ready', flush=True)\n"
            "    lock.acquire()\n")  # blocked for good, as in a collective waiting for a dead peer
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "ready", proc.communicate(timeout=30)
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and 1.5 < time.time() - t0 < 20
    assert err.startswith("jaxgen: error: SIGTERM received 2 s ago") and err.count("\n") == 1, err
