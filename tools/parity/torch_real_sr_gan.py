"""Torch side of parity plug-in ``real_sr_gan``: Real-ESRGAN's ``RealESRGANModel`` training step with the
degradation bypassed, re-created from the official files:

* xinntao/Real-ESRGAN at commit a4abfb2979a7bbff3f69f58f58ae324608821e27, ``realesrgan/models/realesrgan_model.py``
  ``RealESRGANModel.optimize_parameters`` (``l1_gt``/``percep_gt`` = USM GT, ``gan_gt`` = GT as
  ``gan_gt_usm: False``; G with D frozen: pixel + perceptual + ``cri_gan(D(output), True)``; D: real then fake
  (``output.detach().clone()``), two backward passes, one step; EMA) and ``feed_data``'s non-degrading branch
  (``lq = data['lq']``, ``gt_usm = usm_sharpener(gt)``; no training-pair pool);
* XPixelGroup/BasicSR at commit 8d56e3a045f9fb3e1d8872f92ee4a4f07f886b0a: ``basicsr/archs/discriminator_arch.py``
  ``UNetDiscriminatorSN`` (copied below), ``basicsr/utils/img_process_util.py`` ``filter2D``, ``USMSharp``
  (copied; ``cv2.getGaussianKernel(51, 0)`` written out with OpenCV's documented formula, sigma = 0.3 ((ksize -
  1) / 2 - 1) + 0.8 = 8), RRDBNet / VGG / losses / optimizers as ``torch_sr_gan.py``.

    python torch_real_sr_gan.py --case CASE.npz --out OUT.npz
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn as nn
from torch.nn import functional as F
from torch.nn.utils import spectral_norm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from torch_sr import batch, export, hp, load_case, parse, save, state_dict, update_learning_rate  # noqa: E402
from torch_sr_gan import (GANLoss, PerceptualLoss, RRDBNet, layer_weights, optimizers,  # noqa: E402
                          srgan_optimize_parameters, vgg_state)


# ---------------------------------------------------------------- basicsr/archs/discriminator_arch.py (8d56e3a)


class UNetDiscriminatorSN(nn.Module):
    def __init__(self, num_in_ch, num_feat=64, skip_connection=True):
        super(UNetDiscriminatorSN, self).__init__()
        self.skip_connection = skip_connection
        norm = spectral_norm
        self.conv0 = nn.Conv2d(num_in_ch, num_feat, kernel_size=3, stride=1, padding=1)
        self.conv1 = norm(nn.Conv2d(num_feat, num_feat * 2, 4, 2, 1, bias=False))
        self.conv2 = norm(nn.Conv2d(num_feat * 2, num_feat * 4, 4, 2, 1, bias=False))
        self.conv3 = norm(nn.Conv2d(num_feat * 4, num_feat * 8, 4, 2, 1, bias=False))
        self.conv4 = norm(nn.Conv2d(num_feat * 8, num_feat * 4, 3, 1, 1, bias=False))
        self.conv5 = norm(nn.Conv2d(num_feat * 4, num_feat * 2, 3, 1, 1, bias=False))
        self.conv6 = norm(nn.Conv2d(num_feat * 2, num_feat, 3, 1, 1, bias=False))
        self.conv7 = norm(nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=False))
        self.conv8 = norm(nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(num_feat, 1, 3, 1, 1)

    def forward(self, x):
        x0 = F.leaky_relu(self.conv0(x), negative_slope=0.2, inplace=True)
        x1 = F.leaky_relu(self.conv1(x0), negative_slope=0.2, inplace=True)
        x2 = F.leaky_relu(self.conv2(x1), negative_slope=0.2, inplace=True)
        x3 = F.leaky_relu(self.conv3(x2), negative_slope=0.2, inplace=True)
        x3 = F.interpolate(x3, scale_factor=2, mode='bilinear', align_corners=False)
        x4 = F.leaky_relu(self.conv4(x3), negative_slope=0.2, inplace=True)
        if self.skip_connection:
            x4 = x4 + x2
        x4 = F.interpolate(x4, scale_factor=2, mode='bilinear', align_corners=False)
        x5 = F.leaky_relu(self.conv5(x4), negative_slope=0.2, inplace=True)
        if self.skip_connection:
            x5 = x5 + x1
        x5 = F.interpolate(x5, scale_factor=2, mode='bilinear', align_corners=False)
        x6 = F.leaky_relu(self.conv6(x5), negative_slope=0.2, inplace=True)
        if self.skip_connection:
            x6 = x6 + x0
        out = F.leaky_relu(self.conv7(x6), negative_slope=0.2, inplace=True)
        out = F.leaky_relu(self.conv8(out), negative_slope=0.2, inplace=True)
        out = self.conv9(out)
        return out


# ---------------------------------------------------------------- basicsr/utils/img_process_util.py (8d56e3a)


def filter2D(img, kernel):
    k = kernel.size(-1)
    b, c, h, w = img.size()
    if k % 2 == 1:
        img = F.pad(img, (k // 2, k // 2, k // 2, k // 2), mode='reflect')
    else:
        raise ValueError('Wrong kernel size')
    ph, pw = img.size()[-2:]
    if kernel.size(0) == 1:
        img = img.view(b * c, 1, ph, pw)
        kernel = kernel.view(1, 1, k, k)
        return F.conv2d(img, kernel, padding=0).view(b, c, h, w)
    else:
        img = img.view(1, b * c, ph, pw)
        kernel = kernel.view(b, 1, k, k).repeat(1, c, 1, 1).view(b * c, 1, k, k)
        return F.conv2d(img, kernel, groups=b * c).view(b, c, h, w)


def get_gaussian_kernel(ksize, sigma):
    """``cv2.getGaussianKernel(ksize, sigma)`` (CV_64F column): OpenCV's formula for ``sigma <= 0``."""
    if sigma <= 0:
        sigma = 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8
    x = np.arange(ksize, dtype=np.float64) - (ksize - 1) * 0.5
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return (g / g.sum()).reshape(-1, 1)


class USMSharp(torch.nn.Module):
    def __init__(self, radius=50, sigma=0):
        super(USMSharp, self).__init__()
        if radius % 2 == 0:
            radius += 1
        self.radius = radius
        kernel = get_gaussian_kernel(radius, sigma)
        kernel = torch.FloatTensor(np.dot(kernel, kernel.transpose())).unsqueeze_(0)
        self.register_buffer('kernel', kernel)

    def forward(self, img, weight=0.5, threshold=10):
        blur = filter2D(img, self.kernel)
        residual = img - blur
        mask = torch.abs(residual) * 255 > threshold
        mask = mask.float()
        soft_mask = filter2D(mask, self.kernel)
        sharp = img + weight * residual
        sharp = torch.clip(sharp, 0, 1)
        return soft_mask * sharp + (1 - soft_mask) * img


# ---------------------------------------------------------------- RealESRGANModel.feed_data + optimize_parameters


def optimize_parameters(net_g, net_d, net_g_ema, optimizer_g, optimizer_d, usm_sharpener, cri_pix_weight,
                        cri_perceptual, cri_gan, ema_decay, lq, gt):
    """``RealESRGANModel.feed_data``'s non-degrading branch and ``optimize_parameters`` (module docstring) on NCHW
    ``lq``/``gt``, then ``model_ema``; returns the logged terms as tensors. Its ``optimize_parameters`` is
    ``SRGANModel``'s with the USM-sharpened GT as the pixel and perceptual targets
    (``torch_sr_gan.srgan_optimize_parameters``)."""
    gt_usm = usm_sharpener(gt)  # feed_data (paired branch)
    # l1_gt_usm / percep_gt_usm True, gan_gt_usm False
    return srgan_optimize_parameters(net_g, net_d, net_g_ema, optimizer_g, optimizer_d, cri_pix_weight, cri_perceptual,
                                     cri_gan, ema_decay, lq, gt, l1_gt=gt_usm, percep_gt=gt_usm)


def main():
    args = parse()
    case = load_case(args.case)
    net_g = RRDBNet(3, 3, scale=hp(case, "scale"), num_feat=hp(case, "num_feat"), num_block=hp(case, "num_block"),
                    num_grow_ch=hp(case, "num_grow_ch"))
    net_g.load_state_dict(state_dict(case, "generator"), strict=True)
    net_d = UNetDiscriminatorSN(3, num_feat=hp(case, "d_num_feat"), skip_connection=True)
    net_d.load_state_dict(state_dict(case, "discriminator"), strict=True)
    ema_decay = hp(case, "ema_decay")
    net_g_ema = copy.deepcopy(net_g)
    net_g_ema.eval()
    net_g.train()
    net_d.train()
    usm_sharpener = USMSharp()
    cri_pix_weight = hp(case, "pix_weight")
    cri_perceptual = PerceptualLoss(layer_weights(case), vgg_state(case), perceptual_weight=hp(case, "percep_weight"),
                                    criterion='l1')
    cri_gan = GANLoss('vanilla', 1.0, 0.0, loss_weight=hp(case, "gan_weight"))
    optimizer_g, optimizer_d, schedulers = optimizers(case, net_g, net_d)
    terms = ("l_g_pix", "l_g_percep", "l_g_gan", "l_g_total", "l_d_total", "out_d_real", "out_d_fake")
    losses = {t: [] for t in terms}
    for i in range(hp(case, "steps")):
        current_iter = i + 1
        update_learning_rate(schedulers, current_iter)
        values = optimize_parameters(net_g, net_d, net_g_ema, optimizer_g, optimizer_d, usm_sharpener, cri_pix_weight,
                                     cri_perceptual, cri_gan, ema_decay, batch(case, "lr", i), batch(case, "hr", i))
        for t in terms:
            losses[t].append(float(values[t].item()))
    out = {}
    export(out, "generator", net_g)
    export(out, "generator_ema", net_g_ema)
    export(out, "discriminator", net_d)
    out = {k: v for k, v in out.items() if not k.endswith(".weight_v")}  # derived (see trainer_real_sr_gan.py)
    save(args.out, losses, out)


if __name__ == "__main__":
    main()
