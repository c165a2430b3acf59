"""Orbax checkpoints of a run: ``W/checkpoints/<step>/{state,data,meta}``.

- ``state``: the :class:`jaxgen.train.state.TrainState` pytree (``StandardSave``): ``step``, ``rng``,
  ``players/<name>/{params,opt_state,collections,ema}``, ``buffers``.
- ``data``: the input iterator's state (JSON), so a resumed run sees the same batch sequence.
- ``meta``: JSON with the step, the validation metrics, the config, the git revision and where the frozen
  constants came from.

Beside them the loop writes ``W/task.json`` once (:func:`task_record`): the task's name, its architecture summary
(what must match for a resume), the exported player and the best-checkpoint metric, so that resuming and
restoring for inference need no task code. Workdirs written before it existed have no ``task.json``; the loop
then compares with the saved config's architecture, and readers take their task's values.

Saves are asynchronous and atomic (Orbax writes to a temporary folder and renames it when complete), so a
killed run always keeps its last finished checkpoint. The latest ``keep`` checkpoints are kept, plus the best
by the task's metric (Orbax ``best_fn``/``best_mode``; ``manager.best_step()``).

Portability: arrays are restored onto the *current* devices from an abstract target (shapes, dtypes and
shardings of this run), so a checkpoint written on N devices restores on M devices; inference restores only
the exported player's params (and EMA) as host arrays (:func:`restore_player`).

Layout: a train state keeps repeated blocks' parameters stacked (``jaxgen.models.stacking``); checkpoints hold
the state as it is. A checkpoint written before that layout (every block under its own name) restores into it
(:func:`restore` stacks what it read), and :func:`restore_player` gives the official names whichever it reads.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from orbax.checkpoint import checkpoint_managers as policies

from jaxgen import storage
from jaxgen.models import stacking


def git_revision() -> str:
    """The current git commit of the jaxgen checkout ('' outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def best_fn(metric: str, mode: str) -> Callable[[dict[str, float]], float]:
    """Orbax ``best_fn``: the metric's value, or the worst possible value when a checkpoint lacks it."""
    worst = -math.inf if mode == "max" else math.inf

    def fn(metrics: dict[str, float]) -> float:
        value = (metrics or {}).get(metric)
        return float(value) if value is not None and math.isfinite(float(value)) else worst

    return fn


def as_path(path: Any) -> Any:
    """A checkpoint folder as Orbax wants it: ``etils.epath.Path`` for a URL (``gs://b/run``: ``pathlib`` would
    collapse it to ``gs:/b/run``), an absolute ``pathlib.Path`` otherwise."""
    if "://" in str(path):
        return epath.Path(str(path))
    return Path(path).absolute()


def open_manager(
    directory: str | Path,
    *,
    keep: int = 3,
    best_metric: str = "val_psnr",
    best_mode: str = "max",
    read_only: bool = False,
) -> ocp.CheckpointManager:
    """A ``CheckpointManager`` keeping the latest ``keep`` steps plus the best by ``best_metric``/``best_mode``."""
    if best_mode not in ("max", "min"):
        raise ValueError(f"best_mode={best_mode!r}; expected 'max' or 'min'")
    fn = best_fn(best_metric, best_mode)
    policy = policies.AnyPreservationPolicy(
        [
            policies.LatestN(n=max(1, keep)),
            policies.BestN(get_metric_fn=fn, reverse=best_mode == "min", n=1, keep_checkpoints_without_metrics=False),
        ]
    )
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policy,
        best_fn=fn,
        best_mode=best_mode,
        create=not read_only,
        read_only=read_only,
        enable_async_checkpointing=True,
    )
    handlers = {
        "state": ocp.StandardCheckpointHandler(),
        "data": ocp.JsonCheckpointHandler(),
        "meta": ocp.JsonCheckpointHandler(),
    }
    return ocp.CheckpointManager(as_path(directory), options=options, item_handlers=handlers)


def save(
    manager: ocp.CheckpointManager,
    step: int,
    state: Any,
    *,
    data_state: Any,
    meta: dict[str, Any],
    metrics: dict[str, float] | None = None,
) -> None:
    """Starts an async save of ``state`` + iterator state + JSON metadata at ``step``."""
    args = ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=ocp.args.JsonSave({"iterator": data_state}),
        meta=ocp.args.JsonSave(dict(meta, step=int(step), metrics=metrics or {})),
    )
    manager.save(int(step), args=args, metrics=metrics or None, force=True)


def last_good(manager: ocp.CheckpointManager) -> str:
    """Where a stopped run can resume from, as a sentence for error messages."""
    step = manager.latest_step()
    if step is None:
        return f"No checkpoint was saved yet in {manager.directory} (nothing to resume from)."
    return f"The last good checkpoint is step {step} in {manager.directory}."


def _key_name(entry: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def leaf_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    """``'players/generator/params/conv/kernel' -> shape`` for every array leaf."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(_key_name(k) for k in path): tuple(getattr(leaf, "shape", ())) for path, leaf in flat}


def _differences(saved_shapes: dict[str, tuple[int, ...]], wanted_shapes: dict[str, tuple[int, ...]]) -> list[str]:
    problems = [f"missing in checkpoint: {p} {s}" for p, s in wanted_shapes.items() if p not in saved_shapes]
    problems += [f"unexpected in checkpoint: {p} {s}" for p, s in saved_shapes.items() if p not in wanted_shapes]
    problems += [
        f"shape mismatch at {p}: checkpoint {saved_shapes[p]} vs model {s}"
        for p, s in wanted_shapes.items()
        if p in saved_shapes and saved_shapes[p] != s
    ]
    return problems


def check_compatible(manager: ocp.CheckpointManager, step: int, abstract_state: Any) -> Any:
    """The tree to read the checkpoint at ``step`` into: ``abstract_state``, or its official-names form
    (``stacking.unstack``) for a checkpoint written before the stacked layout of repeated blocks. Raises
    ``ValueError`` naming every parameter path whose presence or shape differs from ``abstract_state``'s."""
    saved_shapes = leaf_shapes(manager.item_metadata(step)["state"])
    problems = _differences(saved_shapes, leaf_shapes(abstract_state))
    if not problems:
        return abstract_state
    named = stacking.unstack(abstract_state)
    if not _differences(saved_shapes, leaf_shapes(named)):
        return named
    shown = "; ".join(problems[:5]) + (f"; ... and {len(problems) - 5} more" if len(problems) > 5 else "")
    raise ValueError(
        f"checkpoint {manager.directory}/{step} does not match the configured networks "
        f"({len(problems)} differences: {shown}); train in a new --workdir"
    )


def restore(manager: ocp.CheckpointManager, step: int, abstract_state: Any) -> tuple[Any, Any, dict[str, Any]]:
    """Restores ``(state, data_state, meta)`` at ``step`` onto the shardings/dtypes of ``abstract_state``
    (``jax.ShapeDtypeStruct`` leaves with the current run's shardings). A checkpoint whose repeated blocks are
    kept under their own names (written before the stacked layout) is read in that layout and stacked."""
    target = check_compatible(manager, step, abstract_state)
    restored = manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target),
            data=ocp.args.JsonRestore(),
            meta=ocp.args.JsonRestore(),
        ),
    )
    state = restored["state"]
    if target is not abstract_state:
        state = jax.tree.map(lambda a, t: jax.device_put(a, t.sharding), stacking.stack_like(state, abstract_state),
                             abstract_state)
    return state, restored["data"]["iterator"], dict(restored["meta"])


def read_meta(manager: ocp.CheckpointManager, step: int) -> dict[str, Any]:
    return dict(manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"])


def restore_player(directory: str | Path, step: int, player: str) -> dict[str, Any]:
    """``{'params': ..., 'ema': ... or None}`` of one player at ``step`` as host numpy arrays under the official
    names (stacked repeated blocks unstacked), whatever the number of devices the checkpoint was written on
    (partial restore: nothing else is read)."""
    path = as_path(directory) / str(step) / "state"
    checkpointer = ocp.Checkpointer(ocp.PyTreeCheckpointHandler())
    try:
        metadata = checkpointer.metadata(path).item_metadata.tree
        saved = metadata["players"][player]
    except (KeyError, TypeError, FileNotFoundError) as e:
        raise ValueError(f"{path}: no player {player!r} in this checkpoint ({type(e).__name__}: {e})") from None
    wanted = {"params": saved["params"]}
    if saved.get("ema") is not None:
        wanted["ema"] = saved["ema"]
    target = {"players": {player: wanted}}
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target)
    restored = checkpointer.restore(
        path, args=ocp.args.PyTreeRestore(item=target, restore_args=restore_args, partial_restore=True)
    )
    out = stacking.unstack(restored["players"][player])
    return {"params": out["params"], "ema": out.get("ema")}


TASK_FILE = "task.json"


def task_record(task_name: str, architecture: dict[str, Any], export_player: str, best_metric: str,
                best_mode: str) -> dict[str, Any]:
    """The content of ``W/task.json``."""
    return {"task": task_name, "architecture": architecture, "export_player": export_player,
            "best_metric": best_metric, "best_mode": best_mode}


def read_task_record(workdir: str | Path) -> dict[str, Any] | None:
    """``W/task.json`` as a dict; ``None`` for a workdir written before it existed (or no workdir)."""
    path = storage.as_path(workdir) / TASK_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}); restore it from a copy or use a new --workdir") from None


def restore_exported(workdir: str | Path, *, player: str, best_metric: str = "val_psnr", best_mode: str = "max",
                     step: int | None = None, which: str = "latest") -> tuple[Any, int]:
    """``(params, step)``: the eval params (the EMA when the run kept one) of ``player`` at ``step``, or at the
    ``latest`` / ``best`` (by ``best_metric``/``best_mode``) checkpoint of ``W/checkpoints``, as host arrays."""
    directory = storage.as_path(workdir) / "checkpoints"
    manager = open_manager(directory, read_only=True, best_metric=best_metric, best_mode=best_mode)
    if step is None:
        step = manager.best_step() if which == "best" else manager.latest_step()
    elif step not in manager.all_steps():
        raise ValueError(f"no checkpoint at step {step} in {directory} (have {list(manager.all_steps())})")
    if step is None:
        raise ValueError(f"no checkpoint in {directory}")
    saved = restore_player(directory, step, player)
    return (saved["ema"] if saved["ema"] is not None else saved["params"]), step


def restore_numpy(directory: str | Path, step: int) -> Any:
    """The whole saved ``state`` tree at ``step`` as host numpy arrays (nested dicts), whatever the devices it was
    written on: for inspecting and comparing checkpoints (training restores with :func:`restore`)."""
    path = as_path(directory) / str(step) / "state"
    checkpointer = ocp.Checkpointer(ocp.PyTreeCheckpointHandler())
    try:
        tree = checkpointer.metadata(path).item_metadata.tree
    except FileNotFoundError as e:
        raise ValueError(f"{path}: no checkpoint state here") from e
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    return checkpointer.restore(path, args=ocp.args.PyTreeRestore(item=tree, restore_args=restore_args))
