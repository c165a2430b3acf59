"""``jaxgen sweep experiments/lr_vs_loss.py[:arg] --workdir W [options]``: run every trial of a sweep file.

Each trial trains ``BASE_CONFIG`` with its overrides in ``W/<trial-name>`` (a name that says the overrides)
as its own process (``jaxgen train``). Rerunning the same command skips finished trials and resumes
interrupted ones from their checkpoints; a failed trial (bad config, NaN, crash) is recorded with its error
and the others go on. SIGTERM / Ctrl-C: running trials checkpoint and stop; rerun to resume. After each
trial ``W/results.{csv,json,md}`` are rewritten; at the end ``W/report.html`` too (``jaxgen report W``).

Search: ``--search grid`` (default; the file's ``get_sweep(arg)``) or ``--search optuna`` (TPE over the file's
``get_search_space(arg)``, median pruning on the validation metric, study in ``W/optuna.db``).
Backends: ``local`` (``--parallel N`` processes, each pinned to its own CPU cores / given one GPU of
``--gpus``) or ``ray`` (``--address``: every trial a Ray task with ``--cpus-per-trial``/``--gpus-per-trial``;
``W`` must be on storage every node sees). Exit status: 0, or 1 when a trial failed, 2 for a usage error.
"""

from __future__ import annotations

import shlex
import sys
import threading
from pathlib import Path
from jaxgen import storage
from jaxgen.commands.common import HelpFormatter
from jaxgen.sweeps import runner, trial_runner
from jaxgen.sweeps.optuna_search import OptunaSource
from jaxgen.sweeps.ray_backend import RayBackend
from jaxgen.sweeps.report import write_report
from jaxgen.sweeps.runner import LocalBackend
from jaxgen.sweeps.sweep_file import load_sweep_file
import argparse

from jaxgen.commands.common import disk_error


def make_parser():
    p = argparse.ArgumentParser(prog="jaxgen sweep", description=__doc__, formatter_class=HelpFormatter,
                                allow_abbrev=False)
    p.add_argument("sweep_file", metavar="FILE[:ARG]", help="sweep file, e.g. experiments/lr_vs_loss.py")
    p.add_argument("--workdir", required=True, help="sweep folder (one sub-folder per trial); rerun to resume")
    p.add_argument("--dry-run", action="store_true", help="list the trials, their state and commands; run nothing")
    p.add_argument("--only", action="append", metavar="PATTERN",
                   help="run only trials whose name matches (glob, or a word anywhere in it); repeatable")
    p.add_argument("--max-trials", type=int, default=None, help="run at most this many trials (after --only)")
    p.add_argument("--retry-failed", action="store_true", help="rerun trials recorded as failed")
    p.add_argument("--retries", type=int, default=0, help="run a failed trial again up to N times in this sweep")
    p.add_argument("--search", choices=("grid", "optuna"), default="grid", help="trials from get_sweep or Optuna")
    p.add_argument("--n-trials", type=int, default=8, help="optuna: trials in the study (counting earlier runs)")
    p.add_argument("--seed", type=int, default=0, help="optuna: TPE sampler seed")
    p.add_argument("--backend", choices=("local", "ray"), default="local")
    p.add_argument("--parallel", type=int, default=None,
                   help="trials at once (local default 1; ray default: every trial submitted, up to 64, "
                        "and Ray runs as many as the cluster's resources allow)")
    p.add_argument("--cpus-per-trial", type=int, default=0,
                   help="local: cores pinned per trial (0: shared out evenly); ray: num_cpus per task (0 -> 1)")
    p.add_argument("--gpus", default="", help="local: comma-separated GPU ids handed to the slots in turn")
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="ray: num_gpus per trial task")
    p.add_argument("--address", default=None, help="ray: cluster address (ray://host:10001, host:6379, auto, local)")
    p.add_argument("--no-report", action="store_true", help="do not write W/report.html at the end")
    p.add_argument("--emit-commands", action="store_true",
                   help="write W/sweep.json and W/commands.txt (one trainer command per line, for SLURM arrays or "
                        "multi-host runs; add --config.distributed=true there); run nothing")
    return p


def run(argv: list[str]) -> int:
    args = make_parser().parse_args(argv[1:])
    return guarded(lambda: sweep(args))


def guarded(fn):
    """A user mistake (``ValueError``, missing file) -> one line and exit 2, like ``common.run_guarded`` but
    without importing the trainer (the sweep process stays light; trials import JAX themselves)."""
    try:
        return fn()
    except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as e:
        disk = disk_error(e)
        if disk is not None:
            print(f"jaxgen: error: {disk[0]}", file=sys.stderr)
            return disk[1]
        print(f"jaxgen: error: {str(e).strip()}".replace("\n", " "), file=sys.stderr)
        return 2
    except OSError as e:  # a full or read-only sweep folder
        disk = disk_error(e)
        if disk is None:
            raise
        print(f"jaxgen: error: {disk[0]}", file=sys.stderr)
        return disk[1]
    except KeyboardInterrupt:
        print("jaxgen: interrupted", file=sys.stderr)
        return 130


def sweep(args) -> int:
    if storage.is_remote(args.workdir):  # the study, trial logs and subprocess trainers need a local folder
        raise ValueError(f"--workdir {args.workdir}: a sweep folder must be local or a mounted bucket (gcsfuse): "
                         "the Optuna study is SQLite and trial logs are appended; copy it to the bucket afterwards")
    spec = load_sweep_file(args.sweep_file)
    workdir = Path(args.workdir)
    gpus = [int(g) for g in args.gpus.split(",") if g.strip()] if args.gpus else None
    if args.search == "grid":
        trials = runner.select(spec.trials(), args.only, args.max_trials)
        if not trials:
            raise ValueError(f"no trial of {args.sweep_file} matches --only {args.only}")
    else:
        spec.search_space()  # checked before anything starts
        trials = []
    if args.dry_run:
        return dry_run(spec, workdir, trials, args)

    folder = runner.SweepFolder(workdir, spec, args.search)
    folder.open(trials)
    if args.emit_commands:
        folder.close()
        return emit_commands(spec, workdir, trials, args)
    stop_event = threading.Event()
    backend = source = None
    try:
        if args.search == "grid":
            source = runner.GridSource(trials, workdir, retry_failed=args.retry_failed)
            todo = len(source.todo)
        else:
            source = OptunaSource(spec, workdir, n_trials=args.n_trials, seed=args.seed)
            todo = source.remaining()
        print(f"jaxgen sweep: {todo} trial(s) to run in {workdir} ({args.backend} backend)", flush=True)
        backend = make_backend(args, spec, workdir, gpus, todo)
        with runner.StopOnSignal(stop_event) as signals:
            runner.drive(folder, source, backend, stop_event, on_status=runner.print_status)
        rows = folder.write_results()
    finally:
        if backend is not None:
            backend.close()
        if source is not None and hasattr(source, "close"):
            source.close()
        folder.close()
    if not args.no_report:
        try:
            print(f"jaxgen sweep: wrote {write_report(workdir)}")
        except ValueError as e:  # matplotlib missing: the results are written, the report is not
            print(f"jaxgen sweep: no report.html ({e})")
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    print("jaxgen sweep: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + f"; results in {workdir}/results.md")
    if signals.received:
        print(f"jaxgen sweep: stopped by {signals.received}; rerun the same command to resume", flush=True)
    return 1 if counts.get("failed") else 0


def make_backend(args, spec, workdir: Path, gpus, todo: int):
    if args.backend == "local":
        return LocalBackend(spec, workdir, parallel=args.parallel or 1, cpus_per_trial=args.cpus_per_trial,
                            gpus=gpus, retries=args.retries)

    return RayBackend(spec, workdir, address=args.address, parallel=args.parallel or min(max(1, todo), 64),
                      cpus_per_trial=args.cpus_per_trial or 1, gpus_per_trial=args.gpus_per_trial, retries=args.retries)


def emit_commands(spec, workdir: Path, trials, args) -> int:
    if args.search != "grid":
        raise ValueError("--emit-commands needs a grid sweep (Optuna proposes trials one at a time)")
    lines = [shlex.join(trial_runner.trial_command(spec.base_config, dict(spec.base_overrides, **t.overrides),
                                                   (workdir / t.name).resolve(), python="python"))
             for t in trials]
    (workdir / "commands.txt").write_text("\n".join(lines) + "\n")
    print(f"wrote {workdir / 'commands.txt'} ({len(lines)} trials); `jaxgen report {workdir}` collects them")
    return 0


def dry_run(spec, workdir: Path, trials, args) -> int:
    if args.search == "optuna":
        space = spec.search_space()
        print(f"optuna search over {len(space)} key(s), {args.n_trials} trials, metric {spec.metric} ({spec.mode}):")
        for key, dist in space.items():
            print(f"  {key}: {dist}")
        return 0
    print(f"{len(trials)} trial(s) of {spec.path.name} (base {spec.base_config}) in {workdir}:")
    for trial in trials:
        state = runner.trial_state(workdir, trial) if workdir.is_dir() else "new"
        print(f"  [{trial.index:>3}] {state:<11} {trial.name}")
        cmd = trial_runner.trial_command(spec.base_config, dict(spec.base_overrides, **trial.overrides),
                                         workdir / trial.name, python="python")
        print("        " + shlex.join(cmd[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv))
