"""EDSR (Lim et al., CVPR-W 2017): baseline (16x64) or full (32x256, res_scale 0.1), L1, DIV2K.

Run:
    jaxgen train --config configs/edsr.py:x2 --workdir workdirs/edsr_x2            # baseline x2
    jaxgen train --config configs/edsr.py:x4,full --workdir workdirs/edsr_full_x4  # full EDSR
Variants (comma separated): ``x2|x3|x4`` (scale), ``full``, ``tiny`` (tests: 2x16, 8 patches of 16 px,
well under a second a step on 2 CPU cores), ``demo`` (``make demo``: 4x32 on the built-in photos).

Paper protocol: DIV2K bicubic (``tfds`` ``div2k/bicubic_x{s}``, prepare it yourself), 48x48 LR patches,
batch 16, flips + 90 degree rotations, Adam(0.9, 0.999, 1e-8), lr 1e-4 halved every 2e5 updates, L1,
3e5 updates; validation on Set5/Set14 (Y, crop = scale).
Expected (paper Table 4, Set5 PSNR): baseline x2/x3/x4 37.99/34.37/32.09 dB; full 38.11/34.65/32.46 dB.
Time: a baseline x2 step (batch 16, 48x48) takes 5.6 s on 2 CPU cores (benchmarks/results_cpu.json), about
19 days for 3e5 steps: use an accelerator. Tiny: well under a second a step.
Demo: about 4 minutes on 2 CPU cores, +0.63 dB over bicubic on the held-out photos (README).
"""

import ml_collections

from jaxgen.config import optim_config, parse_arg
from jaxgen.tasks import base_config

from .common import make_tiny, use_builtin_photos, use_div2k


def get_config(arg=None):
    a = parse_arg(arg, scale=2, full=False, tiny=False, demo=False)
    c = base_config()
    c.scale = a.scale
    c.model = ml_collections.ConfigDict(
        dict(name="edsr", num_blocks=32 if a.full else 16, num_feat=256 if a.full else 64, res_scale=0.1 if a.full else 1.0)
    )
    c.losses = ml_collections.ConfigDict({"l1": 1.0})
    c.batch_size = 16
    c.total_steps = 300_000
    c.optim = optim_config(lr=1e-4, schedule="multistep", milestones=(200_000,), gamma=0.5)
    use_div2k(c, patch_size=48)

    if a.tiny:
        make_tiny(c)
        c.model.num_blocks, c.model.num_feat, c.model.res_scale = 2, 16, 1.0
    if a.demo:
        use_builtin_photos(c)
        c.model.num_blocks, c.model.num_feat, c.model.res_scale = 4, 32, 1.0
        c.batch_size, c.data.patch_size = 16, 32
        c.total_steps, c.log_every, c.eval_every, c.ckpt_every = 600, 50, 200, 200
        c.optim = optim_config(lr=1e-3, schedule="cosine", warmup_steps=30, min_lr=1e-5)
    return c
