"""Recipes shared by the config files in this folder (after big_vision's ``configs/common.py``): data protocols of
the papers and the ``tiny`` test variant. A config file imports them relatively (``from .common import
make_tiny``): ``jaxgen.config.exec_python_file`` loads a config as a module of a package made for its folder."""

import ml_collections

from jaxgen.config import optim_config, shared_data_dir


def benchmark_val_dirs() -> tuple[str, ...]:
    """Set5 and Set14 under ``jaxgen.config.shared_data_dir()`` (validation: Y-PSNR/SSIM, crop = scale)."""
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
    patches of ``patch_size``, validation on Set5/Set14, logs every 100 steps, eval + checkpoint every 5000.
    Without TFDS: ``--config.data.source=folder --config.data.train_dir=.../DIV2K_train_HR`` (README)."""
    c.data.source, c.data.tfds_name = "tfds", f"div2k/bicubic_x{c.scale}"
    c.data.patch_size, c.data.val_dirs = patch_size, benchmark_val_dirs()
    c.log_every, c.eval_every, c.ckpt_every = 100, 5000, 5000


def use_t91(c: ml_collections.ConfigDict, patch_size: int) -> None:
    """The 91-image protocol of SRCNN/ESPCN/FSRCNN: ``sr-train/T91`` under ``shared_data_dir()`` (LR by
    MATLAB-exact bicubic), LR patches of ``patch_size``, validation on Set5/Set14, eval every 2000 steps."""
    c.data.source, c.data.train_dir = "folder", f"{shared_data_dir()}/sr-train/T91"
    c.data.patch_size, c.data.val_dirs = patch_size, benchmark_val_dirs()
    c.log_every, c.eval_every, c.ckpt_every = 100, 2000, 2000
