"""Orbax checkpoints of a run: ``W/checkpoints/<step>/{state,data,meta}``.

- ``state``: the :class:`jaxgen.train.state.TrainState` pytree (``StandardSave``; generator params under
  ``state/params``, see ``jaxgen/train/state.py`` for the whole tree).
- ``data``: the input iterator's state (JSON), so a resumed run sees the same batch sequence.
- ``meta``: JSON with the step, the validation metrics, the config and the git revision.

Saves are asynchronous and atomic (Orbax writes to a temporary folder and renames it when complete), so a
killed run always keeps its last finished checkpoint. The latest ``keep`` checkpoints are kept, plus the one
with the best validation PSNR.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

BEST_METRIC = "val_psnr"


def git_revision() -> str:
    """The current git commit of the jaxgen checkout ('' outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _best_metric(metrics: dict[str, float]) -> float:
    return float(metrics[BEST_METRIC])


def open_manager(directory: str | Path, *, keep: int = 3, read_only: bool = False) -> ocp.CheckpointManager:
    """A ``CheckpointManager`` keeping the latest ``keep`` steps plus the best by ``val_psnr``."""
    policy = policies.AnyPreservationPolicy(
        [
            policies.LatestN(n=max(1, keep)),
            policies.BestN(get_metric_fn=_best_metric, n=1, keep_checkpoints_without_metrics=False),
        ]
    )
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policy, create=not read_only, read_only=read_only, enable_async_checkpointing=True
    )
    handlers = {
        "state": ocp.StandardCheckpointHandler(),
        "data": ocp.JsonCheckpointHandler(),
        "meta": ocp.JsonCheckpointHandler(),
    }
    return ocp.CheckpointManager(Path(directory).absolute(), options=options, item_handlers=handlers)


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
    manager.save(int(step), args=args, metrics=metrics, force=True)


def _key_name(entry: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def _leaf_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    """``'params/conv/kernel' -> shape`` for every leaf (dict keys, attributes and indices alike)."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(_key_name(k) for k in path): tuple(getattr(leaf, "shape", ())) for path, leaf in flat}


def check_compatible(manager: ocp.CheckpointManager, step: int, abstract_state: Any) -> None:
    """Raises ``ValueError`` naming every parameter path whose presence or shape differs."""
    saved = manager.item_metadata(step)["state"]
    saved_shapes, wanted_shapes = _leaf_shapes(saved), _leaf_shapes(abstract_state)
    problems = [f"missing in checkpoint: {p} {s}" for p, s in wanted_shapes.items() if p not in saved_shapes]
    problems += [f"unexpected in checkpoint: {p} {s}" for p, s in saved_shapes.items() if p not in wanted_shapes]
    problems += [
        f"shape mismatch at {p}: checkpoint {saved_shapes[p]} vs model {s}"
        for p, s in wanted_shapes.items()
        if p in saved_shapes and saved_shapes[p] != s
    ]
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise ValueError(
            f"checkpoint {manager.directory}/{step} does not match the configured architecture "
            f"({len(problems)} differences):\n  {shown}"
        )


def restore(manager: ocp.CheckpointManager, step: int, abstract_state: Any) -> tuple[Any, Any, dict[str, Any]]:
    """Restores ``(state, data_state, meta)`` at ``step`` with the shardings/dtypes of ``abstract_state``."""
    check_compatible(manager, step, abstract_state)
    restored = manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            data=ocp.args.JsonRestore(),
            meta=ocp.args.JsonRestore(),
        ),
    )
    return restored["state"], restored["data"]["iterator"], dict(restored["meta"])


def read_meta(manager: ocp.CheckpointManager, step: int) -> dict[str, Any]:
    return dict(manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"])


def best_step(manager: ocp.CheckpointManager) -> int | None:
    """The kept step with the highest ``val_psnr`` (the latest step when none has one)."""
    scored = []
    for step in manager.all_steps():
        metrics = read_meta(manager, step).get("metrics") or {}
        if BEST_METRIC in metrics and np.isfinite(metrics[BEST_METRIC]):
            scored.append((metrics[BEST_METRIC], step))
    return max(scored)[1] if scored else manager.latest_step()
