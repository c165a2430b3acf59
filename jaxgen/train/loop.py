"""The training loop: (config, task) -> trained, evaluated, checkpointed players in a workdir.

Linear on purpose (after big_vision's ``train.py``), and generic: the task (``jaxgen.tasks``, chosen by the
command, never imported here) supplies the players, the pure step, the data, the frozen constants and the
evaluation. The loop builds the mesh, the state's shapes, restores the latest checkpoint when the workdir has
one, then steps, logs, evaluates and checkpoints until ``total_steps``.

Workdir layout: ``config.json``, ``checkpoints/<step>/`` (Orbax), ``metrics.jsonl``, ``tensorboard/``,
``images/<grid>_<step>.png``, ``task.json`` (the task's architecture, exported player and best metric;
``jaxgen.train.checkpoint.task_record``), ``summary.json`` (how the last run ended: ``final_step``, ``total_steps``,
``stopped_by`` = ``SIGTERM``/``SIGINT``/``time_budget``/null, ``finished``). The workdir may be a URL
(``gs://bucket/run``): every file goes through ``jaxgen.storage`` / etils.epath, checkpoints through Orbax
(see ``docs/training.md``, "Remote workdirs").

Stopping: SIGTERM and SIGINT (Ctrl-C) checkpoint at the current step and exit 0; a second Ctrl-C stops at
once. With several processes the decision to stop (a signal on any process, the time budget) is agreed on
every step with an all-gather, so every process stops after the same step and nobody hangs in a collective.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import ml_collections
import numpy as np

from jax.experimental import multihost_utils
from tqdm.auto import tqdm

from jaxgen import image, storage, workdir_lock, xla_setup
from jaxgen.atomic_file import write_text_atomic
from jaxgen.config import check_run_config, config_from_json
from jaxgen.models import conv_vjp, onednn_conv
from jaxgen.progress import Heartbeat
from jaxgen.train import checkpoint, multihost, parallel
from jaxgen.train.metric_writer import MetricWriter

if TYPE_CHECKING:  # for the annotations only: the loop never imports a task at run time
    from jaxgen.tasks.common import Task

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN/Inf; the run stopped and its last good checkpoint is kept."""


class EvaluationInterrupted(Exception):
    """A stop signal arrived during an evaluation: it is abandoned, the step is checkpointed without metrics."""


def evaluate_interruptibly(signals: "StopSignals", evaluate: Any, step: int, state: Any) -> dict[str, float] | None:
    """``evaluate(step, state)``, or None when a stop signal arrives meanwhile (one process only: with several,
    every process must run the evaluation's collectives, so they finish it and stop after it)."""
    signals.evaluating = jax.process_count() == 1
    try:
        return evaluate(step, state)
    except EvaluationInterrupted:
        return None
    finally:
        signals.evaluating = False


class StopSignals:
    """SIGTERM / SIGINT -> a flag the loop checks after each step (checkpoint, then exit 0). A second SIGINT
    raises ``KeyboardInterrupt`` at once."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}
        self.evaluating = False  # single process: a signal during evaluation abandons it (EvaluationInterrupted)

    def __enter__(self) -> "StopSignals":
        for sig in self.SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: the run is simply not preemptible
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        print(f"\njaxgen: {self.received} received: checkpointing at the current step, then exiting "
              "(Ctrl-C again to stop at once)", flush=True)
        if self.evaluating:
            raise EvaluationInterrupted

    def __exit__(self, *exc: Any) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


def agree(*flags: bool) -> tuple[bool, ...]:
    """Each flag set on any process -> set on every process (one all-gather; a no-op with one process)."""
    if jax.process_count() == 1:
        return tuple(bool(f) for f in flags)
    gathered = np.asarray(multihost_utils.process_allgather(np.asarray(flags, np.int32)))
    return tuple(bool(v) for v in gathered.reshape(-1, len(flags)).max(axis=0))


def check_workdir(workdir: Path, config: ml_collections.ConfigDict, task: Task) -> None:
    """A workdir that is a file, or one holding a run of another task/architecture, is refused with what to do.

    The saved architecture is ``W/task.json``'s; a workdir written before that file existed is compared through
    its ``config.json`` (same task, so ``task.architecture`` reads it)."""
    if workdir.exists() and not workdir.is_dir():
        raise ValueError(f"--workdir {workdir} is a file, not a folder")
    saved_path = workdir / "config.json"
    if not saved_path.is_file():
        return
    saved = config_from_json(saved_path.read_text(), str(saved_path))
    if saved.task != config.task:
        raise ValueError(f"{workdir} holds a run of task {saved.task!r}, the config is task {config.task!r}; "
                         "use a new --workdir")
    record = checkpoint.read_task_record(workdir)
    saved_arch = record["architecture"] if record is not None else task.architecture(saved)
    arch = json.loads(json.dumps(task.architecture(config)))  # as task.json holds it: tuples as lists
    saved_arch = json.loads(json.dumps(saved_arch))
    for player, spec in arch.items():
        if saved_arch.get(player) != spec:
            raise ValueError(
                f"{workdir} was trained as {_describe(saved_arch.get(player))}, the config is {_describe(spec)} "
                f"({player}); use a new --workdir to train this config"
            )


def _describe(spec: Any) -> str:
    if not isinstance(spec, dict):
        return repr(spec)
    name = spec.get("name", "?")
    rest = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "name")
    return f"{name} ({rest})" if rest else str(name)


# config.steps_per_call = 0 (auto) tries these, largest first (a call of 4 steps keeps a stop signal's wait short)
AUTO_STEPS_PER_CALL = (4, 2)


def steps_per_call(config: ml_collections.ConfigDict, start_step: int = 0) -> int:
    """``config.steps_per_call``, or for 0 (auto, the default): on CPU with oneDNN's convolutions (where 2-4 steps a
    call measured 8-12% faster steps: benchmarks/RESULTS.md) the largest of :data:`AUTO_STEPS_PER_CALL` that
    divides ``total_steps``, ``log_every``, ``eval_every``, ``ckpt_every`` and ``start_step``; else 1. (With
    XLA's convolutions a loop body takes ``conv_vjp``'s gradients, measured slower at large per-device batches;
    accelerators allocate from a pool.) A config of before the key: 1."""
    k = config.get("steps_per_call", 1)
    if k:
        return k
    if jax.default_backend() != "cpu" or onednn_conv.current_backend() != "onednn":
        return 1
    counts = [config.total_steps, config.log_every, config.eval_every, config.ckpt_every, start_step]
    return next((k for k in AUTO_STEPS_PER_CALL if all(n % k == 0 for n in counts)), 1)


def steps_in_one_call(step_fn: Any) -> Any:
    """``step_fn(state, batch, consts)`` applied to each of ``batches``' leading-axis slices in turn, as one
    ``lax.scan`` (``config.steps_per_call``): the same updates as that many calls (``tests/test_train_loop.py``),
    with the last step's metrics and ``finite`` over all of them. One execution allocates its temporaries once;
    XLA:CPU allocates them afresh for every execution, and faulting them in cost RRDBNet x4's b4 train step 10%
    (benchmarks/RESULTS.md). On CPU the steps' convolutions take ``conv_vjp``'s gradients, as in
    ``layers.repeat_blocks``' scan: inside a loop body XLA:CPU runs autodiff's own outside its convolution library."""
    in_library = conv_vjp.enabled() or jax.default_backend() == "cpu"

    def steps(state: Any, batches: Any, consts: Any) -> tuple[Any, dict[str, jax.Array]]:
        def body(state: Any, batch: Any) -> tuple[Any, dict[str, jax.Array]]:
            with conv_vjp.use(in_library):
                return step_fn(state, batch, consts)

        state, metrics = jax.lax.scan(body, state, batches)
        last = {name: value[-1] for name, value in metrics.items()}
        if "finite" in metrics:
            last["finite"] = metrics["finite"].all()
        return state, last

    return steps


def _host_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in parallel.to_host(metrics).items()}


def train(config: ml_collections.ConfigDict, workdir: str | Path, task: Task) -> dict[str, Any]:
    """Trains (or resumes) ``task`` (built from ``config``) in ``workdir``; returns a summary. The workdir is
    locked for the run (``jaxgen.workdir_lock``): a second trainer on it is refused."""
    check_run_config(config)
    workdir = storage.as_path(workdir)  # a local folder, or a URL (gs://...) written through etils.epath
    if config.distributed and not jax.distributed.is_initialized():
        jax.distributed.initialize()
    # the oneDNN convolutions (config.conv_backend "onednn", or "auto" where preferred): built/loaded (or refused
    # in one line) before any workdir is touched
    onednn_conv.configure(config.get("conv_backend", "xla"), config.compute_dtype,
                          networks=tuple(xla_setup.network_names(task.architecture(config))))
    # several processes: a SIGTERM never swallowed by a stalled collective, one shared workdir (docs/multihost.md)
    with multihost.StopWatchdog(enabled=jax.process_count() > 1):
        multihost.check_shared_workdir(workdir)
        with lock_workdir(workdir):
            return _train(config, workdir, task)


def lock_workdir(workdir: str | Path) -> workdir_lock.WorkdirLock:
    """The run's workdir lock, taken by process 0 (every process refuses when it is busy)."""
    run_lock = workdir_lock.WorkdirLock(workdir, "jaxgen train", enabled=jax.process_index() == 0)
    problem = None
    try:
        run_lock.acquire()
    except workdir_lock.WorkdirBusyError as e:
        problem = str(e)
    if agree(problem is not None)[0]:
        raise workdir_lock.WorkdirBusyError(problem or "process 0 found the workdir in use by another run")
    return run_lock


def _train(config: ml_collections.ConfigDict, workdir: Any, task: Task) -> dict[str, Any]:
    check_workdir(workdir, config, task)
    is_main = jax.process_index() == 0
    task.prepare(workdir)

    # Mesh, shapes, constants.
    mesh = parallel.make_mesh(parallel.devices_for_batch(config.batch_size))
    parallel.check_batch_size(config.batch_size, mesh)
    repl, batch_sh = parallel.replicated(mesh), parallel.batch_sharding(mesh)
    # traced once: its shapes are a restore's target, its program a fresh start's
    init = jax.jit(task.init, out_shardings=parallel.init_sharding(mesh)).trace()
    abstract_state = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=repl), init.out_info)
    consts, const_sources = task.consts()
    consts = jax.device_put(consts, repl)

    # Data, then restore or initialise.
    data_iter = task.make_data(jax.process_index(), jax.process_count())
    manager = checkpoint.open_manager(
        workdir / "checkpoints", keep=config.keep_ckpts, best_metric=task.best_metric, best_mode=task.best_mode
    )
    start_step = multihost.agree_on_step(manager.latest_step())  # every process restores the same step
    k = steps_per_call(config, start_step or 0)  # train steps a call runs (one lax.scan over k stacked batches)
    if start_step is not None and start_step % k:
        raise ValueError(f"cannot resume {workdir} at step {start_step} with config.steps_per_call={k}: the step is "
                         f"not a multiple of it. Resume with a steps_per_call that divides {start_step}")
    if start_step is not None:
        state, data_state, _ = checkpoint.restore(manager, start_step, abstract_state)
        if not is_main and isinstance(data_state, dict) and "pipeline" in data_state:
            data_state = dict(data_state, pipeline=data_iter.get_state()["pipeline"])  # process-specific shard
        problem = None
        try:
            data_iter.set_state(data_state)
        except ValueError as e:
            problem = str(e).split(" (set_state")[0]
        if agree(problem is not None)[0]:  # every process stops, not only the one that found the problem
            problem = problem or "another process's data pipeline differs from the checkpoint's"
            raise ValueError(f"cannot resume {workdir}: {problem}. Use a new --workdir to train this config")
        log.info("resumed from %s at step %d", manager.directory, start_step)
    else:
        state = jax.device_put(init.lower().compile()(), repl)  # not waited for: runs while the step compiles
        start_step = 0
    if is_main:  # after a successful restore, so a mismatched config never overwrites the run's own
        workdir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(workdir / "config.json", config.to_json(indent=2))
        if not (workdir / checkpoint.TASK_FILE).is_file():  # the first save (or a workdir of before task.json)
            record = checkpoint.task_record(config.task, task.architecture(config), task.EXPORT_PLAYER,
                                            task.best_metric, task.best_mode)
            write_text_atomic(workdir / checkpoint.TASK_FILE, json.dumps(record, indent=2))
    n_params = {name: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(p.params)) for name, p in state.players.items()}

    # Per-backend train-step choices (conv weight-gradient rewrite at small per-device batches on CPU, compile
    # options, Eigen convolutions for the networks measured faster with them): decided before the step is first
    # traced; nothing on accelerators (jaxgen/xla_setup.py).
    compiler_options = xla_setup.prepare_training(config.batch_size // mesh.devices.size,
                                                  networks=xla_setup.network_names(task.architecture(config)),
                                                  conv_backend=config.get("conv_backend", "xla"),
                                                  compute_dtype=config.compute_dtype,
                                                  devices=mesh.devices.size)
    train_step = jax.jit(
        task.step if k == 1 else steps_in_one_call(task.step),
        in_shardings=(repl, parallel.steps_batch_sharding(mesh) if k > 1 else batch_sh, repl),
        out_shardings=(repl, repl), donate_argnums=(0,), compiler_options=compiler_options or None,
    )
    writer = MetricWriter(workdir, enabled=is_main)
    meta = {"config": json.loads(config.to_json()), "git": checkpoint.git_revision(), "consts": const_sources,
            "task": config.task, "time": time.time(),
            "conv_backend": onednn_conv.current_backend(),  # what config.conv_backend resolved to
            "steps_per_call": k}  # and config.steps_per_call

    def evaluate_and_log(step: int, state: Any) -> dict[str, float]:
        results, grids = task.evaluate(state)
        writer.write_scalars(step, results)
        for name, grid in grids.items():
            if is_main:
                image.write_image(workdir / "images" / f"{name}_{step:07d}.png", grid)
            writer.write_image(step, f"val/{name}", grid)
        return results

    def save(step: int, state: Any, metrics: dict[str, float] | None) -> None:
        checkpoint.save(manager, step, state, data_state=data_iter.get_state(), meta=meta, metrics=metrics or None)

    summary: dict[str, Any] = {"start_step": start_step, "params": n_params, "devices": mesh.devices.size,
                               "task": config.task, "conv_backend": meta["conv_backend"], "steps_per_call": k}
    val_metrics: dict[str, float] = {}
    progress = None
    if is_main and config.progress_bar:
        progress = tqdm(total=config.total_steps, initial=start_step, desc="train", dynamic_ncols=True, disable=None)
    # plain-text progress lines every JAXGEN_HEARTBEAT_S seconds when stdout is not a terminal (logs, sweeps)
    beat = Heartbeat("train", config.total_steps, unit="step", start=start_step, enabled=None if is_main else False)

    t_start = time.perf_counter()
    t_last, steps_since = t_start, 0
    step = start_step
    try:
        with StopSignals() as signals:
            for step in range(start_step + k, config.total_steps + 1, k):  # step: the last step of this call
                if k == 1:
                    batch = parallel.global_batch(next(data_iter), mesh)
                else:
                    local = [next(data_iter) for _ in range(k)]
                    batch = parallel.global_batch({n: np.stack([b[n] for b in local]) for n in local[0]}, mesh,
                                                  stacked=True)
                state, metrics = train_step(state, batch, consts)
                steps_since += k
                if step == start_step + k:  # keep compilation out of the throughput numbers
                    jax.block_until_ready(metrics)
                    t_last, steps_since = time.perf_counter(), 0
                last = step == config.total_steps
                out_of_time = bool(config.time_budget_s) and time.perf_counter() - t_start > config.time_budget_s
                signalled, out_of_time = agree(signals.received is not None, out_of_time)
                stop = signalled or out_of_time
                # stopped by a signal: checkpoint and leave without a validation (minutes on a busy CPU)
                do_eval = (last or out_of_time or bool(config.eval_every and step % config.eval_every == 0)) \
                    and not signalled
                do_save = do_eval or stop or step % config.ckpt_every == 0
                if do_save or step % config.log_every == 0:
                    host = _host_metrics(metrics)
                    if not host.pop("finite", 1.0):
                        raise NonFiniteLossError(
                            f"non-finite loss at step {step} (loss={host.get('loss')}); stopped without saving this "
                            f"state. {checkpoint.last_good(manager)}"
                        )
                    if steps_since:
                        elapsed = max(time.perf_counter() - t_last, 1e-9)
                        host.update(steps_per_s=steps_since / elapsed,
                                    images_per_s=steps_since * config.batch_size / elapsed)
                    writer.write_scalars(step, host)
                    if progress is not None:
                        post = {"loss": f"{host['loss']:.4f}"} if "loss" in host else {}
                        if "images_per_s" in host:
                            post["img_s"] = f"{host['images_per_s']:.1f}"
                        progress.set_postfix(post)
                    summary["last_train"] = host
                    t_last, steps_since = time.perf_counter(), 0
                if do_eval:
                    results = evaluate_interruptibly(signals, evaluate_and_log, step, state)
                    if results is None:  # a signal during the evaluation: checkpoint without it, then stop
                        do_eval, stop, signalled = False, True, True
                    else:
                        val_metrics = results
                if do_save:
                    save(step, state, val_metrics if do_eval else None)
                if do_eval or do_save:  # keep evaluation and checkpointing out of the throughput numbers
                    t_last, steps_since = time.perf_counter(), 0
                if progress is not None:
                    progress.update(k)
                beat.update(step, **({"loss": summary["last_train"]["loss"]} if "loss" in summary.get("last_train", {})
                                     else {}))
                if stop:
                    if signalled:
                        summary["preempted"] = signals.received or "a signal on another process"
                    else:
                        summary["time_budget"] = True
                    break
    finally:
        manager.wait_until_finished()
        manager.close()
        writer.close()
        if progress is not None:
            progress.close()
    summary.update(final_step=step, val=val_metrics, train_seconds=time.perf_counter() - t_start,
                   best_step=manager.best_step())
    if is_main:  # how the run ended, for sweeps and scripts: W/summary.json
        stopped_by = summary.get("preempted") or ("time_budget" if summary.get("time_budget") else None)
        record = {k: summary[k] for k in ("task", "start_step", "final_step", "best_step", "val", "train_seconds")}
        record.update(total_steps=config.total_steps, stopped_by=stopped_by, finished=step == config.total_steps)
        write_text_atomic(workdir / "summary.json", json.dumps(record, indent=2, default=float))
    summary["state"] = state
    return summary
