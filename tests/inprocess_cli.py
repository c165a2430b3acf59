"""``jaxgen COMMAND ARGS`` run inside the test process through ``jaxgen.cli.main``, for the tests that check what
a command does and says but not the process itself: no new interpreter (seconds of imports each), and the programs
compiled by earlier calls are reused. Tests about the process (signals, process death, what reaches the terminal
of a real run, the environment before JAX starts, several devices) keep real subprocesses, and so does a sweep
that starts trainers (it forks them, which a process running JAX must not do).

What ``main`` changes in the process is put back afterwards: the environment (``jaxgen train`` sets the CPU device
split for JAX's start, which has already happened here: JAX's backend is started first, so the split cannot
change this process), the working directory, the log levels and the convolution-gradient, convolution-backend and
block-scan switches that training sets.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
from pathlib import Path

import jax
from absl import logging as absl_logging

from jaxgen import cli
from jaxgen.models import conv_vjp, layers

REPO = Path(__file__).resolve().parents[1]


def run_jaxgen(*args: object, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """``jaxgen ARGS`` in this process from ``cwd``: a ``CompletedProcess`` with the exit status and what the
    command printed to ``sys.stdout`` / ``sys.stderr`` (its results, its one-line errors, argparse's help)."""
    argv = ["jaxgen", *map(str, args)]
    jax.devices()  # JAX's backend is up before main, so nothing main sets in the environment can change it
    environ, where = dict(os.environ), os.getcwd()
    loggers = [logging.getLogger(name) for name in ("absl", "jaxgen")]
    levels, absl_level, conv_grad = [lg.level for lg in loggers], absl_logging.get_verbosity(), conv_vjp.enabled()
    conv_override = conv_vjp.override()
    scan = layers.scan_blocks_enabled()
    out, err = io.StringIO(), io.StringIO()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(argv)
    except SystemExit as e:  # argparse's -h and usage errors, and jaxgen's one-line errors, exit
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.chdir(where)
        for key in set(os.environ) - set(environ):
            del os.environ[key]
        os.environ.update({k: v for k, v in environ.items() if os.environ.get(k) != v})
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        absl_logging.set_verbosity(absl_level)
        conv_vjp.set_enabled(conv_grad)
        conv_vjp.set_override(conv_override)
        layers.set_scan_blocks(scan)
    return subprocess.CompletedProcess(argv, code or 0, out.getvalue(), err.getvalue())
