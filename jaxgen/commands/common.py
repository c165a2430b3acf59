"""Helpers shared by the sub-commands: clean error exits and summaries."""

from __future__ import annotations

import sys
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def run_guarded(fn: Callable[[], T]) -> T:
    """Runs ``fn``; a ``ValueError``/``NonFiniteLossError`` becomes a one-paragraph message and exit code 1."""
    from jaxgen.train import NonFiniteLossError

    try:
        return fn()
    except (ValueError, FileNotFoundError, NonFiniteLossError) as e:
        print(f"jaxgen: error: {e}", file=sys.stderr)
        sys.exit(1)


def print_train_summary(summary: dict[str, Any]) -> None:
    val = summary.get("val") or {}
    train = summary.get("last_train") or {}
    lines = [
        f"steps {summary['start_step']} -> {summary['final_step']} on {summary['devices']} device(s), "
        f"{summary['params']:,} generator params, {summary['train_seconds']:.1f} s",
    ]
    if train:
        lines.append(f"last loss {train.get('loss', float('nan')):.5f}, {train.get('images_per_s', 0):.1f} images/s")
    if val:
        lines.append("validation: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(val.items())))
    if summary.get("preempted"):
        lines.append("preempted (SIGTERM): checkpoint saved; rerun the same command to resume")
    print("\n".join(lines))
