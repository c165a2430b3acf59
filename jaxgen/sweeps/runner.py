"""The sweep driver: trials from a source (the grid of a sweep file, or Optuna), run by a backend (local
processes or Ray tasks) from ``slots`` driver threads, recorded in the sweep folder.

Sweep folder ``W``: ``sweep.json`` (the definition and trial list), ``W/<trial>/`` (a trainer workdir plus
``sweep_trial.json`` and ``trial.log``), ``results.{csv,json,md}`` (rewritten after every trial),
``report.html``, ``optuna.db`` (Optuna search), ``hparams_experiment/`` (TensorBoard HParams).

Resuming: a rerun of the same command skips finished (and pruned) trials, resumes interrupted or
``running`` ones from their checkpoints and, unless ``retry_failed``, leaves failed ones as recorded.
SIGTERM or Ctrl-C: every running trial checkpoints and stops, no new trial starts, the results are written;
a second Ctrl-C kills the trainers at once. One sweep at a time per folder (``W/.jaxgen.lock``, :mod:`jaxgen.workdir_lock`).
"""

from __future__ import annotations

import fnmatch
import json
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from jaxgen import workdir_lock
from jaxgen.atomic_file import write_text_atomic
from jaxgen.sweeps import results as results_lib
from jaxgen.sweeps import tb_hparams, trial_runner
from jaxgen.sweeps.sweep_file import SweepFile, Trial


class Backend(Protocol):
    slots: int

    def run(self, trial: Trial, slot: int, stop_event: threading.Event,
            monitor: Callable[[], str | None] | None, extra: dict[str, Any]) -> dict[str, Any]: ...

    def close(self) -> None: ...


class Source(Protocol):
    def next(self) -> tuple[Trial, Any] | None: ...

    def monitor(self, item: tuple[Trial, Any]) -> Callable[[], str | None] | None: ...

    def extra(self, item: tuple[Trial, Any]) -> dict[str, Any]: ...

    def done(self, item: tuple[Trial, Any], status: dict[str, Any]) -> None: ...


# ------------------------------------------------------------------------------------------ local backend


def cpu_slots(parallel: int, cpus_per_trial: int, cores: list[int] | None = None) -> list[tuple[int, ...]]:
    """Disjoint cores for each of ``parallel`` slots (``cpus_per_trial`` each; 0: the cores shared out evenly).
    Empty tuples (no pinning) when the machine has fewer cores than asked for."""
    cores = sorted(os.sched_getaffinity(0)) if cores is None else cores
    per = cpus_per_trial or max(1, len(cores) // parallel)
    if per * parallel > len(cores):
        return [()] * parallel
    return [tuple(cores[i * per:(i + 1) * per]) for i in range(parallel)]


class LocalBackend:
    """Trials as subprocesses of this machine, ``parallel`` at a time. Slot ``i`` is pinned to its own CPU
    cores (``cpus_per_trial`` each, its thread count set to match) and sees GPU ``gpus[i % len(gpus)]``
    (several slots on one GPU: no XLA preallocation). A failed trial is run again up to ``retries`` times."""

    def __init__(self, sweep: SweepFile, workdir: Path, *, parallel: int = 1, cpus_per_trial: int = 0,
                 gpus: list[int] | None = None, retries: int = 0) -> None:
        if parallel < 1:
            raise ValueError(f"--parallel {parallel}: expected >= 1")
        if cpus_per_trial < 0 or retries < 0:
            raise ValueError("--cpus-per-trial and --retries must be >= 0")
        self.sweep, self.workdir, self.slots, self.retries = sweep, workdir, parallel, retries
        cpus = cpu_slots(parallel, cpus_per_trial)
        self.resources = []
        for i in range(parallel):
            gpu = None if not gpus else (gpus[i % len(gpus)],)
            shared = bool(gpus) and parallel > len(set(gpus))
            threads = len(cpus[i]) if cpus[i] else cpus_per_trial
            self.resources.append(trial_runner.Resources(cpus=cpus[i], threads=threads, gpus=gpu, share_gpu=shared))

    def run(self, trial: Trial, slot: int, stop_event: threading.Event,
            monitor: Callable[[], str | None] | None, extra: dict[str, Any]) -> dict[str, Any]:
        def attempt() -> dict[str, Any]:
            return trial_runner.run_trial(
                name=trial.name, overrides=trial.overrides, base_overrides=self.sweep.base_overrides,
                base_config=self.sweep.base_config, sweep_dir=self.workdir, index=trial.index,
                resources=self.resources[slot], stop_event=stop_event, monitor=monitor, extra=extra)

        status = attempt()
        for _ in range(self.retries):
            if status["status"] != "failed" or stop_event.is_set():
                break
            status = attempt()
        return status

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------------------ grid source


def select(trials: list[Trial], only: list[str] | None = None, max_trials: int | None = None) -> list[Trial]:
    """Trials whose name matches any ``only`` pattern (a glob; a plain word matches anywhere in the name),
    then the first ``max_trials``."""
    if only:
        patterns = [p if any(c in p for c in "*?[") else f"*{p}*" for p in only]
        trials = [t for t in trials if any(fnmatch.fnmatchcase(t.name, p) for p in patterns)]
    if max_trials is not None:
        if max_trials < 1:
            raise ValueError(f"--max-trials {max_trials}: expected >= 1")
        trials = trials[:max_trials]
    return trials


def trial_state(workdir: Path, trial: Trial) -> str:
    """``new`` or the recorded status (``running`` left by a killed sweep reads as ``interrupted``)."""
    status = trial_runner.read_status(workdir / trial.name)
    if status is None:
        return "new"
    return "interrupted" if status["status"] == "running" else status["status"]


class GridSource:
    """The sweep file's trials, minus finished/pruned ones (and failed ones unless ``retry_failed``)."""

    def __init__(self, trials: list[Trial], workdir: Path, retry_failed: bool = False) -> None:
        skip = ("finished", "pruned") if retry_failed else ("finished", "pruned", "failed")
        self.todo = [t for t in trials if trial_state(workdir, t) not in skip]
        self._iter: Iterator[Trial] = iter(self.todo)
        self._lock = threading.Lock()

    def next(self) -> tuple[Trial, Any] | None:
        with self._lock:
            trial = next(self._iter, None)
        return None if trial is None else (trial, None)

    def monitor(self, item: tuple[Trial, Any]) -> None:
        return None

    def extra(self, item: tuple[Trial, Any]) -> dict[str, Any]:
        return {}

    def done(self, item: tuple[Trial, Any], status: dict[str, Any]) -> None:
        pass


# ------------------------------------------------------------------------------------------ sweep folder


@dataclass
class SweepFolder:
    """``W``: its lock, ``sweep.json`` and the results written after each trial."""

    path: Path
    sweep: SweepFile
    search: str

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._lock_file = None

    def open(self, trials: list[Trial]) -> None:
        """Creates/locks the folder; refuses a folder holding another sweep definition."""
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"--workdir {self.path} is a file, not a folder")
        self._lock_file = workdir_lock.WorkdirLock(self.path, "jaxgen sweep").acquire()
        path = self.path / results_lib.SWEEP_FILE
        definition = self.sweep.definition()
        known: dict[str, Any] = {}
        if path.is_file():
            saved = json.loads(path.read_text())
            ours = (Path(definition["base_config"].partition(":")[0]).name, definition["base_config"].partition(":")[2],
                    definition["base_overrides"], self.search)
            theirs = (Path(saved["base_config"].partition(":")[0]).name, saved["base_config"].partition(":")[2],
                      saved["base_overrides"], saved.get("search", "grid"))
            if ours != theirs:
                raise ValueError(f"{self.path} holds a sweep of {theirs[0]}:{theirs[1]} (base overrides "
                                 f"{theirs[2]}, search {theirs[3]}), not this one; use a new --workdir")
            known = {t["name"]: t for t in saved.get("trials", [])}
        for trial in trials:
            known[trial.name] = {"name": trial.name, "overrides": _jsonable(trial.overrides), "index": trial.index}
        swept: dict[str, None] = {}
        for t in known.values():
            swept.update(dict.fromkeys(t["overrides"]))
        payload = dict(definition, file=str(self.sweep.path), arg=self.sweep.arg, metric=self.sweep.metric,
                       mode=self.sweep.mode, search=self.search, swept_keys=list(swept), doc=self.sweep.doc,
                       trials=sorted(known.values(), key=lambda t: t["index"]))
        write_text_atomic(path, json.dumps(payload, indent=2))

    def add_trial(self, trial: Trial) -> None:
        """Records a trial that was not known when the folder was opened (Optuna)."""
        with self._lock:
            path = self.path / results_lib.SWEEP_FILE
            payload = json.loads(path.read_text())
            if any(t["name"] == trial.name for t in payload["trials"]):
                return
            payload["trials"].append({"name": trial.name, "overrides": _jsonable(trial.overrides), "index": trial.index})
            payload["swept_keys"] = list(dict.fromkeys(payload["swept_keys"] + list(trial.overrides)))
            write_text_atomic(path, json.dumps(payload, indent=2))

    def trial_ended(self, trial: Trial, status: dict[str, Any]) -> None:
        """HParams session of a trial that ended for good; the results table rewritten."""
        with self._lock:
            if status["status"] in trial_runner.TERMINAL:
                tb_hparams.write_trial(self.path / trial.name, trial.overrides, status["status"])
            self.write_results()

    def write_results(self) -> list[dict[str, Any]]:
        rows = results_lib.write_results(self.path)
        _, sweep = results_lib.collect(self.path)
        metrics = sorted({c[len("final_"):] for r in rows for c in r if c.startswith("final_") and c != "final_loss"})
        tb_hparams.write_experiment(self.path, rows, sweep["swept_keys"], metrics)
        return rows

    def close(self) -> None:
        if self._lock_file is not None:
            self._lock_file.release()
            self._lock_file = None


def _jsonable(overrides: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}


# ------------------------------------------------------------------------------------------ driver


class StopOnSignal:
    """SIGTERM / SIGINT -> ``event`` set (trials checkpoint and stop); a second SIGINT kills the trainers."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopOnSignal":
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None and signum == signal.SIGINT:
            trial_runner.kill_all()
            return
        self.received = signal.Signals(signum).name
        print(f"jaxgen sweep: {self.received} received: stopping the running trials at a checkpoint "
              "(rerun the same command to resume)", flush=True)
        self.event.set()

    def __exit__(self, *exc: Any) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


def drive(folder: SweepFolder, source: Source, backend: Backend, stop_event: threading.Event,
          on_status: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Runs trials from ``source`` on ``backend`` from ``backend.slots`` threads until the source is empty or
    ``stop_event`` is set; returns the statuses of the trials run."""
    statuses: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(slot: int) -> None:
        try:
            while not stop_event.is_set():
                item = source.next()
                if item is None:
                    return
                trial = item[0]
                folder.add_trial(trial)
                status = backend.run(trial, slot, stop_event, source.monitor(item), source.extra(item))
                source.done(item, status)
                folder.trial_ended(trial, status)
                with lock:
                    statuses.append(status)
                if on_status is not None:
                    on_status(status)
        except BaseException as e:  # noqa: BLE001 (re-raised in the main thread)
            errors.append(e)
            stop_event.set()

    threads = [threading.Thread(target=worker, args=(slot,), name=f"sweep-slot-{slot}", daemon=True)
               for slot in range(backend.slots)]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=0.2)  # the main thread stays responsive to signals
    if errors:
        raise errors[0]
    return statuses


def print_status(status: dict[str, Any]) -> None:
    what = status["status"]
    detail = f": {status['error']}" if status.get("error") else ""
    step = f" at step {status.get('final_step')}/{status.get('total_steps')}" if status.get("final_step") is not None else ""
    print(f"  {what:<11} {status['name']}{step} ({status.get('wall_s', 0):.0f} s){detail}", flush=True)
