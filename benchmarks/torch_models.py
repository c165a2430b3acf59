"""PyTorch twins of the benchmarked networks (benchmark-only; torch is never a jaxgen dependency).

Layer layouts follow the official code, so the parameter counts equal jaxgen's (checked by compare_torch.py):

* ``EDSR`` -- EDSR-PyTorch ``src/model/edsr.py`` + ``common.py`` (MeanShift as constants, head conv, ResBlocks
  ``conv-relu-conv``, body conv + global skip, ``Upsampler`` conv + ``PixelShuffle``, tail conv).
* ``RRDBNet`` -- BasicSR ``basicsr/archs/rrdbnet_arch.py`` (scale 4: no pixel-unshuffle).
* ``TransformerNet`` -- pytorch/examples ``fast_neural_style/neural_style/transformer_net.py`` (Johnson et al.
  2016 with instance norm and nearest-upsample convs; reflection padding).
* ``resnet_generator`` / ``unet_generator`` -- junyanz/pytorch-CycleGAN-and-pix2pix ``models/networks.py``
  ``ResnetGenerator`` (``resnet_9blocks``, ``norm='instance'``) and ``UnetGenerator`` (``unet_256``,
  ``norm='batch'`` in training mode), as re-created in ``tools/translation_goldens.py`` (whose forwards the
  everyday tests check against jaxgen's); no dropout, as the jax side of the benchmark.
* ``CycleGAN`` -- the whole training iteration of ``models/cycle_gan_model.py`` (``optimize_parameters``: the
  generators' step with the discriminators frozen, then both discriminators on pooled fakes; LSGAN, lambda_A =
  lambda_B = 10, identity 0.5, Adam(2e-4, 0.5, 0.999)) at commit 032e88438b1b2690e538c2cf399ebceb76adbea9, as
  ``tools/parity/torch_cyclegan.py`` copies it (``optimize_parameters``, which the parity harness checks jaxgen's
  step against, step by step).

The whole-iteration twins (``CycleGAN``, ``SRGAN`` and its subclasses, ``FastStyle``, ``Pix2Pix``, ``AdaIN``) run
the official step through ``step()``; ``networks()`` lists the modules that step runs forward, which
``compare_torch.py``'s ``torch:compile`` worker compiles in place (``nn.Module.compile``).
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
import math
import random
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def _script(path: str):
    """A script under ``tools/`` (not a package), loaded as a module."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, Path(__file__).resolve().parents[1] / "tools" / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _translation_goldens():
    """``tools/translation_goldens.py``: the official translation layouts in PyTorch."""
    return _script("translation_goldens.py")


def conv3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1)


class ResBlock(nn.Module):
    def __init__(self, c: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3(c, c), nn.ReLU(inplace=True), conv3(c, c))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.res_scale


class EDSR(nn.Module):
    """EDSR-baseline by default (16 blocks, 64 features): 1,369,859 parameters at x2."""

    def __init__(self, scale: int = 2, num_feat: int = 64, num_blocks: int = 16) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1))
        self.head = conv3(3, num_feat)
        self.body = nn.Sequential(*[ResBlock(num_feat) for _ in range(num_blocks)], conv3(num_feat, num_feat))
        ups: list[nn.Module] = []
        for _ in range(int(math.log2(scale))):
            ups += [conv3(num_feat, 4 * num_feat), nn.PixelShuffle(2)]
        self.tail = nn.Sequential(*ups, conv3(num_feat, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x - self.mean)
        x = self.body(x) + x
        return self.tail(x) + self.mean


class CALayer(nn.Module):
    """RCAN's channel attention (yulunzhang/RCAN ``RCAN_TrainCode/code/model/rcan.py`` ``CALayer``)."""

    def __init__(self, c: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(nn.Conv2d(c, c // reduction, 1), nn.ReLU(inplace=True),
                                     nn.Conv2d(c // reduction, c, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(self.avg_pool(x))


class RCAB(nn.Module):
    def __init__(self, c: int, reduction: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3(c, c), nn.ReLU(inplace=True), conv3(c, c), CALayer(c, reduction))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class ResidualGroup(nn.Module):
    def __init__(self, c: int, num_blocks: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*[RCAB(c) for _ in range(num_blocks)], conv3(c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class RCAN(EDSR):
    """RCAN (the official ``rcan.py``'s layout): EDSR's mean shift, head and tail around 10 groups x 20 RCABs, 64
    features, reduction 16."""

    def __init__(self, scale: int = 2, num_feat: int = 64, num_groups: int = 10, num_blocks: int = 20) -> None:
        super().__init__(scale, num_feat, num_blocks=0)
        self.body = nn.Sequential(*[ResidualGroup(num_feat, num_blocks) for _ in range(num_groups)],
                                  conv3(num_feat, num_feat))


class ResidualDenseBlock(nn.Module):
    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = conv3(num_feat, num_grow_ch)
        self.conv2 = conv3(num_feat + num_grow_ch, num_grow_ch)
        self.conv3 = conv3(num_feat + 2 * num_grow_ch, num_grow_ch)
        self.conv4 = conv3(num_feat + 3 * num_grow_ch, num_grow_ch)
        self.conv5 = conv3(num_feat + 4 * num_grow_ch, num_feat)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN generator at x4: 16,697,987 parameters with the defaults."""

    def __init__(self, num_feat: int = 64, num_blocks: int = 23, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv_first = conv3(3, num_feat)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_blocks)])
        self.conv_body = conv3(num_feat, num_feat)
        self.conv_up1 = conv3(num_feat, num_feat)
        self.conv_up2 = conv3(num_feat, num_feat)
        self.conv_hr = conv3(num_feat, num_feat)
        self.conv_last = conv3(num_feat, 3)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


class ConvLayer(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(k // 2)
        self.conv2d = nn.Conv2d(cin, cout, k, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.pad(x))


class StyleResidualBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.in1 = ConvLayer(c, c, 3, 1), nn.InstanceNorm2d(c, affine=True)
        self.conv2, self.in2 = ConvLayer(c, c, 3, 1), nn.InstanceNorm2d(c, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.in1(self.conv1(x)))
        return self.in2(self.conv2(out)) + x


class UpsampleConvLayer(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, upsample: int) -> None:
        super().__init__()
        self.upsample = upsample
        self.conv = ConvLayer(cin, cout, k, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, mode="nearest", scale_factor=self.upsample))


class TransformerNet(nn.Module):
    """Johnson et al. fast style network (pytorch/examples): 1,679,235 parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.in1 = ConvLayer(3, 32, 9, 1), nn.InstanceNorm2d(32, affine=True)
        self.conv2, self.in2 = ConvLayer(32, 64, 3, 2), nn.InstanceNorm2d(64, affine=True)
        self.conv3, self.in3 = ConvLayer(64, 128, 3, 2), nn.InstanceNorm2d(128, affine=True)
        self.res = nn.Sequential(*[StyleResidualBlock(128) for _ in range(5)])
        self.deconv1, self.in4 = UpsampleConvLayer(128, 64, 3, 2), nn.InstanceNorm2d(64, affine=True)
        self.deconv2, self.in5 = UpsampleConvLayer(64, 32, 3, 2), nn.InstanceNorm2d(32, affine=True)
        self.deconv3 = ConvLayer(32, 3, 9, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.in1(self.conv1(x)))
        y = F.relu(self.in2(self.conv2(y)))
        y = F.relu(self.in3(self.conv3(y)))
        y = self.res(y)
        y = F.relu(self.in4(self.deconv1(y)))
        y = F.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


class CycleGAN:
    """The official CycleGAN iteration (module doc; ``tools/parity/torch_cyclegan.optimize_parameters`` with its
    ``ImagePool`` on Python's ``random`` and ``GANLoss('lsgan')``) on ``resnet_9blocks`` generators and
    ``n_layers=3`` PatchGANs with instance norm."""

    def __init__(self, pool_size: int = 50):
        tg, self.official = _translation_goldens(), _script("parity/torch_cyclegan.py")
        self.nets = dict(zip(self.official.PLAYERS, (tg.ResnetG(64, 9), tg.ResnetG(64, 9),
                                                     tg.patchgan(3, 64, 3, "instance"),
                                                     tg.patchgan(3, 64, 3, "instance"))))
        adam = lambda *names: torch.optim.Adam(itertools.chain(*(self.nets[k].parameters() for k in names)),
                                               lr=2e-4, betas=(0.5, 0.999))
        self.opt_G, self.opt_D = adam("G_A", "G_B"), adam("D_A", "D_B")
        self.pools = [self.official.ImagePool(pool_size, random) for _ in range(2)]
        self.criterion = self.official.GANLoss("lsgan")

    def parameters(self):
        return itertools.chain(*(n.parameters() for n in self.nets.values()))

    def networks(self) -> list[nn.Module]:
        return list(self.nets.values())

    def step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        """One iteration on NCHW batches in [-1, 1]; lambda_A = lambda_B = 10, identity 0.5 (official defaults)."""
        return self.official.optimize_parameters(self.nets, self.opt_G, self.opt_D, *self.pools, self.criterion,
                                                 0.5, 10.0, 10.0, real_A, real_B)


class SRGAN:
    """The official SRGAN iteration as BasicSR trains it (``tools/parity/torch_sr_gan.srgan_optimize_parameters``:
    ``SRGANModel`` at 8d56e3a), as ``configs/srgan.py:basicsr`` sets it (``train_MSRGAN_x4.yml``): MSRResNet x4
    (16 blocks, LeakyReLU 0.1; ``tools/make_weight_goldens.MSRResNet``, BasicSR's layout), the VGG-style
    discriminator on 128 px, VGG19 ``conv5_4`` L1 perceptual loss (torchvision's ``vgg19().features``, random
    weights: the timing does not depend on them), pixel L1 0.01, vanilla GAN 0.005, Adam(0.9, 0.99) 1e-4 for both
    players, EMA 0.999. The subclasses change the script, the players, the loss weights and the step."""

    script = "parity/torch_sr_gan.py"  # the official re-creation the players, losses and step come from
    layers = {"conv5_4": 1.0}  # the perceptual loss's VGG19 layers
    pix_weight, gan_weight = 0.01, 5e-3

    def __init__(self):
        self.official = _script(self.script)
        self.net_g, self.net_d = self.generator(), self.discriminator()
        self.net_g_ema = copy.deepcopy(self.net_g).eval()
        vgg = {f"features.{k}": v for k, v in torchvision.models.vgg19(weights=None).features[:35].state_dict().items()}
        self.percep = self.official.PerceptualLoss(dict(self.layers), vgg, perceptual_weight=1.0, criterion="l1")
        self.gan = self.official.GANLoss("vanilla", 1.0, 0.0, loss_weight=self.gan_weight)
        adam = lambda net: torch.optim.Adam(net.parameters(), 1e-4, betas=(0.9, 0.99))
        self.opt_g, self.opt_d = adam(self.net_g), adam(self.net_d)

    def generator(self) -> nn.Module:
        return _script("make_weight_goldens.py").MSRResNet(upscale=4)

    def discriminator(self) -> nn.Module:
        return self.official.VGGStyleDiscriminator(3, 64, input_size=128)

    def parameters(self):
        return itertools.chain(self.net_g.parameters(), self.net_d.parameters())

    def networks(self) -> list[nn.Module]:
        return [self.net_g, self.net_d, self.percep]  # net_g_ema runs no forward in a step

    def step(self, lq: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
        """One iteration on NCHW batches in [0, 1] (LR 32 px, HR 128 px)."""
        return self.official.srgan_optimize_parameters(self.net_g, self.net_d, self.net_g_ema, self.opt_g, self.opt_d,
                                                       self.pix_weight, self.percep, self.gan, 0.999, lq, gt)


class ESRGAN(SRGAN):
    """The official ESRGAN GAN-stage iteration (``tools/parity/torch_sr_gan.optimize_parameters``: BasicSR's
    ``ESRGANModel`` at 8d56e3a) as ``configs/esrgan.py`` sets it: :class:`SRGAN`'s discriminator, losses,
    optimizers and EMA with RRDBNet x4 (23 blocks) for the generator and the relativistic GAN terms (the same
    weight, 0.005)."""

    def generator(self) -> nn.Module:
        return self.official.RRDBNet(3, 3, scale=4)

    def step(self, lq: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
        """One iteration on NCHW batches in [0, 1] (LR 32 px, HR 128 px)."""
        return self.official.optimize_parameters(self.net_g, self.net_d, self.net_g_ema, self.opt_g, self.opt_d,
                                                 self.pix_weight, self.percep, self.gan, 0.999, lq, gt)


class RealESRGAN(SRGAN):
    """The official Real-ESRGAN iteration with its degradation bypassed (``tools/parity/torch_real_sr_gan.
    optimize_parameters``: ``RealESRGANModel.feed_data``'s paired branch -- ``lq`` given, USM-sharpened ``gt`` --
    and ``optimize_parameters`` at a4abfb2) as ``configs/realesrgan.py`` sets the GAN stage: RRDBNet x4 (23
    blocks), the spectral-norm U-Net discriminator (64 features, skips), VGG19 perceptual L1 on conv1_2 0.1,
    conv2_2 0.1, conv3_4 / conv4_4 / conv5_4 1 (torchvision's layers, random weights), pixel L1 1.0 on the USM
    GT, vanilla GAN 0.1 on the plain GT, and :class:`SRGAN`'s optimizers and EMA. The second-order degradation is
    not in the twin: jaxgen's side bypasses it too (``compare_torch.py``); its own cost is
    ``degradation_cost.py``'s."""

    script = "parity/torch_real_sr_gan.py"
    layers = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}
    pix_weight, gan_weight = 1.0, 0.1

    def __init__(self):
        super().__init__()
        self.usm = self.official.USMSharp()

    def generator(self) -> nn.Module:
        return self.official.RRDBNet(3, 3, scale=4)

    def discriminator(self) -> nn.Module:
        return self.official.UNetDiscriminatorSN(3, num_feat=64, skip_connection=True)

    def step(self, lq: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
        """One iteration on NCHW batches in [0, 1] (LR and its x4 HR)."""
        return self.official.optimize_parameters(self.net_g, self.net_d, self.net_g_ema, self.opt_g, self.opt_d,
                                                 self.usm, self.pix_weight, self.percep, self.gan, 0.999, lq, gt)


class FastStyle:
    """The official fast-style iteration (``tools/parity/torch_fast_style.train_step``: pytorch/examples
    ``fast_neural_style`` at 77f55b9) as ``configs/fast_style.py`` sets it: TransformerNet (32 channels, 5
    residual blocks), VGG16 to relu4_3 (torchvision's layers, random weights: the timing does not depend on them),
    content at relu2_2 x 1e5, four style Grams x 1e10, Adam 1e-3."""

    def __init__(self, batch: int, side: int):
        official = _script("parity/torch_fast_style.py")
        self.official = official
        self.net = official.TransformerNet(32, 5).train()
        self.vgg = official.Vgg16(torchvision.models.vgg16(weights=None).features[:23], requires_grad=False)
        style = torch.rand(1, 3, side, side).mul(255).repeat(batch, 1, 1, 1)
        with torch.no_grad():
            self.gram_style = [official.gram_matrix(y) for y in self.vgg(official.normalize_batch(style))]
        self.opt, self.mse = torch.optim.Adam(self.net.parameters(), 1e-3), torch.nn.MSELoss()

    def parameters(self):
        return self.net.parameters()

    def networks(self) -> list[nn.Module]:
        return [self.net, self.vgg]

    def step(self, x: torch.Tensor):
        """One iteration on an NCHW batch in [0, 255]."""
        return self.official.train_step(self.net, self.opt, self.vgg, self.mse, self.gram_style, 1e5, 1e10, x)


class Pix2Pix:
    """The official pix2pix iteration (``tools/parity/torch_pix2pix.optimize_parameters``:
    junyanz/pytorch-CycleGAN-and-pix2pix ``Pix2PixModel``) as ``configs/pix2pix.py`` sets it: ``unet_256`` with
    batch norm and dropout, the batch-norm PatchGAN (n_layers 3) on the 6-channel pairs, vanilla GAN, L1 x 100,
    Adam 2e-4 (0.5, 0.999)."""

    def __init__(self):
        tg, self.official = _translation_goldens(), _script("parity/torch_pix2pix.py")
        self.netG, self.netD = tg.unet(8, 64, "batch", dropout=True).train(), tg.patchgan(6, 64, 3, "batch").train()
        adam = lambda net: torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_G, self.opt_D = adam(self.netG), adam(self.netD)
        self.gan, self.l1 = self.official.GANLoss("vanilla"), torch.nn.L1Loss()

    def parameters(self):
        return itertools.chain(self.netG.parameters(), self.netD.parameters())

    def networks(self) -> list[nn.Module]:
        return [self.netG, self.netD]

    def step(self, real_A: torch.Tensor, real_B: torch.Tensor):
        """One iteration on NCHW batches in [-1, 1]."""
        return self.official.optimize_parameters(self.netG, self.netD, self.opt_G, self.opt_D, self.gan, self.l1,
                                                 100.0, real_A, real_B)


class AdaIN:
    """The official AdaIN training iteration (``tools/parity/torch_adain.train_step``: naoto0804/pytorch-AdaIN at
    47950d0, ``train.py``'s loop body) as ``configs/adain.py`` sets it: the VGG19 encoder to relu4_1 (random
    weights: the timing does not depend on them), the 256/128/64 decoder, content weight 1, style 10, Adam 1e-4
    on the decoder."""

    def __init__(self):
        official = _script("parity/torch_adain.py")
        self.official = official
        self.network = official.Net(official.vgg, official.make_decoder()).train()
        self.opt = torch.optim.Adam(self.network.decoder.parameters(), lr=1e-4)

    def parameters(self):
        return self.network.decoder.parameters()

    def networks(self) -> list[nn.Module]:
        return [self.network]

    def step(self, content: torch.Tensor, style: torch.Tensor):
        """One iteration on NCHW batches in [0, 1]."""
        return self.official.train_step(self.network, self.opt, content, style, 1.0, 10.0)


def build(name: str, scale: int) -> nn.Module:
    if name == "edsr":
        return EDSR(scale)
    if name == "rrdbnet":
        if scale != 4:
            raise ValueError("the RRDBNet twin is x4 only")
        return RRDBNet()
    if name == "rcan":
        return RCAN(scale)
    if name == "transformer_net":
        return TransformerNet()
    if name == "resnet_generator":
        return _translation_goldens().ResnetG(64, 9, "instance")
    if name == "unet_generator":
        return _translation_goldens().unet(8, 64, "batch", dropout=False)
    raise ValueError(f"unknown benchmark network {name!r}")
