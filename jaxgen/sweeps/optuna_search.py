"""Optuna search (``jaxgen sweep FILE --workdir W --search optuna --n-trials N``; ``pip install 'jaxgen[optuna]'``).

The sweep file declares ``get_search_space(arg) -> {config key: distribution}`` with
``jaxgen.sweeps.spec``'s ``uniform``/``log_uniform``/``int_uniform``/``choice``. Optuna's TPE sampler (seeded)
proposes each trial's overrides (floats rounded to the distribution's significant digits, so the trial's name
and command line carry exactly what is trained); the trial runs like a grid trial in ``W/<trial-name>``.
While it runs, every validation record of its ``metrics.jsonl`` is reported to Optuna at its step and the
median pruner may stop it (SIGTERM: it checkpoints; status ``pruned``). The objective is the sweep's metric
(``METRIC``/``MODE`` of the file, default ``val_psnr``/max) at the trial's last evaluation.

The study lives in ``W/optuna.db`` (SQLite), so a rerun continues it: ``--n-trials`` counts every trial
that ended (complete, pruned or failed). A trial interrupted by SIGTERM, or left ``RUNNING`` by a killed
sweep, is marked failed-and-requeued and its parameters are enqueued again, so the rerun resumes it from its
checkpoints in the same folder. The sampler's seed is ``--seed`` plus the number of trials already in the
study, so a rerun does not replay the first run's proposals; a proposal that repeats a point already run (same
folder) is answered from that folder's result instead of training again.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any, Callable

from jaxgen.sweeps import naming, results, spec, trial_runner
from jaxgen.sweeps.sweep_file import SweepFile, Trial

STUDY_NAME = "jaxgen"
REQUEUED = "jaxgen_requeued"


def _distribution(key: str, dist: spec.Distribution) -> Any:
    from optuna import distributions as d

    if isinstance(dist, spec.Uniform):
        return d.FloatDistribution(dist.low, dist.high)
    if isinstance(dist, spec.LogUniform):
        return d.FloatDistribution(dist.low, dist.high, log=True)
    if isinstance(dist, spec.IntUniform):
        return d.IntDistribution(dist.low, dist.high)
    if any(isinstance(v, tuple) for v in dist.values):
        raise ValueError(f"search space {key!r}: Optuna's categorical values must be scalars, got {dist.values}")
    return d.CategoricalDistribution(dist.values)


def _rounded(dist: spec.Distribution, value: Any) -> Any:
    if isinstance(dist, (spec.Uniform, spec.LogUniform)):
        return float(f"{value:.{dist.digits}g}")
    return value


class OptunaSource:
    """Trials proposed by an Optuna study stored in ``W/optuna.db`` (see the module docstring)."""

    def __init__(self, sweep: SweepFile, workdir: str | Path, *, n_trials: int, seed: int = 0,
                 n_startup_trials: int = 2) -> None:
        try:
            import optuna
        except ImportError:
            raise ValueError("--search optuna needs Optuna: pip install 'jaxgen[optuna]' (or pip install optuna)") from None
        if n_trials < 1:
            raise ValueError(f"--n-trials {n_trials}: expected >= 1")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.space = sweep.search_space()
        self.distributions = {key: _distribution(key, dist) for key, dist in self.space.items()}
        self.metric, self.mode, self.n_trials = sweep.metric, sweep.mode, n_trials
        self.workdir = Path(workdir)
        storage = f"sqlite:///{self.workdir.resolve() / 'optuna.db'}"
        direction = "maximize" if self.mode == "max" else "minimize"
        existing = len(optuna.create_study(storage=storage, study_name=STUDY_NAME, direction=direction,
                                           load_if_exists=True).get_trials(deepcopy=False))
        # Seeded by the study's length: a resumed run does not replay the first run's random proposals.
        self.study = optuna.create_study(
            storage=storage, study_name=STUDY_NAME, direction=direction, load_if_exists=True,
            sampler=optuna.samplers.TPESampler(seed=seed + existing, n_startup_trials=n_startup_trials),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=0))
        self._lock = threading.Lock()
        self._in_flight = 0
        self._requeue_stale()

    def _requeue_stale(self) -> None:
        """Trials left RUNNING by a sweep that was killed: failed-and-requeued, their params enqueued again."""
        running = self.study.get_trials(deepcopy=False, states=(self.optuna.trial.TrialState.RUNNING,))
        for frozen in running:
            self._requeue(frozen.number, frozen.params)

    def _requeue(self, number: int, params: dict[str, Any]) -> None:
        """Ends trial ``number`` as failed, noted as requeued (not counted), and enqueues its parameters."""
        self.study.set_user_attr(REQUEUED, sorted(set(self.study.user_attrs.get(REQUEUED, [])) | {number}))
        self.study.tell(number, state=self.optuna.trial.TrialState.FAIL)
        self.study.enqueue_trial({k: _rounded(self.space[k], v) for k, v in params.items()}, skip_if_exists=False)

    def ended(self) -> int:
        """Trials that count toward ``n_trials``: complete, pruned, or failed (not requeued)."""
        states = self.optuna.trial.TrialState
        requeued = set(self.study.user_attrs.get(REQUEUED, []))
        return sum(1 for t in self.study.get_trials(deepcopy=False)
                   if t.state in (states.COMPLETE, states.PRUNED)
                   or (t.state == states.FAIL and t.number not in requeued))

    def remaining(self) -> int:
        return max(0, self.n_trials - self.ended())

    def next(self) -> tuple[Trial, Any] | None:
        """The next trial to run; a proposal whose folder already holds a result (the sampler repeated a
        point) is answered from that folder without training again, and counts as a trial."""
        with self._lock:
            while self.ended() + self._in_flight < self.n_trials:
                trial = self.study.ask(self.distributions)
                overrides = {key: _rounded(self.space[key], trial.params[key]) for key in self.space}
                overrides = spec.check_overrides(overrides, "optuna")
                name = naming.trial_name(overrides)
                recorded = trial_runner.read_status(self.workdir / name) or {}
                if recorded.get("status") in trial_runner.TERMINAL:
                    trial.set_user_attr("jaxgen_repeat_of", name)
                    self._tell(trial, name, recorded["status"])
                    continue
                self._in_flight += 1
                return Trial(name, overrides, index=trial.number), trial
            return None

    def _tell(self, optuna_trial: Any, name: str, outcome: str) -> None:
        """Ends ``optuna_trial`` with the outcome recorded in ``W/name`` (objective: the last evaluation)."""
        states = self.optuna.trial.TrialState
        if outcome == "finished":
            _, evals = results.read_metrics(self.workdir / name)
            values = [r[self.metric] for r in evals if isinstance(r.get(self.metric), (int, float))]
            if values and math.isfinite(values[-1]):
                self.study.tell(optuna_trial, float(values[-1]))
            else:
                self.study.tell(optuna_trial, state=states.FAIL)
        elif outcome == "pruned":
            self.study.tell(optuna_trial, state=states.PRUNED)
        else:
            self.study.tell(optuna_trial, state=states.FAIL)

    def monitor(self, item: tuple[Trial, Any]) -> Callable[[], str | None]:
        """Reports each new validation value to Optuna; ``'pruned'`` when the pruner says stop."""
        trial_obj, optuna_trial = item
        reported: set[int] = set()

        def check() -> str | None:
            _, evals = results.read_metrics(self.workdir / trial_obj.name)
            for record in evals:
                step, value = int(record["step"]), record.get(self.metric)
                if step in reported or not isinstance(value, (int, float)) or not math.isfinite(value):
                    continue
                reported.add(step)
                optuna_trial.report(float(value), step)
                if optuna_trial.should_prune():
                    return "pruned"
            return None

        return check

    def extra(self, item: tuple[Trial, Any]) -> dict[str, Any]:
        return {"optuna_number": item[1].number}

    def done(self, item: tuple[Trial, Any], status: dict[str, Any]) -> None:
        trial_obj, optuna_trial = item
        with self._lock:
            self._in_flight -= 1
            if status["status"] in trial_runner.TERMINAL:
                self._tell(optuna_trial, trial_obj.name, status["status"])
            else:  # interrupted: resumed by the next run, in the same folder
                self._requeue(optuna_trial.number, optuna_trial.params)
