"""Training data: local image folders / TFDS catalog datasets / built-in photos -> random-access source ->
grain pipeline of aligned LR/HR patches.

Entry points: :func:`make_train_iterator` (the trainer's input), :func:`open_train_source` (the random-access
records it samples from), :func:`write_sample_images` (the offline scikit-image photos) and
:func:`default_data_config` (every key the data code reads, with defaults). The heavy modules (grain, TFDS)
are imported on first use, so reading a config stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from jaxgen.data.data_config import cache_root, default_data_config

if TYPE_CHECKING:  # pragma: no cover
    from jaxgen.data.pipeline import make_train_iterator
    from jaxgen.data.samples import write_sample_images
    from jaxgen.data.sources import open_train_source

__all__ = ["cache_root", "default_data_config", "make_train_iterator", "open_train_source", "write_sample_images"]

_LAZY = {
    "make_train_iterator": "jaxgen.data.pipeline",
    "open_train_source": "jaxgen.data.sources",
    "write_sample_images": "jaxgen.data.samples",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:  # grain / TFDS load on first use (seconds), so reading a config stays cheap
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'jaxgen.data' has no attribute {name!r}")
