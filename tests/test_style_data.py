"""``jaxgen.data.style_data.StyleBatches`` (on grain): the batches are the documented pure function of the seed
and the batch number (checked against the formula written out here), split across processes by rows, and
resume exactly from ``get_state``."""

import zlib

import numpy as np
import pytest
from PIL import Image

from jaxgen.data.style_data import StreamSpec, StyleBatches, load_resized


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("style_data")
    rng = np.random.default_rng(0)
    out = []
    for i, (h, w) in enumerate([(20, 30), (24, 24), (40, 18)]):
        path = root / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        out.append(str(path))
    return tuple(out)


def _expected_sample(spec: StreamSpec, name: str, seed: int, k: int) -> np.ndarray:
    """The module docstring's recipe: file ``perm_e[k % N]``, ``perm_e`` seeded by ``(seed, stream, e)``; crop
    offset and flip from ``(seed, stream, 1_000_003, k)``."""
    stream = zlib.crc32(name.encode()) & 0x7FFFFFFF
    n = len(spec.files)
    perm = np.random.default_rng([seed, stream, k // n]).permutation(n)
    img = load_resized(spec.files[perm[k % n]], spec.resize, spec.crop)
    rng = np.random.default_rng([seed, stream, 1_000_003, k])
    h, w = img.shape[:2]
    if spec.random_crop:
        y, x = int(rng.integers(0, h - spec.crop + 1)), int(rng.integers(0, w - spec.crop + 1))
    else:
        y, x = (h - spec.crop) // 2, (w - spec.crop) // 2
    out = img[y:y + spec.crop, x:x + spec.crop]
    return out[:, ::-1] if spec.flip and rng.random() < 0.5 else out


def _streams(files):
    return {"content": StreamSpec(files, 8, ("short", 12), True, True),
            "style": StreamSpec(files[:2], 10, ("square", 16), False)}


def test_batches_follow_the_documented_recipe_and_split_by_rows(files):
    streams = _streams(files)
    it = StyleBatches(streams, global_batch_size=4, seed=3)
    got = [next(it) for _ in range(3)]  # 12 content samples: four epochs of 3 files
    it.close()
    for n, batch in enumerate(got):
        for name, spec in streams.items():
            want = np.stack([_expected_sample(spec, name, 3, n * 4 + j) for j in range(4)]).astype(np.float32) / 255
            np.testing.assert_array_equal(batch[name], want)
            assert batch[name].dtype == np.float32 and batch[name].shape == (4, spec.crop, spec.crop, 3)
    halves = [StyleBatches(streams, global_batch_size=4, seed=3, process_index=p, process_count=2) for p in (0, 1)]
    for n in range(3):
        parts = [next(h) for h in halves]
        for name in streams:
            np.testing.assert_array_equal(np.concatenate([p[name] for p in parts]), got[n][name])
    for h in halves:
        h.close()


def test_resume_from_state_continues_the_same_sequence(files):
    streams = _streams(files)
    whole = StyleBatches(streams, global_batch_size=2, seed=5)
    ref = [next(whole) for _ in range(5)]
    whole.close()
    first = StyleBatches(streams, global_batch_size=2, seed=5)
    for _ in range(3):
        next(first)
    state = first.get_state()
    first.close()
    assert state["next_batch"] == 3
    resumed = StyleBatches(streams, global_batch_size=2, seed=5)
    resumed.set_state(state)
    for n in (3, 4):
        batch = next(resumed)
        for name in streams:
            np.testing.assert_array_equal(batch[name], ref[n][name])
    resumed.set_state(dict(state, next_batch=1))  # rewinding a running iterator restarts it there
    np.testing.assert_array_equal(next(resumed)["content"], ref[1]["content"])
    resumed.close()
    other = StyleBatches(streams, global_batch_size=2, seed=6)
    with pytest.raises(ValueError, match="different pipeline"):
        other.set_state(state)
    with pytest.raises(ValueError, match="not a style-data iterator state"):
        other.set_state({"next_batch": 3})
