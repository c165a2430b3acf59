"""Local image folders -> TFDS ArrayRecord datasets, prepared once and cached by a fingerprint of the folder.

A folder is HR-only (LR precomputed here or made on the fly by the loader) or an HR folder paired with an LR
folder by file stem (an LR stem may carry the scale suffix, ``0001x4`` / ``baby_x4`` pairs with ``0001`` /
``baby``). Files are the images directly in the folder (no recursion; hidden files ignored).

Records ``{'hr': uint8 [H,W,3], 'lr': uint8 [H/s,W/s,3], 'name': str}`` in sorted file-name order; ``lr`` is
present when LR is paired or precomputed, and then ``hr`` is mod-cropped so ``H, W = s*h, s*w`` exactly.

Storage: images are stored raw (uint8 bytes, ``Tensor(encoding='bytes')``), not as PNG: TFDS's ``Image``
encoder needs TensorFlow, and raw bytes make a random crop a plain read with no decode (a 2K PNG costs
~50 ms to decode per sample), at about twice the disk size of PNG.

Bad files (corrupt, not an image, an HR/LR pair whose sizes do not match the scale, an image smaller than
the scale) are skipped with a ``logging`` warning each; their count and reasons are stored in the dataset
metadata (``skipped``) and warned about again each time the cache is opened. No usable image at all, or no
image file in the folder, is a ``ValueError`` naming the folder.

Cache layout: ``{cache_dir}/folders/{folder name}-{fingerprint}/jaxgen_image_folder/{version}/``. The
fingerprint hashes each file's name, size and mtime plus the preparation options (paired, precomputed LR,
scale where it matters), so a changed folder is re-prepared and an unchanged one reused. Old fingerprints
are not deleted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import tensorflow_datasets as tfds

from jaxgen import image
from jaxgen.image import list_image_files

log = logging.getLogger(__name__)

LR_MODES = ("precompute", "on_the_fly")
_FORMAT = "jaxgen-folder-v1"  # bump when the record contents change, so old caches are not reused


@dataclasses.dataclass(frozen=True)
class FolderSpec:
    """What to prepare: ``hr_dir`` (+ ``lr_dir`` if paired) at ``scale``; ``lr_mode`` for HR-only folders."""

    hr_dir: Path
    lr_dir: Path | None
    scale: int
    lr_mode: str

    @property
    def stores_lr(self) -> bool:
        return self.lr_dir is not None or self.lr_mode == "precompute"


@dataclasses.dataclass(frozen=True)
class PreparedFolder:
    """A prepared folder: ``source[i]`` is record ``i``; ``records[i] = (name, H, W)`` of its HR image."""

    source: Any  # tfds ArrayRecordDataSource
    records: list[tuple[str, int, int]]
    has_lr: bool
    skipped: list[tuple[str, str]]  # (file name, reason)
    data_dir: Path
    fingerprint: str
    prepared_now: bool


class _NoUsableImages(Exception):
    """Raised inside generation when every file was skipped (turned into a ValueError by prepare_folder)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message  # TFDS may prefix str(e) while re-raising


def _quiet_prepare(builder: Any) -> None:
    """``builder.download_and_prepare()`` without TFDS's progress bars and banner unless INFO logging is on."""
    if log.isEnabledFor(logging.INFO):
        builder.download_and_prepare()
        return
    tfds.disable_progress_bar()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            builder.download_and_prepare()
    finally:
        tfds.enable_progress_bar()


def _by_stem(files: list[Path], folder: Path) -> dict[str, Path]:
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise ValueError(f"{folder}: {stems[f.stem].name} and {f.name} have the same stem; pairing is ambiguous")
        stems[f.stem] = f
    return stems


def match_pairs(hr_files: list[Path], lr_files: list[Path], scale: int) -> list[tuple[Path, Path]]:
    """Pairs HR and LR files by stem (an LR stem may end in ``x{scale}``, ``_x{scale}`` or ``-x{scale}``).

    Raises ``ValueError`` listing a few names found on one side only.
    """
    hr = _by_stem(hr_files, hr_files[0].parent)
    suffix = re.compile(rf"[_-]?[xX]{scale}$")
    lr: dict[str, Path] = {}
    for stem, path in _by_stem(lr_files, lr_files[0].parent).items():
        key = stem if stem in hr else suffix.sub("", stem)
        if key in lr:
            raise ValueError(f"{path.parent}: {lr[key].name} and {path.name} both pair with HR {key!r}")
        lr[key] = path
    missing_lr, missing_hr = sorted(set(hr) - set(lr)), sorted(set(lr) - set(hr))
    if missing_lr or missing_hr:
        parts = []
        if missing_lr:
            parts.append(f"{len(missing_lr)} HR images have no LR in {lr_files[0].parent} (e.g. {missing_lr[:5]})")
        if missing_hr:
            parts.append(f"{len(missing_hr)} LR images have no HR in {hr_files[0].parent} (e.g. {missing_hr[:5]})")
        raise ValueError("paired folders do not match by file stem: " + "; ".join(parts))
    return [(hr[k], lr[k]) for k in sorted(hr)]


def folder_fingerprint(spec: FolderSpec, hr_files: list[Path], lr_files: list[Path] | None) -> str:
    """16 hex digits over the files' names, sizes and mtimes and the options that change the records."""
    h = hashlib.sha256()
    options = {"format": _FORMAT, "paired": spec.lr_dir is not None, "stores_lr": spec.stores_lr}
    if spec.stores_lr:  # HR-only on-the-fly records do not depend on the scale
        options["scale"] = spec.scale
    h.update(json.dumps(options, sort_keys=True).encode())
    for tag, files in (("hr", hr_files), ("lr", lr_files or [])):
        for f in files:
            st = f.stat()
            h.update(f"{tag}\0{f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _load_example(hr_path: Path, lr_path: Path | None, spec: FolderSpec) -> dict[str, Any]:
    """One record; raises ValueError (with the reason) for a file that must be skipped."""
    hr = image.read_image(hr_path)
    s = spec.scale
    if lr_path is not None:
        lr = image.read_image(lr_path)
        (H, W), (h, w) = hr.shape[:2], lr.shape[:2]
        if H // s != h or W // s != w:
            raise ValueError(
                f"HR {hr_path.name} is {H}x{W} but LR {lr_path.name} is {h}x{w}; at scale {s} the HR must be "
                f"{h * s}x{w * s} (up to {s - 1} extra rows/columns)"
            )
        return {"hr": np.ascontiguousarray(hr[: h * s, : w * s]), "lr": lr, "name": hr_path.name}
    if spec.lr_mode == "precompute":
        if hr.shape[0] < s or hr.shape[1] < s:
            raise ValueError(f"{hr_path.name} is {hr.shape[0]}x{hr.shape[1]}, smaller than the scale {s}")
        hr = np.ascontiguousarray(image.mod_crop(hr, s))
        return {"hr": hr, "lr": image.imresize(hr, 1 / s), "name": hr_path.name}
    return {"hr": hr, "name": hr_path.name}


class JaxgenImageFolder(tfds.core.GeneratorBasedBuilder):
    """TFDS builder for one local folder (see the module docstring); one split, ``train``."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Raw uint8 HR (+ LR) records of a local image folder."}
    # No checksums/metadata files next to the code. Resolving the code path for a builder inside a package
    # imports `importlib_resources`, which TFDS 4.9.10 does not declare (tensorflow/datasets#11212).
    code_path = None

    def __init__(
        self,
        *,
        spec: FolderSpec,
        pairs: list[tuple[Path, Path | None]] = (),
        data_dir: str | os.PathLike,
        **kwargs: Any,
    ):
        self._spec = spec
        self._pairs = list(pairs)  # only needed to generate; a reading builder has none
        super().__init__(data_dir=os.fspath(data_dir), file_format="array_record", **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        # Data sources pickle their builder (grain workers); TFDS rebuilds it with __init__(**_original_state).
        return {"_original_state": {**self._original_state, "spec": self._spec}}

    def _info(self) -> tfds.core.DatasetInfo:
        raw = dict(shape=(None, None, 3), dtype=np.uint8, encoding="bytes")
        features = {"hr": tfds.features.Tensor(**raw), "name": tfds.features.Text()}
        if self._spec.stores_lr:
            features["lr"] = tfds.features.Tensor(**raw)
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"Images of {self._spec.hr_dir}"
            + (f" paired with {self._spec.lr_dir}" if self._spec.lr_dir else ""),
            features=tfds.features.FeaturesDict(features),
            metadata=tfds.core.MetadataDict(),
            disable_shuffling=True,  # records keep the sorted file order, so metadata['records'][i] is record i
        )

    def _split_generators(self, dl_manager: Any) -> dict[str, Iterator[tuple[int, dict[str, Any]]]]:
        return {"train": self._generate_examples()}

    def _generate_examples(self) -> Iterator[tuple[int, dict[str, Any]]]:
        records: list[tuple[str, int, int]] = []
        skipped: list[tuple[str, str]] = []
        for hr_path, lr_path in self._pairs:
            try:
                example = _load_example(hr_path, lr_path, self._spec)
            except ValueError as e:
                log.warning("skipping %s: %s", hr_path, e)
                skipped.append((hr_path.name, str(e)))
                continue
            records.append((example["name"], *example["hr"].shape[:2]))
            yield len(records) - 1, example
        if not records:
            reasons = "; ".join(f"{n}: {r}" for n, r in skipped[:3])
            raise _NoUsableImages(
                f"no usable image in {self._spec.hr_dir}: all {len(skipped)} files skipped ({reasons})"
            )
        self.info.metadata.update(
            records=[list(r) for r in records],
            skipped=[list(s) for s in skipped],
            hr_dir=str(self._spec.hr_dir),
            lr_dir=str(self._spec.lr_dir or ""),
        )
        if skipped:
            log.warning(
                "%d of %d files in %s were skipped (see the warnings above)",
                len(skipped), len(self._pairs), self._spec.hr_dir,
            )


def prepare_folder(
    hr_dir: str | os.PathLike,
    *,
    lr_dir: str | os.PathLike | None = None,
    scale: int,
    lr_mode: str = "precompute",
    cache_dir: str | os.PathLike,
) -> PreparedFolder:
    """Prepares ``hr_dir`` (paired with ``lr_dir`` if given) under ``cache_dir`` unless an up-to-date copy
    exists there, and opens it for random access."""
    if lr_mode not in LR_MODES:
        raise ValueError(f"lr_mode must be one of {LR_MODES}; got {lr_mode!r}")
    if not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be a positive integer; got {scale!r}")
    hr_path = Path(hr_dir).expanduser().resolve()
    lr_path = Path(lr_dir).expanduser().resolve() if lr_dir else None
    spec = FolderSpec(hr_path, lr_path, int(scale), lr_mode)
    hr_files = list_image_files(hr_path, "HR folder" if lr_path else "image folder")
    if lr_path is not None:
        lr_files = list_image_files(lr_path, "LR folder")
        pairs: list[tuple[Path, Path | None]] = list(match_pairs(hr_files, lr_files, spec.scale))
    else:
        lr_files, pairs = None, [(f, None) for f in hr_files]
    fingerprint = folder_fingerprint(spec, hr_files, lr_files)
    data_dir = Path(cache_dir).expanduser() / "folders" / f"{hr_path.name}-{fingerprint}"
    builder = JaxgenImageFolder(spec=spec, pairs=pairs, data_dir=data_dir)
    prepared_now = not builder.is_prepared()
    if prepared_now:
        log.info("preparing %d images of %s into %s", len(pairs), hr_path, data_dir)
        try:
            _quiet_prepare(builder)
        except _NoUsableImages as e:
            raise ValueError(e.message) from None
        except Exception:
            # Another process may have prepared the same fingerprint concurrently (its rename won).
            builder = JaxgenImageFolder(spec=spec, pairs=pairs, data_dir=data_dir)
            if not builder.is_prepared():
                raise
            prepared_now = False
    else:
        log.info("reusing the prepared copy of %s in %s", hr_path, data_dir)
    metadata = builder.info.metadata
    source = builder.as_data_source(split="train")
    records = [(str(n), int(H), int(W)) for n, H, W in metadata.get("records", [])]
    if len(records) != len(source):
        raise ValueError(
            f"cache {builder.data_dir} is inconsistent ({len(source)} records, {len(records)} in its metadata); "
            "delete it to re-prepare"
        )
    skipped = [(str(n), str(r)) for n, r in metadata.get("skipped", [])]
    if skipped and not prepared_now:
        log.warning(
            "%d files of %s were skipped when it was prepared (e.g. %s: %s)", len(skipped), hr_path, *skipped[0]
        )
    return PreparedFolder(
        source=source,
        records=records,
        has_lr=spec.stores_lr,
        skipped=skipped,
        data_dir=Path(builder.data_dir),
        fingerprint=fingerprint,
        prepared_now=prepared_now,
    )
