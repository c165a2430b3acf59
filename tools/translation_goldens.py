"""Golden outputs and parameter counts of the pix2pix / CycleGAN networks, from a PyTorch re-creation of the official
``junyanz/pytorch-CycleGAN-and-pix2pix`` ``models/networks.py`` layouts (ResnetGenerator, UnetGenerator,
NLayerDiscriminator with InstanceNorm2d(affine=False) / BatchNorm2d in training mode).

Writes ``tests/goldens/translation_nets.npz``:

* ``count/<net>``: parameter counts of the full-size official configurations (resnet_9blocks, resnet_6blocks,
  unet_256 batch / instance, PatchGAN instance 3 channels, PatchGAN batch 6 channels);
* for three small networks (``resnet``: ngf 4, 2 blocks; ``unet``: ngf 4, num_downs 5, batch norm, no dropout;
  ``patchgan_bn``: ndf 4, 6 channels) with random weights: ``<net>/params/<flax path>`` (flax layout),
  ``<net>/x`` (input in [-1, 1]) and ``<net>/y`` (the PyTorch output, training mode: batch statistics).

Regenerate (CPU torch only, never a jaxgen dependency)::

    /work/torchvenv/bin/python tools/translation_goldens.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

OUT = Path(__file__).resolve().parents[1] / "tests" / "goldens" / "translation_nets.npz"


def norm_layer(kind: str, c: int) -> nn.Module:
    return nn.InstanceNorm2d(c, affine=False, track_running_stats=False) if kind == "instance" else nn.BatchNorm2d(c)


class ResnetG(nn.Module):
    """Official ResnetGenerator (reflect padding), modules named as jaxgen's flax params."""

    def __init__(self, ngf: int, n_blocks: int, norm: str = "instance", in_ch: int = 3, out_ch: int = 3):
        super().__init__()
        bias = norm == "instance"
        self.m = nn.ModuleDict()
        self.m["conv_in"] = nn.Conv2d(in_ch, ngf, 7, padding=0, bias=bias)
        self.m["norm_in"] = norm_layer(norm, ngf)
        for i in range(2):
            self.m[f"down{i}"] = nn.Conv2d(ngf * 2**i, ngf * 2 ** (i + 1), 3, 2, 1, bias=bias)
            self.m[f"down{i}_norm"] = norm_layer(norm, ngf * 2 ** (i + 1))
        d = ngf * 4
        for b in range(n_blocks):
            self.m[f"block{b}_conv1"] = nn.Conv2d(d, d, 3, padding=0, bias=bias)
            self.m[f"block{b}_norm1"] = norm_layer(norm, d)
            self.m[f"block{b}_conv2"] = nn.Conv2d(d, d, 3, padding=0, bias=bias)
            self.m[f"block{b}_norm2"] = norm_layer(norm, d)
        for i in range(2):
            c_in = ngf * 2 ** (2 - i)
            self.m[f"up{i}"] = nn.ConvTranspose2d(c_in, c_in // 2, 3, 2, 1, output_padding=1, bias=bias)
            self.m[f"up{i}_norm"] = norm_layer(norm, c_in // 2)
        self.m["conv_out"] = nn.Conv2d(ngf, out_ch, 7, padding=0)
        self.n_blocks = n_blocks

    def forward(self, x):
        m, pad = self.m, nn.functional.pad
        h = torch.relu(m["norm_in"](m["conv_in"](pad(x, (3, 3, 3, 3), mode="reflect"))))
        for i in range(2):
            h = torch.relu(m[f"down{i}_norm"](m[f"down{i}"](h)))
        for b in range(self.n_blocks):
            r = torch.relu(m[f"block{b}_norm1"](m[f"block{b}_conv1"](pad(h, (1, 1, 1, 1), mode="reflect"))))
            h = h + m[f"block{b}_norm2"](m[f"block{b}_conv2"](pad(r, (1, 1, 1, 1), mode="reflect")))
        for i in range(2):
            h = torch.relu(m[f"up{i}_norm"](m[f"up{i}"](h)))
        return torch.tanh(m["conv_out"](pad(h, (3, 3, 3, 3), mode="reflect")))


class UnetBlock(nn.Module):
    """Official UnetSkipConnectionBlock."""

    def __init__(self, outer, inner, input_nc=None, sub=None, outermost=False, innermost=False, norm="batch",
                 dropout=False):
        super().__init__()
        self.outermost = outermost
        bias = norm == "instance"
        input_nc = outer if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner, 4, 2, 1, bias=bias)
        if outermost:
            layers = [downconv, sub, nn.ReLU(), nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1), nn.Tanh()]
        elif innermost:
            layers = [nn.LeakyReLU(0.2), downconv, nn.ReLU(), nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=bias),
                      norm_layer(norm, outer)]
        else:
            layers = [nn.LeakyReLU(0.2), downconv, norm_layer(norm, inner), sub, nn.ReLU(),
                      nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=bias), norm_layer(norm, outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


def unet(num_downs: int, ngf: int, norm: str = "batch", dropout: bool = True, in_ch: int = 3, out_ch: int = 3):
    """Official UnetGenerator."""
    block = UnetBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
    for _ in range(num_downs - 5):
        block = UnetBlock(ngf * 8, ngf * 8, sub=block, norm=norm, dropout=dropout)
    block = UnetBlock(ngf * 4, ngf * 8, sub=block, norm=norm)
    block = UnetBlock(ngf * 2, ngf * 4, sub=block, norm=norm)
    block = UnetBlock(ngf, ngf * 2, sub=block, norm=norm)
    return UnetBlock(out_ch, ngf, input_nc=in_ch, sub=block, outermost=True, norm=norm)


def patchgan(in_ch: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch") -> nn.Sequential:
    """Official NLayerDiscriminator."""
    bias = norm == "instance"
    seq = [nn.Conv2d(in_ch, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
    mult = 1
    for n in range(1, n_layers + 1):
        prev, mult = mult, min(2**n, 8)
        seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2 if n < n_layers else 1, 1, bias=bias),
                norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2)]
    seq += [nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
    return nn.Sequential(*seq)


def count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def randomise(net: nn.Module, gen: torch.Generator) -> None:
    """Non-trivial weights: kernels N(0, 0.1^2) (larger than the 0.02 init so the tanh is not ~linear), biases and
    BN affine terms random too, so a mis-wired bias/norm shows."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.ndim == 4:
                p.copy_(torch.randn(p.shape, generator=gen) * (0.3 / np.sqrt(p[0].numel())) * 3)
            elif name.endswith("weight"):  # BatchNorm scale
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def kernel(w: torch.Tensor) -> np.ndarray:
    """PyTorch conv ``[out,in,kh,kw]`` / transposed ``[in,out,kh,kw]`` -> flax ``[kh,kw,in,out]`` / ``[kh,kw,out,in]``
    (the latter for ``ConvTranspose(transpose_kernel=True)``): both are ``w.transpose(2, 3, 1, 0)``."""
    return w.detach().numpy().transpose(2, 3, 1, 0).astype(np.float32)


def resnet_params(net: ResnetG) -> dict[str, np.ndarray]:
    out = {}
    for name, mod in net.m.items():
        if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)):
            out[f"{name}/kernel"] = kernel(mod.weight)
            if mod.bias is not None:
                out[f"{name}/bias"] = mod.bias.detach().numpy()
        elif isinstance(mod, nn.BatchNorm2d):
            out[f"{name}/scale"], out[f"{name}/bias"] = mod.weight.detach().numpy(), mod.bias.detach().numpy()
    return out


def unet_params(root: UnetBlock, num_downs: int) -> dict[str, np.ndarray]:
    out, block = {}, root
    for lvl in range(num_downs):
        layers = list(block.model)
        convs = [m for m in layers if isinstance(m, nn.Conv2d)]
        ups = [m for m in layers if isinstance(m, nn.ConvTranspose2d)]
        norms = [m for m in layers if isinstance(m, nn.BatchNorm2d)]
        sub = next((m for m in layers if isinstance(m, UnetBlock)), None)
        for name, mod in ((f"down{lvl}", convs[0]), (f"up{lvl}", ups[0])):
            out[f"{name}/kernel"] = kernel(mod.weight)
            if mod.bias is not None:
                out[f"{name}/bias"] = mod.bias.detach().numpy()
        norm_names = [f"up{lvl}_norm"] if sub is None else ([] if lvl == 0 else [f"down{lvl}_norm", f"up{lvl}_norm"])
        for name, mod in zip(norm_names, norms):
            out[f"{name}/scale"], out[f"{name}/bias"] = mod.weight.detach().numpy(), mod.bias.detach().numpy()
        block = sub
    return out


def patchgan_params(net: nn.Sequential) -> dict[str, np.ndarray]:
    out = {}
    convs = [m for m in net if isinstance(m, nn.Conv2d)]
    norms = [m for m in net if isinstance(m, nn.BatchNorm2d)]
    names = [f"conv{i}" for i in range(len(convs) - 1)] + ["conv_out"]
    for name, mod in zip(names, convs):
        out[f"{name}/kernel"] = kernel(mod.weight)
        if mod.bias is not None:
            out[f"{name}/bias"] = mod.bias.detach().numpy()
    for i, mod in enumerate(norms, start=1):
        out[f"norm{i}/scale"], out[f"norm{i}/bias"] = mod.weight.detach().numpy(), mod.bias.detach().numpy()
    return out


def main() -> None:
    torch.manual_seed(0)
    data: dict[str, np.ndarray] = {}
    full = {
        "resnet_9blocks": ResnetG(64, 9),
        "resnet_6blocks": ResnetG(64, 6),
        "unet_256_batch": unet(8, 64, "batch"),
        "unet_256_instance": unet(8, 64, "instance"),
        "patchgan_instance_3ch": patchgan(3, norm="instance"),
        "patchgan_batch_6ch": patchgan(6, norm="batch"),
    }
    for name, net in full.items():
        data[f"count/{name}"] = np.int64(count(net))
        print(f"{name}: {count(net):,}")
    gen = torch.Generator().manual_seed(1)
    small = {
        "resnet": (ResnetG(4, 2), (2, 3, 32, 32), resnet_params),
        "unet": (unet(5, 4, "batch", dropout=False), (2, 3, 32, 32), lambda n: unet_params(n, 5)),
        "patchgan_bn": (patchgan(6, ndf=4, norm="batch"), (2, 6, 32, 32), patchgan_params),
    }
    for name, (net, shape, params_fn) in small.items():
        randomise(net, gen)
        net.train()  # batch statistics, as the official code trains and tests (without --eval)
        x = torch.rand(shape, generator=gen) * 2 - 1
        with torch.no_grad():
            y = net(x)
        data[f"{name}/x"] = x.numpy().transpose(0, 2, 3, 1)
        data[f"{name}/y"] = y.numpy().transpose(0, 2, 3, 1)
        for key, value in params_fn(net).items():
            data[f"{name}/params/{key}"] = value
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **data)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
