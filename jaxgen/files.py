"""File helpers that know nothing about tasks or models: content digests.

``file_sha256(path)`` is the one sha256-of-a-file helper (weights provenance, ``init_from`` records, the style
image record of ``fast_style``); ``file_digest(path, algo)`` is the same for any ``hashlib`` algorithm (``md5`` of
downloaded weights). Files are read in 4 MiB chunks, so a large checkpoint is never held in memory at once.
"""

from __future__ import annotations

import hashlib
import os

__all__ = ["file_digest", "file_sha256"]

_CHUNK = 1 << 22


def file_digest(path: str | os.PathLike, algo: str) -> str:
    """Hex digest of the file's bytes with ``hashlib.new(algo)``."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of the file's bytes (64 lowercase hex digits)."""
    return file_digest(path, "sha256")
