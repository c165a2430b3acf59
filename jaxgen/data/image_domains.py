"""Image domains for translation (CycleGAN / pix2pix): where a domain's images come from, the official
preprocessing (resize / crop / flip), the synthetic domains whose ground truth is known, and the fixed
evaluation images.

Config section (``translation_data_config``)::

    source='builtin'        # builtin (scikit-image photos) | folder (dir_a / dir_b) | tfds (tfds_name)
                            # | aligned (pix2pix: one folder of side-by-side 'AB' images, dir_a)
    dir_a='', dir_b=''      # folder: one image folder per domain (pix2pix: A and B matched by file name)
    tfds_name=''            # tfds: e.g. 'cycle_gan/horse2zebra' (splits trainA/trainB, prepared as array_record)
    synthetic=''            # '' | one of SYNTHETIC: domain B = transform(domain A images); the truth is known
    preprocess='resize_and_crop'   # resize_and_crop | scale_width_and_crop | crop (official --preprocess)
    load_size=286, crop_size=256, flip=True
    val_dir_a='', val_dir_b=''     # evaluation images ('' with builtin/synthetic: the held-out photos)
    eval_size=0                    # side of the (square) evaluation images; 0 = crop_size
    num_eval=2, holdout=2, num_threads=4, prefetch=4, cache_dir=''

Images are uint8 ``[H,W,3]`` here; batches become float32 in ``[0, 1]``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import ml_collections
import numpy as np
from PIL import Image

from jaxgen import image
from jaxgen.data.data_config import cache_root
from jaxgen.data.samples import write_sample_images
from jaxgen.data.sources import open_folder_source, open_tfds_source
from jaxgen.image import list_image_files

__all__ = [
    "PREPROCESS",
    "SOURCES",
    "SYNTHETIC",
    "center_square",
    "crop_flip",
    "eval_images",
    "open_domain",
    "resize_for_crop",
    "translation_data_config",
]

SOURCES = ("builtin", "folder", "tfds", "aligned")
PREPROCESS = ("resize_and_crop", "scale_width_and_crop", "crop")


def invert(x: np.ndarray) -> np.ndarray:
    """Photo negative: ``255 - x``."""
    return 255 - x


def rotate_channels(x: np.ndarray) -> np.ndarray:
    """``(R, G, B) -> (G, B, R)``."""
    return np.ascontiguousarray(x[..., [1, 2, 0]])


SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], np.float32)


def sepia(x: np.ndarray) -> np.ndarray:
    """The classic sepia matrix (rows R', G', B'), clipped and rounded to uint8 (not invertible: CycleGAN's
    B -> A cannot be exact)."""
    y = x.astype(np.float32) @ SEPIA.T
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


SYNTHETIC: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "invert": invert,
    "rotate_channels": rotate_channels,
    "sepia": sepia,
}


def translation_data_config() -> ml_collections.ConfigDict:
    """Every translation data key with its default (module docstring)."""
    return ml_collections.ConfigDict(dict(
        source="builtin", dir_a="", dir_b="", tfds_name="", tfds_data_dir="", synthetic="",
        preprocess="resize_and_crop", load_size=286, crop_size=256, flip=True,
        val_dir_a="", val_dir_b="", eval_size=0, num_eval=2, holdout=2, num_threads=4, prefetch=4, cache_dir="",
    ))


def check_data_config(data: ml_collections.ConfigDict, *, multiple: int) -> None:
    """One-line ``ValueError``s for the keys the pipelines read; ``crop_size`` must be a multiple of ``multiple``
    (the generator's down-sampling factor)."""
    if data.source not in SOURCES:
        raise ValueError(f"config.data.source={data.source!r}; expected one of {SOURCES}")
    if data.synthetic and data.synthetic not in SYNTHETIC:
        raise ValueError(f"config.data.synthetic={data.synthetic!r}; expected '' or one of {sorted(SYNTHETIC)}")
    if data.preprocess not in PREPROCESS:
        raise ValueError(f"config.data.preprocess={data.preprocess!r}; expected one of {PREPROCESS}")
    for key in ("load_size", "crop_size", "num_threads"):
        if not isinstance(data[key], int) or data[key] < 1:
            raise ValueError(f"config.data.{key}={data[key]!r}: expected an integer >= 1")
    for key in ("crop_size", "eval_size"):
        if data.get(key, 0) % multiple:
            raise ValueError(f"config.data.{key}={data[key]}: the generator needs a multiple of {multiple}")
    if data.preprocess != "crop" and data.load_size < data.crop_size:
        raise ValueError(f"config.data.load_size={data.load_size} is smaller than crop_size={data.crop_size}")


# --------------------------------------------------------------------------------------------- sources


def open_domain(data: ml_collections.ConfigDict, domain: str) -> Any:
    """The training records of ``domain`` ('A' or 'B'): a random-access ``TrainSource`` whose ``src[i]['hr']``
    is a whole uint8 image. ``builtin``: the sample photos minus the held-out ones (both domains); ``folder``:
    ``dir_a`` / ``dir_b``; ``tfds``: split ``train{domain}`` of ``tfds_name``."""
    root = cache_root(data)
    if data.source == "builtin":
        train_dir, _ = write_sample_images(root / "samples", holdout=data.holdout)
        return open_folder_source(str(train_dir), "", scale=1, lr_mode="on_the_fly", cache_dir=root)
    if data.source == "folder":
        folder = data.dir_a if domain == "A" else data.dir_b
        if not folder:
            raise ValueError(f"config.data.source='folder' needs config.data.dir_{domain.lower()}")
        return open_folder_source(folder, "", scale=1, lr_mode="on_the_fly", cache_dir=root)
    if data.source == "tfds":
        if not data.tfds_name:
            raise ValueError("config.data.source='tfds' needs config.data.tfds_name (e.g. 'cycle_gan/horse2zebra')")
        return open_tfds_source(data.tfds_name, f"train{domain}", data.tfds_data_dir, lr_mode="on_the_fly")
    raise ValueError(f"config.data.source={data.source!r} is not an unpaired source; expected builtin, folder or tfds")


# --------------------------------------------------------------------------------------------- preprocessing


def _resize(x: np.ndarray, width: int, height: int) -> np.ndarray:
    """PIL bicubic resize (torchvision ``Resize(..., Image.BICUBIC)`` on a PIL image, as the official loader)."""
    if x.shape[:2] == (height, width):
        return x
    return np.asarray(Image.fromarray(x).resize((width, height), Image.BICUBIC))


def resize_for_crop(x: np.ndarray, preprocess: str, load_size: int, crop_size: int) -> np.ndarray:
    """The deterministic part of the official ``get_transform``: ``resize_and_crop`` -> ``load x load``;
    ``scale_width_and_crop`` -> width ``load``, height ``max(load * h / w, crop)``; ``crop`` -> unchanged (an image
    smaller than the crop is scaled up to fit it, keeping its aspect)."""
    h, w = x.shape[:2]
    if preprocess == "resize_and_crop":
        return _resize(x, load_size, load_size)
    if preprocess == "scale_width_and_crop":
        return _resize(x, load_size, max(int(load_size * h / w), crop_size))
    if min(h, w) < crop_size:
        s = crop_size / min(h, w)
        return _resize(x, max(crop_size, math.ceil(w * s)), max(crop_size, math.ceil(h * s)))
    return x


def crop_flip(images: list[np.ndarray], rng: np.random.Generator, crop_size: int, flip: bool) -> list[np.ndarray]:
    """The same random ``crop_size`` crop and horizontal flip of every image in ``images`` (equal sizes; pix2pix's
    shared ``get_params``). Draws, in order: the crop row, the crop column, the flip bit (always drawn)."""
    h, w = images[0].shape[:2]
    y, x = int(rng.integers(0, h - crop_size + 1)), int(rng.integers(0, w - crop_size + 1))
    do_flip = bool(rng.integers(0, 2)) and flip
    out = []
    for im in images:
        c = im[y : y + crop_size, x : x + crop_size]
        out.append(np.ascontiguousarray(c[:, ::-1] if do_flip else c))
    return out


def center_square(x: np.ndarray, size: int) -> np.ndarray:
    """The central square of ``x`` resized (bicubic) to ``size x size``: an evaluation image."""
    h, w = x.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    return _resize(np.ascontiguousarray(x[y0 : y0 + s, x0 : x0 + s]), size, size)


def eval_images(data: ml_collections.ConfigDict, folder: str) -> list[np.ndarray]:
    """Up to ``num_eval`` evaluation images (central square at ``eval_size``, else ``crop_size``) from ``folder``;
    ``''`` means the held-out sample photos."""
    if not folder:
        _, val_dir = write_sample_images(cache_root(data) / "samples", holdout=data.holdout)
        folder = str(val_dir)
    files = list_image_files(Path(folder), "evaluation folder")[: int(data.num_eval)]
    return [center_square(image.read_image(f), eval_size(data)) for f in files]


def eval_size(data: ml_collections.ConfigDict) -> int:
    """The side of the evaluation images: ``data.eval_size`` or else ``data.crop_size``."""
    return int(data.get("eval_size", 0) or data.crop_size)
