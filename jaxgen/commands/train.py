"""``jaxgen train --config configs/edsr.py:x2,tiny --workdir W [--config.key=value ...]``.

Trains the config's task (``config.task``: sr, sr_gan, ...) in W, resuming automatically when W has a
checkpoint (a workdir of another task or architecture is refused). SIGTERM and Ctrl-C checkpoint at the
current step and exit; rerun the same command to resume.
"""

from __future__ import annotations

import sys

from jaxgen.commands import common
from jaxgen.tasks import check_task, get_task
from jaxgen.train import train


def run(argv: list[str]) -> int:
    p = common.make_parser("jaxgen train", __doc__)
    p.add_argument("--workdir", required=True, help="run folder (checkpoints, logs); resumed if it has checkpoints")
    common.add_verbose(p)
    args, overrides = common.parse_with_overrides(p, argv[1:])
    common.set_verbosity(args.verbose)
    config = common.load_config_or_exit(args.config, overrides)

    def go():
        check_task(config, args.config.partition(":")[0])
        return train(config, args.workdir, get_task(config.task)(config))

    summary = common.run_guarded(go)
    common.print_train_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv))
