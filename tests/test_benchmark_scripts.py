"""The benchmark scripts that issues and records call by name still run (``slow``: CI's second tier). They are
run by hand for measurements, so nothing else would notice a script broken by a change in the library (an
import of a renamed name went unnoticed for a day). Each runs its own ``--smoke`` form: tiny cases, any CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_compare_torch_smoke_writes_the_documented_fields(tmp_path):
    """``compare_torch.py`` (issue 19's interface) without a torch venv: every jaxgen case sets up and times, and
    the JSON has ``cases.<case>.by.<worker>.median_s`` and the CPU model and flags."""
    out = tmp_path / "ct.json"
    r = _run(["benchmarks/compare_torch.py", "--smoke", "--jax-variants", "tuned,infer", "--torch-variants", "",
              "--out", str(out)], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert set(res["cases"]) == {"edsr_b2", "style_b2", "fwd_edsr_32"}
    for name, case in res["cases"].items():
        for worker in ("jax:tuned", "jax:infer"):
            entry = case["by"][worker]
            assert "error" not in entry, (name, worker, entry["error"])
            assert entry["median_s"] > 0, (name, worker)
    assert res["cpu_model"] and res["cpu_flags"] and isinstance(res["isa"], list)  # every record names its CPU


def test_compare_torch_settle_times_one_step_a_round_after_untimed_ones(tmp_path):
    """``--settle 1``: every round still times one step per worker (the untimed one before it is not a sample),
    and the record says how the steps were timed."""
    out = tmp_path / "ct.json"
    r = _run(["benchmarks/compare_torch.py", "--smoke", "--cases", "edsr_b2", "--settle", "1", "--jax-variants",
              "tuned", "--torch-variants", "", "--out", str(out)], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    entry = res["cases"]["edsr_b2"]["by"]["jax:tuned"]
    assert res["settle"] == 1 and res["rounds"] == 2
    assert entry["n"] == 2 and len(entry["walls"]) == 2 and len(entry["minor_faults"]) == 2
    bad = _run(["benchmarks/compare_torch.py", "--smoke", "--settle", "-1", "--out", str(tmp_path / "no.json")],
               tmp_path)  # a user mistake: one line, nothing written, no worker started
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "compare_torch: error: --settle -1: the untimed steps before each timed one, 0 or more"]
    assert not (tmp_path / "no.json").exists()


def test_compare_torch_a_worker_that_cannot_start_is_one_error_line(tmp_path):
    """A ``--torch-python`` that is not there: exit 1, one ``compare_torch: error:`` line naming the worker and the
    path, no traceback, no half-written JSON."""
    out = tmp_path / "ct.json"
    r = _run(["benchmarks/compare_torch.py", "--smoke", "--cases", "fwd_edsr_32", "--jax-variants", "",
              "--torch-variants", "eager", "--torch-python", str(tmp_path / "no-python"), "--out", str(out)], tmp_path)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("compare_torch: error:")]
    assert len(errors) == 1 and "torch:eager" in errors[0] and "no-python" in errors[0], r.stderr[-2000:]
    assert not out.exists()


def test_accelerator_smoke_on_cpu(tmp_path):
    """``accelerator.py --smoke`` (run for real when a GPU is lent): both cases and dtypes time a step."""
    out = tmp_path / "acc.json"
    r = _run(["benchmarks/accelerator.py", "--smoke", "--out", str(out)], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    runs = json.loads(out.read_text())["runs"]
    assert {(r["case"], r["dtype"]) for r in runs} == {(c, d) for c in ("rrdbnet", "edsr") for d in ("bfloat16", "float32")}
    for r in runs:
        assert "error" not in r and r["median_step_s"] > 0, r


def test_step_memory_smoke_keeps_the_heap_when_asked(tmp_path):
    """``step_memory.py --smoke --malloc keep``: glibc accepted all three ``mallopt`` settings (a wrong parameter
    number is refused with 0), and the record has one ``[wall, sys, faults, rss]`` row a step and names its CPU."""
    out = tmp_path / "sm.json"
    r = _run(["benchmarks/step_memory.py", "--smoke", "--malloc", "keep", "--out", str(out)], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    rec = json.loads(out.read_text())
    assert rec["mallopt"] == {"M_ARENA_MAX": 1, "M_MMAP_MAX": 1, "M_TRIM_THRESHOLD": 1}
    assert len(rec["steps"]) == 4 and all(len(row) == 4 and row[0] > 0 for row in rec["steps"])
    assert rec["median_s"] > 0 and rec["cpu_model"] and rec["devices"] >= 1


def test_step_memory_smoke_runs_under_jemalloc_when_asked(tmp_path):
    """``--malloc jemalloc`` runs the step again with jemalloc preloaded and its settings (the record says so);
    without a libjemalloc on the machine it is one ``jaxgen: error:`` line naming the package."""
    out = tmp_path / "sm.json"
    r = _run(["benchmarks/step_memory.py", "--smoke", "--malloc", "jemalloc", "--out", str(out)], tmp_path)
    if "needs libjemalloc" in r.stderr:
        assert r.returncode != 0 and r.stderr.strip().startswith("jaxgen: error:"), r.stderr[-2000:]
        pytest.skip("no libjemalloc on this machine")
    assert r.returncode == 0, r.stderr[-2000:]
    rec = json.loads(out.read_text())
    assert "jemalloc" in rec["ld_preload"] and "oversize_threshold:0" in rec["malloc_conf"], rec
    assert rec["malloc"] == "jemalloc" and len(rec["steps"]) == 4


def test_psum_placement_smoke_both_placements_train_alike(tmp_path):
    """``psum_placement.py`` on a small EDSR: both placements step, report the same first loss (a ``psum`` of the
    per-shard losses would double it) and, after one step, the same parameters (a shard's gradient alone would
    move them apart; Adam's first step cannot tell a summed gradient from a mean, the loss can)."""
    out = tmp_path / "pp.json"
    r = _run(["benchmarks/psum_placement.py", "--net", "edsr", "--batch", "2", "--side", "8", "--scale", "2",
              "--steps", "1", "--out", str(out)], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    record = json.loads(out.read_text())
    assert set(record["placements"]) == {"gspmd", "shard_map"} and record["devices"] == 2
    assert all(p["median_s"] > 0 and len(p["walls_s"]) == 1 for p in record["placements"].values())
    assert record["max_param_diff_after_first_step"] <= 1e-7
    losses = [p["first_loss"] for p in record["placements"].values()]
    assert losses[0] == pytest.approx(losses[1], rel=1e-6) and 0 < losses[0] < 1
    assert record["cpu_model"] and "load_1min_end" in record
