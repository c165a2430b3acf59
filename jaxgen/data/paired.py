"""pix2pix's training input: batches ``{'A': float32 [b,c,c,3], 'B': float32 [b,c,c,3]}`` in ``[0, 1]`` of aligned
pairs (official ``AlignedDataset``), ``A`` the input and ``B`` the target of direction ``AtoB``.

Pairs come from (``data.source``):

* ``aligned``: one folder ``dir_a`` of side-by-side ``AB`` images (the pix2pix datasets: facades, maps, ...):
  A = the left half (``w // 2`` columns), B = the rest;
* ``folder``: ``dir_a`` and ``dir_b`` with equal-size images matched by file stem;
* ``builtin`` / ``folder`` with ``synthetic``: A = the photos, B = ``transform(A)``.

Both images of a pair get the same resize, the same random crop and the same flip (official ``get_params``).
Pipeline and state as :mod:`jaxgen.data.unpaired` (one shuffled stream of pairs).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import grain
import ml_collections
import numpy as np

from jaxgen import image
from jaxgen.data.data_config import cache_root
from jaxgen.data.image_domains import SYNTHETIC, crop_flip, open_domain, resize_for_crop
from jaxgen.data.pipeline import TrainIterator
from jaxgen.data.sources import open_folder_source
from jaxgen.data.unpaired import derive_seed

__all__ = ["PairRecords", "make_paired_iterator", "pair_records", "split_ab"]


def split_ab(ab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A side-by-side ``AB`` image ``[H,W,3]`` -> ``(A = [:, :W//2], B = [:, W//2:])`` (official ``AlignedDataset``)."""
    w2 = ab.shape[1] // 2
    return np.ascontiguousarray(ab[:, :w2]), np.ascontiguousarray(ab[:, w2:])


class PairRecords:
    """Random-access pairs ``records[i] -> (A uint8 [H,W,3], B uint8 [H,W,3])`` (picklable).

    ``kind``: ``'aligned'`` (``source[i]['hr']`` is an AB image), ``'two_folders'`` (``'lr'`` is A, ``'hr'`` is B)
    or ``'synthetic'`` (B = ``SYNTHETIC[transform](A)``)."""

    def __init__(self, source: Any, kind: str, transform: str = "") -> None:
        self._source, self._kind, self._transform = source, kind, transform
        self.names = [r.name for r in source.records]

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        record = self._source[i]
        if self._kind == "aligned":
            return split_ab(record["hr"])
        if self._kind == "two_folders":
            return record["lr"], record["hr"]
        return record["hr"], SYNTHETIC[self._transform](record["hr"])

    def digest(self) -> str:
        return hashlib.sha256(json.dumps([self._kind, self._transform, self.names]).encode()).hexdigest()[:16]


def pair_records(data: ml_collections.ConfigDict) -> PairRecords:
    """The training pairs of ``data`` (module doc)."""
    if data.synthetic:
        if data.source not in ("builtin", "folder"):
            raise ValueError(f"config.data.synthetic needs source 'builtin' or 'folder' (dir_a); got {data.source!r}")
        return PairRecords(open_domain(data, "A"), "synthetic", data.synthetic)
    root = cache_root(data)
    if data.source == "aligned":
        if not data.dir_a:
            raise ValueError("config.data.source='aligned' needs config.data.dir_a (a folder of side-by-side AB images)")
        return PairRecords(open_folder_source(data.dir_a, "", scale=1, lr_mode="on_the_fly", cache_dir=root), "aligned")
    if data.source == "folder":
        if not data.dir_a or not data.dir_b:
            raise ValueError("config.data.source='folder' needs config.data.dir_a and config.data.dir_b (pairs by name)")
        return PairRecords(open_folder_source(data.dir_b, data.dir_a, scale=1, lr_mode="precompute", cache_dir=root),
                           "two_folders")
    raise ValueError(f"config.data.source={data.source!r} gives no pairs; expected aligned, folder, or a synthetic "
                     "builtin/folder source")


class _PreprocessPair(grain.transforms.RandomMap):
    def __init__(self, preprocess: str, load_size: int, crop_size: int, flip: bool) -> None:
        self.args = (preprocess, load_size, crop_size)
        self.crop_size, self.flip = crop_size, flip

    def random_map(self, element: tuple[np.ndarray, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
        a, b = (resize_for_crop(x, *self.args) for x in element)
        if a.shape != b.shape:
            raise ValueError(f"a training pair has A {a.shape} and B {b.shape} after resizing; expected equal sizes")
        a, b = crop_flip([a, b], rng, self.crop_size, self.flip)
        return {"A": a, "B": b}


class _ToFloat(grain.transforms.Map):
    def map(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: image.to_float(v) for k, v in batch.items()}


class _Subset:
    def __init__(self, records: PairRecords, indices: list[int]) -> None:
        self._records, self._indices = records, indices

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self._records[self._indices[i]]


def make_paired_iterator(
    data: ml_collections.ConfigDict, *, global_batch_size: int, seed: int, process_index: int, process_count: int
) -> TrainIterator:
    """This process's batches of ``global_batch_size // process_count`` pairs (records sharded ``i % process_count``)."""
    if global_batch_size % process_count:
        raise ValueError(f"global batch size {global_batch_size} is not divisible by {process_count} processes")
    batch_size = global_batch_size // process_count
    records = pair_records(data)
    shard = list(range(len(records)))[process_index::process_count]
    if not shard:
        raise ValueError(f"process {process_index} of {process_count} gets no training pair ({len(records)} pairs)")
    batches = (
        grain.MapDataset.source(_Subset(records, shard))
        .shuffle(seed=derive_seed(seed, process_index, 30))
        .repeat(None)
        .random_map(_PreprocessPair(data.preprocess, data.load_size, data.crop_size, data.flip),
                    seed=derive_seed(seed, process_index, 31))
        .batch(batch_size, drop_remainder=True)
        .map(_ToFloat())
    )
    pipeline = {"records": records.digest(), "num_records": len(shard), "seed": seed, "batch_size": batch_size,
                "process_index": process_index, "process_count": process_count, "preprocess": data.preprocess,
                "load_size": data.load_size, "crop_size": data.crop_size, "flip": data.flip}
    read_options = grain.ReadOptions(num_threads=int(data.num_threads), prefetch_buffer_size=int(data.prefetch))
    return TrainIterator(batches, read_options=read_options, mp_options=None, pipeline=pipeline,
                         info={"num_pairs": len(records)})
