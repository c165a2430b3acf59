"""Random-access training sources: ``source[i] -> {'hr': uint8 [H,W,3], 'lr': uint8 [H/s,W/s,3], 'name': str}``.

``data.source`` picks where the records come from:

* ``'folder'``: ``data.train_dir`` (HR) and optionally ``data.train_lr_dir`` (LR paired by file stem), prepared
  once into a cached TFDS ArrayRecord dataset (:mod:`jaxgen.data.folder_builder`);
* ``'tfds'``: a TFDS catalog dataset you prepared yourself in ``array_record`` format, e.g. ``div2k/bicubic_x4``
  (``hr``/``lr`` features; a dataset with only ``hr`` or ``image`` is HR-only). Its image sizes are read
  from the encoded headers when it is opened (one pass over the data, no decoding);
* ``'builtin'``: the scikit-image sample photos (:mod:`jaxgen.data.samples`) minus the held-out ones.

``lr`` is present when the source has LR images and ``data.lr_mode == 'precompute'``; with ``'on_the_fly'``
records are HR-only and the loader downsamples each HR patch.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from jaxgen.data.data_config import cache_root, default_data_config
from jaxgen.data.folder_builder import LR_MODES, prepare_folder
from jaxgen.data.samples import write_sample_images

log = logging.getLogger(__name__)

SOURCES = ("folder", "tfds", "builtin")
_HR_KEYS = ("hr", "image")
_SCAN_CHUNK = 64


@dataclasses.dataclass(frozen=True)
class RecordInfo:
    """Sizes of one record, known without reading it: HR ``(H, W)`` and LR ``(h, w)`` (None if HR-only)."""

    name: str
    hr_shape: tuple[int, int]
    lr_shape: tuple[int, int] | None


class TrainSource:
    """Random-access records with their sizes: ``len(src)``, ``src[i]`` (dict of numpy), ``src.records[i]``.

    Wraps a TFDS data source, mapping its feature keys to ``hr``/``lr`` and gray images to RGB; ``name``
    comes from ``records``.
    Picklable (grain worker processes receive it).
    """

    def __init__(
        self,
        data: Any,
        records: list[RecordInfo],
        *,
        description: str,
        hr_key: str = "hr",
        lr_key: str | None = None,
        skipped: list[tuple[str, str]] | None = None,
    ):
        if len(data) != len(records):
            raise ValueError(f"{description}: {len(data)} records but {len(records)} sizes")
        self._data = data
        self.records = records
        self.description = description
        self.has_lr = lr_key is not None
        self.skipped = list(skipped or [])  # (name, reason) dropped when the source was prepared
        self._hr_key, self._lr_key = hr_key, lr_key

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, index: int) -> dict[str, Any]:
        raw = self._data[index]
        name = self.records[index].name
        out = {"hr": _rgb_uint8(raw[self._hr_key], name, "hr"), "name": name}
        if self._lr_key is not None:
            out["lr"] = _rgb_uint8(raw[self._lr_key], name, "lr")
        return out

    def __repr__(self) -> str:
        return f"TrainSource({self.description}, {len(self)} records, {'paired' if self.has_lr else 'HR-only'})"


def _rgb_uint8(x: Any, name: str, key: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise ValueError(f"record {name!r}: {key} has dtype {x.dtype}; expected uint8 images")
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or x.shape[-1] not in (1, 3):
        raise ValueError(f"record {name!r}: {key} has shape {x.shape}; expected [H,W,3] (or gray [H,W,1])")
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def with_defaults(data_cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """An unlocked copy of ``data_cfg`` with any missing key filled from :func:`default_data_config`."""
    given = data_cfg.to_dict() if isinstance(data_cfg, ml_collections.ConfigDict) else dict(data_cfg)
    cfg = ml_collections.ConfigDict(given)
    for key, value in default_data_config().items():
        if key not in cfg:
            cfg[key] = value
    return cfg


# --------------------------------------------------------------------------------------------- folder


def open_folder_source(
    train_dir: str, lr_dir: str, *, scale: int, lr_mode: str, cache_dir: Path
) -> TrainSource:
    """A local folder (paired with ``lr_dir`` unless empty), prepared/reused under ``cache_dir``."""
    if lr_dir and lr_mode == "on_the_fly":
        raise ValueError(
            f"data.train_lr_dir={lr_dir!r} is set but lr_mode='on_the_fly' would ignore it; "
            "use lr_mode='precompute' for paired folders or set train_lr_dir=''"
        )
    prepared = prepare_folder(
        train_dir, lr_dir=lr_dir or None, scale=scale, lr_mode=lr_mode, cache_dir=cache_dir
    )
    use_lr = prepared.has_lr and lr_mode == "precompute"
    records = [
        RecordInfo(name, (H, W), (H // scale, W // scale) if use_lr else None) for name, H, W in prepared.records
    ]
    return TrainSource(
        prepared.source,
        records,
        description=f"folder {train_dir}" + (f" + {lr_dir}" if lr_dir else "") + f" [{prepared.fingerprint}]",
        lr_key="lr" if use_lr else None,
        skipped=prepared.skipped,
    )


# --------------------------------------------------------------------------------------------- tfds


def _tfds_builder(name: str, data_dir: str) -> Any:
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir or None)
    except Exception as e:  # e.g. DatasetNotFoundError, which lists the whole catalog: keep the first line
        first = (str(e).splitlines() or [""])[0]
        raise ValueError(f"tfds dataset {name!r} not found or not loadable ({type(e).__name__}: {first})") from None
    if not builder.is_prepared():
        raise ValueError(
            f"tfds dataset {name!r} is not prepared in {builder.data_dir}; prepare it once with "
            f"`tfds build {name.split('/')[0]} --data_dir=... --file_format=array_record` (needs TensorFlow), "
            "or use data.source='folder' on the image files"
        )
    return builder


def _image_size(value: Any) -> tuple[int, int]:
    """(H, W) of an undecoded Image feature (PNG/JPEG header only) or a decoded array."""
    if isinstance(value, bytes):
        from PIL import Image

        with Image.open(io.BytesIO(value)) as im:
            return im.height, im.width
    shape = np.shape(value)
    return int(shape[0]), int(shape[1])


def _scan_sizes(builder: Any, split: str, keys: list[str]) -> list[dict[str, tuple[int, int]]]:
    """Per record ``{key: (H, W)}``: image features are read undecoded (sizes from their headers)."""
    import tensorflow_datasets as tfds

    features = builder.info.features
    decoders = {
        k: tfds.decode.SkipDecoding()
        for k in features.keys()
        if k not in keys or isinstance(features[k], tfds.features.Image)
    }
    data = builder.as_data_source(split=split, decoders=decoders)
    sizes = []
    for start in range(0, len(data), _SCAN_CHUNK):
        for raw in data.__getitems__(list(range(start, min(start + _SCAN_CHUNK, len(data))))):
            sizes.append({k: _image_size(raw[k]) for k in keys})
    return sizes


def open_tfds_source(name: str, split: str, data_dir: str, *, lr_mode: str) -> TrainSource:
    """A prepared TFDS catalog dataset; ``hr`` (or ``image``) and, with ``lr_mode='precompute'``, ``lr``."""
    import tensorflow_datasets as tfds

    if not name:
        raise ValueError("data.source='tfds' needs data.tfds_name (e.g. 'div2k/bicubic_x4')")
    builder = _tfds_builder(name, data_dir)
    features = builder.info.features
    keys = list(features.keys())
    hr_key = next((k for k in _HR_KEYS if k in keys), None)
    if hr_key is None:
        raise ValueError(f"tfds dataset {name!r} has features {keys}; expected an HR image under one of {_HR_KEYS}")
    lr_key = "lr" if lr_mode == "precompute" and "lr" in keys else None
    if lr_mode == "precompute" and lr_key is None:
        raise ValueError(
            f"tfds dataset {name!r} has no 'lr' feature (features {keys}), so lr_mode='precompute' has no LR "
            "to read; use lr_mode='on_the_fly', or data.source='folder' (which precomputes LR once)"
        )
    size_keys = [hr_key] + ([lr_key] if lr_key else [])
    skip = {k: tfds.decode.SkipDecoding() for k in keys if k not in size_keys}
    try:
        data = builder.as_data_source(split=split, decoders=skip or None)
    except NotImplementedError as e:
        raise ValueError(
            f"tfds dataset {name!r} in {builder.data_dir} is not in a random-access format; re-prepare it with "
            f"--file_format=array_record ({e})"
        ) from None
    log.info("reading the image sizes of %d records of %s[%s]", len(data), name, split)
    sizes = _scan_sizes(builder, split, size_keys)
    names = [f"{name}:{split}[{i}]" for i in range(len(data))]
    records = [
        RecordInfo(names[i], s[hr_key], s[lr_key] if lr_key else None) for i, s in enumerate(sizes)
    ]
    return TrainSource(
        data,
        records,
        description=f"tfds {name}:{split} in {builder.data_dir}",
        hr_key=hr_key,
        lr_key=lr_key,
    )


# --------------------------------------------------------------------------------------------- entry point


def open_train_source(data_cfg: ml_collections.ConfigDict, *, scale: int) -> TrainSource:
    """Opens ``data_cfg.source`` (``'folder'``, ``'tfds'`` or ``'builtin'``) for training at ``scale``."""
    cfg = with_defaults(data_cfg)
    if not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be a positive integer; got {scale!r}")
    if cfg.lr_mode not in LR_MODES:
        raise ValueError(f"data.lr_mode must be one of {LR_MODES}; got {cfg.lr_mode!r}")
    root = cache_root(cfg)
    if cfg.source == "folder":
        if not cfg.train_dir:
            raise ValueError("data.source='folder' needs data.train_dir (or use data.source='builtin')")
        return open_folder_source(cfg.train_dir, cfg.train_lr_dir, scale=scale, lr_mode=cfg.lr_mode, cache_dir=root)
    if cfg.source == "builtin":
        train_dir, _ = write_sample_images(root / "samples", holdout=cfg.holdout)
        return open_folder_source(str(train_dir), "", scale=scale, lr_mode=cfg.lr_mode, cache_dir=root)
    if cfg.source == "tfds":
        return open_tfds_source(cfg.tfds_name, cfg.tfds_split, cfg.tfds_data_dir, lr_mode=cfg.lr_mode)
    raise ValueError(f"unknown data.source {cfg.source!r}; choices: {', '.join(SOURCES)}")
