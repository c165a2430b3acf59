"""``jaxgen sweep`` end to end with the real trainer (tiny EDSR, 3 steps): two trials in parallel on their own
cores, a failing trial isolated, reruns that skip what is done, --only/--retry-failed/--dry-run. Sweeps that
start trainers are ``jaxgen`` processes (a sweep forks its trainers: not from a process running JAX); those that
start none run in-process (``jaxgen.cli.main``)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.inprocess_cli import run_jaxgen

REPO = Path(__file__).resolve().parents[1]


def sweep_file(tmp_path: Path, base_overrides: dict, trials: str) -> Path:
    path = tmp_path / "my_sweep.py"
    path.write_text(textwrap.dedent(f"""
        from jaxgen.sweeps import product, sweep
        BASE_CONFIG = "{REPO / 'configs' / 'edsr.py'}:x2,tiny"
        BASE_OVERRIDES = {base_overrides!r}
        def get_sweep(arg=None):
            return {trials}
    """))
    return path


def cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jaxgen.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with open(path) as f:
        return {row["trial"]: row for row in csv.DictReader(f)}


def status(workdir: Path, name: str) -> dict:
    return json.loads((workdir / name / "sweep_trial.json").read_text())


@pytest.mark.slow  # two sweep runs of trainer subprocesses: 12-16 s of a cold `make test`; `make test-slow` (CI) runs it
def test_parallel_trials_failure_isolated_rerun_skips(tmp_path):
    # lr 1e-3 and 5e-4 (the tiny config's own): train steps that test_sweep_resume, test_sweep_ray and other runs of
    # the tiny config compile too (a learning rate is a constant of the compiled step)
    f = sweep_file(tmp_path, {"total_steps": 3, "eval_every": 0, "log_every": 1, "ckpt_every": 3},
                   "sweep('optim.lr', [1e-3, 5e-4]) + [{'model.num_blocks': -1}]")
    w = tmp_path / "w"
    proc = cli("sweep", str(f), "--workdir", str(w), "--parallel", "2", "--no-report")
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one trial failed
    rows = read_csv(w / "results.csv")
    assert set(rows) == {"optim.lr=0.001", "optim.lr=0.0005", "model.num_blocks=-1"}
    bad = rows["model.num_blocks=-1"]
    assert bad["status"] == "failed" and "config.model.num_blocks=-1: sizes must be >= 0" in bad["error"]
    a, b = status(w, "optim.lr=0.001"), status(w, "optim.lr=0.0005")
    for name, s in (("optim.lr=0.001", a), ("optim.lr=0.0005", b)):
        assert s["status"] == "finished" and s["final_step"] == 3 and rows[name]["status"] == "finished"
        # The override reached the trainer exactly; the table's numbers are the trial's own last records.
        config = json.loads((w / name / "config.json").read_text())
        assert config["optim"]["lr"] == s["overrides"]["optim.lr"] and config["total_steps"] == 3
        records = [json.loads(line) for line in (w / name / "metrics.jsonl").read_text().splitlines()]
        val = [r for r in records if "val_psnr" in r]
        assert float(rows[name]["final_val_psnr"]) == pytest.approx(val[-1]["val_psnr"], abs=1e-4)
        assert float(rows[name]["final_loss"]) == pytest.approx([r for r in records if "loss" in r][-1]["loss"], abs=1e-4)
        assert (w / name / "tensorboard").is_dir() and list((w / name / "tensorboard").glob("*.hparams"))
    # Two at once: the runs overlap in time and ran pinned to different cores.
    assert a["start_time"] < b["end_time"] and b["start_time"] < a["end_time"]
    assert a["resources"]["cpus"] and set(a["resources"]["cpus"]).isdisjoint(b["resources"]["cpus"])

    # Rerun: nothing to do (finished skipped, failed left as recorded).
    again = run_jaxgen("sweep", str(f), "--workdir", str(w), "--parallel", "2", "--no-report")
    assert again.returncode == 1 and "0 trial(s) to run" in again.stdout
    assert status(w, "optim.lr=0.001")["attempts"] == 1 and status(w, "model.num_blocks=-1")["attempts"] == 1
    # --retry-failed with --only: the failed trial alone runs again (and fails again).
    retry = cli("sweep", str(f), "--workdir", str(w), "--retry-failed", "--only", "num_blocks", "--no-report")
    assert retry.returncode == 1 and "1 trial(s) to run" in retry.stdout
    assert status(w, "model.num_blocks=-1")["attempts"] == 2 and status(w, "optim.lr=0.001")["attempts"] == 1
    # Dry run lists every trial with its recorded state and command; runs nothing.
    dry = run_jaxgen("sweep", str(f), "--workdir", str(w), "--dry-run")
    assert dry.returncode == 0 and dry.stdout.count("finished") == 2 and "failed      model.num_blocks=-1" in dry.stdout
    assert "--config.optim.lr=0.0005" in dry.stdout
    # Another base config in the same folder is refused.
    other = tmp_path / "other.py"
    other.write_text(f.read_text().replace("x2,tiny", "x3,tiny"))
    refused = run_jaxgen("sweep", str(other), "--workdir", str(w))
    assert refused.returncode == 2 and "use a new --workdir" in refused.stderr
