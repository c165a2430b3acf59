"""Sweep: which pixel loss (L1, MSE, Charbonnier) and which learning rate train the demo EDSR best?

    jaxgen sweep experiments/lr_vs_loss.py --workdir workdirs/lr_vs_loss --parallel 2
    jaxgen report workdirs/lr_vs_loss

3 losses x 2 peak learning rates = 6 trials of ``configs/edsr.py:x2,demo`` (EDSR 4 blocks x 32 features,
x2, batch 16 of 32 px LR patches cut from the built-in photos, Adam, cosine schedule with 30 warm-up steps)
for 300 updates each (half the demo's length; evaluated every 100), scored on the full
Set5 and Set14 x2 images (Y-PSNR/SSIM, crop = 2; ``val_psnr`` is their mean) from ``../shared/data``.
The built-in photos are few, so this asks which setting learns fastest on a CPU budget, not which wins at
convergence. Results: experiments/results/lr_vs_loss.{md,csv,html}.
"""

from pathlib import Path

from jaxgen.config import shared_data_dir
from jaxgen.sweeps import product, sweep

BASE_CONFIG = "configs/edsr.py:x2,demo"
BASE_OVERRIDES = {
    "data.val_dirs": tuple(str(Path(d).resolve()) for d in (f"{shared_data_dir()}/sr-benchmarks/Set5",
                                                             f"{shared_data_dir()}/sr-benchmarks/Set14")),
    "eval_max_images": 0,
    "total_steps": 300,
    "eval_every": 100,
}
METRIC, MODE = "val_psnr", "max"

LOSSES = [
    {"losses.l1": 1.0},
    {"losses.l1": 0.0, "losses.mse": 1.0},
    {"losses.l1": 0.0, "losses.charbonnier": 1.0},
]


def get_sweep(arg=None):
    del arg
    return product(LOSSES, sweep("optim.lr", [1e-3, 2e-4]))
