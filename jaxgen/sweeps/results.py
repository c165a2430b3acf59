"""The results table of a sweep folder: ``W/results.{csv,json,md}``, one row per trial.

Columns: ``trial``, ``status``, each swept key, ``final_<m>`` for every validation metric ``m`` at the last
evaluation, ``best_<metric>`` / ``best_step`` (the sweep's ranking metric, best over the trial's evaluations),
``final_loss`` (last logged training loss), ``steps`` (latest checkpoint) / ``total_steps``, ``wall_s``
(summed over attempts), ``attempts``, ``error``.

Metric records come from ``W/<trial>/metrics.jsonl``: a record with ``loss`` is a training record; any other
is a validation record (the trainer logs ``task.evaluate``'s scalars on their own line). After a resume the
steps logged after the last checkpoint appear twice; the later record wins.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from jaxgen.sweeps import naming, trial_runner

SWEEP_FILE = "sweep.json"
TRAIN_ONLY = ("step", "time")


def read_metrics(trial_dir: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(train_records, eval_records)`` sorted by step, one per step (the last logged)."""
    path = Path(trial_dir) / "metrics.jsonl"
    train: dict[int, dict[str, Any]] = {}
    evals: dict[int, dict[str, Any]] = {}
    if not path.is_file():
        return [], []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
        if not isinstance(record, dict) or "step" not in record:
            continue
        record = {k: _number(v) for k, v in record.items()}
        (train if "loss" in record else evals)[int(record["step"])] = record
    return [train[s] for s in sorted(train)], [evals[s] for s in sorted(evals)]


def _number(value: Any) -> Any:
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    return value


def metric_names(records: list[dict[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for record in records:
        for key, value in record.items():
            if key not in TRAIN_ONLY and isinstance(value, (int, float)):
                names[key] = None
    return list(names)


def _better(a: float, b: float, mode: str) -> bool:
    return a > b if mode == "max" else a < b


def trial_row(trial_dir: Path, status: dict[str, Any], swept: list[str], metric: str, mode: str) -> dict[str, Any]:
    """One results row (see the module docstring)."""
    train, evals = read_metrics(trial_dir)
    row: dict[str, Any] = {"trial": status["name"], "status": status.get("status", "?")}
    overrides = status.get("overrides", {})
    for key in swept:
        value = overrides.get(key)
        row[key] = tuple(value) if isinstance(value, list) else value
    if evals:
        for key in metric_names(evals):
            value = evals[-1].get(key)
            if isinstance(value, (int, float)):
                row[f"final_{key}"] = float(value)
    best, best_step = None, None
    for record in evals:
        value = record.get(metric)
        if isinstance(value, (int, float)) and math.isfinite(value) and (best is None or _better(value, best, mode)):
            best, best_step = float(value), int(record["step"])
    row[f"best_{metric}"], row["best_step"] = best, best_step
    row["final_loss"] = float(train[-1]["loss"]) if train and isinstance(train[-1].get("loss"), (int, float)) else None
    row["steps"] = trial_runner.latest_checkpoint_step(trial_dir)
    row["total_steps"] = status.get("total_steps") or trial_runner.saved_config(trial_dir).get("total_steps")
    row["wall_s"] = round(float(status.get("wall_s") or 0.0), 2)
    row["attempts"] = status.get("attempts", 0)
    if "optuna_number" in status:
        row["optuna_number"] = status["optuna_number"]
    row["error"] = status.get("error", "")
    return row


def read_sweep(workdir: str | Path) -> dict[str, Any]:
    """``W/sweep.json`` (written by ``jaxgen sweep``): definition, metric, mode, swept keys."""
    path = Path(workdir) / SWEEP_FILE
    if not path.is_file():
        raise ValueError(f"{workdir} is not a sweep folder (no {SWEEP_FILE}; run `jaxgen sweep FILE --workdir {workdir}`)")
    return json.loads(path.read_text())


def inferred_status(trial_dir: Path, trial: dict[str, Any]) -> dict[str, Any]:
    """The status of a trial of the sweep trained outside ``jaxgen sweep`` (e.g. the command printed by
    ``--dry-run`` run as a multi-host SLURM job): finished when its latest checkpoint reached ``total_steps``."""
    step = trial_runner.latest_checkpoint_step(trial_dir)
    total = trial_runner.saved_config(trial_dir).get("total_steps")
    done = step is not None and total is not None and step >= total
    return {"name": trial["name"], "overrides": trial.get("overrides", {}), "index": trial.get("index", 0),
            "status": "finished" if done else "interrupted", "error": "", "final_step": step, "total_steps": total,
            "wall_s": 0.0, "attempts": 0, "inferred": True}


def pending_status(trial: dict[str, Any]) -> dict[str, Any]:
    """The status of a trial of the sweep that has not started (no folder, or nothing in it yet)."""
    return {"name": trial["name"], "overrides": trial.get("overrides", {}), "index": trial.get("index", 0),
            "status": "pending", "error": "", "final_step": None, "total_steps": None, "wall_s": 0.0, "attempts": 0}


def collect(workdir: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(rows, sweep)``: a row for every trial of ``sweep.json`` (``pending`` when it has not started) and every
    trial folder that has a status, in sweep order."""
    workdir = Path(workdir)
    sweep = read_sweep(workdir)
    known = {t["name"]: t for t in sweep.get("trials", [])}
    statuses = []
    for trial_dir in sorted(p for p in workdir.iterdir() if p.is_dir()):
        status = trial_runner.read_status(trial_dir)
        if status is None and trial_dir.name in known and (trial_dir / "config.json").is_file():
            status = inferred_status(trial_dir, known[trial_dir.name])
        if status is not None:
            statuses.append((trial_dir, status))
    seen = {status["name"] for _, status in statuses}
    for name, trial in known.items():  # not started yet (e.g. --emit-commands trials nobody has run)
        if name not in seen:
            statuses.append((workdir / name, pending_status(trial)))
    swept: dict[str, None] = dict.fromkeys(sweep.get("swept_keys", []))
    for _, status in statuses:
        swept.update(dict.fromkeys(status.get("overrides", {})))
    statuses.sort(key=lambda item: (item[1].get("optuna_number", item[1].get("index", 0)), item[1]["name"]))
    metric, mode = sweep.get("metric", "val_psnr"), sweep.get("mode", "max")
    rows = [trial_row(d, s, list(swept), metric, mode) for d, s in statuses]
    sweep = dict(sweep, swept_keys=list(swept))
    return rows, sweep


def columns(rows: list[dict[str, Any]]) -> list[str]:
    cols: dict[str, None] = {}
    for row in rows:
        cols.update(dict.fromkeys(row))
    tail = [c for c in ("steps", "total_steps", "wall_s", "attempts", "optuna_number", "error") if c in cols]
    return [c for c in cols if c not in tail] + tail


def cell(value: Any, exact: bool = False) -> str:
    """Table text: metrics with 4 decimals; ``exact`` (swept values) as the command line writes them."""
    if value is None:
        return ""
    if exact and not isinstance(value, str):
        return naming.format_value(value)
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
    if isinstance(value, tuple):
        return naming.format_value(value)
    return str(value)


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns(rows), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (naming.format_value(v) if isinstance(v, tuple) else ("" if v is None else v))
                         for k, v in row.items()})
    return out.getvalue()


def to_markdown(rows: list[dict[str, Any]], cols: list[str] | None = None, swept: list[str] = ()) -> str:
    cols = cols or columns(rows)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        texts = [f"{row[c]:.1f}" if c == "wall_s" and row.get(c) is not None else cell(row.get(c), c in swept)
                 for c in cols]
        lines.append("| " + " | ".join(t.replace("|", "\\|") for t in texts) + " |")
    return "\n".join(lines) + "\n"


def write_results(workdir: str | Path) -> list[dict[str, Any]]:
    """Writes ``W/results.{csv,json,md}``; returns the rows."""
    workdir = Path(workdir)
    rows, sweep = collect(workdir)
    (workdir / "results.csv").write_text(to_csv(rows))
    payload = {"sweep": sweep, "trials": [{k: (list(v) if isinstance(v, tuple) else v) for k, v in r.items()} for r in rows]}
    (workdir / "results.json").write_text(json.dumps(payload, indent=2, default=str))
    (workdir / "results.md").write_text(to_markdown(rows, swept=sweep["swept_keys"]))
    return rows
