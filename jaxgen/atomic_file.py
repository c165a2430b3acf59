"""Atomic file writes: write a temporary file beside the target, then rename it into place (POSIX-atomic), so a
reader or a killed process never sees a half-written file.

A remote target (``gs://...``, :mod:`jaxgen.storage`) is written into memory first and uploaded in one request:
an object store publishes an object only once its upload is complete, so readers see the old or the new content,
never a part; a failure before the upload leaves the old object. (A temporary object renamed into place would
not be more atomic there: a GCS rename is a copy plus a delete, and a crash between them leaves the temporary
object behind.)
"""

from __future__ import annotations

import io
import os
import uuid
from typing import Any, BinaryIO, Callable

from jaxgen import storage


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Any:
    """Create the parent folders, ``write`` into a temporary file beside ``path`` (unique per process and call),
    rename it into place; the temporary file is removed if anything fails. Returns the path (a ``pathlib.Path``,
    or an ``etils.epath.Path`` for a URL, uploaded in one request)."""
    path = storage.as_path(path)
    if storage.is_remote(path):
        buffer = io.BytesIO()
        write(buffer)
        path.write_bytes(buffer.getvalue())
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:  # honours the umask (unlike mkstemp's 0600)
            write(f)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Any:
    """:func:`write_atomic` of UTF-8 ``text``."""
    data = text.encode("utf-8")
    return write_atomic(path, lambda f: f.write(data))
