"""Golden files for ``tests/test_weights_*.py``: PyTorch re-creations of the official architectures, run on random
weights, plus torch.save files covering dtypes / views / formats.

Regenerate (PyTorch needed; run from the repository root)::

    /work/torchvenv/bin/python tools/make_weight_goldens.py            # writes tests/goldens/weights/

Check the export path (flax params -> .safetensors / .pth -> the official PyTorch EDSR) in one process that has
both jax and torch (same Python and numpy in both venvs here)::

    PYTHONPATH=$PWD:/work/torchvenv/lib/python3.11/site-packages /work/main/.venv/bin/python \\
        tools/make_weight_goldens.py --check-export

The modules below follow the official code's module names and forward passes (so ``state_dict()`` keys are the
official ones):

* ``SRVGGNetCompact``: github.com/xinntao/Real-ESRGAN ``realesrgan/archs/srvgg_arch.py``
* ``RRDBNet``, ``MSRResNet``, ``VGGStyleDiscriminator``: github.com/XPixelGroup/BasicSR ``basicsr/archs/
  rrdbnet_arch.py``, ``srresnet_arch.py``, ``discriminator_arch.py`` (+ ``arch_util.py``)
* ``EDSR``, ``RCAN``: github.com/sanghyun-son/EDSR-PyTorch ``src/model/edsr.py``, ``rcan.py``, ``common.py``
* ``NLayerDiscriminator``: github.com/junyanz/pytorch-CycleGAN-and-pix2pix ``models/networks.py``

Each ``<arch>.npz`` holds ``input`` / ``output`` (NHWC float32; the torch run is NCHW) and ``config`` (JSON: the
``jaxgen.models.build`` kwargs); ``<arch>.pth`` the random-weight state dict (torch zip format; ``rrdbnet.pth``
in the legacy format). Weights are PyTorch's default init with fixed seeds, PReLU slopes and BatchNorm affine
parameters randomised so that they matter. ``realesr_animevideov3.npz`` is the official SRVGGNetCompact with
``../shared/data/weights/realesr-animevideov3.pth`` on a 16x16 input (the weights are not copied).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "goldens" / "weights"
SHARED_WEIGHTS = ROOT.parent / "shared" / "data" / "weights" / "realesr-animevideov3.pth"


# ----------------------------------------------------------------------------------- Real-ESRGAN


class SRVGGNetCompact(nn.Module):
    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4, act_type="prelu"):
        super().__init__()
        self.upscale = upscale

        def act():
            if act_type == "relu":
                return nn.ReLU(inplace=True)
            if act_type == "prelu":
                return nn.PReLU(num_parameters=num_feat)
            return nn.LeakyReLU(negative_slope=0.1, inplace=True)

        self.body = nn.ModuleList([nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), act()])
        for _ in range(num_conv):
            self.body.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            self.body.append(act())
        self.body.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x):
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        return out + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


# ----------------------------------------------------------------------------------- BasicSR


class ResidualDenseBlock(nn.Module):
    def __init__(self, num_feat=64, num_grow_ch=32):
        super().__init__()
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
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


def pixel_unshuffle(x, scale):
    b, c, hh, hw = x.size()
    h, w = hh // scale, hw // scale
    x_view = x.view(b, c, h, scale, w, scale)
    return x_view.permute(0, 1, 3, 5, 2, 4).reshape(b, c * scale**2, h, w)


class RRDBNet(nn.Module):
    def __init__(self, num_in_ch, num_out_ch, scale=4, num_feat=64, num_block=23, num_grow_ch=32):
        super().__init__()
        self.scale = scale
        if scale == 2:
            num_in_ch = num_in_ch * 4
        elif scale == 1:
            num_in_ch = num_in_ch * 16
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        if self.scale == 2:
            feat = pixel_unshuffle(x, scale=2)
        elif self.scale == 1:
            feat = pixel_unshuffle(x, scale=4)
        else:
            feat = x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


class ResidualBlockNoBN(nn.Module):
    def __init__(self, num_feat=64, res_scale=1):
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=True)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=True)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return x + self.conv2(self.relu(self.conv1(x))) * self.res_scale


class MSRResNet(nn.Module):
    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, upscale=4):
        super().__init__()
        self.upscale = upscale
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[ResidualBlockNoBN(num_feat=num_feat) for _ in range(num_block)])
        if upscale in [2, 3]:
            self.upconv1 = nn.Conv2d(num_feat, num_feat * upscale * upscale, 3, 1, 1)
            self.pixel_shuffle = nn.PixelShuffle(upscale)
        elif upscale == 4:
            self.upconv1 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
            self.upconv2 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
            self.pixel_shuffle = nn.PixelShuffle(2)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)

    def forward(self, x):
        feat = self.lrelu(self.conv_first(x))
        out = self.body(feat)
        if self.upscale == 4:
            out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
            out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        else:
            out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        return out + F.interpolate(x, scale_factor=self.upscale, mode="bilinear", align_corners=False)


class VGGStyleDiscriminator(nn.Module):
    def __init__(self, num_in_ch, num_feat, input_size=128):
        super().__init__()
        self.input_size = input_size
        mults = [1, 2, 4, 8, 8] + ([8] if input_size == 256 else [])
        self.conv0_0 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(num_feat, num_feat, 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(num_feat, affine=True)
        for i in range(1, len(mults)):
            cin, cout = num_feat * mults[i - 1], num_feat * mults[i]
            setattr(self, f"conv{i}_0", nn.Conv2d(cin, cout, 3, 1, 1, bias=False))
            setattr(self, f"bn{i}_0", nn.BatchNorm2d(cout, affine=True))
            setattr(self, f"conv{i}_1", nn.Conv2d(cout, cout, 4, 2, 1, bias=False))
            setattr(self, f"bn{i}_1", nn.BatchNorm2d(cout, affine=True))
        self.num_stages = len(mults)
        self.linear1 = nn.Linear(num_feat * 8 * 4 * 4, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        for i in range(1, self.num_stages):
            feat = self.lrelu(getattr(self, f"bn{i}_0")(getattr(self, f"conv{i}_0")(feat)))
            feat = self.lrelu(getattr(self, f"bn{i}_1")(getattr(self, f"conv{i}_1")(feat)))
        feat = feat.view(feat.size(0), -1)
        return self.linear2(self.lrelu(self.linear1(feat)))


# ----------------------------------------------------------------------------------- EDSR-PyTorch


def default_conv(in_channels, out_channels, kernel_size, bias=True):
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class MeanShift(nn.Conv2d):
    def __init__(self, rgb_range, rgb_mean=(0.4488, 0.4371, 0.4040), rgb_std=(1.0, 1.0, 1.0), sign=-1):
        super().__init__(3, 3, kernel_size=1)
        std = torch.Tensor(rgb_std)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1) / std.view(3, 1, 1, 1)
        self.bias.data = sign * rgb_range * torch.Tensor(rgb_mean) / std
        for p in self.parameters():
            p.requires_grad = False


class ResBlock(nn.Module):
    def __init__(self, conv, n_feats, kernel_size, res_scale=1):
        super().__init__()
        self.body = nn.Sequential(conv(n_feats, n_feats, kernel_size), nn.ReLU(True), conv(n_feats, n_feats, kernel_size))
        self.res_scale = res_scale

    def forward(self, x):
        return self.body(x).mul(self.res_scale) + x


class Upsampler(nn.Sequential):
    def __init__(self, conv, scale, n_feats):
        m = []
        if (scale & (scale - 1)) == 0:
            for _ in range(int(math.log(scale, 2))):
                m += [conv(n_feats, 4 * n_feats, 3), nn.PixelShuffle(2)]
        elif scale == 3:
            m += [conv(n_feats, 9 * n_feats, 3), nn.PixelShuffle(3)]
        else:
            raise NotImplementedError
        super().__init__(*m)


class EDSR(nn.Module):
    def __init__(self, n_resblocks, n_feats, scale, rgb_range, res_scale, n_colors=3, conv=default_conv):
        super().__init__()
        self.sub_mean = MeanShift(rgb_range)
        self.add_mean = MeanShift(rgb_range, sign=1)
        self.head = nn.Sequential(conv(n_colors, n_feats, 3))
        body = [ResBlock(conv, n_feats, 3, res_scale=res_scale) for _ in range(n_resblocks)]
        self.body = nn.Sequential(*body, conv(n_feats, n_feats, 3))
        self.tail = nn.Sequential(Upsampler(conv, scale, n_feats), conv(n_feats, n_colors, 3))

    def forward(self, x):
        x = self.head(self.sub_mean(x))
        res = self.body(x) + x
        return self.add_mean(self.tail(res))


class CALayer(nn.Module):
    def __init__(self, channel, reduction=16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channel, channel // reduction, 1, padding=0, bias=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(channel // reduction, channel, 1, padding=0, bias=True),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return x * self.conv_du(self.avg_pool(x))


class RCAB(nn.Module):
    def __init__(self, conv, n_feat, kernel_size, reduction):
        super().__init__()
        self.body = nn.Sequential(
            conv(n_feat, n_feat, kernel_size), nn.ReLU(True), conv(n_feat, n_feat, kernel_size), CALayer(n_feat, reduction)
        )

    def forward(self, x):
        return self.body(x) + x  # official RCAB ignores res_scale


class ResidualGroup(nn.Module):
    def __init__(self, conv, n_feat, kernel_size, reduction, n_resblocks):
        super().__init__()
        blocks = [RCAB(conv, n_feat, kernel_size, reduction) for _ in range(n_resblocks)]
        self.body = nn.Sequential(*blocks, conv(n_feat, n_feat, kernel_size))

    def forward(self, x):
        return self.body(x) + x


class RCAN(nn.Module):
    def __init__(self, n_resgroups, n_resblocks, n_feats, reduction, scale, rgb_range, n_colors=3, conv=default_conv):
        super().__init__()
        self.sub_mean = MeanShift(rgb_range)
        self.head = nn.Sequential(conv(n_colors, n_feats, 3))
        groups = [ResidualGroup(conv, n_feats, 3, reduction, n_resblocks) for _ in range(n_resgroups)]
        self.body = nn.Sequential(*groups, conv(n_feats, n_feats, 3))
        self.tail = nn.Sequential(Upsampler(conv, scale, n_feats), conv(n_feats, n_colors, 3))
        self.add_mean = MeanShift(rgb_range, sign=1)

    def forward(self, x):
        x = self.head(self.sub_mean(x))
        res = self.body(x) + x
        return self.add_mean(self.tail(res))


# ----------------------------------------------------------------------------------- pix2pix / CycleGAN


class NLayerDiscriminator(nn.Module):
    """``norm_layer = InstanceNorm2d(affine=False, track_running_stats=False)`` (CycleGAN's ``--norm instance``),
    hence ``use_bias=True``."""

    def __init__(self, input_nc, ndf=64, n_layers=3):
        super().__init__()
        norm_layer = lambda c: nn.InstanceNorm2d(c, affine=False, track_running_stats=False)  # noqa: E731
        kw, padw = 4, 1
        sequence = [nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=2, padding=padw), nn.LeakyReLU(0.2, True)]
        nf_mult = 1
        for n in range(1, n_layers):
            nf_mult_prev, nf_mult = nf_mult, min(2**n, 8)
            sequence += [
                nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=2, padding=padw, bias=True),
                norm_layer(ndf * nf_mult),
                nn.LeakyReLU(0.2, True),
            ]
        nf_mult_prev, nf_mult = nf_mult, min(2**n_layers, 8)
        sequence += [
            nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=1, padding=padw, bias=True),
            norm_layer(ndf * nf_mult),
            nn.LeakyReLU(0.2, True),
        ]
        sequence += [nn.Conv2d(ndf * nf_mult, 1, kernel_size=kw, stride=1, padding=padw)]
        self.model = nn.Sequential(*sequence)

    def forward(self, x):
        return self.model(x)


# ----------------------------------------------------------------------------------- goldens


def randomise(module: nn.Module, seed: int) -> None:
    """PReLU slopes U(-0.5, 0.5) and BatchNorm affine params N(1, 0.2^2) / N(0, 0.1^2), so they matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.PReLU):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) - 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))


def nhwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().permute(0, 2, 3, 1).contiguous().numpy().astype(np.float32)


def save_case(name: str, module: nn.Module, x: torch.Tensor, config: dict, *, per_image: bool = False,
              in_scale: float = 1.0, legacy: bool = False) -> None:
    """Run ``module`` on ``x * in_scale`` and save ``output / in_scale`` (EDSR's ``rgb_range`` convention)."""
    with torch.no_grad():
        if per_image:  # BatchNorm in train mode on one image = per-image (instance) statistics
            module.train()
            y = torch.cat([module(x[i : i + 1] * in_scale) for i in range(x.shape[0])])
        else:
            module.eval()
            y = module(x * in_scale)
    y = y / in_scale
    out = nhwc(y) if y.ndim == 4 else y.numpy().astype(np.float32)
    torch.save(module.state_dict(), OUT / f"{name}.pth", _use_new_zipfile_serialization=not legacy)
    np.savez(OUT / f"{name}.npz", input=nhwc(x), output=out, config=np.array(json.dumps(config)))
    print(f"{name}: {sum(p.numel() for p in module.state_dict().values())} numbers, in {tuple(x.shape)} -> "
          f"out {tuple(y.shape)}, |out| max {float(y.abs().max()):.3g}")


def make_arch_goldens() -> None:
    torch.manual_seed(0)
    m = SRVGGNetCompact(3, 3, num_feat=8, num_conv=3, upscale=4, act_type="prelu")
    randomise(m, 1)
    save_case("srvgg_compact", m, torch.rand(2, 3, 8, 8),
              dict(scale=4, num_feat=8, num_conv=3, act="prelu"))

    torch.manual_seed(1)
    m = RRDBNet(3, 3, scale=2, num_feat=8, num_block=2, num_grow_ch=4)
    save_case("rrdbnet", m, torch.rand(2, 3, 8, 8), dict(scale=2, num_feat=8, num_blocks=2, num_grow_ch=4),
              legacy=True)

    torch.manual_seed(2)
    m = MSRResNet(3, 3, num_feat=8, num_block=2, upscale=4)
    save_case("srresnet", m, torch.rand(2, 3, 8, 8), dict(scale=4, num_feat=8, num_blocks=2))

    torch.manual_seed(3)
    m = EDSR(n_resblocks=2, n_feats=8, scale=4, rgb_range=255, res_scale=0.1)
    save_case("edsr", m, torch.rand(2, 3, 8, 8),
              dict(scale=4, num_feat=8, num_blocks=2, res_scale=0.1, img_range=255.0), in_scale=255.0)

    torch.manual_seed(4)
    m = RCAN(n_resgroups=2, n_resblocks=2, n_feats=8, reduction=4, scale=3, rgb_range=1)
    save_case("rcan", m, torch.rand(2, 3, 8, 8), dict(scale=3, num_feat=8, num_groups=2, num_blocks=2, reduction=4))

    torch.manual_seed(5)
    m = VGGStyleDiscriminator(1, num_feat=2, input_size=128)  # one channel, few features: a small golden
    randomise(m, 6)
    save_case("vgg_style", m, torch.rand(2, 1, 128, 128),
              dict(num_in_ch=1, num_feat=2, input_size=128, norm="instance"),
              per_image=True)

    torch.manual_seed(7)
    m = NLayerDiscriminator(3, ndf=4, n_layers=3)
    save_case("patchgan", m, torch.rand(2, 3, 64, 64), dict(ndf=4, n_layers=3, norm="instance"))


def make_format_goldens() -> None:
    """``torch_formats_{zip,legacy}.pth``: a BasicSR-style wrapper around tensors of every dense dtype, a
    transposed (non-contiguous) tensor, a view with a storage offset sharing ``base``'s storage, a 0-d and an
    empty tensor, a Parameter; ``torch_formats_expected.npz`` the arrays (bfloat16 stored as float32)."""
    g = torch.Generator().manual_seed(11)
    base = torch.randn(4, 3, generator=g)
    tensors = {
        "f32": torch.randn(3, 4, generator=g),
        "f64": torch.randn(2, generator=g, dtype=torch.float64),
        "f16": torch.randn(5, generator=g).half(),
        "bf16": torch.randn(2, 3, generator=g).bfloat16(),
        "i64": torch.arange(6).reshape(2, 3) - 3,
        "i32": torch.arange(4, dtype=torch.int32) * -7,
        "i16": torch.arange(3, dtype=torch.int16) + 300,
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 200, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "transposed": torch.randn(3, 4, generator=g).t(),
        "base": base,
        "view": base[1:3, 1:],
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
        "param": nn.Parameter(torch.randn(2, 2, generator=g)),
    }
    wrapped = {"params": {"other": torch.zeros(1)}, "params_ema": tensors, "iter": 7}
    torch.save(wrapped, OUT / "torch_formats_zip.pth")
    torch.save(wrapped, OUT / "torch_formats_legacy.pth", _use_new_zipfile_serialization=False)
    expected = {k: (v.detach().float() if v.dtype == torch.bfloat16 else v.detach()).numpy() for k, v in tensors.items()}
    dtypes = {k: str(v.dtype).replace("torch.", "") for k, v in tensors.items()}
    np.savez(OUT / "torch_formats_expected.npz", dtypes=np.array(json.dumps(dtypes)), **expected)
    print("torch_formats: ", ", ".join(f"{k}:{d}" for k, d in dtypes.items()))


def make_real_golden() -> None:
    if not SHARED_WEIGHTS.is_file():
        print(f"skipping realesr_animevideov3.npz: {SHARED_WEIGHTS} not found")
        return
    ckpt = torch.load(SHARED_WEIGHTS, map_location="cpu", weights_only=True)
    m = SRVGGNetCompact(3, 3, num_feat=64, num_conv=16, upscale=4, act_type="prelu")
    m.load_state_dict(ckpt["params"], strict=True)
    m.eval()
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(21))
    with torch.no_grad():
        y = m(x)
    np.savez(OUT / "realesr_animevideov3.npz", input=nhwc(x), output=nhwc(y),
             config=np.array(json.dumps(dict(scale=4, num_feat=64, num_conv=16, act="prelu"))))
    print(f"realesr_animevideov3: out {tuple(y.shape)} range [{float(y.min()):.3f}, {float(y.max()):.3f}]")


def check_export() -> int:
    """jaxgen EDSR (random init) -> flax_to_torch -> .safetensors and .pth -> official EDSR (strict load) -> output."""
    import tempfile

    import jax
    import safetensors.torch

    sys.path.insert(0, str(ROOT))
    from jaxgen.models import build
    from jaxgen.weights import flax_to_torch, save_state_dict

    cfg = dict(scale=2, num_feat=8, num_blocks=2, res_scale=0.1, img_range=255.0)
    model = build("edsr", **cfg)
    x = np.random.default_rng(0).uniform(size=(2, 12, 12, 3)).astype(np.float32)
    params = model.init(jax.random.key(3), x)["params"]
    y_jax = np.asarray(model.apply({"params": params}, x))
    state = flax_to_torch("edsr", params, model=model)
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for ext in (".safetensors", ".pth"):
            path = os.path.join(tmp, "edsr" + ext)
            save_state_dict(path, state)
            sd = safetensors.torch.load_file(path) if ext == ".safetensors" else torch.load(path, weights_only=True)
            net = EDSR(n_resblocks=2, n_feats=8, scale=2, rgb_range=255, res_scale=0.1)
            net.load_state_dict(sd, strict=True)
            net.eval()
            with torch.no_grad():
                y_torch = nhwc(net(torch.from_numpy(x).permute(0, 3, 1, 2) * 255) / 255)
            diff = float(np.abs(y_torch - y_jax).max())
            worst = max(worst, diff)
            print(f"export {ext}: {len(sd)} tensors, strict load ok, max |torch - jax| = {diff:.3g}")
    return 0 if worst <= 1e-4 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check-export", action="store_true", help="check flax -> torch export (needs jax + torch)")
    args = parser.parse_args()
    if args.check_export:
        return check_export()
    OUT.mkdir(parents=True, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    make_format_goldens()
    make_arch_goldens()
    make_real_golden()
    return 0


if __name__ == "__main__":
    sys.exit(main())
