"""``python -m jaxgen ...``: the same entry point as the ``jaxgen`` command (``jaxgen.cli.main``)."""

import sys

from jaxgen.cli import main

sys.exit(main())
