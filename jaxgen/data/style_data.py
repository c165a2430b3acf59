"""Training batches of the style-transfer tasks: random (or centre) crops of photos from folders, deterministic
and exactly resumable.

A stream (:class:`StreamSpec`) draws images from a list of files with replacement-free epochs: sample ``k`` of
the run is file ``perm_e[k % N]`` with ``e = k // N`` and ``perm_e`` a permutation seeded by ``(seed, stream,
e)``; its crop offset and flip come from ``(seed, stream, k)``. So batch ``n`` is a pure function of the seed
and ``n`` (the state is just ``next_batch``), whatever the process count: each process computes its own rows of
the global batch. Preprocessing per image (decoded once, kept in a small cache):

* ``resize``: ``('short', s)`` scales the short side to ``s`` (pytorch/examples fast_neural_style
  ``transforms.Resize(s)``), ``('square', s)`` resizes to ``s x s`` ignoring the aspect (pytorch-AdaIN
  ``transforms.Resize(size=(512, 512))``), ``('none', 0)`` keeps the size (an image smaller than the crop is
  scaled up to fit); Pillow bicubic;
* a ``crop x crop`` crop, centred (``CenterCrop``) or uniformly random (``RandomCrop``); optional left-right flip.

Batches are ``{stream: float32 [b, crop, crop, 3]}`` in ``[0,1]``, computed by a grain pipeline
(``MapDataset.range`` of batch numbers mapped to their batch, read ahead by ``num_threads`` threads), as
``jaxgen.data.pipeline`` does for SR.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import zlib
from pathlib import Path
from typing import Any, Sequence

import grain
import numpy as np
from PIL import Image

from jaxgen.image import list_image_files

__all__ = ["STATE_FORMAT", "StreamSpec", "StyleBatches", "image_files", "load_resized"]

STATE_FORMAT = "jaxgen.data.StyleBatches/1"
RESIZE_MODES = ("short", "square", "none")


@dataclasses.dataclass(frozen=True)
class StreamSpec:
    files: tuple[str, ...]
    crop: int
    resize: tuple[str, int] = ("short", 256)
    random_crop: bool = True
    flip: bool = False

    def __post_init__(self) -> None:
        if not self.files:
            raise ValueError("a style-data stream needs at least one image file")
        if self.resize[0] not in RESIZE_MODES:
            raise ValueError(f"resize mode {self.resize[0]!r}; expected one of {RESIZE_MODES}")
        if self.crop < 1 or (self.resize[0] != "none" and self.resize[1] < 1):
            raise ValueError(f"crop={self.crop}, resize={self.resize}: sizes must be >= 1")


def image_files(folder_or_files: str | Sequence[str], what: str) -> tuple[str, ...]:
    """A folder (its image files, sorted) or a single image file -> a tuple of paths; errors name ``what``."""
    if isinstance(folder_or_files, (str, Path)):
        p = Path(folder_or_files)
        if p.is_file():
            return (str(p),)
        return tuple(str(f) for f in list_image_files(p, what))
    files = tuple(str(f) for f in folder_or_files)
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise ValueError(f"{what}: file(s) not found: {missing[:3]}")
    return files


def load_resized(path: str, resize: tuple[str, int], crop: int) -> np.ndarray:
    """uint8 ``[H,W,3]`` of ``path`` after the stream's ``resize`` (module doc), never smaller than ``crop``."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        mode, s = resize
        if mode == "short":
            scale = s / min(w, h)
        elif mode == "square":
            im, (w, h), scale = im.resize((s, s), Image.Resampling.BICUBIC), (s, s), 1.0
        else:
            scale = 1.0
        scale = max(scale, crop / min(w, h))  # never smaller than the crop
        if abs(scale - 1.0) > 1e-9:
            im = im.resize((max(crop, round(w * scale)), max(crop, round(h * scale))), Image.Resampling.BICUBIC)
        return np.asarray(im, np.uint8)


class StyleBatches:
    """Iterator of ``{name: float32 [global_batch // process_count, crop, crop, 3]}`` (module docstring).

    ``num_threads`` threads compute the next ``prefetch`` batches ahead (the batches do not depend on them)."""

    def __init__(self, streams: dict[str, StreamSpec], *, global_batch_size: int, seed: int,
                 process_index: int = 0, process_count: int = 1, cache_size: int = 256, num_threads: int = 2,
                 prefetch: int = 2) -> None:
        if global_batch_size < 1 or global_batch_size % process_count:
            raise ValueError(f"global batch size {global_batch_size} must be >= 1 and divisible by {process_count} "
                             "processes")
        self.streams = dict(streams)
        self.global_batch_size, self.seed = int(global_batch_size), int(seed)
        self.rows = range(process_index * (global_batch_size // process_count),
                          (process_index + 1) * (global_batch_size // process_count))
        self._next = 0
        self._iter: Any = None  # started lazily at self._next
        # thread-safe caches (grain's reader threads share them): decoded images and epoch permutations
        self._image = functools.lru_cache(maxsize=cache_size)(self._load_image)
        self._permutation = functools.lru_cache(maxsize=64)(self._draw_permutation)
        self._batches = grain.MapDataset.range(2**62).map(self.batch)
        self._read_options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
        digest = hashlib.sha256(json.dumps(
            {k: [list(s.files), s.crop, list(s.resize), s.random_crop, s.flip] for k, s in sorted(streams.items())}
        ).encode()).hexdigest()[:16]
        self._pipeline = {"streams": digest, "seed": self.seed, "global_batch_size": self.global_batch_size}

    def _stream_id(self, name: str) -> int:
        return zlib.crc32(name.encode()) & 0x7FFFFFFF

    def _load_image(self, name: str, path: str) -> np.ndarray:
        spec = self.streams[name]
        return load_resized(path, spec.resize, spec.crop)

    def _draw_permutation(self, name: str, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self._stream_id(name), epoch])
        return rng.permutation(len(self.streams[name].files))

    def sample(self, name: str, k: int) -> np.ndarray:
        """Sample ``k`` (0-based over the run) of stream ``name``: uint8 ``[crop, crop, 3]``."""
        spec = self.streams[name]
        epoch, pos = divmod(k, len(spec.files))
        img = self._image(name, spec.files[int(self._permutation(name, epoch)[pos])])
        rng = np.random.default_rng([self.seed, self._stream_id(name), 1_000_003, k])
        h, w = img.shape[:2]
        if spec.random_crop:
            y, x = int(rng.integers(0, h - spec.crop + 1)), int(rng.integers(0, w - spec.crop + 1))
        else:
            y, x = (h - spec.crop) // 2, (w - spec.crop) // 2
        out = img[y : y + spec.crop, x : x + spec.crop]
        if spec.flip and rng.random() < 0.5:
            out = out[:, ::-1]
        return out

    def batch(self, n: int) -> dict[str, np.ndarray]:
        """Batch ``n`` (0-based) of this process: a pure function of the seed, the streams and ``n``."""
        return {name: np.stack([self.sample(name, n * self.global_batch_size + j) for j in self.rows])
                .astype(np.float32) / 255.0 for name in self.streams}

    def __iter__(self) -> "StyleBatches":
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        if self._iter is None:
            self._iter = iter(self._batches[self._next:].to_iter_dataset(self._read_options))
        batch = next(self._iter)
        self._next += 1
        return batch

    def get_state(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "next_batch": self._next, "pipeline": dict(self._pipeline)}

    def set_state(self, state: dict[str, Any]) -> None:
        """Resumes at ``state['next_batch']``; a state of another pipeline (files, crops, seed) is a ValueError."""
        if isinstance(state, (str, bytes)):
            state = json.loads(state)
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError(f"not a style-data iterator state (expected format {STATE_FORMAT})")
        if state.get("pipeline") != self._pipeline:
            raise ValueError(f"the saved style-data state is for a different pipeline ({state.get('pipeline')} vs "
                             f"{self._pipeline}) (set_state)")
        n = state.get("next_batch")
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"style-data state has an invalid next_batch {n!r}")
        self._stop()
        self._next = n

    def _stop(self) -> None:
        if self._iter is not None:
            close = getattr(self._iter, "close", None)
            if close is not None:
                close()
            self._iter = None

    def close(self) -> None:
        self._stop()
        self._image.cache_clear()
        self._permutation.cache_clear()
