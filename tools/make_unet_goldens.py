"""Golden outputs of the official waifu2x / Real-CUGAN PyTorch modules, for ``tests/test_zoo_sr_vulkan.py``.

Regenerate (PyTorch needed; from the repository root)::

    /work/torchvenv/bin/python tools/make_unet_goldens.py        # writes tests/goldens/weights/unet_*.npz

The modules are copied from the official code with their module names (so ``state_dict()`` keys are official):

* ``UpConv7``, ``UNet1``, ``UNet2``, ``CUNet``, ``UpCUNet``: github.com/nagadomi/nunif ``waifu2x/models/upconv_7.py``
  and ``cunet.py`` (commit 42437232134efb0a9a8a7deaecd9c4200e703b28), run without their final clamp (``_forward``,
  ``no_clip=True``) behind the replicate padding of github.com/nihui/waifu2x-ncnn-vulkan (7 / 28 / 18 pixels plus
  bottom/right pixels to a multiple of 2 or 4, then the top-left ``h*s x w*s`` crop);
* ``SEBlock``, ``UNetConv``, ``UNet1``, ``UNet1x3``, ``UNet2``, ``UpCunet{2,3,4}x``: github.com/bilibili/ailab
  ``Real-CUGAN/upcunet_v3.py`` (commit 3e37c6c8f4eb6b9cbb9b6f094905e4b7dd5b348a), ``forward`` with
  ``tile_mode=0``, returning the float result instead of ``(x * 255).round().byte()``; the ``pro`` case maps the
  input to ``x * 0.7 + 0.15`` (``RealWaifuUpScaler.np2tensor``) and the output back with ``(y - 0.15) / 0.7``.

The full-size networks have ~1.3M parameters, too many to commit as ``.pth``: the weights are drawn from
``numpy.random.default_rng(seed)`` in ``state_dict()`` key order (``standard_normal(shape) / sqrt(prod(shape[1:]))``
for weights, ``0.1 * standard_normal`` for biases), so the test re-creates the same state dict from the keys,
shapes and seed stored in the ``.npz`` (with ``input``, ``output`` NHWC float32 and ``config``: the
``jaxgen.models.build`` kwargs).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "goldens" / "weights"


# ----------------------------------------------------------------------------------- nunif (waifu2x)


class UpConv7(nn.Module):
    def __init__(self, in_channels=3, out_channels=3):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, 1, 0), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(16, 32, 3, 1, 0), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(32, 64, 3, 1, 0), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(64, 128, 3, 1, 0), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(128, 128, 3, 1, 0), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(128, 256, 3, 1, 0), nn.LeakyReLU(0.1, inplace=True),
            nn.ConvTranspose2d(256, out_channels, 4, 2, 3),
        )

    def forward(self, x):
        return self.net(x)


class SEBlock(nn.Module):  # upcunet_v3.py (nunif.modules.SEBlock has the same names and forward)
    def __init__(self, in_channels, reduction=8, bias=False):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels // reduction, 1, 1, 0, bias=bias)
        self.conv2 = nn.Conv2d(in_channels // reduction, in_channels, 1, 1, 0, bias=bias)

    def forward(self, x):
        x0 = torch.mean(x, dim=(2, 3), keepdim=True)
        x0 = self.conv1(x0)
        x0 = F.relu(x0, inplace=True)
        x0 = self.conv2(x0)
        x0 = torch.sigmoid(x0)
        return torch.mul(x, x0)


class UNetConv(nn.Module):
    def __init__(self, in_channels, mid_channels, out_channels, se):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, 3, 1, 0), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(mid_channels, out_channels, 3, 1, 0), nn.LeakyReLU(0.1, inplace=True),
        )
        self.seblock = SEBlock(out_channels, reduction=8, bias=True) if se else None

    def forward(self, x):
        z = self.conv(x)
        if self.seblock is not None:
            z = self.seblock(z)
        return z


class UNet1(nn.Module):
    def __init__(self, in_channels, out_channels, deconv, x3=False):
        super().__init__()
        self.conv1 = UNetConv(in_channels, 32, 64, se=False)
        self.conv1_down = nn.Conv2d(64, 64, 2, 2, 0)
        self.conv2 = UNetConv(64, 128, 64, se=True)
        self.conv2_up = nn.ConvTranspose2d(64, 64, 2, 2, 0)
        self.conv3 = nn.Conv2d(64, 64, 3, 1, 0)
        if deconv:  # UNet1x3 of upcunet_v3.py differs only here
            self.conv_bottom = (nn.ConvTranspose2d(64, out_channels, 5, 3, 2) if x3 else
                                nn.ConvTranspose2d(64, out_channels, 4, 2, 3))
        else:
            self.conv_bottom = nn.Conv2d(64, out_channels, 3, 1, 0)

    def forward(self, x):
        x1 = self.conv1(x)
        x2 = self.conv1_down(x1)
        x1 = F.pad(x1, (-4, -4, -4, -4))
        x2 = F.leaky_relu(x2, 0.1, inplace=True)
        x2 = self.conv2(x2)
        x2 = self.conv2_up(x2)
        x2 = F.leaky_relu(x2, 0.1, inplace=True)
        x3 = self.conv3(x1 + x2)
        x3 = F.leaky_relu(x3, 0.1, inplace=True)
        return self.conv_bottom(x3)


class UNet2(nn.Module):
    def __init__(self, in_channels, out_channels, deconv):
        super().__init__()
        self.conv1 = UNetConv(in_channels, 32, 64, se=False)
        self.conv1_down = nn.Conv2d(64, 64, 2, 2, 0)
        self.conv2 = UNetConv(64, 64, 128, se=True)
        self.conv2_down = nn.Conv2d(128, 128, 2, 2, 0)
        self.conv3 = UNetConv(128, 256, 128, se=True)
        self.conv3_up = nn.ConvTranspose2d(128, 128, 2, 2, 0)
        self.conv4 = UNetConv(128, 64, 64, se=True)
        self.conv4_up = nn.ConvTranspose2d(64, 64, 2, 2, 0)
        self.conv5 = nn.Conv2d(64, 64, 3, 1, 0)
        self.conv_bottom = nn.Conv2d(64, out_channels, 3, 1, 0)

    def forward(self, x, alpha=1):
        x1 = self.conv1(x)
        x2 = self.conv1_down(x1)
        x1 = F.pad(x1, (-16, -16, -16, -16))
        x2 = F.leaky_relu(x2, 0.1, inplace=True)
        x2 = self.conv2(x2)
        x3 = self.conv2_down(x2)
        x2 = F.pad(x2, (-4, -4, -4, -4))
        x3 = F.leaky_relu(x3, 0.1, inplace=True)
        x3 = self.conv3(x3)
        x3 = self.conv3_up(x3)
        x3 = F.leaky_relu(x3, 0.1, inplace=True)
        x4 = self.conv4(x2 + x3)
        x4 *= alpha
        x4 = self.conv4_up(x4)
        x4 = F.leaky_relu(x4, 0.1, inplace=True)
        x5 = self.conv5(x1 + x4)
        x5 = F.leaky_relu(x5, 0.1, inplace=True)
        return self.conv_bottom(x5)


class CUNet(nn.Module):
    """nunif ``CUNet`` (``scale=1``) / ``UpCUNet`` (``scale=2``), ``_forward`` with ``no_clip=True``."""

    def __init__(self, scale):
        super().__init__()
        self.unet1 = UNet1(3, 3, deconv=scale == 2)
        self.unet2 = UNet2(3, 3, deconv=False)

    def forward(self, x):
        z1 = self.unet1(x)
        z2 = self.unet2(z1)
        return F.pad(z1, (-20, -20, -20, -20)) + z2


class Waifu2xNcnnPadding(nn.Module):
    """waifu2x-ncnn-vulkan around a network: replicate pad, run, keep the top-left ``h*s x w*s``."""

    def __init__(self, net, scale, pad, multiple):
        super().__init__()
        self.net, self.scale, self.pad, self.multiple = net, scale, pad, multiple

    def forward(self, x):
        h, w = x.shape[2:]
        p, m = self.pad, self.multiple
        x = F.pad(x, (p, p + (-w) % m, p, p + (-h) % m), mode="replicate")
        return self.net(x)[:, :, : h * self.scale, : w * self.scale]


# ----------------------------------------------------------------------------------- Real-CUGAN


class UpCunet(nn.Module):
    """``UpCunet{2,3,4}x`` of upcunet_v3.py with ``forward(x, tile_mode=0, ...)`` as floats."""

    def __init__(self, scale, pro=False):
        super().__init__()
        self.scale, self.pro = scale, pro
        if scale == 4:
            self.unet1 = UNet1(3, 64, deconv=True)
            self.unet2 = UNet2(64, 64, deconv=False)
            self.ps = nn.PixelShuffle(2)
            self.conv_final = nn.Conv2d(64, 12, 3, 1, padding=0, bias=True)
        else:
            self.unet1 = UNet1(3, 3, deconv=True, x3=scale == 3)
            self.unet2 = UNet2(3, 3, deconv=False)

    def forward(self, x):
        if self.pro:
            x = x * 0.7 + 0.15  # RealWaifuUpScaler.np2tensor: x / (255 / 0.7) + 0.15 on 0..255 input
        n, c, h0, w0 = x.shape
        x00 = x
        m, pad = {2: (2, 18), 3: (4, 14), 4: (2, 19)}[self.scale]
        ph = ((h0 - 1) // m + 1) * m
        pw = ((w0 - 1) // m + 1) * m
        x = F.pad(x, (pad, pad + pw - w0, pad, pad + ph - h0), "reflect")
        x = self.unet1.forward(x)
        x0 = self.unet2.forward(x, 1)
        x1 = F.pad(x, (-20, -20, -20, -20))
        x = torch.add(x0, x1)
        if self.scale == 4:
            x = self.conv_final(x)
            x = F.pad(x, (-1, -1, -1, -1))
            x = self.ps(x)
        s = self.scale
        if w0 != pw or h0 != ph:
            x = x[:, :, : h0 * s, : w0 * s]
        if self.scale == 4:
            x += F.interpolate(x00, scale_factor=4, mode="nearest")
        if self.pro:
            x = (x - 0.15) / 0.7  # ((x - 0.15) * (255 / 0.7)) on the 0..255 scale
        return x


# ----------------------------------------------------------------------------------- goldens


def seeded_state(shapes: list[tuple[str, tuple[int, ...]]], seed: int) -> dict[str, np.ndarray]:
    """The state dict the test re-creates: weights ``N(0, 1/prod(shape[1:]))``, biases ``N(0, 0.01)``."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in shapes:
        scale = 0.1 if len(shape) == 1 else 1.0 / np.sqrt(np.prod(shape[1:]))
        out[key] = (rng.standard_normal(shape) * scale).astype(np.float32)
    return out


def save(name: str, module: nn.Module, config: dict, seed: int, x: torch.Tensor) -> None:
    official = module.net if isinstance(module, Waifu2xNcnnPadding) else module  # the official module's keys
    shapes = [(k, tuple(v.shape)) for k, v in official.state_dict().items()]
    state = seeded_state(shapes, seed)
    official.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    with torch.no_grad():
        y = module.eval()(x)
    nhwc = lambda t: t.permute(0, 2, 3, 1).contiguous().numpy().astype(np.float32)  # noqa: E731
    np.savez_compressed(OUT / f"unet_{name}.npz", input=nhwc(x), output=nhwc(y), seed=np.array(seed),
                        config=np.array(json.dumps(config)), keys=np.array(json.dumps(shapes)))
    print(f"unet_{name}: {sum(int(np.prod(s)) for _, s in shapes)} params, {tuple(x.shape)} -> {tuple(y.shape)}, "
          f"|out| max {float(y.abs().max()):.3g}")


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    x = torch.from_numpy(np.random.default_rng(0).random((2, 3, 21, 23), dtype=np.float32))
    save("waifu2x_upconv7", Waifu2xNcnnPadding(UpConv7(), 2, 7, 2), {"arch": "waifu2x_upconv7", "scale": 2}, 1, x)
    save("waifu2x_cunet_x1", Waifu2xNcnnPadding(CUNet(1), 1, 28, 4), {"arch": "waifu2x_cunet", "scale": 1}, 2, x)
    save("waifu2x_cunet_x2", Waifu2xNcnnPadding(CUNet(2), 2, 18, 2), {"arch": "waifu2x_cunet", "scale": 2}, 3, x)
    save("realcugan_x2", UpCunet(2), {"arch": "realcugan", "scale": 2}, 4, x)
    save("realcugan_x3_pro", UpCunet(3, pro=True), {"arch": "realcugan", "scale": 3, "pro": True}, 5, x)
    save("realcugan_x4", UpCunet(4), {"arch": "realcugan", "scale": 4}, 6, x)
    return 0


if __name__ == "__main__":
    sys.exit(main())
