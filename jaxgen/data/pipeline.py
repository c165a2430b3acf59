"""Host input pipeline: random aligned LR/HR patches from a training source, batched, deterministic, resumable.

One grain ``MapDataset`` per process (random access end to end, so batch ``n`` is a pure function of the
seed and ``n``)::

    usable records -> this process's shard -> shuffle (reseeded each epoch) -> repeat forever
      -> random patch + flips/rot90 (rng from seed and element index) -> batch -> uint8 to float32

Augmentation: ``augment_flip`` a random left-right flip, and with ``augment_vflip`` (default) an up-down flip;
``augment_rot90`` a random multiple of 90 degrees. BasicSR's ``augment(hflip=True, rotation=False)``
(``basicsr/data/transforms.py``, the ``use_hflip: True, use_rot: False`` of Real-ESRGAN's options) is
``augment_flip=True, augment_vflip=False, augment_rot90=False``.

Patches. Paired or precomputed LR (``lr_mode='precompute'``, the DIV2K/EDSR protocol): an LR crop at
``(y, x)`` of side ``p`` and the HR crop at ``(s*y, s*x)`` of side ``s*p``, then the same flips/rotation on
both. ``lr_mode='on_the_fly'`` (HR-only sources): an HR crop of side ``s*p`` at any offset, flipped/rotated,
then ``imresize(hr_patch, 1/s)``; the bicubic kernel then sees only the patch, so the LR's outer ~2 pixels
differ from the same region of a whole-image downscale (border effect), and every epoch pays for a resize.

Images smaller than a patch (``s*p`` HR, ``p`` LR pixels a side) are skipped with a warning when the
pipeline is built, and counted; if none is large enough it is a ``ValueError`` saying the size needed.

Processes: record ``i`` of the usable list belongs to process ``i % process_count`` (disjoint shards); each
yields ``global_batch_size // process_count`` patches per batch. Batches span epoch boundaries (nothing is
dropped). Workers: ``data.num_workers`` grain processes (``mp_prefetch``; default 0 = in-process), each
computing batches in ``data.num_threads`` threads with ``data.prefetch`` batches buffered. Threads are the
default: the cost is reading whole records (a 2040x1356 HR + x4 LR record, zstd-compressed by TFDS's
ArrayRecord writer, takes ~20-30 ms on one core) and those reads release the GIL; crop, flip and convert
add ~1 ms a batch. For DIV2K-sized images at full accelerator speed raise ``num_threads`` (or
``num_workers`` for on-the-fly resizing or PNG-decoding TFDS sources) towards the host's core count. The
batch sequence does not depend on workers, threads or prefetch.

State. ``it.get_state()`` is ``{'format', 'next_batch', 'pipeline'}`` (JSON types only); ``set_state``
restarts the grain iterator at ``next_batch``, so the continuation is exactly the batches a never-stopped
iterator would have produced. ``pipeline`` records what defines the sequence (seed, shapes, shard,
augmentation and a digest of the records' names and sizes); restoring into a different pipeline raises
``ValueError`` unless ``strict=False``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from typing import Any

import grain
import ml_collections
import numpy as np

from jaxgen import image
from jaxgen.data.sources import RecordInfo, TrainSource, open_train_source, with_defaults

log = logging.getLogger(__name__)

STATE_FORMAT = "jaxgen.data.TrainIterator/1"


# --------------------------------------------------------------------------------------------- patches


@dataclasses.dataclass(frozen=True)
class PatchSpec:
    """LR patch side ``patch_size``; HR side ``scale * patch_size``; augmentation flags."""

    scale: int
    patch_size: int
    on_the_fly: bool
    flip: bool = True
    rot90: bool = True
    vflip: bool = True  # with flip: vertical flips too (False: horizontal only, BasicSR's use_hflip)

    @property
    def hr_patch(self) -> int:
        return self.scale * self.patch_size


def augment(x: np.ndarray, hflip: bool, vflip: bool, k: int) -> np.ndarray:
    """``[H,W,C]``: optional left-right flip, then up-down flip, then ``np.rot90`` by ``k`` quarter turns."""
    if hflip:
        x = x[:, ::-1]
    if vflip:
        x = x[::-1]
    return np.rot90(x, k) if k % 4 else x


def sample_patch(record: dict[str, Any], rng: np.random.Generator, spec: PatchSpec) -> dict[str, np.ndarray]:
    """One aligned pair ``{'lr': uint8 [p,p,3], 'hr': uint8 [sp,sp,3]}`` from a record (see module doc).

    Draws, in order: the crop row, the crop column, hflip, vflip, k (always, so the flags do not move crops).
    """
    s, p, hp = spec.scale, spec.patch_size, spec.hr_patch
    hr = record["hr"]
    if spec.on_the_fly:
        H, W = hr.shape[:2]
        y, x = int(rng.integers(0, H - hp + 1)), int(rng.integers(0, W - hp + 1))
        hr_patch, lr_patch = hr[y : y + hp, x : x + hp], None
    else:
        lr = record["lr"]
        h, w = lr.shape[:2]
        y, x = int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))
        hr_patch, lr_patch = hr[s * y : s * y + hp, s * x : s * x + hp], lr[y : y + p, x : x + p]
    hflip, vflip = (bool(b) for b in rng.integers(0, 2, size=2))
    k = int(rng.integers(0, 4))
    hflip, vflip, k = hflip and spec.flip, vflip and spec.flip and spec.vflip, k if spec.rot90 else 0
    hr_patch = augment(hr_patch, hflip, vflip, k)
    if lr_patch is None:  # downscale after augmenting: LR is exactly imresize of the HR patch returned
        lr_patch = image.imresize(np.ascontiguousarray(hr_patch), output_shape=(p, p))  # = scale 1/s
    else:
        lr_patch = augment(lr_patch, hflip, vflip, k)
    return {"lr": np.ascontiguousarray(lr_patch), "hr": np.ascontiguousarray(hr_patch)}


class _SamplePatch(grain.transforms.RandomMap):
    def __init__(self, spec: PatchSpec):
        self.spec = spec

    def random_map(self, element: dict[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
        return sample_patch(element, rng, self.spec)


class _ToFloat(grain.transforms.Map):
    def map(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: image.to_float(v) for k, v in batch.items()}


class _Subset:
    """``source`` restricted to ``indices`` (random access, picklable)."""

    def __init__(self, source: TrainSource, indices: list[int]):
        self._source, self._indices = source, list(indices)

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self._source[self._indices[i]]

    def __repr__(self) -> str:
        return f"{self._source!r}[{len(self)} records]"


def usable_records(records: list[RecordInfo], spec: PatchSpec) -> tuple[list[int], list[tuple[str, str]]]:
    """Indices of records a patch fits in, and ``(name, reason)`` for the others."""
    s, p, hp = spec.scale, spec.patch_size, spec.hr_patch
    usable, skipped = [], []
    for i, r in enumerate(records):
        (H, W), lr = r.hr_shape, r.lr_shape
        if lr is not None and not spec.on_the_fly:
            if (H // s, W // s) != tuple(lr):
                skipped.append((r.name, f"HR {H}x{W} is not {s}x its LR {lr[0]}x{lr[1]}"))
            elif min(lr) < p:
                skipped.append((r.name, f"LR {lr[0]}x{lr[1]} is smaller than the {p}x{p} LR patch"))
            else:
                usable.append(i)
        elif min(H, W) < hp:
            skipped.append((r.name, f"HR {H}x{W} is smaller than the {hp}x{hp} HR patch"))
        else:
            usable.append(i)
    return usable, skipped


# --------------------------------------------------------------------------------------------- iterator


def _parse_state(state: Any) -> dict[str, Any]:
    if isinstance(state, bytes):
        state = state.decode()
    if isinstance(state, str):
        state = json.loads(state)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"not a training-data iterator state (expected format {STATE_FORMAT!r}): {str(state)[:200]}")
    n = state.get("next_batch")
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"iterator state has an invalid next_batch {n!r}; expected an integer >= 0")
    return state


class TrainIterator:
    """Infinite iterator of ``{'lr': float32 [b,p,p,3], 'hr': float32 [b,sp,sp,3]}`` in ``[0,1]``.

    ``get_state()`` -> JSON-serialisable dict; ``set_state(state)`` (dict, JSON str or bytes) resumes
    exactly. ``info`` describes the data (records, shard, skipped). Call ``close()`` (or use ``with``) to
    stop worker processes/threads early.
    """

    def __init__(
        self,
        batches: grain.MapDataset,
        *,
        read_options: grain.ReadOptions,
        mp_options: grain.MultiprocessingOptions | None,
        pipeline: dict[str, Any],
        info: dict[str, Any],
    ):
        self._batches = batches
        self._read_options = read_options
        self._mp_options = mp_options
        self._pipeline = pipeline
        self.info = info
        self._next_batch = 0
        self._iter: Any = None  # started lazily, so set_state before the first batch starts nothing twice

    def __iter__(self) -> "TrainIterator":
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        if self._iter is None:
            ds = self._batches[self._next_batch :] if self._next_batch else self._batches
            ds = ds.to_iter_dataset(self._read_options)
            if self._mp_options is not None:
                _allow_unparsed_absl_flags()
                ds = ds.mp_prefetch(self._mp_options)
            self._iter = iter(ds)
        batch = next(self._iter)
        self._next_batch += 1
        return batch

    def get_state(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "next_batch": self._next_batch, "pipeline": dict(self._pipeline)}

    def set_state(self, state: dict[str, Any] | str | bytes, *, strict: bool = True) -> None:
        """Resumes at ``state['next_batch']``; a state from a different pipeline raises unless not ``strict``."""
        state = _parse_state(state)
        saved = state.get("pipeline", {})
        diff = {k: (saved.get(k), v) for k, v in self._pipeline.items() if saved.get(k) != v}
        if diff:
            detail = ", ".join(f"{k}: saved {a!r} vs now {b!r}" for k, (a, b) in sorted(diff.items()))
            if strict:
                raise ValueError(
                    f"the saved data-iterator state is for a different pipeline ({detail}); the continuation "
                    "would not be the saved run's (set_state(..., strict=False) resumes at the same batch count)"
                )
            log.warning("resuming the data iterator across a pipeline change (%s)", detail)
        self.close()
        self._next_batch = state["next_batch"]

    def close(self) -> None:
        if self._iter is not None:
            close = getattr(self._iter, "close", None)
            if close is not None:
                close()
            self._iter = None

    def __enter__(self) -> "TrainIterator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class RowSlice:
    """Rows ``[start, start + size)`` of every batch of a whole-global-batch iterator (same state API)."""

    def __init__(self, whole: TrainIterator, start: int, size: int) -> None:
        self._whole, self._start, self._size = whole, start, size
        self.info = whole.info

    def __iter__(self) -> "RowSlice":
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = next(self._whole)
        return {k: v[self._start : self._start + self._size] for k, v in batch.items()}

    def get_state(self) -> dict[str, Any]:
        return self._whole.get_state()

    def set_state(self, state: Any, *, strict: bool = True) -> None:
        self._whole.set_state(state, strict=strict)

    def close(self) -> None:
        self._whole.close()


def _allow_unparsed_absl_flags() -> None:
    """grain 0.2.18 reads an absl flag when starting workers, which fails in a program that did not parse
    absl flags (google/grain#1355): mark them parsed (defaults). ``absl.app.run`` still parses argv later."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def _derive_seed(seed: int, process_index: int, purpose: int) -> int:
    return int(np.random.SeedSequence([seed, process_index, purpose]).generate_state(1)[0])


def _records_digest(records: list[RecordInfo]) -> str:
    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps([r.name, list(r.hr_shape), list(r.lr_shape or ())]).encode())
    return h.hexdigest()[:16]


def _check_int(name: str, value: Any, minimum: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def make_train_iterator(
    data_cfg: ml_collections.ConfigDict,
    *,
    scale: int,
    global_batch_size: int,
    seed: int,
    process_index: int | None = None,
    process_count: int | None = None,
    source: TrainSource | None = None,
) -> TrainIterator:
    """The training input of this process: batches of ``global_batch_size // process_count`` aligned patches.

    ``source`` defaults to ``open_train_source(data_cfg, scale=scale)``; ``process_index``/``process_count``
    to ``jax.process_index()``/``jax.process_count()``. See the module docstring for the details.
    """
    cfg = with_defaults(data_cfg)
    scale = _check_int("scale", scale, 1)
    seed = _check_int("seed", seed, 0)
    global_batch_size = _check_int("global_batch_size", global_batch_size, 1)
    patch_size = _check_int("data.patch_size", cfg.patch_size, 1)
    num_workers = _check_int("data.num_workers", cfg.num_workers, 0)
    num_threads = _check_int("data.num_threads", cfg.num_threads, 1)
    prefetch = _check_int("data.prefetch", cfg.prefetch, 0)
    if process_index is None or process_count is None:
        import jax

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    process_count = _check_int("process_count", process_count, 1)
    process_index = _check_int("process_index", process_index, 0)
    if process_index >= process_count:
        raise ValueError(f"process_index {process_index} is not below process_count {process_count}")
    if global_batch_size % process_count:
        raise ValueError(f"global batch size {global_batch_size} is not divisible by {process_count} processes")
    batch_size = global_batch_size // process_count

    sharding = cfg.get("process_sharding", "records")
    if sharding not in ("records", "global_batch"):
        raise ValueError(f"data.process_sharding={sharding!r}; expected 'records' or 'global_batch'")
    if sharding == "global_batch" and process_count > 1:
        whole = make_train_iterator(data_cfg, scale=scale, global_batch_size=global_batch_size, seed=seed,
                                    process_index=0, process_count=1, source=source)
        return RowSlice(whole, process_index * batch_size, batch_size)

    if source is None:
        source = open_train_source(cfg, scale=scale)
    flip, rot90, vflip = bool(cfg.augment_flip), bool(cfg.augment_rot90), bool(cfg.augment_vflip)
    spec = PatchSpec(scale, patch_size, on_the_fly=not source.has_lr, flip=flip, rot90=rot90, vflip=vflip)
    usable, unusable = usable_records(source.records, spec)
    if unusable:
        log.warning(
            "skipping %d of %d training images of %s: a %dx%d HR / %dx%d LR patch must fit (e.g. %s: %s)",
            len(unusable), len(source), source.description, spec.hr_patch, spec.hr_patch, patch_size, patch_size,
            *unusable[0],
        )
    if not usable:
        largest = max(source.records, key=lambda r: min(r.hr_shape))
        raise ValueError(
            f"no training image of {source.description} is large enough: patch_size={patch_size} at scale {scale} "
            f"needs images of at least {spec.hr_patch}x{spec.hr_patch} HR pixels ({patch_size}x{patch_size} LR); "
            f"the largest is {largest.hr_shape[0]}x{largest.hr_shape[1]} ({largest.name}). "
            f"Reasons: {'; '.join(f'{n}: {r}' for n, r in unusable[:3])}"
        )
    shard = usable[process_index::process_count]
    if not shard:
        raise ValueError(
            f"process {process_index} of {process_count} gets no training image: only {len(usable)} usable images"
        )
    shard_records = [source.records[i] for i in shard]
    batches = (
        grain.MapDataset.source(_Subset(source, shard))
        .shuffle(seed=_derive_seed(seed, process_index, 0))
        .repeat(None)
        .random_map(_SamplePatch(spec), seed=_derive_seed(seed, process_index, 1))
        .batch(batch_size, drop_remainder=True)
        .map(_ToFloat())
    )
    pipeline = {
        "records": _records_digest(shard_records),
        "num_records": len(shard),
        "seed": seed,
        "scale": scale,
        "patch_size": patch_size,
        "lr_mode": "on_the_fly" if spec.on_the_fly else "precompute",
        "augment_flip": spec.flip,
        "augment_rot90": spec.rot90,
        **({"augment_vflip": False} if spec.flip and not spec.vflip else {}),  # absent = the former default
        "batch_size": batch_size,
        "process_index": process_index,
        "process_count": process_count,
    }
    info = {
        "source": source.description,
        "num_records": len(source),
        "num_usable": len(usable),
        "num_shard": len(shard),
        "skipped_unusable": [list(t) for t in unusable],  # (name, reason): too small, or HR != scale x LR
        "skipped_at_prepare": [list(t) for t in source.skipped],
    }
    log.info(
        "training data: %s, %d usable images (%d in shard %d/%d), batches of %d x LR %d / HR %d",
        source.description, len(usable), len(shard), process_index, process_count,
        batch_size, patch_size, spec.hr_patch,
    )
    read_options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
    mp_options = (
        grain.MultiprocessingOptions(num_workers=num_workers, per_worker_buffer_size=max(prefetch, 1))
        if num_workers > 0
        else None
    )
    return TrainIterator(batches, read_options=read_options, mp_options=mp_options, pipeline=pipeline, info=info)
