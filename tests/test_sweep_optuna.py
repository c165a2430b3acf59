"""Optuna search: the study in the sweep folder resumes (finished trials are not rerun, ``--n-trials`` counts
them, an interrupted trial is resumed in its own folder), and pruning follows Optuna's median pruner on the
validation values the trainer logs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from jaxgen.sweeps import naming  # noqa: E402
from jaxgen.sweeps.optuna_search import OptunaSource  # noqa: E402
from jaxgen.sweeps.sweep_file import load_sweep_file  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def sweep_file(tmp_path: Path) -> Path:
    """A categorical and a continuous key. The learning rates are the tiny config's and test_sweep_local's (a
    learning rate is a constant of the compiled train step: these are compiled once for all of them); the time
    budget (never reached by a 2-step run) changes no program."""
    path = tmp_path / "search.py"
    path.write_text(textwrap.dedent(f"""
        from jaxgen.sweeps import choice, log_uniform
        BASE_CONFIG = "{REPO / 'configs' / 'edsr.py'}:x2,tiny"
        BASE_OVERRIDES = {{"total_steps": 2, "eval_every": 0, "log_every": 1, "ckpt_every": 2}}
        def get_search_space(arg=None):
            return {{"optim.lr": choice([5e-4, 1e-3]), "time_budget_s": log_uniform(1e3, 1e4)}}
    """))
    return path


def load_study(w: Path):
    return optuna.load_study(study_name="jaxgen", storage=f"sqlite:///{w / 'optuna.db'}")


@pytest.mark.slow  # two sweep runs of trainer subprocesses: 12-16 s of a cold `make test`; `make test-slow` (CI) runs it
def test_optuna_study_resumes_across_runs(tmp_path):
    f, w = sweep_file(tmp_path), tmp_path / "w"
    run = [sys.executable, "-m", "jaxgen.cli", "sweep", str(f), "--workdir", str(w), "--search", "optuna", "--no-report"]
    first = subprocess.run(run + ["--n-trials", "1"], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    study = load_study(w)
    done = study.get_trials()
    assert [t.state for t in done] == [optuna.trial.TrialState.COMPLETE]
    folders = {}
    for t in done:
        name = naming.trial_name({"optim.lr": t.params["optim.lr"],
                                  "time_budget_s": float(f"{t.params['time_budget_s']:.4g}")})
        status = json.loads((w / name / "sweep_trial.json").read_text())
        assert status["optuna_number"] == t.number and status["status"] == "finished"
        # The study's objective is the trial's last validation value, as the trainer logged it.
        evals = [json.loads(x) for x in (w / name / "metrics.jsonl").read_text().splitlines() if "val_psnr" in x]
        assert t.value == pytest.approx(evals[-1]["val_psnr"], abs=1e-9)
        folders[name] = status["attempts"]

    again = subprocess.run(run + ["--n-trials", "2"], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1 trial(s) to run" in again.stdout
    trials = load_study(w).get_trials()
    assert [t.number for t in trials] == [0, 1] and all(t.state.name == "COMPLETE" for t in trials)
    assert trials[0].params == done[0].params
    for name, attempts in folders.items():  # the first was not run again
        assert json.loads((w / name / "sweep_trial.json").read_text())["attempts"] == attempts
    rows = (w / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2


def test_interrupted_trial_is_requeued_into_its_own_folder(tmp_path):
    """A trial left RUNNING (sweep killed) is failed-and-requeued; the next trial asked has its exact
    parameters, hence the same folder name, and is not counted twice toward n_trials."""
    f, w = sweep_file(tmp_path), tmp_path / "w"
    w.mkdir()
    spec = load_sweep_file(str(f))
    source = OptunaSource(spec, w, n_trials=2)
    trial, optuna_trial = source.next()
    assert source.remaining() == 2  # nothing ended yet
    del source  # the sweep dies with the trial RUNNING
    resumed = OptunaSource(spec, w, n_trials=2)
    assert resumed.remaining() == 2
    again, again_optuna = resumed.next()
    assert again.name == trial.name and again.overrides == trial.overrides
    assert again_optuna.number != optuna_trial.number
    states = [t.state.name for t in resumed.study.get_trials()]
    assert states == ["FAIL", "RUNNING"]


def test_pruning_follows_the_median_of_earlier_trials(tmp_path):
    f, w = sweep_file(tmp_path), tmp_path / "w"
    w.mkdir()
    spec = load_sweep_file(str(f))
    source = OptunaSource(spec, w, n_trials=10, n_startup_trials=2)
    for values in ([20.0, 25.0], [21.0, 26.0]):  # two finished trials report val_psnr at steps 10 and 20
        t = source.study.ask(source.distributions)
        for step, v in zip((10, 20), values):
            t.report(v, step)
        source.study.tell(t, values[-1])
    good, bad = source.next(), source.next()

    def write(item, records):
        (w / item[0].name).mkdir(exist_ok=True)
        (w / item[0].name / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    write(good, [{"step": 9, "loss": 0.1}, {"step": 10, "val_psnr": 22.0}])
    write(bad, [{"step": 9, "loss": 0.1}, {"step": 10, "val_psnr": 15.0}])
    assert source.monitor(good)() is None  # above the median at step 10 (20.5)
    assert source.monitor(bad)() == "pruned"  # below it
    source.done(bad, {"status": "pruned"})
    assert source.study.get_trials()[bad[1].number].state == optuna.trial.TrialState.PRUNED


def test_resumed_sampler_does_not_replay_and_repeats_are_answered_from_their_folder(tmp_path):
    f, w = sweep_file(tmp_path), tmp_path / "w"
    w.mkdir()
    spec = load_sweep_file(str(f))
    first = OptunaSource(spec, w, n_trials=5)
    trial, optuna_trial = first.next()
    # Pretend it ran: a finished folder with a last validation value of 23.5.
    (w / trial.name).mkdir()
    (w / trial.name / "metrics.jsonl").write_text('{"step": 2, "loss": 0.1}\n{"step": 2, "val_psnr": 23.5}\n')
    (w / trial.name / "sweep_trial.json").write_text(json.dumps({"name": trial.name, "status": "finished"}))
    first.done((trial, optuna_trial), {"status": "finished"})
    assert first.study.get_trials()[0].value == 23.5
    # Same --seed in a new run: a different first proposal (the seed moves with the study's length).
    second = OptunaSource(spec, w, n_trials=5)
    other, other_optuna = second.next()
    assert other.name != trial.name and other_optuna.number == 1
    # A proposal repeating a point already run is told from its folder and not handed out to train.
    second.study.enqueue_trial({k: v for k, v in trial.overrides.items()})
    second.done((other, other_optuna), {"status": "failed"})
    nxt, nxt_optuna = second.next()
    repeat = second.study.get_trials()[2]
    assert repeat.user_attrs["jaxgen_repeat_of"] == trial.name and repeat.value == 23.5
    assert nxt.name != trial.name and nxt_optuna.number == 3
