"""The scikit-image sample photos that ship inside its wheel: an offline training/validation set for demos.

Nine RGB photos, 300-1411 px a side (``SAMPLE_NAMES``). None needs a download; one that fails to load (a
trimmed scikit-image install) is skipped with a warning.
"""

from __future__ import annotations

import logging
import json
import os
from pathlib import Path

import numpy as np

from jaxgen import image
from jaxgen.atomic_file import write_text_atomic

log = logging.getLogger(__name__)

# Fixed order; the last ``holdout`` names are the validation photos (coffee and chelsea by default).
SAMPLE_NAMES: tuple[str, ...] = (
    "astronaut",
    "rocket",
    "hubble_deep_field",
    "retina",
    "immunohistochemistry",
    "colorwheel",
    "stereo_motorcycle",
    "coffee",
    "chelsea",
)


def load_sample(name: str) -> np.ndarray:
    """One sample photo -> uint8 ``[H,W,3]`` (``stereo_motorcycle``: the left view)."""
    import skimage.data

    if name not in SAMPLE_NAMES:
        raise ValueError(f"unknown sample photo {name!r}; known: {', '.join(SAMPLE_NAMES)}")
    img = getattr(skimage.data, name)()
    if isinstance(img, tuple):  # stereo_motorcycle -> (left, right, disparity)
        img = img[0]
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"sample photo {name!r}: expected uint8 [H,W,3], got {img.dtype} {img.shape}")
    return img


def load_available_samples() -> dict[str, np.ndarray]:
    """``{name: uint8 [H,W,3]}`` for the names in ``SAMPLE_NAMES`` that load offline here (order kept)."""
    photos = {}
    for name in SAMPLE_NAMES:
        try:
            photos[name] = load_sample(name)
        except Exception as e:  # noqa: BLE001 - any failure (missing file, download needed) skips the photo
            log.warning("skipping scikit-image sample %r: it does not load offline (%s: %s)", name, type(e).__name__, e)
    return photos


def write_sample_images(dest: str | os.PathLike, holdout: int = 2) -> tuple[Path, Path]:
    """Writes the sample photos as PNGs into ``dest/train`` and ``dest/val``; returns ``(train_dir, val_dir)``.

    The last ``holdout`` available photos (in ``SAMPLE_NAMES`` order) go to ``val``, the rest to ``train``.
    Idempotent: existing files are kept (writes are atomic), and a sample PNG in the wrong split (a changed
    ``holdout``) is removed; other files in the folders are left alone.
    """
    if not isinstance(holdout, (int, np.integer)) or holdout < 0:
        raise ValueError(f"holdout must be an integer >= 0; got {holdout!r}")
    dest = Path(dest).expanduser()
    manifest = dest / ".samples.json"
    if manifest.is_file():  # fast path: a previous call wrote every file of this split (decoding takes ~2 s)
        done = json.loads(manifest.read_text())
        if done.get("holdout") == holdout and all((dest / rel).is_file() for rel in done.get("files", [])):
            return dest / "train", dest / "val"
    photos = load_available_samples()
    names = list(photos)
    if holdout >= len(names):
        raise ValueError(f"holdout={holdout} leaves no training photo: only {len(names)} samples load here ({names})")
    split_of = {name: ("val" if i >= len(names) - holdout else "train") for i, name in enumerate(names)}
    dirs = {split: dest / split for split in ("train", "val")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    for name in SAMPLE_NAMES:
        for split, d in dirs.items():
            path = d / f"{name}.png"
            if split_of.get(name) != split:
                path.unlink(missing_ok=True)
            elif not path.exists():
                image.write_image(path, photos[name])
    files = [f"{split_of[name]}/{name}.png" for name in names]
    write_text_atomic(manifest, json.dumps({"holdout": int(holdout), "files": files}))
    return dirs["train"], dirs["val"]
