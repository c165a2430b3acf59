"""Listing the image files of a folder (one lister for training folders, benchmarks and batch commands)."""

from __future__ import annotations

from pathlib import Path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def list_image_files(folder: str | Path, what: str = "image folder") -> list[Path]:
    """Image files directly in ``folder`` (by extension, case-insensitive; hidden files ignored), sorted by name.

    A missing folder or one without image files is a ``ValueError`` naming it (``what`` says which folder).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{what} {folder} does not exist or is not a directory")
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not files:
        raise ValueError(f"{what} {folder} has no image files (expected one of {', '.join(IMAGE_EXTENSIONS)})")
    return files


def expand_image_inputs(items: list[str], what: str = "input") -> list[Path]:
    """Command-line inputs -> image files: a file stays itself, a folder gives its image files
    (:func:`list_image_files`), in the given order. A missing path is a ``ValueError`` naming it."""
    files: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            files += list_image_files(item, f"{what} folder")
        elif item.is_file():
            files.append(item)
        else:
            raise ValueError(f"{what} {item}: no such file or folder")
    return files
