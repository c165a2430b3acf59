"""Trial names (folder names under the sweep folder) that say a trial's overrides.

``{'optim.lr': 0.001, 'losses': 'l1'}`` -> ``optim.lr=0.001,losses=l1``. Names are content-addressed (no
index), so a rerun of an edited sweep file finds the trials it already ran. A name keeps only
``[A-Za-z0-9._=,+-]``; when that loses information (other characters, tuples, very long names) a short hash of
the exact overrides is appended (``~1a2b3c4d``), so two different trials never share a folder.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

MAX_LEN = 120
_SAFE = re.compile(r"[^A-Za-z0-9._+-]")


def format_value(value: Any) -> str:
    """The value as the trainer's ``--config.k=v`` parser reads it back exactly (tuples as Python literals)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # shortest exact round-trip: 0.001, 1e-05
    if isinstance(value, tuple):
        return repr(value)
    return str(value)


def _readable(value: Any) -> str:
    if isinstance(value, tuple):
        return "-".join(_readable(v) for v in value) or "empty"
    text = format_value(value)
    return _SAFE.sub("_", text) or "empty"


def canonical(overrides: dict[str, Any]) -> str:
    """A stable text of the overrides (key order kept) for hashing."""
    return json.dumps([[k, list(v) if isinstance(v, tuple) else v] for k, v in overrides.items()])


def trial_name(overrides: dict[str, Any]) -> str:
    """The folder name of a trial (``base`` for no overrides); see the module docstring."""
    if not overrides:
        return "base"
    parts = [f"{key}={_readable(value)}" for key, value in overrides.items()]
    name = ",".join(parts)
    lossy = any(isinstance(v, tuple) or _SAFE.search(format_value(v)) for v in overrides.values())
    if lossy or len(name) > MAX_LEN:
        digest = hashlib.sha1(canonical(overrides).encode()).hexdigest()[:8]
        name = f"{name[:MAX_LEN]}~{digest}"
    return name
