"""The Ray backend: every trial is a Ray task (``pip install 'jaxgen[ray]'``).

    ray start --head --port=6379                      # on the head node; `ray start --address=HEAD:6379` on others
    jaxgen sweep experiments/lr_vs_loss.py --workdir /shared/sweeps/lvl --backend ray --address HEAD:6379 \\
        --gpus-per-trial 1 --cpus-per-trial 8 --retries 2

A task asks for ``num_cpus=cpus_per_trial`` and ``num_gpus=gpus_per_trial`` (Ray sets the task's
``CUDA_VISIBLE_DEVICES``; the trainer subprocess inherits it) and runs the same trainer subprocess as the local
backend (``jaxgen.sweeps.trial_runner.run_trial``), so the sweep folder must be on storage every node sees
(NFS, a mounted bucket) and jaxgen must be importable on every node. A failed trial raises
:class:`~jaxgen.sweeps.trial_runner.TrialFailedError` inside its task, which Ray retries up to ``retries``
times (``max_retries``/``retry_exceptions``; a node lost mid-trial is retried the same way), each retry
resuming from the trial's checkpoints. Stopping (SIGTERM / Ctrl-C of the sweep, Optuna pruning) writes the
trial's ``STOP`` file on the shared folder; the task forwards SIGTERM to its trainer, which checkpoints.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from jaxgen.sweeps import trial_runner
from jaxgen.sweeps.sweep_file import SweepFile, Trial


def _trial_task(payload: dict[str, Any], threads: int) -> dict[str, Any]:
    """The body of a Ray task: one attempt of the trial; raises on failure so that Ray retries it."""
    import ray

    context = ray.get_runtime_context()
    payload = dict(payload, extra=dict(payload.get("extra") or {}, ray_node_id=context.get_node_id(),
                                       ray_task_id=context.get_task_id()))
    status = trial_runner.run_trial(resources=trial_runner.Resources(threads=threads), **payload)
    if status["status"] == "failed":
        raise trial_runner.TrialFailedError(f"{status['name']}: {status['error']}")
    return status


class RayBackend:
    """Runs trials as Ray tasks on the cluster at ``address`` (``None``/``'auto'``: the running one;
    ``'local'``: start one here). ``parallel`` driver threads keep that many tasks submitted; Ray runs as
    many as the cluster's resources allow."""

    def __init__(self, sweep: SweepFile, workdir: Path, *, address: str | None = None, parallel: int = 1,
                 cpus_per_trial: float = 1, gpus_per_trial: float = 0.0, retries: int = 0,
                 init_kwargs: dict[str, Any] | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ValueError("--backend ray needs Ray: pip install 'jaxgen[ray]' (or pip install ray)") from None
        if cpus_per_trial <= 0 or gpus_per_trial < 0 or retries < 0 or parallel < 1:
            raise ValueError("--cpus-per-trial must be > 0, --gpus-per-trial and --retries >= 0, --parallel >= 1")
        self.ray = ray
        self.sweep, self.workdir = sweep, Path(workdir).resolve()
        self.slots = parallel
        self._owns = not ray.is_initialized()
        if self._owns:
            ray.init(address=address, log_to_driver=False, **(init_kwargs or {}))
        self.remote = ray.remote(_trial_task).options(
            num_cpus=cpus_per_trial, num_gpus=gpus_per_trial, max_retries=retries,
            retry_exceptions=[trial_runner.TrialFailedError])
        self.threads = max(1, int(cpus_per_trial))

    def run(self, trial: Trial, slot: int, stop_event: threading.Event,
            monitor: Callable[[], str | None] | None, extra: dict[str, Any]) -> dict[str, Any]:
        payload = dict(name=trial.name, overrides=trial.overrides, base_overrides=self.sweep.base_overrides,
                       base_config=self.sweep.base_config, sweep_dir=str(self.workdir), index=trial.index,
                       extra=extra)
        trial_dir = self.workdir / trial.name
        ref = self.remote.remote(payload, self.threads)
        requested = None
        while True:
            ready, _ = self.ray.wait([ref], timeout=0.5)
            if ready:
                break
            if requested is None:
                if stop_event.is_set():
                    requested = "interrupted"
                elif monitor is not None:
                    requested = monitor()
                if requested is not None:
                    trial_runner.request_stop(trial_dir, requested)
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError as e:
            status = trial_runner.read_status(trial_dir) or {"name": trial.name, "overrides": trial.overrides,
                                                            "index": trial.index, "attempts": 0, "wall_s": 0.0}
            if status.get("status") in (None, "running"):  # the task died without recording why
                status = trial_runner.account_lost_attempt(status)
                status.update(status="failed", error=f"Ray task failed: {type(e).__name__}: {str(e).splitlines()[0]}")
                if trial_dir.is_dir():
                    trial_runner.write_status(trial_dir, status)
            return status

    def close(self) -> None:
        if self._owns and self.ray.is_initialized():
            self.ray.shutdown()
