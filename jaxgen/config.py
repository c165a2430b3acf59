"""Config helpers shared by the files in ``configs/``.

A config file defines ``get_config(arg=None) -> ml_collections.ConfigDict``. ``arg`` is the text after the
colon in ``--config configs/edsr.py:x2,tiny`` and is parsed big_vision-style by :func:`parse_arg`:
comma-separated ``key`` (a boolean flag set to True), ``key=value`` (cast to the default's type) or ``xN``
(shorthand for ``scale=N``).

:func:`base_config` returns every key the trainer reads, with defaults, so a config file only states what its
experiment changes. Configs are locked by the CLI: overriding a key that does not exist is an error naming it.
"""

from __future__ import annotations

import re
from typing import Any

import ml_collections

from jaxgen.data import default_data_config


def _cast(value: str, default: Any) -> Any:
    if isinstance(default, bool):
        if value.lower() in ("1", "true", "yes", "y"):
            return True
        if value.lower() in ("0", "false", "no", "n"):
            return False
        raise ValueError(f"config arg expects a boolean, got {value!r}")
    if default is None:
        return value
    return type(default)(value)


def parse_arg(arg: str | None, **spec: Any) -> ml_collections.ConfigDict:
    """Parses ``"x2,tiny,steps=100"`` against ``spec`` (name -> default); unknown names are an error.

    ``xN`` sets ``scale=N`` when ``spec`` has a ``scale`` entry.
    """
    result = ml_collections.ConfigDict(dict(spec))
    for token in filter(None, (t.strip() for t in (arg or "").split(","))):
        match = re.fullmatch(r"x(\d+)", token)
        if match and "scale" in spec:
            result.scale = int(match.group(1))
            continue
        key, sep, value = token.partition("=")
        if key not in spec:
            raise ValueError(f"unknown config arg {key!r}; known: {sorted(spec)} (and xN for the scale)")
        result[key] = _cast(value, spec[key]) if sep else True
    return result


def optim_config(**overrides: Any) -> ml_collections.ConfigDict:
    """Optax optimizer + schedule settings (see ``jaxgen.train.optim``)."""
    cfg = ml_collections.ConfigDict(
        dict(
            name="adam",  # adam | adamw
            lr=1e-4,
            b1=0.9,
            b2=0.999,
            eps=1e-8,
            weight_decay=0.0,
            schedule="constant",  # constant | multistep | cosine
            milestones=(),  # multistep: steps where lr *= gamma
            gamma=0.5,
            warmup_steps=0,  # linear warm-up (cosine and multistep)
            min_lr=0.0,  # cosine floor
            grad_clip=0.0,  # global-norm clip; 0 = off
        )
    )
    cfg.update(overrides)
    return cfg


def base_config() -> ml_collections.ConfigDict:
    """All trainer keys with defaults. Generator kwargs live in ``model`` next to ``model.name``."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.scale = 2
    c.total_steps = 1000
    c.batch_size = 16  # global batch size, split over processes and the `data` mesh axis
    c.compute_dtype = "float32"  # float32 | bfloat16 (params stay float32)
    c.model = ml_collections.ConfigDict({"name": "edsr"})
    c.losses = ml_collections.ConfigDict({"l1": 1.0})  # pixel loss name -> weight
    c.optim = optim_config()
    # Discriminator (empty name = PSNR-oriented training, no second player).
    c.disc = ml_collections.ConfigDict(
        dict(name="", gan_kind="nonsaturating", weight=5e-3, kwargs=ml_collections.ConfigDict(), optim=optim_config())
    )
    c.ema_decay = 0.0  # 0 = no EMA; e.g. 0.999 (ESRGAN/Real-ESRGAN)
    c.data = default_data_config()
    c.log_every = 50
    c.eval_every = 500  # 0 = only at the end
    c.ckpt_every = 500
    c.keep_ckpts = 3  # latest N kept, plus the best by validation PSNR
    c.eval_max_images = 0  # 0 = all validation images
    c.time_budget_s = 0.0  # > 0: checkpoint and stop after this much training time (studies on a budget)
    c.distributed = False  # call jax.distributed.initialize() (multi-host)
    c.progress_bar = True
    return c


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Loads ``'configs/edsr.py:x2,tiny'`` like ``--config`` does (the returned config is locked)."""
    import importlib.util
    from pathlib import Path

    path, _, arg = spec.partition(":")
    if not Path(path).is_file():
        raise ValueError(f"config file {path!r} not found")
    module_spec = importlib.util.spec_from_file_location(f"jaxgen_config_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"config file {path!r} has no get_config(arg) function")
    config = module.get_config(arg or None)
    config.lock()
    return config


def shared_data_dir() -> str:
    """Public benchmark data: ``$JAXGEN_SHARED_DATA`` or ``../shared/data`` (relative to the working dir)."""
    import os

    return os.environ.get("JAXGEN_SHARED_DATA", "../shared/data")


def benchmark_val_dirs() -> tuple[str, ...]:
    """Set5 and Set14 under :func:`shared_data_dir` (validation: Y-PSNR/SSIM, crop = scale)."""
    shared = shared_data_dir()
    return (f"{shared}/sr-benchmarks/Set5", f"{shared}/sr-benchmarks/Set14")


def use_builtin_photos(c: ml_collections.ConfigDict) -> None:
    """Train on the scikit-image sample photos (``data.train_dir=''``), validate on the two held out."""
    c.data.source, c.data.train_dir, c.data.train_lr_dir, c.data.val_dirs = "folder", "", "", ()


def make_tiny(c: ml_collections.ConfigDict) -> None:
    """The ``tiny`` variant's run settings (tests): built-in photos, global batch 8 (runs unchanged on 8
    devices), 16 px LR patches, 20 steps, checkpoints and evaluation every 10. Shrinking the model is left
    to each config."""
    use_builtin_photos(c)
    c.batch_size, c.data.patch_size = 8, 16
    c.total_steps, c.log_every, c.eval_every, c.ckpt_every = 20, 5, 10, 10
    c.optim = optim_config(lr=5e-4)
    c.eval_max_images = 1


def use_div2k(c: ml_collections.ConfigDict, patch_size: int) -> None:
    """The DIV2K protocol of EDSR/RCAN/ESRGAN: TFDS ``div2k/bicubic_x{scale}`` (prepare it yourself), LR
    patches of ``patch_size``, validation on Set5/Set14, logs every 100 steps, eval + checkpoint every 5000."""
    c.data.source, c.data.tfds_name = "tfds", f"div2k/bicubic_x{c.scale}"
    c.data.patch_size, c.data.val_dirs = patch_size, benchmark_val_dirs()
    c.log_every, c.eval_every, c.ckpt_every = 100, 5000, 5000


def use_t91(c: ml_collections.ConfigDict, patch_size: int) -> None:
    """The 91-image protocol of SRCNN/ESPCN/FSRCNN: ``sr-train/T91`` under :func:`shared_data_dir` (LR by
    MATLAB-exact bicubic), LR patches of ``patch_size``, validation on Set5/Set14, eval every 2000 steps."""
    c.data.source, c.data.train_dir = "folder", f"{shared_data_dir()}/sr-train/T91"
    c.data.patch_size, c.data.val_dirs = patch_size, benchmark_val_dirs()
    c.log_every, c.eval_every, c.ckpt_every = 100, 2000, 2000
