"""Goldens of the style-transfer networks from PyTorch re-creations of the official modules.

Regenerate (CPU torch venv; never a jaxgen dependency)::

    /work/torchvenv/bin/python tools/make_style_goldens.py tests/goldens/style/style_nets.npz

Re-created from the official layouts (small widths so the file stays small):

* pytorch/examples ``fast_neural_style/neural_style/transformer_net.py`` ``TransformerNet`` (``ConvLayer``:
  ReflectionPad2d(k//2) + Conv2d; ``InstanceNorm2d(affine=True)``; ``ResidualBlock``; ``UpsampleConvLayer``:
  nearest ``interpolate`` then pad + conv), widths ``c, 2c, 4c`` with ``c = 8`` and 2 residual blocks; fed
  0-255 pixels as the official script. Its state dict gets the ``in*.running_mean/var`` keys that old
  checkpoints carry (the loader must drop them).
* naoto0804/pytorch-AdaIN ``net.py`` ``decoder`` (Sequential, widths ``(16, 8, 8)`` instead of ``(256, 128, 64)``)
  on a ``[1,512,4,4]`` input, and ``vgg`` (vgg_normalised) truncated to ``relu4_1`` with random weights on a
  ``19x21`` input (odd sides: ``ceil_mode`` pooling and reflection padding matter), with the deeper convs'
  keys present in the state dict (as in the released file).

Stored (flat ``npz``): ``tn/sd/<key>``, ``tn/x`` ``[1,16,20,3]`` in [0,1], ``tn/y`` (output / 255, NHWC);
``dec/sd/<key>``, ``dec/t`` NHWC, ``dec/y``; ``enc/x``, ``enc/relu{1..4}_1`` NHWC (the encoder's weights are
not stored: :func:`encoder_weights` makes them from numpy seeds, and the test rebuilds them).
"""

import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvLayer(nn.Module):
    def __init__(self, cin, cout, k, stride):
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(k // 2)
        self.conv2d = nn.Conv2d(cin, cout, k, stride)

    def forward(self, x):
        return self.conv2d(self.reflection_pad(x))


class UpsampleConvLayer(ConvLayer):
    def __init__(self, cin, cout, k, stride, upsample=None):
        super().__init__(cin, cout, k, stride)
        self.upsample = upsample

    def forward(self, x):
        if self.upsample:
            x = F.interpolate(x, mode="nearest", scale_factor=self.upsample)
        return super().forward(x)


class ResidualBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.in1 = ConvLayer(c, c, 3, 1), nn.InstanceNorm2d(c, affine=True)
        self.conv2, self.in2 = ConvLayer(c, c, 3, 1), nn.InstanceNorm2d(c, affine=True)

    def forward(self, x):
        return self.in2(self.conv2(F.relu(self.in1(self.conv1(x))))) + x


class TransformerNet(nn.Module):
    def __init__(self, c=32, blocks=5):
        super().__init__()
        self.conv1, self.in1 = ConvLayer(3, c, 9, 1), nn.InstanceNorm2d(c, affine=True)
        self.conv2, self.in2 = ConvLayer(c, 2 * c, 3, 2), nn.InstanceNorm2d(2 * c, affine=True)
        self.conv3, self.in3 = ConvLayer(2 * c, 4 * c, 3, 2), nn.InstanceNorm2d(4 * c, affine=True)
        self.blocks = blocks
        for i in range(1, blocks + 1):
            setattr(self, f"res{i}", ResidualBlock(4 * c))
        self.deconv1, self.in4 = UpsampleConvLayer(4 * c, 2 * c, 3, 1, 2), nn.InstanceNorm2d(2 * c, affine=True)
        self.deconv2, self.in5 = UpsampleConvLayer(2 * c, c, 3, 1, 2), nn.InstanceNorm2d(c, affine=True)
        self.deconv3 = ConvLayer(c, 3, 9, 1)

    def forward(self, x):
        y = F.relu(self.in1(self.conv1(x)))
        y = F.relu(self.in2(self.conv2(y)))
        y = F.relu(self.in3(self.conv3(y)))
        for i in range(1, self.blocks + 1):
            y = getattr(self, f"res{i}")(y)
        y = F.relu(self.in4(self.deconv1(y)))
        y = F.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


def adain_decoder(f0, f1, f2):
    R, P, C, U = nn.ReLU, lambda: nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d, lambda: nn.Upsample(scale_factor=2, mode="nearest")
    return nn.Sequential(
        P(), C(512, f0, 3), R(), U(),
        P(), C(f0, f0, 3), R(), P(), C(f0, f0, 3), R(), P(), C(f0, f0, 3), R(), P(), C(f0, f1, 3), R(), U(),
        P(), C(f1, f1, 3), R(), P(), C(f1, f2, 3), R(), U(),
        P(), C(f2, f2, 3), R(), P(), C(f2, 3, 3))


def adain_vgg():
    layers = [nn.Conv2d(3, 3, 1)]
    cin = 3
    for block, (n, c) in enumerate(((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))):
        for _ in range(n):
            layers += [nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(cin, c, 3), nn.ReLU()]
            cin = c
        if block < 4:
            layers.append(nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True))
    return nn.Sequential(*layers)


def encoder_weights(index, shape):
    """ENCODER_RECIPE: the weights of the encoder conv at Sequential ``index`` with OIHW ``shape`` (the test
    rebuilds them the same way): ``N(0, 2/fan_in)`` kernel, ``U(-0.1, 0.1)`` bias from ``default_rng(index)``."""
    rng = np.random.default_rng(index)
    fan_in = shape[1] * shape[2] * shape[3]
    w = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    return w, rng.uniform(-0.1, 0.1, shape[0]).astype(np.float32)


def nhwc(t):
    return t.detach().numpy().transpose(0, 2, 3, 1)


def main(out):
    torch.manual_seed(0)
    rec = {}
    tn = TransformerNet(8, 2).eval()
    with torch.no_grad():  # non-trivial norm affine params
        for name, p in tn.named_parameters():
            if ".weight" in name and p.ndim == 1:
                p.uniform_(0.5, 1.5)
            elif ".bias" in name and p.ndim == 1 and name.startswith(("in", "res")):
                p.uniform_(-0.5, 0.5)
    x = torch.rand(1, 3, 16, 20)
    with torch.no_grad():
        y = tn(x * 255.0) / 255.0
    sd = {k: v.numpy() for k, v in tn.state_dict().items()}
    for k in [k for k in sd if k.endswith(".weight") and k.split(".")[-2].startswith("in")]:
        n = sd[k].shape[0]
        sd[k.replace(".weight", ".running_mean")] = np.zeros(n, np.float32)  # old pytorch/examples checkpoints
        sd[k.replace(".weight", ".running_var")] = np.ones(n, np.float32)
    rec.update({f"tn/sd/{k}": v for k, v in sd.items()})
    rec["tn/x"], rec["tn/y"] = nhwc(x), nhwc(y)

    dec = adain_decoder(16, 8, 8)
    t = torch.randn(1, 512, 4, 4)
    with torch.no_grad():
        rec["dec/y"] = nhwc(dec(t))
    rec.update({f"dec/sd/{k}": v.numpy() for k, v in dec.state_dict().items()})
    rec["dec/t"] = nhwc(t)

    vgg = adain_vgg()
    with torch.no_grad():  # numpy-generated weights (ENCODER_RECIPE), so the golden needs not store them
        for i, m in enumerate(vgg):
            if isinstance(m, nn.Conv2d):
                w, b = encoder_weights(i, tuple(m.weight.shape))
                m.weight.copy_(torch.from_numpy(w))
                m.bias.copy_(torch.from_numpy(b))
    xe = torch.rand(1, 3, 19, 21)
    ends = {"relu1_1": 4, "relu2_1": 11, "relu3_1": 18, "relu4_1": 31}
    with torch.no_grad():
        h = xe
        prev = 0
        for name, end in ends.items():
            h = vgg[prev:end](h)
            prev = end
            rec[f"enc/{name}"] = nhwc(h)
    rec["enc/x"] = nhwc(xe)
    np.savez_compressed(out, **rec)
    print(out, sum(v.size for v in rec.values()), "numbers")


if __name__ == "__main__":
    main(sys.argv[1])
