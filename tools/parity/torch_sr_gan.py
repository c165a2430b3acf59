"""Torch side of parity plug-in ``sr_gan``: BasicSR's ``ESRGANModel`` training step, re-created from the official
files (XPixelGroup/BasicSR at commit 8d56e3a045f9fb3e1d8872f92ee4a4f07f886b0a):

* ``basicsr/archs/rrdbnet_arch.py`` ``ResidualDenseBlock``, ``RRDB``, ``RRDBNet`` (copied below; init skipped:
  the weights come from the case);
* ``basicsr/archs/discriminator_arch.py`` ``VGGStyleDiscriminator`` (copied below);
* ``basicsr/archs/vgg_arch.py`` ``VGGFeatureExtractor`` (copied below; torchvision's ``vgg19().features``
  with the case's frozen weights instead of the ImageNet file: parity needs identical weights, not trained ones);
* ``basicsr/losses/basic_loss.py`` ``L1Loss``, ``PerceptualLoss``; ``basicsr/losses/gan_loss.py`` ``GANLoss``
  (``vanilla`` = ``BCEWithLogitsLoss``; ``loss_weight`` only for the generator) -- copied below;
* ``basicsr/models/esrgan_model.py`` ``ESRGANModel.optimize_parameters`` (G with D frozen: relativistic loss on
  ``D(gt).detach()`` and ``D(output)``; then D: ``D(output).detach()``, ``D(gt)``, ``D(output.detach())`` with the
  opposite means detached, two backward passes, one step; then EMA), ``srgan_model.py`` ``setup_optimizers``;
  ``base_model.py`` ``update_learning_rate``, ``model_ema``; ``lr_scheduler.py`` ``MultiStepRestartLR``;
* ``srgan_model.py`` ``SRGANModel.optimize_parameters`` (:func:`srgan_optimize_parameters`: the benchmarks'
  SRGAN twin, ``benchmarks/torch_models.SRGAN``, and ``torch_real_sr_gan.py``'s step with its USM targets).

    python torch_sr_gan.py --case CASE.npz --out OUT.npz
"""

from __future__ import annotations

import copy
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn as nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from torch_sr import (MultiStepRestartLR, adam, batch, export, hp, load_case, make_layer, model_ema,  # noqa: E402
                      parse, save, state_dict, update_learning_rate)


# ---------------------------------------------------------------- basicsr/archs/rrdbnet_arch.py (8d56e3a)


class ResidualDenseBlock(nn.Module):
    def __init__(self, num_feat=64, num_grow_ch=32):
        super(ResidualDenseBlock, self).__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, num_feat, num_grow_ch=32):
        super(RRDB, self).__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x):
        out = self.rdb1(x)
        out = self.rdb2(out)
        out = self.rdb3(out)
        return out * 0.2 + x


class RRDBNet(nn.Module):
    def __init__(self, num_in_ch, num_out_ch, scale=4, num_feat=64, num_block=23, num_grow_ch=32):
        super(RRDBNet, self).__init__()
        self.scale = scale
        assert scale == 4, "the parity cases use x4 (no pixel_unshuffle)"
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = make_layer(RRDB, num_block, num_feat=num_feat, num_grow_ch=num_grow_ch)
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        feat = x
        feat = self.conv_first(feat)
        body_feat = self.conv_body(self.body(feat))
        feat = feat + body_feat
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode='nearest')))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode='nearest')))
        out = self.conv_last(self.lrelu(self.conv_hr(feat)))
        return out


# ---------------------------------------------------------------- basicsr/archs/discriminator_arch.py (8d56e3a)


class VGGStyleDiscriminator(nn.Module):
    def __init__(self, num_in_ch, num_feat, input_size=128):
        super(VGGStyleDiscriminator, self).__init__()
        self.input_size = input_size
        assert self.input_size == 128 or self.input_size == 256
        self.conv0_0 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(num_feat, num_feat, 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(num_feat, affine=True)
        self.conv1_0 = nn.Conv2d(num_feat, num_feat * 2, 3, 1, 1, bias=False)
        self.bn1_0 = nn.BatchNorm2d(num_feat * 2, affine=True)
        self.conv1_1 = nn.Conv2d(num_feat * 2, num_feat * 2, 4, 2, 1, bias=False)
        self.bn1_1 = nn.BatchNorm2d(num_feat * 2, affine=True)
        self.conv2_0 = nn.Conv2d(num_feat * 2, num_feat * 4, 3, 1, 1, bias=False)
        self.bn2_0 = nn.BatchNorm2d(num_feat * 4, affine=True)
        self.conv2_1 = nn.Conv2d(num_feat * 4, num_feat * 4, 4, 2, 1, bias=False)
        self.bn2_1 = nn.BatchNorm2d(num_feat * 4, affine=True)
        self.conv3_0 = nn.Conv2d(num_feat * 4, num_feat * 8, 3, 1, 1, bias=False)
        self.bn3_0 = nn.BatchNorm2d(num_feat * 8, affine=True)
        self.conv3_1 = nn.Conv2d(num_feat * 8, num_feat * 8, 4, 2, 1, bias=False)
        self.bn3_1 = nn.BatchNorm2d(num_feat * 8, affine=True)
        self.conv4_0 = nn.Conv2d(num_feat * 8, num_feat * 8, 3, 1, 1, bias=False)
        self.bn4_0 = nn.BatchNorm2d(num_feat * 8, affine=True)
        self.conv4_1 = nn.Conv2d(num_feat * 8, num_feat * 8, 4, 2, 1, bias=False)
        self.bn4_1 = nn.BatchNorm2d(num_feat * 8, affine=True)
        if self.input_size == 256:
            self.conv5_0 = nn.Conv2d(num_feat * 8, num_feat * 8, 3, 1, 1, bias=False)
            self.bn5_0 = nn.BatchNorm2d(num_feat * 8, affine=True)
            self.conv5_1 = nn.Conv2d(num_feat * 8, num_feat * 8, 4, 2, 1, bias=False)
            self.bn5_1 = nn.BatchNorm2d(num_feat * 8, affine=True)
        self.linear1 = nn.Linear(num_feat * 8 * 4 * 4, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        assert x.size(2) == self.input_size
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        feat = self.lrelu(self.bn1_0(self.conv1_0(feat)))
        feat = self.lrelu(self.bn1_1(self.conv1_1(feat)))
        feat = self.lrelu(self.bn2_0(self.conv2_0(feat)))
        feat = self.lrelu(self.bn2_1(self.conv2_1(feat)))
        feat = self.lrelu(self.bn3_0(self.conv3_0(feat)))
        feat = self.lrelu(self.bn3_1(self.conv3_1(feat)))
        feat = self.lrelu(self.bn4_0(self.conv4_0(feat)))
        feat = self.lrelu(self.bn4_1(self.conv4_1(feat)))
        if self.input_size == 256:
            feat = self.lrelu(self.bn5_0(self.conv5_0(feat)))
            feat = self.lrelu(self.bn5_1(self.conv5_1(feat)))
        feat = feat.view(feat.size(0), -1)
        feat = self.lrelu(self.linear1(feat))
        out = self.linear2(feat)
        return out


# ---------------------------------------------------------------- basicsr/archs/vgg_arch.py (8d56e3a)

NAMES_VGG19 = [
    'conv1_1', 'relu1_1', 'conv1_2', 'relu1_2', 'pool1', 'conv2_1', 'relu2_1', 'conv2_2', 'relu2_2', 'pool2',
    'conv3_1', 'relu3_1', 'conv3_2', 'relu3_2', 'conv3_3', 'relu3_3', 'conv3_4', 'relu3_4', 'pool3', 'conv4_1',
    'relu4_1', 'conv4_2', 'relu4_2', 'conv4_3', 'relu4_3', 'conv4_4', 'relu4_4', 'pool4', 'conv5_1', 'relu5_1',
    'conv5_2', 'relu5_2', 'conv5_3', 'relu5_3', 'conv5_4', 'relu5_4', 'pool5'
]


class VGGFeatureExtractor(nn.Module):
    """Official class; the only change: ``vgg_state`` (the case's ``features.N.*``) replaces the ImageNet file."""

    def __init__(self, layer_name_list, vgg_state, vgg_type='vgg19', use_input_norm=True, range_norm=False,
                 requires_grad=False, remove_pooling=False, pooling_stride=2):
        super(VGGFeatureExtractor, self).__init__()
        self.layer_name_list = layer_name_list
        self.use_input_norm = use_input_norm
        self.range_norm = range_norm
        self.names = NAMES_VGG19
        max_idx = 0
        for v in layer_name_list:
            idx = self.names.index(v)
            if idx > max_idx:
                max_idx = idx
        vgg_net = torchvision.models.vgg19(weights=None)
        features = vgg_net.features[:max_idx + 1]
        features.load_state_dict(OrderedDict((k[len("features."):], v) for k, v in vgg_state.items()), strict=True)
        modified_net = OrderedDict()
        for k, v in zip(self.names, features):
            if 'pool' in k:
                if remove_pooling:
                    continue
                else:
                    modified_net[k] = nn.MaxPool2d(kernel_size=2, stride=pooling_stride)
            else:
                modified_net[k] = v
        self.vgg_net = nn.Sequential(modified_net)
        if not requires_grad:
            self.vgg_net.eval()
            for param in self.parameters():
                param.requires_grad = False
        if self.use_input_norm:
            self.register_buffer('mean', torch.Tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
            self.register_buffer('std', torch.Tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x):
        if self.range_norm:
            x = (x + 1) / 2
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        output = {}
        for key, layer in self.vgg_net._modules.items():
            x = layer(x)
            if key in self.layer_name_list:
                output[key] = x.clone()
        return output


# ---------------------------------------------------------------- basicsr/losses/basic_loss.py, gan_loss.py


class PerceptualLoss(nn.Module):
    """Official ``PerceptualLoss`` (criterion 'l1'/'l2'; style term when ``style_weight > 0``)."""

    def __init__(self, layer_weights, vgg_state, vgg_type='vgg19', use_input_norm=True, range_norm=False,
                 perceptual_weight=1.0, style_weight=0., criterion='l1'):
        super(PerceptualLoss, self).__init__()
        self.perceptual_weight = perceptual_weight
        self.style_weight = style_weight
        self.layer_weights = layer_weights
        self.vgg = VGGFeatureExtractor(layer_name_list=list(layer_weights.keys()), vgg_state=vgg_state,
                                       vgg_type=vgg_type, use_input_norm=use_input_norm, range_norm=range_norm)
        self.criterion_type = criterion
        self.criterion = torch.nn.L1Loss() if criterion == 'l1' else torch.nn.MSELoss()

    def forward(self, x, gt):
        x_features = self.vgg(x)
        gt_features = self.vgg(gt.detach())
        if self.perceptual_weight > 0:
            percep_loss = 0
            for k in x_features.keys():
                percep_loss += self.criterion(x_features[k], gt_features[k]) * self.layer_weights[k]
            percep_loss *= self.perceptual_weight
        else:
            percep_loss = None
        if self.style_weight > 0:
            style_loss = 0
            for k in x_features.keys():
                style_loss += self.criterion(self._gram_mat(x_features[k]), self._gram_mat(
                    gt_features[k])) * self.layer_weights[k]
            style_loss *= self.style_weight
        else:
            style_loss = None
        return percep_loss, style_loss

    def _gram_mat(self, x):
        n, c, h, w = x.size()
        features = x.view(n, c, w * h)
        features_t = features.transpose(1, 2)
        gram = features.bmm(features_t) / (c * h * w)
        return gram


class GANLoss(nn.Module):
    """Official ``GANLoss`` for ``gan_type='vanilla'``."""

    def __init__(self, gan_type, real_label_val=1.0, fake_label_val=0.0, loss_weight=1.0):
        super(GANLoss, self).__init__()
        assert gan_type == 'vanilla'
        self.gan_type = gan_type
        self.loss_weight = loss_weight
        self.real_label_val = real_label_val
        self.fake_label_val = fake_label_val
        self.loss = nn.BCEWithLogitsLoss()

    def get_target_label(self, input, target_is_real):
        target_val = (self.real_label_val if target_is_real else self.fake_label_val)
        return input.new_ones(input.size()) * target_val

    def forward(self, input, target_is_real, is_disc=False):
        target_label = self.get_target_label(input, target_is_real)
        loss = self.loss(input, target_label)
        return loss if is_disc else loss * self.loss_weight


def vgg_state(case):
    return OrderedDict((k[len("frozen/vgg/"):], torch.from_numpy(np.ascontiguousarray(v)))
                       for k, v in case.items() if k.startswith("frozen/vgg/"))


def layer_weights(case):
    return dict(zip([str(n) for n in case["hp/layer_names"]], case["hp/layer_weights"].tolist()))


def optimizers(case, net_g, net_d):
    """``SRGANModel.setup_optimizers`` + ``setup_schedulers`` (MultiStepRestartLR for both)."""
    optimizer_g = adam(net_g, case)
    optimizer_d = adam(net_d, case, prefix="d_")
    milestones = [int(m) for m in hp(case, "milestones")]
    schedulers = [MultiStepRestartLR(o, milestones=milestones, gamma=hp(case, "gamma"))
                  for o in (optimizer_g, optimizer_d)]
    return optimizer_g, optimizer_d, schedulers


# ---------------------------------------------------------------- ESRGANModel.optimize_parameters


def generator_content_losses(net_g, net_d, optimizer_g, cri_pix_weight, cri_perceptual, lq, l1_gt, percep_gt):
    """The lines both ``ESRGANModel.optimize_parameters`` and ``SRGANModel.optimize_parameters`` (8d56e3a) open
    with: D frozen, G's gradients zeroed, ``output = net_g(lq)`` and its pixel (L1, ``cri_pix_weight``) and
    perceptual losses against ``l1_gt`` / ``percep_gt`` (NCHW, [0, 1]); returns ``(output, l_g_pix, l_g_percep,
    l_g_total)``, ``l_g_total`` their sum accumulated as the official code does (the GAN term is the caller's)."""
    for p in net_d.parameters():
        p.requires_grad = False
    optimizer_g.zero_grad()
    output = net_g(lq)
    l_g_total = 0
    l_g_pix = cri_pix_weight * F.l1_loss(output, l1_gt, reduction='mean')
    l_g_total += l_g_pix
    l_g_percep, l_g_style = cri_perceptual(output, percep_gt)
    l_g_total += l_g_percep
    return output, l_g_pix, l_g_percep, l_g_total


def optimize_parameters(net_g, net_d, net_g_ema, optimizer_g, optimizer_d, cri_pix_weight, cri_perceptual, cri_gan,
                        ema_decay, lq, gt):
    """``ESRGANModel.optimize_parameters`` (one iteration on NCHW ``lq``/``gt``) and ``model_ema``; returns the
    logged terms as tensors."""
    # optimize net_g
    output, l_g_pix, l_g_percep, l_g_total = generator_content_losses(net_g, net_d, optimizer_g, cri_pix_weight,
                                                                      cri_perceptual, lq, gt, gt)
    real_d_pred = net_d(gt).detach()
    fake_g_pred = net_d(output)
    l_g_real = cri_gan(real_d_pred - torch.mean(fake_g_pred), False, is_disc=False)
    l_g_fake = cri_gan(fake_g_pred - torch.mean(real_d_pred), True, is_disc=False)
    l_g_gan = (l_g_real + l_g_fake) / 2
    l_g_total += l_g_gan
    l_g_total.backward()
    optimizer_g.step()
    # optimize net_d
    for p in net_d.parameters():
        p.requires_grad = True
    optimizer_d.zero_grad()
    fake_d_pred = net_d(output).detach()
    real_d_pred = net_d(gt)
    l_d_real = cri_gan(real_d_pred - torch.mean(fake_d_pred), True, is_disc=True) * 0.5
    l_d_real.backward()
    fake_d_pred = net_d(output.detach())
    l_d_fake = cri_gan(fake_d_pred - torch.mean(real_d_pred.detach()), False, is_disc=True) * 0.5
    l_d_fake.backward()
    optimizer_d.step()
    if ema_decay > 0:
        model_ema(net_g, net_g_ema, decay=ema_decay)
    return dict(l_g_pix=l_g_pix, l_g_percep=l_g_percep, l_g_gan=l_g_gan, l_g_total=l_g_total,
                l_d_total=l_d_real + l_d_fake, out_d_real=torch.mean(real_d_pred.detach()),
                out_d_fake=torch.mean(fake_d_pred.detach()))


# ---------------------------------------------------------------- SRGANModel.optimize_parameters


def srgan_optimize_parameters(net_g, net_d, net_g_ema, optimizer_g, optimizer_d, cri_pix_weight, cri_perceptual,
                              cri_gan, ema_decay, lq, gt, l1_gt=None, percep_gt=None):
    """``SRGANModel.optimize_parameters`` (``basicsr/models/srgan_model.py`` at 8d56e3a; ``net_d_iters`` 1,
    ``net_d_init_iters`` 0: G every iteration) and ``model_ema``: G with D frozen on the plain GAN loss, then D on
    ``D(gt)`` and ``D(output.detach())``, two backward passes, one step; returns the logged terms as tensors.
    ``l1_gt`` / ``percep_gt`` (default ``gt``): the pixel and perceptual losses' targets -- Real-ESRGAN's
    ``RealESRGANModel.optimize_parameters`` (a4abfb2) is these lines with the USM-sharpened GT there (``gt`` for D,
    ``gan_gt_usm: False``) and ``output.detach().clone()`` for D's fake pass (the same values)."""
    # optimize net_g
    output, l_g_pix, l_g_percep, l_g_total = generator_content_losses(
        net_g, net_d, optimizer_g, cri_pix_weight, cri_perceptual, lq, gt if l1_gt is None else l1_gt,
        gt if percep_gt is None else percep_gt)
    fake_g_pred = net_d(output)
    l_g_gan = cri_gan(fake_g_pred, True, is_disc=False)
    l_g_total += l_g_gan
    l_g_total.backward()
    optimizer_g.step()
    # optimize net_d
    for p in net_d.parameters():
        p.requires_grad = True
    optimizer_d.zero_grad()
    real_d_pred = net_d(gt)
    l_d_real = cri_gan(real_d_pred, True, is_disc=True)
    l_d_real.backward()
    fake_d_pred = net_d(output.detach())
    l_d_fake = cri_gan(fake_d_pred, False, is_disc=True)
    l_d_fake.backward()
    optimizer_d.step()
    if ema_decay > 0:
        model_ema(net_g, net_g_ema, decay=ema_decay)
    return dict(l_g_pix=l_g_pix, l_g_percep=l_g_percep, l_g_gan=l_g_gan, l_g_total=l_g_total,
                l_d_total=l_d_real + l_d_fake, out_d_real=torch.mean(real_d_pred.detach()),
                out_d_fake=torch.mean(fake_d_pred.detach()))


def main():
    args = parse()
    case = load_case(args.case)
    net_g = RRDBNet(3, 3, scale=hp(case, "scale"), num_feat=hp(case, "num_feat"), num_block=hp(case, "num_block"),
                    num_grow_ch=hp(case, "num_grow_ch"))
    net_g.load_state_dict(state_dict(case, "generator"), strict=True)
    net_d = VGGStyleDiscriminator(3, hp(case, "d_num_feat"), input_size=128)
    net_d.load_state_dict(state_dict(case, "discriminator"), strict=True)
    ema_decay = hp(case, "ema_decay")
    net_g_ema = copy.deepcopy(net_g)  # model_ema(0): copy net_g weight
    net_g_ema.eval()
    net_g.train()
    net_d.train()
    cri_pix_weight = hp(case, "pix_weight")  # L1Loss(loss_weight)
    cri_perceptual = PerceptualLoss(layer_weights(case), vgg_state(case), perceptual_weight=hp(case, "percep_weight"),
                                    criterion='l1')
    cri_gan = GANLoss('vanilla', 1.0, 0.0, loss_weight=hp(case, "gan_weight"))
    optimizer_g, optimizer_d, schedulers = optimizers(case, net_g, net_d)
    terms = ("l_g_pix", "l_g_percep", "l_g_gan", "l_g_total", "l_d_total", "out_d_real", "out_d_fake")
    losses = {t: [] for t in terms}
    for i in range(hp(case, "steps")):
        current_iter = i + 1
        update_learning_rate(schedulers, current_iter)
        lq, gt = batch(case, "lr", i), batch(case, "hr", i)
        values = optimize_parameters(net_g, net_d, net_g_ema, optimizer_g, optimizer_d, cri_pix_weight, cri_perceptual,
                                     cri_gan, ema_decay, lq, gt)
        for t in terms:
            losses[t].append(float(values[t].item()))
    out = {}
    export(out, "generator", net_g)
    export(out, "generator_ema", net_g_ema)
    export(out, "discriminator", net_d)
    save(args.out, losses, out)


if __name__ == "__main__":
    main()
