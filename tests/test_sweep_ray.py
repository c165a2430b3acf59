"""The Ray backend on a real local Ray instance (loopback, 2 CPUs, started and shut down by the test): trials
run as Ray tasks, a failing trial is retried by Ray per ``retries`` and recorded, the others finish."""

from __future__ import annotations

import json
import textwrap
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # a Ray cluster and trainer subprocesses: 12-16 s of a cold `make test`; `make test-slow` (CI) runs it
def test_ray_backend_runs_trials_as_tasks_and_retries_failures(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    from jaxgen.sweeps import runner
    from jaxgen.sweeps.ray_backend import RayBackend
    from jaxgen.sweeps.sweep_file import load_sweep_file

    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the Ray workers (and their trainers) import this jaxgen
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    f = tmp_path / "s.py"
    f.write_text(textwrap.dedent(f"""
        BASE_CONFIG = "{REPO / 'configs' / 'edsr.py'}:x2,tiny"
        BASE_OVERRIDES = {{"total_steps": 2, "eval_every": 0, "log_every": 1, "ckpt_every": 2}}
        def get_sweep(arg=None):
            return [{{"optim.lr": 1e-3}}, {{"model.num_blocks": -1}}]
    """))
    spec = load_sweep_file(str(f))
    trials = spec.trials()
    w = tmp_path / "w"
    folder = runner.SweepFolder(w, spec, "grid")
    folder.open(trials)
    backend = RayBackend(spec, w, address="local", parallel=2, cpus_per_trial=1, retries=1,
                         init_kwargs=dict(num_cpus=2, num_gpus=0, include_dashboard=False,
                                          _node_ip_address="127.0.0.1", object_store_memory=80 * 1024 * 1024))
    try:
        assert ray.is_initialized()
        node_ids = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        statuses = runner.drive(folder, runner.GridSource(trials, w), backend, threading.Event())
    finally:
        backend.close()
        folder.close()
    assert not ray.is_initialized()
    by_name = {s["name"]: s for s in statuses}
    ok, bad = by_name["optim.lr=0.001"], by_name["model.num_blocks=-1"]
    assert ok["status"] == "finished" and ok["final_step"] == 2
    assert bad["status"] == "failed" and "sizes must be >= 0" in bad["error"]
    for name in by_name:  # each ran inside a Ray task on the local node (recorded by the task itself)
        saved = json.loads((w / name / "sweep_trial.json").read_text())
        assert saved["ray_node_id"] in node_ids and saved["ray_task_id"]
    # Ray retried the failing task once (retries=1): two attempts recorded, each in the trial's log.
    saved = json.loads((w / "model.num_blocks=-1" / "sweep_trial.json").read_text())
    assert saved["attempts"] == 2 and len(saved["history"]) == 2
    assert (w / "model.num_blocks=-1" / "trial.log").read_text().count("=== attempt") == 2
    assert json.loads((w / "optim.lr=0.001" / "sweep_trial.json").read_text())["attempts"] == 1
    assert (w / "results.csv").read_text().count("\n") == 3
