"""Training pipeline: aligned crops (found back in the source images computed here), augmentation, epochs,
determinism, sharding, too-small images, exact resume from a JSON state, worker processes."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import ml_collections
import numpy as np
import pytest

from jaxgen import image
from jaxgen.data import default_data_config, make_train_iterator
from jaxgen.data.pipeline import PatchSpec, usable_records
from jaxgen.data.sources import RecordInfo

S, P = 2, 8  # scale, LR patch; HR patches are 16 px
SIZES = {"a.png": (40, 48), "b.png": (34, 52), "c.png": (48, 36), "d.png": (44, 44), "e.png": (36, 40)}


def noise(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """Five noise HR images (every 8x8 patch is unique, so a patch's source and offset can be found back)."""
    root = tmp_path_factory.mktemp("pipeline")
    images = {}
    for i, (name, (h, w)) in enumerate(SIZES.items()):
        images[name] = noise(h, w, i)
        image.write_image(root / "hr" / name, images[name])
    return root, images


def config(root: Path, **kw) -> ml_collections.ConfigDict:
    cfg = default_data_config()
    cfg.update(dict(train_dir=str(root / "hr"), cache_dir=str(root / "cache"), patch_size=P, prefetch=2))
    cfg.update(kw)
    return cfg


def make(root: Path, *, batch: int = 4, seed: int = 0, index: int = 0, count: int = 1, **kw):
    return make_train_iterator(
        config(root, **kw), scale=S, global_batch_size=batch, seed=seed, process_index=index, process_count=count
    )


def to_u8(x: np.ndarray) -> np.ndarray:
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    u8 = np.round(x * 255.0)
    np.testing.assert_allclose(u8, x * 255.0, atol=1e-3)  # exactly k / 255
    return u8.astype(np.uint8)


def samples(it, n_batches: int) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for _ in range(n_batches):
        batch = next(it)
        out += list(zip(to_u8(batch["lr"]), to_u8(batch["hr"])))
    return out


DIHEDRAL = [lambda x, k=k, f=f: np.rot90(x[:, ::-1] if f else x, k) for f in (0, 1) for k in range(4)]


def find(patch: np.ndarray, full: np.ndarray) -> list[tuple[int, int]]:
    """Every (y, x) with ``full[y:y+n, x:x+n] == patch``."""
    n = patch.shape[0]
    corner = np.all(full[: full.shape[0] - n + 1, : full.shape[1] - n + 1] == patch[0, 0], axis=-1)
    return [(int(y), int(x)) for y, x in np.argwhere(corner) if np.array_equal(full[y : y + n, x : x + n], patch)]


def locate_precomputed(lr: np.ndarray, hr: np.ndarray, images: dict[str, np.ndarray]) -> tuple[str, int]:
    """(record, dihedral index) such that T(lr) and T(hr) are the LR crop at (y, x) and HR crop at (2y, 2x)."""
    hits = []
    for name, full in images.items():
        hr_full = image.mod_crop(full, S)
        lr_full = image.imresize(hr_full, 1 / S)  # the precompute protocol, computed independently
        for t, T in enumerate(DIHEDRAL):
            for y, x in find(T(lr), lr_full):
                np.testing.assert_array_equal(T(hr), hr_full[S * y : S * (y + P), S * x : S * (x + P)])
                hits.append((name, t))
    assert len(hits) == 1, f"LR patch found {len(hits)} times"
    return hits[0]


def locate_hr(hr: np.ndarray, images: dict[str, np.ndarray]) -> tuple[str, int]:
    hits = [(name, t) for name, full in images.items() for t, T in enumerate(DIHEDRAL) for _ in find(T(hr), full)]
    assert len(hits) == 1, f"HR patch found {len(hits)} times"
    return hits[0]


# --------------------------------------------------------------------------------------------- patches


def test_precompute_patches_are_aligned_crops_of_the_whole_image_lr(folder):
    root, images = folder
    batch = next(make(root, batch=4, augment_flip=False, augment_rot90=False))
    assert batch["lr"].shape == (4, P, P, 3) and batch["hr"].shape == (4, S * P, S * P, 3)
    assert batch["lr"].dtype == batch["hr"].dtype == np.float32
    it = make(root, batch=4, augment_flip=False, augment_rot90=False)
    for lr, hr in samples(it, 3):
        assert locate_precomputed(lr, hr, images)[1] == 0  # identity: no augmentation


def test_precompute_augmentation_keeps_lr_and_hr_aligned(folder):
    root, images = folder
    transforms = {locate_precomputed(lr, hr, images)[1] for lr, hr in samples(make(root, batch=8), 4)}
    assert len(transforms) >= 6  # flips and rotations both happen (32 draws of 8 equally likely transforms)
    no_rot = make(root, batch=8, augment_rot90=False)
    flips_only = {locate_precomputed(lr, hr, images)[1] for lr, hr in samples(no_rot, 2)}
    assert flips_only <= {0, 2, 4, 6} and len(flips_only) > 1  # identity, rot180, hflip, vflip


def test_hflip_only_is_basicsr_use_hflip_without_rotation(folder):
    """BasicSR ``augment(hflip=True, rotation=False)`` (``basicsr/data/transforms.py``@8d56e3a, Real-ESRGAN's
    ``use_hflip: True, use_rot: False``): identity or a left-right flip, each about half the time; never vertical."""
    root, images = folder
    it = make(root, batch=8, augment_vflip=False, augment_rot90=False)
    found = [locate_precomputed(lr, hr, images)[1] for lr, hr in samples(it, 4)]
    assert set(found) == {0, 4}, found  # DIHEDRAL[4] = left-right flip; 2 (rot180) / 6 (up-down) never
    assert 6 <= found.count(4) <= 26  # 32 fair coin flips: outside [6, 26] has probability < 1e-4
    assert it.get_state()["pipeline"]["augment_vflip"] is False
    assert "augment_vflip" not in make(root, batch=8).get_state()["pipeline"]  # old states still resume


def test_on_the_fly_lr_is_exactly_imresize_of_the_augmented_hr_patch(folder):
    root, images = folder
    transforms = set()
    for lr, hr in samples(make(root, batch=8, lr_mode="on_the_fly"), 3):
        np.testing.assert_array_equal(lr, image.imresize(hr, 1 / S))
        transforms.add(locate_hr(hr, images)[1])  # a real crop of one source image (full, not mod-cropped)
    assert len(transforms) >= 5


def test_each_epoch_is_a_reshuffled_permutation_of_the_records(folder):
    root, images = folder
    it = make(root, batch=1, augment_flip=False, augment_rot90=False)
    order = [locate_precomputed(lr, hr, images)[0] for lr, hr in samples(it, 3 * len(SIZES))]
    epochs = [order[i : i + len(SIZES)] for i in range(0, len(order), len(SIZES))]
    for epoch in epochs:
        assert sorted(epoch) == sorted(SIZES)
    assert len({tuple(e) for e in epochs}) > 1


# --------------------------------------------------------------------------------------------- determinism


def test_same_seed_same_batches_different_seed_different(folder):
    root, _ = folder
    a, b, c = (samples(make(root, seed=seed), 3) for seed in (7, 7, 8))
    assert all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    assert not all(np.array_equal(x[1], y[1]) for x, y in zip(a, c))


def test_processes_see_disjoint_records_and_half_the_global_batch(folder):
    root, images = folder
    seen = []
    for index in (0, 1):
        it = make(root, batch=4, index=index, count=2, augment_flip=False, augment_rot90=False)
        batch = next(it)
        assert batch["lr"].shape[0] == 2 and batch["hr"].shape[0] == 2
        seen.append({locate_precomputed(lr, hr, images)[0] for lr, hr in samples(it, 4)})
    assert seen[0] and seen[1] and not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(SIZES)
    with pytest.raises(ValueError, match="not divisible"):
        make(root, batch=5, count=2)
    with pytest.raises(ValueError, match="process_index"):
        make(root, batch=4, index=2, count=2)


def test_state_round_trips_through_json_and_resumes_exactly(folder):
    root, _ = folder
    it = make(root, seed=3)
    samples(it, 3)
    state = json.loads(json.dumps(it.get_state()))
    expected = samples(it, 3)

    resumed = make(root, seed=3)
    resumed.set_state(state)
    got = samples(resumed, 3)
    assert all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(expected, got))

    it.set_state(json.dumps(state).encode())  # bytes/str states too; rewinds a running iterator
    again = samples(it, 3)
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(expected, again))

    other = make(root, seed=4)
    with pytest.raises(ValueError, match="seed: saved 3 vs now 4"):
        other.set_state(state)
    other.set_state(state, strict=False)
    assert next(other)["hr"].shape == (4, S * P, S * P, 3)
    with pytest.raises(ValueError, match="not a training-data iterator state"):
        other.set_state({"next_index": 3})


def test_worker_process_gives_the_same_batches_and_resumes(folder):
    root, _ = folder
    reference = samples(make(root, seed=5), 3)
    with make(root, seed=5, num_workers=1) as it:
        got = samples(it, 2)
        state = it.get_state()
        got += samples(it, 1)
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(reference, got))
    with make(root, seed=5, num_workers=0) as resumed:  # the state does not depend on the worker count
        resumed.set_state(state)
        assert np.array_equal(samples(resumed, 1)[0][1], reference[2 * 4][1])


# --------------------------------------------------------------------------------------------- sizes


def test_images_smaller_than_a_patch_are_skipped_with_a_warning(tmp_path, caplog):
    images = {"big.png": noise(40, 40, 1), "small.png": noise(15, 40, 2)}  # 15 < 16-px HR patch
    for name, img in images.items():
        image.write_image(tmp_path / "hr" / name, img)
    with caplog.at_level(logging.WARNING):
        it = make(tmp_path, batch=2, augment_flip=False, augment_rot90=False)
    assert "small.png" in caplog.text and "16x16" in caplog.text
    assert [n for n, _ in it.info["skipped_unusable"]] == ["small.png"] and it.info["num_usable"] == 1
    assert {locate_precomputed(lr, hr, {"big.png": images["big.png"]})[0] for lr, hr in samples(it, 3)} == {"big.png"}

    with pytest.raises(ValueError, match="at least 64x64 HR pixels"):
        make(tmp_path, batch=2, patch_size=32)


def test_usable_records_checks_patch_fit_and_pair_consistency():
    records = [
        RecordInfo("ok", (33, 20), (16, 10)),  # HR may exceed scale x LR by < scale rows/columns
        RecordInfo("wrong_scale", (40, 40), (10, 10)),
        RecordInfo("small_lr", (14, 40), (7, 20)),
        RecordInfo("hr_only", (16, 16), None),
        RecordInfo("hr_only_small", (15, 30), None),
    ]
    usable, skipped = usable_records(records, PatchSpec(S, P, on_the_fly=False))
    assert usable == [0, 3]  # a record without LR needs only its HR patch to fit
    assert [n for n, _ in skipped] == ["wrong_scale", "small_lr", "hr_only_small"]
    assert "is not 2x its LR" in skipped[0][1]
    usable, _ = usable_records(records, PatchSpec(S, P, on_the_fly=True))  # stored LR ignored
    assert usable == [0, 1, 3]
