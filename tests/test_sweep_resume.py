"""Resume after SIGTERM of ``jaxgen sweep`` mid-trial (real trainer, tiny EDSR): the running trial
checkpoints where the signal lands, no new trial starts, and a rerun resumes it from that step."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_sweep_local import REPO, cli, read_csv, status, sweep_file


def wait_for(predicate, timeout: float, what: str) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def logged_steps(path: Path) -> list[int]:
    if not path.is_file():
        return []
    steps = []
    for line in path.read_text().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except (json.JSONDecodeError, KeyError):
            pass
    return steps


@pytest.mark.slow  # two sweep runs of trainer subprocesses: 12-16 s of a cold `make test`; `make test-slow` (CI) runs it
def test_sigterm_mid_trial_then_rerun_resumes_from_checkpoint(tmp_path):
    # Steps of training: the signal (forwarded within ~0.3 s, a step or two of the tiny config on a busy CPU) lands
    # after 2 logged steps, well before the last; the rerun trains the rest (each step here is a logged step).
    total = 12
    f = sweep_file(tmp_path, {"total_steps": total, "eval_every": 0, "log_every": 1, "ckpt_every": 1000},
                   "sweep('optim.lr', [1e-3]) + [{'model.num_blocks': -1}]")  # the second fails fast
    w = tmp_path / "w"
    first, second = w / "optim.lr=0.001", w / "model.num_blocks=-1"
    proc = subprocess.Popen([sys.executable, "-m", "jaxgen.cli", "sweep", str(f), "--workdir", str(w), "--no-report"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: len(logged_steps(first / "metrics.jsonl")) >= 2, 300, "the first trial to train")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "stopped by SIGTERM" in out
    s = status(w, first.name)
    stopped_at = s["final_step"]
    assert s["status"] == "interrupted" and 2 <= stopped_at < total, s  # checkpointed where the signal landed
    assert not (second / "sweep_trial.json").exists()  # no new trial started after the signal
    assert read_csv(w / "results.csv")[first.name]["status"] == "interrupted"

    rerun = cli("sweep", str(f), "--workdir", str(w), "--no-report")
    assert rerun.returncode == 1, rerun.stdout + rerun.stderr  # the second trial's failure
    assert "2 trial(s) to run" in rerun.stdout
    s = status(w, first.name)
    assert s["status"] == "finished" and s["attempts"] == 2 and s["final_step"] == total
    log = (first / "trial.log").read_text().split("=== attempt 2")[1]
    assert f"steps {stopped_at} -> {total}" in log  # the trainer resumed from the interrupted checkpoint
    steps = logged_steps(first / "metrics.jsonl")
    assert steps[-1] == total and steps.count(1) == 1  # step 1 was not trained twice
    assert status(w, second.name)["status"] == "failed"
    rows = read_csv(w / "results.csv")
    assert rows[first.name]["status"] == "finished" and int(rows[first.name]["steps"]) == total
