"""ESPCN (Shi et al., CVPR 2016): sub-pixel convolution on the LR image.

Run: ``jaxgen train --config configs/espcn.py:x3 --workdir workdirs/espcn_x3``.
Variants: ``x2|x3|x4``, ``tiny`` (tests).
Protocol (paper): 91 images, 17r x 17r HR sub-images (17x17 LR), MSE, tanh, Adam here (the paper used SGD,
lr 0.01 -> 0.0001). Validation Set5/Set14 (Y, crop = scale). Expected (paper, 91 images): Set5 x3 32.55 dB.
"""

import ml_collections

from jaxgen.config import optim_config, parse_arg
from jaxgen.tasks import base_config

from .common import make_tiny, use_t91


def get_config(arg=None):
    a = parse_arg(arg, scale=3, tiny=False)
    c = base_config()
    c.scale = a.scale
    c.model = ml_collections.ConfigDict(dict(name="espcn", kernel_sizes=(5, 3, 3), filters=(64, 32)))
    c.losses = ml_collections.ConfigDict({"mse": 1.0})
    c.batch_size = 64
    c.total_steps = 100_000
    c.optim = optim_config(lr=1e-3, schedule="multistep", milestones=(50_000, 80_000), gamma=0.1)
    use_t91(c, patch_size=17)
    if a.tiny:
        make_tiny(c)
        c.model.filters = (8, 8)
    return c
