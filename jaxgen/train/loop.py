"""The training loop: config -> trained, evaluated, checkpointed model in a workdir.

Linear on purpose (after big_vision's ``train.py``): build mesh, data, players and state shapes; restore the
latest checkpoint when the workdir has one; then step, log, evaluate and checkpoint until ``total_steps``.

Workdir layout: ``config.json``, ``checkpoints/<step>/`` (Orbax), ``metrics.jsonl``, ``tensorboard/``,
``images/step_<N>.png`` (LR | bicubic | SR | HR of the first validation image).
"""

from __future__ import annotations

import functools
import json
import logging
import signal
import time
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from jaxgen import data as data_lib
from jaxgen import evaluation, image, inference
from jaxgen.train import checkpoint, parallel, setup, validate
from jaxgen.train.metric_writer import MetricWriter
from jaxgen.train.state import TrainState, init_state
from jaxgen.train.step import make_train_step

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN/Inf; the run stopped and its last good checkpoint is kept."""


class _Preemption:
    """Turns SIGTERM into a flag the loop checks after each step (checkpoint, then exit 0)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> "_Preemption":
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: no handler, the run is simply not preemptible
            self._previous = None
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        log.warning("SIGTERM received: checkpointing at the current step, then exiting")
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def load_val_sets(config: ml_collections.ConfigDict, val_dirs: list[str]) -> dict[str, list[evaluation.SRPair]]:
    """``{folder name: pairs}`` for each configured validation folder (full images, LR made with imresize)."""
    sets = {}
    for directory in val_dirs:
        pairs = evaluation.load_sr_pairs(directory, config.scale)
        if config.eval_max_images:
            pairs = pairs[: config.eval_max_images]
        sets[Path(directory).name] = pairs
    return sets


def resolve_data_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Fills in the built-in sample photos: an empty ``data.train_dir`` (folder source) or ``source='builtin'``
    trains on them, and an empty ``data.val_dirs`` validates on the two held-out photos. Returns a copy."""
    config = ml_collections.ConfigDict(config.to_dict())
    data = config.data
    builtin_train = data.source == "builtin" or (data.source == "folder" and not data.train_dir)
    if builtin_train or not data.val_dirs:
        train_dir, val_dir = data_lib.write_sample_images(data_lib.cache_root(data) / "samples", holdout=data.holdout)
        if builtin_train:
            data.source, data.train_dir, data.train_lr_dir = "folder", str(train_dir), ""
        if not data.val_dirs:
            data.val_dirs = [str(val_dir)]
    return config


def _write_config(workdir: Path, config: ml_collections.ConfigDict) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(config.to_json(indent=2))
    tmp.replace(path)


def _meta(config: ml_collections.ConfigDict) -> dict[str, Any]:
    return {"config": json.loads(config.to_json()), "git": checkpoint.git_revision(), "time": time.time()}


def _batch_shapes(config: ml_collections.ConfigDict, per_device_batch: int = 1) -> tuple[tuple, tuple]:
    p, s = config.data.patch_size, config.scale
    return (per_device_batch, p, p, 3), (per_device_batch, p * s, p * s, 3)


def train(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
    """Trains (or resumes) ``config`` in ``workdir``; returns a summary (final metrics, timings)."""
    if config.distributed:
        jax.distributed.initialize()
    workdir = Path(workdir)
    config = resolve_data_config(config)
    is_main = jax.process_index() == 0

    # Mesh, players, optimizers.
    mesh = parallel.make_mesh()
    parallel.check_batch_size(config.batch_size, mesh)
    repl, batch_sh = parallel.replicated(mesh), parallel.batch_sharding(mesh)
    generator = setup.build_generator(config)
    discriminator = setup.build_discriminator(config)
    g_tx, g_schedule, d_tx = setup.build_optimizers(config)

    # State: shapes first (cheap), then restore or initialise.
    lr_shape, hr_shape = _batch_shapes(config)
    make_state = functools.partial(
        init_state,
        config.seed,
        generator,
        g_tx,
        lr_shape,
        hr_shape,
        discriminator=discriminator,
        d_tx=d_tx,
        use_ema=config.ema_decay > 0,
    )
    abstract_state = jax.eval_shape(make_state)
    abstract_state = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=repl), abstract_state)

    data_iter = data_lib.make_train_iterator(
        config.data, scale=config.scale, global_batch_size=config.batch_size, seed=config.seed
    )
    manager = checkpoint.open_manager(workdir / "checkpoints", keep=config.keep_ckpts)
    start_step = manager.latest_step()
    if start_step is not None:
        state, data_state, _ = checkpoint.restore(manager, start_step, abstract_state)
        data_iter.set_state(data_state)
        log.info("resumed from %s at step %d", manager.directory, start_step)
    else:
        state = jax.jit(make_state, out_shardings=repl)()
        start_step = 0
    if is_main:  # after a successful restore, so a mismatched config never overwrites the run's own
        _write_config(workdir, config)
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params))

    train_step = jax.jit(
        make_train_step(config, generator, g_tx, discriminator=discriminator, d_tx=d_tx, g_schedule=g_schedule),
        in_shardings=(repl, batch_sh),
        out_shardings=(repl, repl),
        donate_argnums=(0,),
    )
    val_sets = load_val_sets(config, list(config.data.val_dirs))
    writer = MetricWriter(workdir, enabled=is_main)
    apply_generator = inference.make_apply(generator)
    meta = _meta(config)

    def evaluate_and_log(step: int, state: TrainState) -> dict[str, float]:
        if not val_sets:
            return {}
        sr_fn = inference.make_sr_fn(apply_generator, state.eval_params, config.scale)
        results = validate.validate(sr_fn, val_sets, config.scale)
        writer.write_scalars(step, results)
        first = next(iter(val_sets.values()))[0]
        grid = validate.comparison_grid(first.lr, sr_fn(first.lr), first.hr, config.scale)
        if is_main:
            image.write_image(workdir / "images" / f"step_{step:07d}.png", grid)
        writer.write_image(step, "val/lr_bicubic_sr_hr", grid)
        return results

    def save(step: int, state: TrainState, metrics: dict[str, float] | None) -> None:
        checkpoint.save(manager, step, state, data_state=data_iter.get_state(), meta=meta, metrics=metrics or None)

    summary: dict[str, Any] = {"start_step": start_step, "params": n_params, "devices": mesh.devices.size}
    val_metrics: dict[str, float] = {}
    progress = None
    if is_main and config.progress_bar:
        from tqdm.auto import tqdm

        progress = tqdm(total=config.total_steps, initial=start_step, desc="train", dynamic_ncols=True, disable=None)

    t_last, steps_since = time.perf_counter(), 0
    t_start = t_last
    step = start_step
    try:
        with _Preemption() as preemption:
            for step in range(start_step + 1, config.total_steps + 1):
                batch = parallel.global_batch(next(data_iter), mesh)
                state, metrics = train_step(state, batch)
                steps_since += 1
                if step == start_step + 1:  # keep compilation out of the throughput numbers
                    jax.block_until_ready(metrics)
                    t_last, steps_since = time.perf_counter(), 0
                last = step == config.total_steps
                do_eval = last or (config.eval_every and step % config.eval_every == 0)
                out_of_time = bool(config.time_budget_s) and time.perf_counter() - t_start > config.time_budget_s
                stop = preemption.requested or out_of_time
                do_eval = do_eval or out_of_time
                do_save = do_eval or last or stop or step % config.ckpt_every == 0
                if do_save or last or step % config.log_every == 0:
                    host = parallel.to_host(metrics)
                    if not host.pop("finite"):
                        raise NonFiniteLossError(
                            f"non-finite loss at step {step} (loss={float(host['loss'])}, "
                            f"grad norm={float(host['g_grad_norm'])}); stopped without saving this state. "
                            f"The last good checkpoint is step {manager.latest_step()} in {manager.directory}."
                        )
                    elapsed = max(time.perf_counter() - t_last, 1e-9)
                    if steps_since:
                        host.update(steps_per_s=steps_since / elapsed, images_per_s=steps_since * config.batch_size / elapsed)
                    writer.write_scalars(step, host)
                    if progress is not None:
                        progress.set_postfix(loss=f"{float(host['loss']):.4f}", img_s=f"{host['images_per_s']:.1f}")
                    summary["last_train"] = {k: float(v) for k, v in host.items()}
                    t_last, steps_since = time.perf_counter(), 0
                if do_eval:
                    val_metrics = evaluate_and_log(step, state)
                if do_save:
                    save(step, state, val_metrics if do_eval else None)
                if do_eval or do_save:  # keep evaluation and checkpointing out of the throughput numbers
                    t_last = time.perf_counter()
                if progress is not None:
                    progress.update(1)
                if stop:
                    reason = "preempted" if preemption.requested else "time_budget"
                    log.warning("%s: checkpoint saved at step %d", reason, step)
                    summary[reason] = True
                    break
    finally:
        manager.wait_until_finished()
        manager.close()
        writer.close()
        if progress is not None:
            progress.close()
    summary.update(
        final_step=step,
        val=val_metrics,
        train_seconds=time.perf_counter() - t_start,
        best_step=checkpoint.best_step(checkpoint.open_manager(workdir / "checkpoints", read_only=True)),
    )
    summary["state"] = state
    return summary


def restore_generator(
    workdir: str | Path, *, step: int | None = None, which: str = "latest"
) -> tuple[ml_collections.ConfigDict, Any, Any, int]:
    """``(config, generator module, eval params, step)`` from a workdir's checkpoint.

    ``which``: ``latest`` or ``best`` (highest validation PSNR); an explicit ``step`` wins. Eval params are the
    EMA params when the run kept them.
    """
    workdir = Path(workdir)
    config_path = workdir / "config.json"
    if not config_path.exists():
        raise ValueError(f"{config_path} not found: is {workdir} a jaxgen workdir?")
    config = ml_collections.ConfigDict(json.loads(config_path.read_text()))
    manager = checkpoint.open_manager(workdir / "checkpoints", read_only=True)
    if step is None:
        step = checkpoint.best_step(manager) if which == "best" else manager.latest_step()
    if step is None:
        raise ValueError(f"no checkpoint in {workdir / 'checkpoints'}")
    generator = setup.build_generator(config)
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
    params = restored["ema_params"] if restored.get("ema_params") is not None else restored["params"]
    return config, generator, params, step
