"""Workdir paths that may be remote: a local folder, or a URL that ``etils.epath`` opens (``gs://``, ``s3://``,
``az://``, ``hf://``) through its fsspec backend (``gcsfs`` for ``gs://``: ``pip install 'jaxgen[remote]'``).

``as_path(p)`` is the one place a workdir string becomes a path object: a ``pathlib.Path`` for a local path (so
local runs use exactly the file calls they always did), an ``etils.epath.Path`` for a URL (``pathlib`` would
collapse ``gs://b/run`` into the local folder ``gs:/b/run``). Both take ``/``, ``exists``, ``is_dir``,
``read_text``, ``write_bytes``, ``open``, ``iterdir``.

What object stores cannot do, and what the callers do instead (``docs/training.md``, "Remote workdirs"):
appends (``metrics.jsonl`` and the TensorBoard events are kept in a local staging folder and uploaded whole,
``jaxgen.train.metric_writer``), atomic renames (a GCS rename is a copy plus a delete: ``jaxgen.atomic_file``
uploads each file in one request instead, which object stores publish all at once), file locks (the workdir
lock is an object created only if absent, with a heartbeat: ``jaxgen.workdir_lock``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fsspec
from etils import epath

__all__ = ["as_path", "check_backend", "is_remote", "scheme"]

# the URL schemes etils.epath opens (any other "x://" would become a local folder "x:/"), and the fsspec package
# behind each (what to install when it is missing)
BACKEND_PACKAGES = {"gs": "gcsfs", "s3": "s3fs", "az": "adlfs", "hf": "huggingface_hub"}


def is_remote(path: Any) -> bool:
    """``True`` for URL-like paths (``gs://b/x``, ``s3://...``) that only etils/fsspec/Orbax can open."""
    return "://" in str(path)


def scheme(path: Any) -> str:
    """``'gs'`` for ``gs://b/x``; ``''`` for a local path."""
    return str(path).split("://", 1)[0] if is_remote(path) else ""


def check_backend(path: Any) -> None:
    """``ValueError`` (one line: what to install) when no fsspec backend opens ``path``'s scheme."""
    name = scheme(path)
    if name not in BACKEND_PACKAGES:
        raise ValueError(f"{path}: {name}:// URLs are not supported; use a local folder or one of "
                         f"{', '.join(f'{s}://' for s in BACKEND_PACKAGES)}")
    try:
        fsspec.get_filesystem_class(name)
    except ImportError as e:
        raise ValueError(f"{path}: no file system for {name}:// URLs ({str(e).splitlines()[0]}); install "
                         f"{BACKEND_PACKAGES[name]} (for gs://: pip install 'jaxgen[remote]')") from None


def as_path(path: Any) -> Path | epath.Path:
    """``pathlib.Path(path)`` for a local path; ``etils.epath.Path`` for a URL (its backend checked first)."""
    if is_remote(path):
        check_backend(path)
        return epath.Path(str(path))
    return Path(path)
