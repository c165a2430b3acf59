"""RCAN (Zhang et al., ECCV 2018): 10 residual groups x 20 RCABs with channel attention.

Run: ``jaxgen train --config configs/rcan.py:x2 --workdir workdirs/rcan_x2``.
Variants: ``x2|x3|x4|x8``, ``tiny`` (tests).
Protocol (paper): DIV2K bicubic, 48x48 LR patches, batch 16, L1, Adam(0.9, 0.999, 1e-8) lr 1e-4 halved every
2e5 steps, flips + rot90. Expected (paper Table 3, Y, crop = scale): Set5 x2/x3/x4 38.27/34.74/32.63 dB.
"""

import ml_collections

from jaxgen.config import optim_config, parse_arg
from jaxgen.tasks import base_config

from .common import make_tiny, use_div2k


def get_config(arg=None):
    a = parse_arg(arg, scale=2, tiny=False)
    c = base_config()
    c.scale = a.scale
    c.model = ml_collections.ConfigDict(dict(name="rcan", num_feat=64, num_groups=10, num_blocks=20, reduction=16))
    c.losses = ml_collections.ConfigDict({"l1": 1.0})
    c.batch_size = 16
    c.total_steps = 1_000_000
    c.optim = optim_config(lr=1e-4, schedule="multistep", milestones=(200_000, 400_000, 600_000, 800_000))
    use_div2k(c, patch_size=48)
    if a.tiny:
        make_tiny(c)
        c.model.num_feat, c.model.num_groups, c.model.num_blocks, c.model.reduction = 8, 1, 1, 4
    return c
