"""``jaxgen train --config configs/edsr.py:x2,tiny --workdir W [--config.key=value ...]``.

Resumes automatically when ``W/checkpoints`` has a checkpoint. Overriding a key that the config does not
have is an error naming it (configs are locked).
"""

from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "config file[:args]", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "run folder (checkpoints, logs); resumed if it has checkpoints")


def _main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _CONFIG.value is None or not _WORKDIR.value:
        raise app.UsageError("--config and --workdir are required")
    from jaxgen.commands.common import print_train_summary, run_guarded
    from jaxgen.train import train

    summary = run_guarded(lambda: train(_CONFIG.value, _WORKDIR.value))
    print_train_summary(summary)


def run(argv: list[str]) -> int:
    logging.set_verbosity(logging.INFO)
    app.run(_main, argv=argv)
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv))
