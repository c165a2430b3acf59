"""Data sources: folder -> cached TFDS ArrayRecord builder, paired folders, bad files, TFDS catalog datasets,
the built-in sample photos. Tiny noise images; the expected records are computed here from the files."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from jaxgen import image
from jaxgen.data import default_data_config, make_train_iterator, open_train_source, write_sample_images
from jaxgen.data.folder_builder import prepare_folder
from jaxgen.data.samples import SAMPLE_NAMES, load_sample


def noise(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_folder(folder: Path, sizes: dict[str, tuple[int, int]], seed: int = 0) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    images = {}
    for i, (name, (h, w)) in enumerate(sizes.items()):
        images[name] = noise(h, w, seed + i)
        image.write_image(folder / name, images[name])
    return images


def data_config(**kw) -> ml_collections.ConfigDict:
    cfg = default_data_config()
    cfg.update(kw)
    return cfg


# --------------------------------------------------------------------------------------------- builder


def test_hr_only_records_match_files_and_cache_is_reused_until_the_folder_changes(tmp_path):
    folder, cache = tmp_path / "hr", tmp_path / "cache"
    images = write_folder(folder, {"b.png": (21, 30), "a.png": (26, 19), "c.png": (24, 24)})
    first = prepare_folder(folder, scale=2, lr_mode="precompute", cache_dir=cache)
    assert first.prepared_now and len(first.source) == 3
    assert [r[0] for r in first.records] == ["a.png", "b.png", "c.png"]  # sorted file order
    for i, name in enumerate(["a.png", "b.png", "c.png"]):
        rec = first.source[i]
        hr = image.mod_crop(images[name], 2)
        np.testing.assert_array_equal(rec["hr"], hr)
        np.testing.assert_array_equal(rec["lr"], image.imresize(hr, 1 / 2))
        assert rec["lr"].dtype == np.uint8 and rec["lr"].shape == (hr.shape[0] // 2, hr.shape[1] // 2, 3)
        assert first.records[i] == (name, *hr.shape[:2])

    info_file = first.data_dir / "dataset_info.json"
    mtime = info_file.stat().st_mtime_ns
    again = prepare_folder(folder, scale=2, lr_mode="precompute", cache_dir=cache)
    assert not again.prepared_now and again.data_dir == first.data_dir
    assert info_file.stat().st_mtime_ns == mtime

    # Other options that change the records get their own cache; on-the-fly records are scale-free.
    x3 = prepare_folder(folder, scale=3, lr_mode="precompute", cache_dir=cache)
    assert x3.prepared_now and x3.data_dir != first.data_dir
    otf = prepare_folder(folder, scale=2, lr_mode="on_the_fly", cache_dir=cache)
    assert otf.prepared_now and "lr" not in otf.source[0]
    np.testing.assert_array_equal(otf.source[1]["hr"], images["b.png"])  # full image, not mod-cropped
    assert not prepare_folder(folder, scale=4, lr_mode="on_the_fly", cache_dir=cache).prepared_now

    changed = noise(30, 30, 99)
    image.write_image(folder / "b.png", changed)
    after = prepare_folder(folder, scale=2, lr_mode="precompute", cache_dir=cache)
    assert after.prepared_now and after.data_dir != first.data_dir
    np.testing.assert_array_equal(after.source[1]["hr"], changed)


def test_paired_folders_match_by_stem_and_hr_is_cropped_to_scale_times_lr(tmp_path):
    hr_dir, lr_dir = tmp_path / "HR", tmp_path / "LR"
    hr = write_folder(hr_dir, {"0001.png": (33, 40), "0002.png": (40, 41), "baby.png": (32, 32)})
    lr = write_folder(lr_dir, {"0001x2.png": (16, 20), "0002x2.png": (20, 20), "baby.png": (16, 16)}, seed=10)
    prepared = prepare_folder(hr_dir, lr_dir=lr_dir, scale=2, cache_dir=tmp_path / "cache")
    assert [r[0] for r in prepared.records] == ["0001.png", "0002.png", "baby.png"]
    pairs = [("0001.png", "0001x2.png"), ("0002.png", "0002x2.png"), ("baby.png", "baby.png")]
    for i, (h_name, l_name) in enumerate(pairs):
        rec = prepared.source[i]
        np.testing.assert_array_equal(rec["lr"], lr[l_name])
        h, w = lr[l_name].shape[:2]
        np.testing.assert_array_equal(rec["hr"], hr[h_name][: 2 * h, : 2 * w])


def test_paired_folders_with_different_names_raise_listing_them(tmp_path):
    write_folder(tmp_path / "HR", {"a.png": (8, 8), "b.png": (8, 8), "only_hr.png": (8, 8)})
    write_folder(tmp_path / "LR", {"a.png": (4, 4), "b.png": (4, 4), "only_lr.png": (4, 4)})
    with pytest.raises(ValueError, match="only_hr") as err:
        prepare_folder(tmp_path / "HR", lr_dir=tmp_path / "LR", scale=2, cache_dir=tmp_path / "cache")
    assert "only_lr" in str(err.value)


def test_bad_files_are_skipped_with_a_warning_and_counted(tmp_path, caplog):
    folder = tmp_path / "hr"
    write_folder(folder, {"good1.png": (20, 20), "good2.png": (22, 20)})
    (folder / "truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (folder / "notes.jpg").write_text("this is not a jpeg")
    (folder / "readme.txt").write_text("ignored: not an image extension")
    with caplog.at_level(logging.WARNING):
        prepared = prepare_folder(folder, scale=2, cache_dir=tmp_path / "cache")
    assert len(prepared.source) == 2 and [r[0] for r in prepared.records] == ["good1.png", "good2.png"]
    assert sorted(name for name, _ in prepared.skipped) == ["notes.jpg", "truncated.png"]
    warned = caplog.text
    assert "truncated.png" in warned and "notes.jpg" in warned and "2 of 4 files" in warned

    caplog.clear()  # the count is kept in the cache's metadata and warned about again on reuse
    with caplog.at_level(logging.WARNING):
        reused = prepare_folder(folder, scale=2, cache_dir=tmp_path / "cache")
    assert not reused.prepared_now and len(reused.skipped) == 2 and "2 files" in caplog.text


def test_mismatched_pair_sizes_are_skipped(tmp_path, caplog):
    write_folder(tmp_path / "HR", {"a.png": (20, 20), "b.png": (20, 20)})
    write_folder(tmp_path / "LR", {"a.png": (10, 10), "b.png": (7, 10)})  # b: 20 // 2 != 7
    with caplog.at_level(logging.WARNING):
        prepared = prepare_folder(tmp_path / "HR", lr_dir=tmp_path / "LR", scale=2, cache_dir=tmp_path / "cache")
    assert [r[0] for r in prepared.records] == ["a.png"] and prepared.skipped[0][0] == "b.png"
    assert "b.png" in caplog.text


def test_empty_missing_and_all_bad_folders_raise_naming_the_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=f"{empty}.*no image files"):
        prepare_folder(empty, scale=2, cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="does not exist"):
        prepare_folder(tmp_path / "nope", scale=2, cache_dir=tmp_path / "cache")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"garbage")
    (bad / "y.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match=f"no usable image in {bad}.*2 files skipped"):
        prepare_folder(bad, scale=2, cache_dir=tmp_path / "cache")


def test_gray_rgba_and_16bit_files_become_rgb_uint8(tmp_path):
    folder = tmp_path / "modes"
    folder.mkdir()
    gray = noise(12, 14, 1)[..., 0]
    Image.fromarray(gray, mode="L").save(folder / "gray.png")
    rgba = np.concatenate([noise(12, 14, 2), np.full((12, 14, 1), 255, np.uint8)], axis=-1)
    Image.fromarray(rgba, mode="RGBA").save(folder / "rgba.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(folder / "deep.png")  # 16-bit gray
    prepared = prepare_folder(folder, scale=2, lr_mode="on_the_fly", cache_dir=tmp_path / "cache")
    recs = {prepared.records[i][0]: prepared.source[i]["hr"] for i in range(len(prepared.source))}
    np.testing.assert_array_equal(recs["gray.png"], np.repeat(gray[..., None], 3, axis=-1))
    np.testing.assert_array_equal(recs["deep.png"], np.repeat(gray[..., None], 3, axis=-1))
    np.testing.assert_array_equal(recs["rgba.png"], rgba[..., :3])


# --------------------------------------------------------------------------------------------- sources


def test_open_train_source_folder_and_config_errors(tmp_path):
    images = write_folder(tmp_path / "hr", {"a.png": (20, 24)})
    cfg = data_config(train_dir=str(tmp_path / "hr"), cache_dir=str(tmp_path / "cache"))
    src = open_train_source(cfg, scale=2)
    assert len(src) == 1 and src.has_lr and src.records[0].hr_shape == (20, 24) and src.records[0].lr_shape == (10, 12)
    rec = src[0]
    assert rec["name"] == "a.png" and rec["hr"].shape == (20, 24, 3) and rec["lr"].shape == (10, 12, 3)
    np.testing.assert_array_equal(rec["hr"], images["a.png"])

    with pytest.raises(ValueError, match="'webdataset'.*folder, tfds, builtin"):
        open_train_source(data_config(source="webdataset"), scale=2)
    with pytest.raises(ValueError, match="train_dir"):
        open_train_source(data_config(source="folder", train_dir=""), scale=2)
    with pytest.raises(ValueError, match="lr_mode"):
        open_train_source(data_config(train_dir=str(tmp_path / "hr"), lr_mode="bilinear"), scale=2)
    with pytest.raises(ValueError, match="on_the_fly"):  # a paired folder would have its LR ignored
        open_train_source(data_config(train_dir=str(tmp_path / "hr"), train_lr_dir=str(tmp_path / "hr"),
                                      lr_mode="on_the_fly"), scale=2)


def png_bytes(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, format="PNG")
    return buf.getvalue()


def fake_pair(i: int) -> tuple[np.ndarray, np.ndarray]:
    hr = noise(32 + 2 * i, 36, 50 + i)
    return hr, image.imresize(hr, 1 / 2)


class JaxgenTestSrPairs(tfds.core.GeneratorBasedBuilder):
    """A DIV2K-like catalog dataset (``hr``/``lr`` PNG ``Image`` features plus an unused one), TF-free."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name="bicubic_x2")]
    code_path = None  # see jaxgen.data.folder_builder

    def _info(self):
        features = {"hr": tfds.features.Image(), "lr": tfds.features.Image(), "id": tfds.features.Text()}
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(3):
            hr, lr = fake_pair(i)
            yield i, {"hr": png_bytes(hr), "lr": png_bytes(lr), "id": f"img{i}"}


def test_tfds_catalog_source_maps_hr_lr_and_reads_sizes(tmp_path):
    JaxgenTestSrPairs(data_dir=tmp_path, file_format="array_record").download_and_prepare()
    cfg = data_config(source="tfds", tfds_name="jaxgen_test_sr_pairs/bicubic_x2", tfds_data_dir=str(tmp_path),
                      patch_size=8, augment_flip=False, augment_rot90=False)
    src = open_train_source(cfg, scale=2)
    assert len(src) == 3 and src.has_lr
    expected = {fake_pair(i)[0].tobytes(): fake_pair(i) for i in range(3)}  # record order is TFDS's
    for i in range(3):
        rec = src[i]
        assert set(rec) == {"hr", "lr", "name"}
        hr, lr = expected[rec["hr"].tobytes()]
        np.testing.assert_array_equal(rec["lr"], lr)
        assert src.records[i].hr_shape == hr.shape[:2] and src.records[i].lr_shape == lr.shape[:2]

    # Through the pipeline: each LR patch is a crop of one record's LR, its HR patch the aligned HR crop.
    batch = next(make_train_iterator(cfg, scale=2, global_batch_size=3, seed=0, process_index=0, process_count=1,
                                     source=src))
    for lr_p, hr_p in zip(np.round(batch["lr"] * 255).astype(np.uint8), np.round(batch["hr"] * 255).astype(np.uint8)):
        hits = [(hr, y, x) for hr, lr in expected.values() for y in range(lr.shape[0] - 7)
                for x in range(lr.shape[1] - 7) if np.array_equal(lr[y : y + 8, x : x + 8], lr_p)]
        assert len(hits) == 1
        hr, y, x = hits[0]
        np.testing.assert_array_equal(hr[2 * y : 2 * y + 16, 2 * x : 2 * x + 16], hr_p)

    otf = open_train_source(data_config(**{**cfg.to_dict(), "lr_mode": "on_the_fly"}), scale=2)
    assert not otf.has_lr and set(otf[0]) == {"hr", "name"}

    with pytest.raises(ValueError, match="not prepared"):
        open_train_source(data_config(**{**cfg.to_dict(), "tfds_data_dir": str(tmp_path / "elsewhere")}), scale=2)
    with pytest.raises(ValueError, match="not found"):
        open_train_source(data_config(**{**cfg.to_dict(), "tfds_name": "no_such_dataset_xyz"}), scale=2)


# --------------------------------------------------------------------------------------------- samples


def test_builtin_sample_photos_are_written_idempotently_and_open_as_a_source(tmp_path):
    train_dir, val_dir = write_sample_images(tmp_path / "samples", holdout=2)
    train = sorted(p.stem for p in train_dir.glob("*.png"))
    val = sorted(p.stem for p in val_dir.glob("*.png"))
    assert val == sorted(SAMPLE_NAMES[-2:]) and train == sorted(SAMPLE_NAMES[:-2])
    np.testing.assert_array_equal(image.read_image(val_dir / "chelsea.png"), load_sample("chelsea"))

    mtimes = {p: p.stat().st_mtime_ns for p in train_dir.glob("*.png")}
    assert write_sample_images(tmp_path / "samples", holdout=2) == (train_dir, val_dir)
    assert {p: p.stat().st_mtime_ns for p in train_dir.glob("*.png")} == mtimes  # nothing rewritten

    write_sample_images(tmp_path / "samples", holdout=3)  # one photo moves from train to val
    assert sorted(p.stem for p in val_dir.glob("*.png")) == sorted(SAMPLE_NAMES[-3:])
    assert not (train_dir / f"{SAMPLE_NAMES[-3]}.png").exists()

    cfg = data_config(source="builtin", cache_dir=str(tmp_path / "cache"), lr_mode="on_the_fly", holdout=2)
    src = open_train_source(cfg, scale=2)
    assert sorted(Path(r.name).stem for r in src.records) == sorted(SAMPLE_NAMES[:-2])
    assert (tmp_path / "cache" / "samples" / "val" / "coffee.png").exists()
    with pytest.raises(ValueError, match="holdout"):
        write_sample_images(tmp_path / "s2", holdout=len(SAMPLE_NAMES))


def test_cache_dir_defaults_to_env_then_home(monkeypatch, tmp_path):
    from jaxgen.data import cache_root

    monkeypatch.setenv("JAXGEN_DATA_DIR", str(tmp_path / "env"))
    assert cache_root(data_config()) == tmp_path / "env"
    assert cache_root(data_config(cache_dir=str(tmp_path / "cfg"))) == tmp_path / "cfg"
    monkeypatch.delenv("JAXGEN_DATA_DIR")
    assert cache_root(data_config()) == Path(os.path.expanduser("~/.cache/jaxgen/tfds"))
