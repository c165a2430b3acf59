"""Sweep definitions without training: grid expansion, seeded draws, trial names, the trainer command line
(read back by the trainer's own argument and override parsers), trial status rules, metric records."""

from __future__ import annotations

import json
import math
import signal
import textwrap
from pathlib import Path

import numpy as np
import pytest

from jaxgen.sweeps import naming, results, runner, spec, trial_runner
from jaxgen.sweeps.sweep_file import Trial, load_sweep_file

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ grid helpers


def test_product_zip_sweep_expand_in_order():
    grid = spec.product(spec.sweep("a", [1, 2]), spec.sweep("b", ["x", "y", "z"]))
    assert grid == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"},
                    {"a": 2, "b": "x"}, {"a": 2, "b": "y"}, {"a": 2, "b": "z"}]
    zipped = spec.zip(spec.sweep("m.n", [4, 8]), spec.sweep("m.f", [32, 64]))
    assert zipped == [{"m.n": 4, "m.f": 32}, {"m.n": 8, "m.f": 64}]
    # Dict lists compose with product, as the loss choices of experiments/lr_vs_loss.py.
    grid = spec.product([{"l.a": 1.0}, {"l.a": 0.0, "l.b": 1.0}], spec.sweep("lr", [1e-3]), zipped)
    assert len(grid) == 4 and grid[3] == {"l.a": 0.0, "l.b": 1.0, "lr": 1e-3, "m.n": 8, "m.f": 64}


@pytest.mark.parametrize("make,fragment", [
    (lambda: spec.product(spec.sweep("a", [1]), spec.sweep("a", [2])), "swept twice"),
    (lambda: spec.zip(spec.sweep("a", [1, 2]), spec.sweep("b", [1])), "different lengths"),
    (lambda: spec.sweep("a", []), "no values"),
    (lambda: spec.sweep("a", [object()]), "expected bool, int, float, str"),
    (lambda: spec.sweep("a", [float("nan")]), "finite"),
    (lambda: spec.sweep("--config.a", [1]), "bad config key"),
    (lambda: spec.sweep("config.optim.lr", [1]), "bad config key"),
    (lambda: spec.log_uniform(0.0, 1.0), "0 < low < high"),
    (lambda: spec.random_search(0, **{"a": spec.uniform(0, 1)}), "n >= 1"),
])
def test_helper_mistakes_are_value_errors(make, fragment):
    with pytest.raises(ValueError, match=fragment):
        make()


def test_random_search_is_seeded_bounded_and_log_uniform():
    space = {"optim.lr": spec.log_uniform(1e-5, 1e-1), "model.n": spec.int_uniform(2, 4),
             "losses": spec.choice(["l1", "mse"]), "w": spec.uniform(-1.0, 1.0)}
    a = spec.random_search(400, seed=3, **space)
    assert a == spec.random_search(400, seed=3, **space)
    assert a != spec.random_search(400, seed=4, **space)
    lrs = np.array([t["optim.lr"] for t in a])
    assert lrs.min() >= 1e-5 and lrs.max() <= 1e-1
    # Log-uniform: log10 is uniform on [-5, -1] -> mean -3, std 4/sqrt(12); a plain uniform would put ~90%
    # of the draws above 1e-2 and give a mean log10 near -1.3.
    logs = np.log10(lrs)
    assert abs(logs.mean() + 3) < 0.25 and abs(logs.std() - 4 / math.sqrt(12)) < 0.2
    assert {t["model.n"] for t in a} == {2, 3, 4} and {t["losses"] for t in a} == {"l1", "mse"}
    assert all(isinstance(t["model.n"], int) and isinstance(t["optim.lr"], float) for t in a)
    # Four significant digits: the name and the command line carry exactly the trained value.
    assert all(float(f"{t['optim.lr']:.4g}") == t["optim.lr"] for t in a)


# ------------------------------------------------------------------------------------------ names


def test_trial_names_say_the_overrides_and_are_unique():
    assert naming.trial_name({}) == "base"
    assert naming.trial_name({"optim.lr": 0.001, "losses": "l1"}) == "optim.lr=0.001,losses=l1"
    assert naming.trial_name({"ema": True, "steps": 10, "lr": 1e-05}) == "ema=true,steps=10,lr=1e-05"
    # Lossy characters (tuples, slashes, spaces) get a hash of the exact overrides: no two trials share a folder.
    a = naming.trial_name({"data.val_dirs": ("a/b", "c")})
    b = naming.trial_name({"data.val_dirs": ("a_b", "c")})
    assert a != b and a.startswith("data.val_dirs=a_b-c~") and "/" not in a
    long = naming.trial_name({f"k{i}": "x" * 20 for i in range(10)})
    assert len(long) <= naming.MAX_LEN + 9 and "~" in long
    grid = spec.product(spec.sweep("optim.lr", [1e-3, 1e-4, 0.0001 + 1e-12]), spec.sweep("m", [(1, 2), (12,)]))
    assert len({naming.trial_name(t) for t in grid}) == len(grid)


@pytest.mark.parametrize("value", [0.001, 1e-05, 3, -2, True, False, "mse", (1, 2, 3), (0.5, "a"), 2.5e-7])
def test_command_line_values_read_back_exactly_by_the_trainer(value, tmp_path):
    """The trainer's own parsers (argparse + ``--config.k=v`` splitting + ``apply_override``) must read back the
    exact value, of the existing key's type, from the sweep's command line."""
    import ml_collections

    from jaxgen.commands import common
    from jaxgen.config import apply_override

    cmd = trial_runner.trial_command("cfg.py:x2", {"slot": value}, tmp_path / "t", python="python")
    p = common.make_parser("jaxgen train", "")
    p.add_argument("--workdir")
    args, overrides = common.parse_with_overrides(p, cmd[4:])
    assert args.config == "cfg.py:x2" and args.workdir == str(tmp_path / "t")
    assert overrides[0] == ("progress_bar", "false")
    config = ml_collections.ConfigDict({"slot": value})
    config.lock()
    apply_override(config, *overrides[1])
    assert config.slot == value and type(config.slot) is type(value)


# ------------------------------------------------------------------------------------------ sweep files


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_sweep_file_loads_resolves_config_and_refuses_mistakes(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    ok = write(tmp_path / "ok.py", f"""
        from jaxgen.sweeps import product, sweep
        BASE_CONFIG = "configs/edsr.py:x2,tiny"
        BASE_OVERRIDES = {{"total_steps": 4}}
        METRIC, MODE = "loss", "min"
        def get_sweep(arg=None):
            n = 3 if arg == "three" else 2
            return sweep("optim.lr", [1e-3, 1e-4, 1e-5][:n])
    """)
    loaded = load_sweep_file(f"{ok}:three")
    assert loaded.base_config == f"{REPO / 'configs' / 'edsr.py'}:x2,tiny"  # from the working directory
    assert [t.name for t in loaded.trials()] == ["optim.lr=0.001", "optim.lr=0.0001", "optim.lr=1e-05"]
    assert [t.index for t in loaded.trials()] == [0, 1, 2]
    assert (loaded.metric, loaded.mode, loaded.base_overrides) == ("loss", "min", {"total_steps": 4})
    assert len(load_sweep_file(str(ok)).trials()) == 2

    bad = {
        "nobase.py": "def get_sweep(arg=None): return [{}]",
        "nofn.py": "BASE_CONFIG = 'configs/edsr.py'",
        "noconfig.py": "BASE_CONFIG = 'configs/nope.py'\ndef get_sweep(arg=None): return [{}]",
        "dupes.py": "BASE_CONFIG = 'configs/edsr.py'\ndef get_sweep(arg=None): return [{'a': 1}, {'a': 1}]",
        "clash.py": "BASE_CONFIG = 'configs/edsr.py'\nBASE_OVERRIDES = {'a': 1}\ndef get_sweep(arg=None): return [{'a': 2}]",
        "notlist.py": "BASE_CONFIG = 'configs/edsr.py'\ndef get_sweep(arg=None): return {'a': 1}",
        "syntax.py": "BASE_CONFIG = (",
    }
    messages = {"nobase.py": "no BASE_CONFIG", "nofn.py": "neither get_sweep", "noconfig.py": "'configs/nope.py' not found",
                "dupes.py": "trials 0 and 1 are the same", "clash.py": "already in BASE_OVERRIDES",
                "notlist.py": "expected a non-empty list", "syntax.py": "syntax error"}
    for name, text in bad.items():
        with pytest.raises(ValueError, match=messages[name]):
            load_sweep_file(str(write(tmp_path / name, text))).trials()
    with pytest.raises(ValueError, match="not found"):
        load_sweep_file(str(tmp_path / "missing.py"))


def test_base_config_found_above_the_sweep_file(tmp_path, monkeypatch):
    (tmp_path / "proj" / "configs").mkdir(parents=True)
    (tmp_path / "proj" / "experiments").mkdir()
    (tmp_path / "proj" / "configs" / "mine.py").write_text("")
    f = write(tmp_path / "proj" / "experiments" / "s.py", "BASE_CONFIG = 'configs/mine.py:a=1'\ndef get_sweep(arg=None): return [{}]")
    monkeypatch.chdir(tmp_path)
    assert load_sweep_file(str(f)).base_config == f"{tmp_path / 'proj' / 'configs' / 'mine.py'}:a=1"


def test_repo_sweep_files_expand(monkeypatch):
    monkeypatch.chdir(REPO)
    lvl = load_sweep_file("experiments/lr_vs_loss.py")
    trials = lvl.trials()
    assert len(trials) == 6 and len({t.name for t in trials}) == 6
    assert {t.overrides["optim.lr"] for t in trials} == {1e-3, 2e-4}
    assert sum("losses.charbonnier" in t.overrides for t in trials) == 2
    srcnn = load_sweep_file("experiments/srcnn_t91.py")
    assert srcnn.base_config.endswith("configs/srcnn.py:x3") and len(srcnn.trials()) >= 1


def test_select_only_and_max_trials():
    trials = [Trial(naming.trial_name(o), o, i) for i, o in enumerate(spec.sweep("optim.lr", [1e-3, 1e-4, 2e-4]))]
    assert [t.index for t in runner.select(trials, ["0.0001"])] == [1]
    assert [t.index for t in runner.select(trials, ["*=0.000[12]", "0.001"])] == [0, 1, 2]
    assert [t.index for t in runner.select(trials, None, 2)] == [0, 1]
    assert runner.select(trials, ["nothing"]) == []
    with pytest.raises(ValueError, match="max-trials"):
        runner.select(trials, None, 0)


def test_cpu_slots_are_disjoint():
    assert runner.cpu_slots(2, 0, [0, 1, 2, 3]) == [(0, 1), (2, 3)]
    assert runner.cpu_slots(3, 1, [4, 5, 6, 7]) == [(4,), (5,), (6,)]
    assert runner.cpu_slots(3, 2, [0, 1, 2, 3]) == [(), (), ()]  # not enough cores: no pinning


# ------------------------------------------------------------------------------------------ status rules


def fake_trial(tmp_path: Path, total: int, ckpt_step: int | None, **config) -> Path:
    trial = tmp_path / "t"
    trial.mkdir(exist_ok=True)
    (trial / "config.json").write_text(json.dumps(dict(total_steps=total, **config)))
    if ckpt_step is not None:
        (trial / "checkpoints" / str(ckpt_step)).mkdir(parents=True)
        (trial / "checkpoints" / f"{ckpt_step + 5}.orbax-checkpoint-tmp-123").mkdir()  # unfinished: ignored
    return trial


@pytest.mark.parametrize("rc,output,ckpt,stop,config,expected", [
    (0, "steps 0 -> 20", 20, None, {}, ("finished", "")),
    (0, "stopped by SIGTERM: checkpoint saved at step 7; rerun", 7, None, {}, ("interrupted", "")),
    (0, "", 7, "interrupted", {}, ("interrupted", "")),
    (-signal.SIGTERM, "", None, "interrupted", {}, ("interrupted", "")),  # stopped before the handlers were set
    (0, "", 7, "pruned", {}, ("pruned", "")),
    (0, "", 9, None, {"time_budget_s": 60.0}, ("finished", "")),
    (0, "", 9, None, {}, ("failed", "the trainer exited 0 at step 9 before total_steps=20")),
    (2, "jaxgen: error: config.model.num_blocks=-1: sizes must be >= 0\n", None, None, {},
     ("failed", "config.model.num_blocks=-1: sizes must be >= 0")),
    (1, "jaxgen: error: non-finite loss at step 3 (loss=nan); stopped\n", 2, None, {},
     ("failed", "non-finite loss at step 3 (loss=nan); stopped")),
    (1, "Traceback (most recent call last):\n  File x\n    y()\nRuntimeError: boom\n", None, None, {},
     ("failed", "RuntimeError: boom")),
    (-signal.SIGKILL, "", 4, None, {}, ("failed", "killed by SIGKILL")),
])
def test_classify(tmp_path, rc, output, ckpt, stop, config, expected):
    trial = fake_trial(tmp_path, 20, ckpt, **config)
    assert trial_runner.classify(rc, output, trial, stop) == expected


def test_read_metrics_splits_train_and_eval_and_keeps_the_latest_after_resume(tmp_path):
    lines = [
        {"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.4}, {"step": 2, "val_psnr": 20.0, "Set5/psnr": 21.0},
        {"step": 3, "loss": 0.35},  # logged after the step-2 checkpoint, then the run was killed
        {"step": 3, "loss": 0.30}, {"step": 4, "loss": "nan"}, {"step": 4, "val_psnr": 22.0, "Set5/psnr": 23.0},
    ]
    text = "\n".join(json.dumps(r) for r in lines) + '\n{"step": 5, "lo'  # a line cut by a kill
    (tmp_path / "metrics.jsonl").write_text(text)
    train, evals = results.read_metrics(tmp_path)
    assert [r["step"] for r in train] == [1, 2, 3, 4] and train[2]["loss"] == 0.30 and math.isnan(train[3]["loss"])
    assert [r["val_psnr"] for r in evals] == [20.0, 22.0]
    assert results.metric_names(evals) == ["val_psnr", "Set5/psnr"]


def test_emit_commands_and_results_of_trials_run_elsewhere(tmp_path):
    """``--emit-commands`` writes one trainer command per trial (for SLURM arrays / multi-host runs); trials
    trained by those commands, outside the sweep driver, are collected with an inferred status."""
    import shlex
    import subprocess
    import sys

    f = write(tmp_path / "s.py", f"""
        from jaxgen.sweeps import sweep
        BASE_CONFIG = "{REPO / 'configs' / 'edsr.py'}:x2,tiny"
        BASE_OVERRIDES = {{"total_steps": 5}}
        def get_sweep(arg=None):
            return sweep("optim.lr", [1e-3, 1e-4])
    """)
    w = tmp_path / "w"
    proc = subprocess.run([sys.executable, "-m", "jaxgen.cli", "sweep", str(f), "--workdir", str(w), "--emit-commands"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = (w / "commands.txt").read_text().splitlines()
    assert len(lines) == 2
    argv = shlex.split(lines[1])
    assert argv[:4] == ["python", "-m", "jaxgen.cli", "train"]
    assert argv[argv.index("--workdir") + 1] == str((w / "optim.lr=0.0001").resolve())
    assert "--config.total_steps=5" in argv and argv[-1] == "--config.optim.lr=0.0001"
    # Pretend the first ran to the end elsewhere and the second stopped at step 2.
    for name, step in (("optim.lr=0.001", 5), ("optim.lr=0.0001", 2)):
        (w / name / "checkpoints" / str(step)).mkdir(parents=True)
        (w / name / "config.json").write_text(json.dumps({"total_steps": 5}))
    rows = {r["trial"]: r for r in results.write_results(w)}
    assert rows["optim.lr=0.001"]["status"] == "finished" and rows["optim.lr=0.0001"]["status"] == "interrupted"
    assert rows["optim.lr=0.0001"]["optim.lr"] == 1e-4 and rows["optim.lr=0.0001"]["steps"] == 2


@pytest.mark.parametrize("args,fragment", [
    (["sweep", "nope.py", "--workdir", "W"], "sweep file 'nope.py' not found"),
    (["sweep", "experiments/lr_vs_loss.py", "--workdir", "W", "--only", "zzz"], "no trial of"),
    (["sweep", "experiments/lr_vs_loss.py", "--workdir", "W", "--search", "optuna"], "no get_search_space"),
    (["report", "NOPE"], "no such folder"),
    (["report", "."], "is not a sweep folder"),
])
def test_cli_mistakes_are_one_line_exit_2(args, fragment, tmp_path):
    import subprocess
    import sys

    args = [a.replace("W", str(tmp_path / "w")).replace("NOPE", str(tmp_path / "nope")) for a in args]
    proc = subprocess.run([sys.executable, "-m", "jaxgen.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert proc.returncode == 2 and fragment in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "w").exists()
