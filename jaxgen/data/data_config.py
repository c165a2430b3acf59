"""The data keys of a config with their defaults, and where prepared datasets are cached (no jaxgen imports:
every data module reads these)."""

from __future__ import annotations

import os
from pathlib import Path

import ml_collections

__all__ = ["cache_root", "default_data_config"]


def default_data_config() -> ml_collections.ConfigDict:
    """Every data key with its default (the trainer's ``config.data`` starts from this)."""
    return ml_collections.ConfigDict(
        dict(
            source="folder",  # folder | tfds | builtin
            train_dir="",  # folder: HR images (one level, no recursion); '' = the built-in photos (trainer)
            train_lr_dir="",  # folder: LR images matched to HR by file stem; '' = HR-only
            tfds_name="",  # tfds: a prepared array_record catalog dataset, e.g. 'div2k/bicubic_x4'
            tfds_split="train",
            tfds_data_dir="",  # '' = TFDS default ($TFDS_DATA_DIR or ~/tensorflow_datasets)
            cache_dir="",  # prepared folders/samples; '' = $JAXGEN_DATA_DIR or ~/.cache/jaxgen/tfds
            patch_size=48,  # LR patch side; HR patches are patch_size * scale
            lr_mode="precompute",  # precompute: stored LR of the whole image | on_the_fly: imresize each HR patch
            augment_flip=True,  # random horizontal and vertical flips
            augment_rot90=True,  # random rotations by k * 90 degrees
            num_workers=0,  # grain worker processes; 0 = in-process (threads below)
            num_threads=4,  # threads computing batches in each process (record reads release the GIL)
            prefetch=4,  # batches buffered ahead (per worker when num_workers > 0)
            val_dirs=(),  # validation folders (read by the trainer)
            holdout=2,  # builtin: photos held out for validation
            # records: each process samples its own shard of the images (scales with hosts);
            # global_batch: every process computes the whole global batch and keeps its rows, so the batches
            # (and the training) are identical for any number of processes, at P times the host work.
            process_sharding="records",
        )
    )


def cache_root(data_cfg: ml_collections.ConfigDict | None = None) -> Path:
    """Where prepared datasets live: ``data_cfg.cache_dir``, else ``$JAXGEN_DATA_DIR``, else
    ``~/.cache/jaxgen/tfds`` (user ``~`` expanded)."""
    configured = str(data_cfg.get("cache_dir", "") or "") if data_cfg is not None else ""
    root = configured or os.environ.get("JAXGEN_DATA_DIR", "") or "~/.cache/jaxgen/tfds"
    return Path(root).expanduser()
