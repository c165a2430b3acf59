"""ESRNet: the PSNR-oriented RRDBNet of ESRGAN (Wang et al., ECCV-W 2018), 23 RRDB blocks.

Run: ``jaxgen train --config configs/rrdbnet.py:x4 --workdir workdirs/esrnet_x4``.
Variants: ``x2|x3|x4`` (x1/x2 use pixel-unshuffle as Real-ESRGAN), ``ema`` (EMA 0.999 as Real-ESRGAN),
``tiny`` (tests).
Protocol (ESRGAN PSNR stage / BasicSR ESRGAN_PSNR): DIV2K(+Flickr2K) bicubic x4, 32x32 LR patches (128 HR),
batch 16, L1, Adam(0.9, 0.99) lr 2e-4 halved at [2e5, 4e5, 6e5, 8e5], 1e6 steps.
Time: a batch-4 32x32 step takes 6.6 s on 2 CPU cores (benchmarks/results_cpu.json): use an accelerator.
Expected (ESRGAN paper, PSNR-oriented RRDB trained on DIV2K+Flickr2K): Set5 x4 32.73 dB (Y, crop 4).
"""

import ml_collections

from jaxgen.config import optim_config, parse_arg
from jaxgen.tasks import base_config

from .common import make_tiny, use_div2k


def get_config(arg=None):
    a = parse_arg(arg, scale=4, ema=False, tiny=False)
    c = base_config()
    c.scale = a.scale
    c.model = ml_collections.ConfigDict(dict(name="rrdbnet", num_feat=64, num_blocks=23, num_grow_ch=32))
    c.losses = ml_collections.ConfigDict({"l1": 1.0})
    c.batch_size = 16
    c.total_steps = 1_000_000
    c.optim = optim_config(lr=2e-4, b2=0.99, schedule="multistep", milestones=(200_000, 400_000, 600_000, 800_000))
    c.ema_decay = 0.999 if a.ema else 0.0
    use_div2k(c, patch_size=32)
    if a.tiny:
        make_tiny(c)
        c.model.num_feat, c.model.num_blocks, c.model.num_grow_ch = 8, 1, 4
    return c
