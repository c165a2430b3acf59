"""SRResNet / MSRResNet (Ledig et al., CVPR 2017; BasicSR MSRResNet): the PSNR-oriented SRGAN generator.

Run: ``jaxgen train --config configs/srresnet.py:x4 --workdir workdirs/srresnet_x4``.
Variants: ``x2|x3|x4``, ``prelu`` (SRGAN's activation; default LeakyReLU 0.1 as MSRResNet), ``tiny``.
Protocol (BasicSR MSRResNet x4): DIV2K (tfds ``div2k/bicubic_x4``), 32x32 LR patches (128 HR), batch 16, L1,
Adam(0.9, 0.99) lr 2e-4, cosine restarts -> here one cosine over 1e6 steps, flips + rot90.
Expected (paper Table 2, SRResNet-MSE trained on ImageNet): Set5 x4 32.05 dB, Set14 28.49 dB (Y, crop 4).
"""

import ml_collections

from jaxgen.config import optim_config, parse_arg
from jaxgen.tasks import base_config

from .common import make_tiny, use_div2k


def get_config(arg=None):
    a = parse_arg(arg, scale=4, prelu=False, tiny=False)
    c = base_config()
    c.scale = a.scale
    c.model = ml_collections.ConfigDict(dict(name="srresnet", num_feat=64, num_blocks=16, act="prelu" if a.prelu else "lrelu"))
    c.losses = ml_collections.ConfigDict({"l1": 1.0})
    c.batch_size = 16
    c.total_steps = 1_000_000
    c.optim = optim_config(lr=2e-4, b2=0.99, schedule="cosine", min_lr=1e-7)
    use_div2k(c, patch_size=32)
    if a.tiny:
        make_tiny(c)
        c.model.num_feat, c.model.num_blocks = 8, 1
    return c
