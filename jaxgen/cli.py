"""``jaxgen`` command line: ``jaxgen {train,eval,upscale,stylize,translate,demo,sweep,report} ...`` (``jaxgen COMMAND -h``)."""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys

from jaxgen import workdir_lock
from jaxgen import xla_setup  # imports no JAX: its settings below must precede JAX's start
from jaxgen.commands.common import close_stderr_after_error, quiet_closed_loop_callbacks, run_guarded, set_verbosity

COMMANDS = {
    "train": ("jaxgen.commands.train", "train or resume a config in a workdir"),
    "eval": ("jaxgen.commands.evaluate", "PSNR/SSIM of a checkpoint (or bicubic) on benchmark folders"),
    "upscale": ("jaxgen.commands.upscale", "super-resolve images with a trained checkpoint or a pretrained model"),
    "stylize": ("jaxgen.commands.stylize", "style transfer: Gatys optimisation, a fast-style or an AdaIN checkpoint"),
    "demo": ("jaxgen.commands.demo", "train a small model on built-in photos and compare with bicubic"),
    "translate": ("jaxgen.commands.translate", "translate images with a trained CycleGAN / pix2pix workdir"),
    "sweep": ("jaxgen.commands.sweep", "run (or resume) every trial of a sweep file: grid or Optuna, local or Ray"),
    "report": ("jaxgen.commands.report", "write a sweep folder's self-contained report.html (table, curves, images)"),
}


def usage() -> str:
    lines = ["usage: jaxgen [--no-compile-cache] COMMAND [options]   (jaxgen COMMAND -h for a command's options)",
             "", "commands:"]
    lines += [f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "--no-compile-cache: do not read or write the persistent XLA compilation cache "
              "(~/.cache/jaxgen/xla; JAXGEN_COMPILATION_CACHE=0 does the same)"]
    return "\n".join(lines)


# XLA's C++ log lines at ERROR level and below ("Very slow compile? If you want to file a bug ...", "Constant
# folding an instruction is taking > 1s") are alarms for XLA developers: hidden unless --verbose. Errors that
# matter reach Python as exceptions (one jaxgen: error: line).
NATIVE_LOG_ENV = "TF_CPP_MIN_LOG_LEVEL"
NATIVE_LOG_QUIET = "3"  # FATAL only


def quiet_native_logs(verbose: bool) -> None:
    """Sets ``TF_CPP_MIN_LOG_LEVEL=3`` unless ``verbose`` or the user set it. Read when jaxlib loads: call it
    before JAX is imported (``main`` does)."""
    if not verbose:
        os.environ.setdefault(NATIVE_LOG_ENV, NATIVE_LOG_QUIET)


def refuse_busy_workdir(args: list[str]) -> None:
    """``jaxgen train`` on a workdir another trainer holds is refused at once (one line, exit 2), before the
    seconds of importing JAX and the task code. The run itself takes the lock; with several processes
    (``distributed``) only process 0 holds it, so they do not probe here."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--workdir")
    known, _ = parser.parse_known_args(args)
    if known.workdir and not any("distributed" in a for a in args):
        run_guarded(lambda: workdir_lock.WorkdirLock(known.workdir, "jaxgen train").acquire().release())


def main(argv: list[str] | None = None) -> int:
    from_command_line = argv is None
    argv = list(sys.argv if argv is None else argv)
    no_cache = "--no-compile-cache" in argv[1:2]
    if no_cache:
        argv = argv[:1] + argv[2:]
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[1] not in COMMANDS:
        close = difflib.get_close_matches(argv[1], list(COMMANDS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(f"jaxgen: error: unknown command {argv[1]!r}{hint}\n\n{usage()}", file=sys.stderr)
        return 2
    if from_command_line:  # the jaxgen process itself: a training command runs again under jemalloc (xla_setup)
        xla_setup.run_again_under_jemalloc(argv[1], ["-m", "jaxgen", *sys.argv[1:]])
    verbose = any(a in ("-v", "--verbose") for a in argv[2:])
    quiet_native_logs(verbose)
    if argv[1] == "train":
        refuse_busy_workdir(argv[2:])
    if no_cache:
        os.environ[xla_setup.CACHE_ENV] = "0"
    xla_setup.configure_compilation_cache()  # compiled programs reused by the next command (benchmarks/RESULTS.md)
    if xla_setup.splits_host(argv[1], argv[2:]):
        # per-backend XLA defaults, before JAX initialises (JAXGEN_XLA_DEFAULTS=0: off). Training and tiled
        # upscales only: a split host slows single-image inference (benchmarks/RESULTS.md).
        xla_setup.configure_process(conv_backend=xla_setup.conv_backend_from_argv(argv[2:]))

    set_verbosity(verbose)  # quiet library logs for every command
    # the jaxgen process itself (argv from the command line, not an in-process caller's list): nothing after the
    # one error line (what library threads print at shutdown)
    close_stderr_after_error(from_command_line and not verbose)
    if from_command_line:
        quiet_closed_loop_callbacks(verbose)  # a failed background save's echoes (see there)
    module = importlib.import_module(COMMANDS[argv[1]][0])
    return module.run([f"jaxgen {argv[1]}"] + argv[2:]) or 0


if __name__ == "__main__":
    sys.exit(main())
