"""CycleGAN's training input: batches ``{'A': float32 [b,c,c,3], 'B': float32 [b,c,c,3]}`` in ``[0, 1]`` of two
*independently* shuffled, preprocessed image domains (official ``UnalignedDataset`` draws B at random,
independently of A; here each domain is its own seeded, reshuffled-every-epoch stream).

Per domain (grain ``MapDataset``, random access, so batch ``n`` is a pure function of the seed and ``n``)::

    records -> this process's shard -> shuffle (reseeded each epoch) -> repeat -> preprocess -> batch

Preprocess (official ``get_transform``): resize (``resize_and_crop`` / ``scale_width_and_crop``) or not (``crop``),
random ``crop_size`` crop, random horizontal flip (``flip``). Synthetic domains (``data.synthetic``): the source's
images split in two disjoint halves, A = the even-indexed images, B = ``transform(odd-indexed images)``, so the
two domains never show the same photo (truly unpaired) while the true A -> B map is known.

State: the ``TrainIterator`` of :mod:`jaxgen.data.pipeline` (``get_state``/``set_state``, exact resume).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import grain
import ml_collections
import numpy as np

from jaxgen import image
from jaxgen.data.image_domains import SYNTHETIC, crop_flip, open_domain, resize_for_crop
from jaxgen.data.pipeline import TrainIterator

__all__ = ["DomainRecords", "make_unpaired_iterator"]


def derive_seed(seed: int, process_index: int, purpose: int) -> int:
    """An independent 32-bit seed per (run seed, process, purpose)."""
    return int(np.random.SeedSequence([seed, process_index, purpose]).generate_state(1)[0])


class DomainRecords:
    """Random-access whole images of one domain: ``records[i] -> uint8 [H,W,3]`` (``transform`` applied), a
    subset ``indices`` of ``source`` (picklable)."""

    def __init__(self, source: Any, indices: list[int], transform: str = "") -> None:
        self._source, self._indices, self._transform = source, list(indices), transform
        self.names = [source.records[i].name for i in self._indices]

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, i: int) -> np.ndarray:
        x = self._source[self._indices[i]]["hr"]
        return SYNTHETIC[self._transform](x) if self._transform else x

    def digest(self) -> str:
        return hashlib.sha256(json.dumps([self._transform, self.names]).encode()).hexdigest()[:16]


class _Preprocess(grain.transforms.RandomMap):
    def __init__(self, preprocess: str, load_size: int, crop_size: int, flip: bool) -> None:
        self.args = (preprocess, load_size, crop_size)
        self.crop_size, self.flip = crop_size, flip

    def random_map(self, element: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = resize_for_crop(element, *self.args)
        return crop_flip([x], rng, self.crop_size, self.flip)[0]


class _Zip:
    """``zip[i] = {'A': a[i], 'B': b[i]}`` as float32 in [0, 1] (two infinite batch datasets)."""

    def __init__(self, a: grain.MapDataset, b: grain.MapDataset) -> None:
        self._a, self._b = a, b

    def __len__(self) -> int:
        return min(len(self._a), len(self._b))

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return {"A": image.to_float(self._a[i]), "B": image.to_float(self._b[i])}


def domain_records(data: ml_collections.ConfigDict) -> tuple[DomainRecords, DomainRecords]:
    """The records of domains A and B (see the module doc for synthetic domains)."""
    if data.synthetic:
        source = open_domain(data, "A")
        n = len(source)
        if n < 2:
            raise ValueError(f"config.data.synthetic needs at least 2 source images to split; {n} found")
        return DomainRecords(source, list(range(0, n, 2))), DomainRecords(source, list(range(1, n, 2)), data.synthetic)
    a, b = open_domain(data, "A"), open_domain(data, "B")
    return DomainRecords(a, list(range(len(a)))), DomainRecords(b, list(range(len(b))))


def make_unpaired_iterator(
    data: ml_collections.ConfigDict, *, global_batch_size: int, seed: int, process_index: int, process_count: int
) -> TrainIterator:
    """This process's batches of ``global_batch_size // process_count`` images per domain (records sharded
    ``i % process_count``)."""
    if global_batch_size % process_count:
        raise ValueError(f"global batch size {global_batch_size} is not divisible by {process_count} processes")
    batch_size = global_batch_size // process_count
    records = domain_records(data)
    datasets, pipeline = [], {"seed": seed, "batch_size": batch_size, "process_index": process_index,
                              "process_count": process_count, "preprocess": data.preprocess,
                              "load_size": data.load_size, "crop_size": data.crop_size, "flip": data.flip}
    for d, (name, recs) in enumerate(zip("AB", records)):
        shard = list(range(len(recs)))[process_index::process_count]
        if not shard:
            raise ValueError(f"process {process_index} of {process_count} gets no image of domain {name} "
                             f"({len(recs)} images)")
        ds = (
            grain.MapDataset.source(_Subset(recs, shard))
            .shuffle(seed=derive_seed(seed, process_index, 10 + d))
            .repeat(None)
            .random_map(_Preprocess(data.preprocess, data.load_size, data.crop_size, data.flip),
                        seed=derive_seed(seed, process_index, 20 + d))
            .batch(batch_size, drop_remainder=True)
        )
        datasets.append(ds)
        pipeline[f"records_{name}"] = recs.digest()
        pipeline[f"num_records_{name}"] = len(shard)
    batches = grain.MapDataset.source(_Zip(*datasets))
    read_options = grain.ReadOptions(num_threads=int(data.num_threads), prefetch_buffer_size=int(data.prefetch))
    info = {"num_A": len(records[0]), "num_B": len(records[1])}
    return TrainIterator(batches, read_options=read_options, mp_options=None, pipeline=pipeline, info=info)


class _Subset:
    """``records`` restricted to ``indices``."""

    def __init__(self, records: Any, indices: list[int]) -> None:
        self._records, self._indices = records, indices

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, i: int) -> Any:
        return self._records[self._indices[i]]
