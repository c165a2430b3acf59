"""``jaxgen report W``: rewrite a sweep folder's results table and its self-contained ``W/report.html``.

The page (no network needed to open it): the sortable results table, every trial's metric curves, the
ranking metric against each swept hyper-parameter, and each trial's latest image grid. Also rewrites
``W/results.{csv,json,md}`` from the trial folders.
"""

from __future__ import annotations

import argparse
import sys
from jaxgen.commands import common
from jaxgen.commands.sweep import guarded
from jaxgen.sweeps.report import write_report
from pathlib import Path


def run(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="jaxgen report", description=__doc__, formatter_class=common.HelpFormatter,
                                allow_abbrev=False)
    p.add_argument("workdir", metavar="W", help="a sweep folder (made by `jaxgen sweep FILE --workdir W`)")
    args = p.parse_args(argv[1:])

    def go():
        if not Path(args.workdir).is_dir():
            raise ValueError(f"{args.workdir}: no such folder")
        return write_report(args.workdir)

    path = guarded(go)
    if isinstance(path, int):
        return path
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv))
