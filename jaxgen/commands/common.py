"""Helpers shared by the sub-commands: one argument style, quiet logging, clean error exits, summaries.

Every command uses argparse (``-h``/``--help`` exits 0 and shows defaults). Commands that take a config accept
``--config FILE[:variants]`` plus any number of ``--config.a.b=value`` (or ``--config.a.b value``) overrides.
User mistakes (``ValueError``, a missing file) print one line ``jaxgen: error: ...`` and exit 2; a run stopped
by a non-finite loss exits 1; a second Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, TypeVar
from absl import logging as absl_logging
from jaxgen.config import load_config

T = TypeVar("T")

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"

OVERRIDES_HELP = """\
config overrides:
  --config.KEY=VALUE    set any key of the config, e.g. --config.total_steps=100 --config.optim.lr=1e-3
                        --config.model.num_blocks=8; open sections accept new keys:
                        --config.losses.charbonnier=1 --config.losses.charbonnier.eps=1e-6
                        --config.disc.kwargs.ndf=8 --config.optim.kwargs.b2=0.99
                        A mistyped key is an error naming the close match.
config files and variants (FILE:variant,variant,key=value; see each file's docstring):
"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's line breaks and shows each option's default."""


def config_epilog() -> str:
    lines = [OVERRIDES_HELP.rstrip("\n")]
    for path in sorted(p for p in REPO_CONFIGS.glob("*.py") if p.name != "common.py"):  # common.py: shared recipes
        doc = (path.read_text().split('"""')[1:2] or [""])[0].strip().splitlines()
        lines.append(f"  configs/{path.name:<16} {doc[0] if doc else ''}")
    return "\n".join(lines)


def make_parser(prog: str, description: str, *, config_default: str | None = None) -> argparse.ArgumentParser:
    """A parser with ``--config``, ``--workdir`` and ``--verbose`` (callers add their own options)."""
    p = argparse.ArgumentParser(prog=prog, description=description, epilog=config_epilog(),
                                formatter_class=HelpFormatter, allow_abbrev=False)
    p.add_argument("--config", required=config_default is None, default=config_default,
                   metavar="FILE[:VARIANTS]", help="config file and comma-separated variants, e.g. configs/edsr.py:x2,tiny")
    return p


def add_verbose(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true", help="show library INFO logs (Orbax, data pipeline)")


def parse_with_overrides(p: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.Namespace, list[tuple[str, str]]]:
    """``(args, [(dotted key, value string)])``; anything else unknown is a usage error (exit 2)."""
    args, rest = p.parse_known_args(argv)
    overrides: list[tuple[str, str]] = []
    i = 0
    while i < len(rest):
        token = rest[i]
        if not token.startswith("--config."):
            p.error(f"unrecognized argument {token!r} (overrides look like --config.key=value)")
        key, sep, value = token[len("--config."):].partition("=")
        if not sep:
            if i + 1 >= len(rest) or rest[i + 1].startswith("--"):
                p.error(f"{token} needs a value: {token}=VALUE")
            value, i = rest[i + 1], i + 1
        overrides.append((key, value))
        i += 1
    return args, overrides


def load_config_or_exit(spec: str, overrides: list[tuple[str, str]]) -> Any:
    return run_guarded(lambda: load_config(spec, overrides))


# Set by the ``jaxgen`` command's process (``jaxgen.cli.main``), never by an in-process caller (a test, a notebook):
# after the one error line, stderr is closed to what library threads print while the interpreter shuts down.
_CLOSE_STDERR_AFTER_ERROR = [False]


def close_stderr_after_error(on: bool) -> None:
    _CLOSE_STDERR_AFTER_ERROR[0] = on


def _is_closed_loop_callback(unraisable: Any) -> bool:
    value = unraisable.exc_value
    return isinstance(value, RuntimeError) and str(value) == "Event loop is closed"


def quiet_closed_loop_callbacks(verbose: bool) -> None:
    """Without ``verbose``, what a failing Orbax background save reports as "unraisable" -- TensorStore's native
    threads calling ``loop.call_soon_threadsafe`` on the event loop Orbax already closed (a full disk: dozens of
    ``RuntimeError: Event loop is closed`` tracebacks, before the save's own error reaches the main thread and
    becomes one ``jaxgen: error:`` line) -- goes to the ``jaxgen`` logger at DEBUG; every other unraisable
    exception keeps Python's default report. With ``verbose`` nothing changes."""
    if verbose:
        return
    default = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if _is_closed_loop_callback(unraisable):
            logging.getLogger("jaxgen").debug("ignored in a library thread: %r", unraisable.exc_value)
        else:
            default(unraisable)

    sys.unraisablehook = hook


def set_verbosity(verbose: bool) -> None:
    """Quiet by default: Orbax's and absl's log lines only with ``--verbose``. Without it even their ERROR lines
    are hidden: Orbax logs a failed background save (a full disk: hundreds of lines) and then raises it in the
    main thread, where it becomes one ``jaxgen: error:`` line."""
    absl_logging.set_verbosity(absl_logging.INFO if verbose else absl_logging.FATAL)
    logging.getLogger("absl").setLevel(logging.INFO if verbose else logging.CRITICAL)
    logging.getLogger("jaxgen").setLevel(logging.INFO if verbose else logging.WARNING)
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


# errno -> (what happened, exit status): a full disk is a run failure (1); a read-only or forbidden place is the
# user's choice of path (2).
DISK_ERRORS = {
    errno.ENOSPC: ("no space left on the device", 1),
    errno.EDQUOT: ("disk quota exceeded", 1),
    errno.EROFS: ("read-only file system", 2),
    errno.EACCES: ("permission denied", 2),
    errno.EPERM: ("operation not permitted", 2),
}
# the same failures as text, for libraries that report them inside another exception (TensorStore, Orbax)
DISK_ERROR_TEXTS = {"No space left on device": errno.ENOSPC, "Disk quota exceeded": errno.EDQUOT,
                    "Read-only file system": errno.EROFS, "Permission denied": errno.EACCES}


def disk_error(error: BaseException) -> tuple[str, int] | None:
    """``(one line, exit status)`` when ``error`` (or an exception it came from) is a file-system failure: a full
    disk, a read-only or forbidden path. None otherwise."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = current.errno if isinstance(current, OSError) else None
        if code not in DISK_ERRORS:
            code = next((c for text, c in DISK_ERROR_TEXTS.items() if text in str(current)), None)
        if code is not None:
            what, status = DISK_ERRORS[code]
            where = getattr(current, "filename", None)
            where = f" writing {where}" if where else ""
            todo = ("free some space (or use another --workdir), then rerun the same command: the last finished "
                    "checkpoint is kept" if status == 1 else "give a --workdir / -o that this user can write")
            return f"{what}{where}; {todo}", status
        current = current.__cause__ or current.__context__
    return None


def run_guarded(fn: Callable[[], T]) -> T:
    """Runs ``fn``: a user mistake (``ValueError``, missing file, a read-only path) prints one line and exits 2; a
    non-finite loss or a full disk exits 1; Ctrl-C (a second one during training) exits 130."""
    try:
        return fn()
    except FloatingPointError as e:  # jaxgen.train.NonFiniteLossError (caught by its builtin base: no JAX import)
        fail(str(e), 1)
    except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as e:
        disk = disk_error(e)
        fail(*(disk if disk else (str(e).strip().replace("\n", " "), 2)))
    except Exception as e:
        disk = disk_error(e)
        if disk is None:
            raise
        fail(*disk)
    except KeyboardInterrupt:
        print("jaxgen: interrupted", file=sys.stderr)
        sys.exit(130)


def fail(message: str, status: int) -> None:
    """Prints the one ``jaxgen: error:`` line and exits with ``status``. What library threads print while the
    interpreter shuts down after a failed run (TensorStore's/Orbax's background save reporting "Event loop is
    closed" after a full disk) would follow that line as a traceback: in the ``jaxgen`` process without
    ``--verbose``, stderr is closed to it (``close_stderr_after_error``). What the run wrote was flushed before."""
    print(f"jaxgen: error: {message}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    if _CLOSE_STDERR_AFTER_ERROR[0]:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    sys.exit(status)


def print_train_summary(summary: dict[str, Any]) -> None:
    val = summary.get("val") or {}
    train = summary.get("last_train") or {}
    params = ", ".join(f"{name} {n:,}" for name, n in summary["params"].items())
    lines = [
        f"steps {summary['start_step']} -> {summary['final_step']} on {summary['devices']} device(s), "
        f"task {summary['task']}, params: {params}, {summary['train_seconds']:.1f} s"
        + (f", {summary['conv_backend']} convolutions" if summary.get("conv_backend") else ""),
    ]
    if train:
        rate = f", {train['images_per_s']:.1f} images/s" if "images_per_s" in train else ""
        lines.append(f"last loss {train.get('loss', float('nan')):.5f}{rate}")
    if val:
        lines.append("validation: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(val.items())))
    if summary.get("preempted"):
        lines.append(f"stopped by {summary['preempted']}: checkpoint saved at step {summary['final_step']}; "
                     "rerun the same command to resume")
    print("\n".join(lines))
