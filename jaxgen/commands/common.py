"""Helpers shared by the sub-commands: one argument style, quiet logging, clean error exits, summaries.

Every command uses argparse (``-h``/``--help`` exits 0 and shows defaults). Commands that take a config accept
``--config FILE[:variants]`` plus any number of ``--config.a.b=value`` (or ``--config.a.b value``) overrides.
User mistakes (``ValueError``, a missing file) print one line ``jaxgen: error: ...`` and exit 2; a run stopped
by a non-finite loss exits 1; a second Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import logging
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


def set_verbosity(verbose: bool) -> None:
    """Quiet by default: Orbax's and absl's INFO lines only with ``--verbose``."""
    absl_logging.set_verbosity(absl_logging.INFO if verbose else absl_logging.ERROR)
    logging.getLogger("absl").setLevel(logging.INFO if verbose else logging.ERROR)
    logging.getLogger("jaxgen").setLevel(logging.INFO if verbose else logging.WARNING)
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def run_guarded(fn: Callable[[], T]) -> T:
    """Runs ``fn``: a user mistake (``ValueError``, missing file) prints one line and exits 2; a non-finite loss
    exits 1; Ctrl-C (a second one during training) exits 130."""
    try:
        return fn()
    except FloatingPointError as e:  # jaxgen.train.NonFiniteLossError (caught by its builtin base: no JAX import)
        print(f"jaxgen: error: {e}", file=sys.stderr)
        sys.exit(1)
    except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as e:
        message = str(e).strip().replace("\n", " ")
        print(f"jaxgen: error: {message}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("jaxgen: interrupted", file=sys.stderr)
        sys.exit(130)


def print_train_summary(summary: dict[str, Any]) -> None:
    val = summary.get("val") or {}
    train = summary.get("last_train") or {}
    params = ", ".join(f"{name} {n:,}" for name, n in summary["params"].items())
    lines = [
        f"steps {summary['start_step']} -> {summary['final_step']} on {summary['devices']} device(s), "
        f"task {summary['task']}, params: {params}, {summary['train_seconds']:.1f} s",
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
