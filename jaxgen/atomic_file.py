"""Atomic file writes: write a temporary file beside the target, then rename it into place (POSIX-atomic), so a
reader or a killed process never sees a half-written file."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import BinaryIO, Callable


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Create the parent folders, ``write`` into a temporary file beside ``path`` (unique per process and call),
    rename it into place; the temporary file is removed if anything fails. Returns the path."""
    path = Path(path)
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


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """:func:`write_atomic` of UTF-8 ``text``."""
    data = text.encode("utf-8")
    return write_atomic(path, lambda f: f.write(data))
