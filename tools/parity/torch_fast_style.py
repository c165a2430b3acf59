"""The official fast-style training step in PyTorch, for the parity harness (``tools/parity/run.py``).

Official code: pytorch/examples, commit 77f55b912142e11fcfdf5b530231fb9c52f181e8 (last change to the folder
993a98a67a4850d6b2d45cb35a0e9d29332a66c3):

* ``fast_neural_style/neural_style/transformer_net.py``: ``TransformerNet``, ``ConvLayer``, ``ResidualBlock``,
  ``UpsampleConvLayer`` -- copied below; the only change is that the widths (32/64/128) and the number of residual
  blocks (5) are arguments, so a tiny net runs in seconds (``channels=32, num_res_blocks=5`` is the official net);
* ``fast_neural_style/neural_style/vgg.py``: ``Vgg16`` -- the same slices of ``torchvision.models.vgg16().features``
  (``[0:4]`` relu1_2, ``[4:9]`` relu2_2, ``[9:16]`` relu3_3, ``[16:23]`` relu4_3), weights from the case;
* ``fast_neural_style/neural_style/utils.py``: ``gram_matrix``, ``normalize_batch`` (copied);
* ``fast_neural_style/neural_style/neural_style.py``: ``train`` -- the loop body below is the official one line for
  line (``Adam(lr)``, ``MSELoss``, style Grams of the style image repeated to the batch, content at relu2_2 with
  ``content_weight``, the four style terms times ``style_weight``). Images: the case holds them in [0,1]; the
  official pipeline's ``ToTensor() * 255`` is applied here.

Run: ``/work/torchvenv/bin/python tools/parity/torch_fast_style.py --case CASE.npz --out OUT.npz``; writes
``losses/content``, ``losses/style`` (``[steps]``) and ``params/generator/<official key>`` (final TransformerNet weights).
"""

from __future__ import annotations

import argparse
from collections import namedtuple

import numpy as np
import torch


class TransformerNet(torch.nn.Module):
    def __init__(self, channels=32, num_res_blocks=5):
        super(TransformerNet, self).__init__()
        c = channels
        # Initial convolution layers
        self.conv1 = ConvLayer(3, c, kernel_size=9, stride=1)
        self.in1 = torch.nn.InstanceNorm2d(c, affine=True)
        self.conv2 = ConvLayer(c, 2 * c, kernel_size=3, stride=2)
        self.in2 = torch.nn.InstanceNorm2d(2 * c, affine=True)
        self.conv3 = ConvLayer(2 * c, 4 * c, kernel_size=3, stride=2)
        self.in3 = torch.nn.InstanceNorm2d(4 * c, affine=True)
        # Residual layers
        for i in range(1, num_res_blocks + 1):
            setattr(self, f"res{i}", ResidualBlock(4 * c))
        self.num_res_blocks = num_res_blocks
        # Upsampling Layers
        self.deconv1 = UpsampleConvLayer(4 * c, 2 * c, kernel_size=3, stride=1, upsample=2)
        self.in4 = torch.nn.InstanceNorm2d(2 * c, affine=True)
        self.deconv2 = UpsampleConvLayer(2 * c, c, kernel_size=3, stride=1, upsample=2)
        self.in5 = torch.nn.InstanceNorm2d(c, affine=True)
        self.deconv3 = ConvLayer(c, 3, kernel_size=9, stride=1)
        # Non-linearities
        self.relu = torch.nn.ReLU()

    def forward(self, X):
        y = self.relu(self.in1(self.conv1(X)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        for i in range(1, self.num_res_blocks + 1):
            y = getattr(self, f"res{i}")(y)
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        y = self.deconv3(y)
        return y


class ConvLayer(torch.nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride):
        super(ConvLayer, self).__init__()
        reflection_padding = kernel_size // 2
        self.reflection_pad = torch.nn.ReflectionPad2d(reflection_padding)
        self.conv2d = torch.nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x):
        out = self.reflection_pad(x)
        out = self.conv2d(out)
        return out


class ResidualBlock(torch.nn.Module):
    def __init__(self, channels):
        super(ResidualBlock, self).__init__()
        self.conv1 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in1 = torch.nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in2 = torch.nn.InstanceNorm2d(channels, affine=True)
        self.relu = torch.nn.ReLU()

    def forward(self, x):
        residual = x
        out = self.relu(self.in1(self.conv1(x)))
        out = self.in2(self.conv2(out))
        out = out + residual
        return out


class UpsampleConvLayer(torch.nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride, upsample=None):
        super(UpsampleConvLayer, self).__init__()
        self.upsample = upsample
        reflection_padding = kernel_size // 2
        self.reflection_pad = torch.nn.ReflectionPad2d(reflection_padding)
        self.conv2d = torch.nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x):
        x_in = x
        if self.upsample:
            x_in = torch.nn.functional.interpolate(x_in, mode='nearest', scale_factor=self.upsample)
        out = self.reflection_pad(x_in)
        out = self.conv2d(out)
        return out


def vgg16_features_to_relu4_3(case) -> torch.nn.Sequential:
    """``torchvision.models.vgg16().features[:23]`` with the case's weights (no download)."""
    layers, c_in = [], 3
    for block, (n, c) in enumerate(((2, 64), (2, 128), (3, 256), (3, 512))):
        for _ in range(n):
            layers += [torch.nn.Conv2d(c_in, c, 3, padding=1), torch.nn.ReLU(inplace=True)]
            c_in = c
        if block < 3:
            layers.append(torch.nn.MaxPool2d(2, 2))
    seq = torch.nn.Sequential(*layers)
    seq.load_state_dict({k[len("frozen/vgg/features."):]: torch.from_numpy(v) for k, v in case.items()
                         if k.startswith("frozen/vgg/")}, strict=True)
    return seq


class Vgg16(torch.nn.Module):
    def __init__(self, vgg_pretrained_features, requires_grad=False):
        super(Vgg16, self).__init__()
        self.slice1 = torch.nn.Sequential()
        self.slice2 = torch.nn.Sequential()
        self.slice3 = torch.nn.Sequential()
        self.slice4 = torch.nn.Sequential()
        for x in range(4):
            self.slice1.add_module(str(x), vgg_pretrained_features[x])
        for x in range(4, 9):
            self.slice2.add_module(str(x), vgg_pretrained_features[x])
        for x in range(9, 16):
            self.slice3.add_module(str(x), vgg_pretrained_features[x])
        for x in range(16, 23):
            self.slice4.add_module(str(x), vgg_pretrained_features[x])
        if not requires_grad:
            for param in self.parameters():
                param.requires_grad = False

    def forward(self, X):
        h = self.slice1(X)
        h_relu1_2 = h
        h = self.slice2(h)
        h_relu2_2 = h
        h = self.slice3(h)
        h_relu3_3 = h
        h = self.slice4(h)
        h_relu4_3 = h
        vgg_outputs = namedtuple("VggOutputs", ['relu1_2', 'relu2_2', 'relu3_3', 'relu4_3'])
        out = vgg_outputs(h_relu1_2, h_relu2_2, h_relu3_3, h_relu4_3)
        return out


def gram_matrix(y):
    (b, ch, h, w) = y.size()
    features = y.view(b, ch, w * h)
    features_t = features.transpose(1, 2)
    gram = features.bmm(features_t) / (ch * h * w)
    return gram


def normalize_batch(batch):
    # normalize using imagenet mean and std
    mean = batch.new_tensor([0.485, 0.456, 0.406]).view(-1, 1, 1)
    std = batch.new_tensor([0.229, 0.224, 0.225]).view(-1, 1, 1)
    batch = batch.div_(255.0)
    return (batch - mean) / std


def to_tensor_255(images: np.ndarray) -> torch.Tensor:
    """NHWC [0,1] -> NCHW ``ToTensor() * 255`` (``Lambda(lambda x: x.mul(255))``)."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).mul(255)


def train_step(transformer, optimizer, vgg, mse_loss, gram_style, content_weight, style_weight, x):
    """``train``'s loop body on one NCHW batch in [0, 255]; returns ``(content_loss, style_loss)``."""
    n_batch = len(x)
    optimizer.zero_grad()

    y = transformer(x)

    y = normalize_batch(y)
    x = normalize_batch(x)

    features_y = vgg(y)
    features_x = vgg(x)

    content_loss = content_weight * mse_loss(features_y.relu2_2, features_x.relu2_2)

    style_loss = 0.
    for ft_y, gm_s in zip(features_y, gram_style):
        gm_y = gram_matrix(ft_y)
        style_loss += mse_loss(gm_y, gm_s[:n_batch, :, :])
    style_loss *= style_weight

    total_loss = content_loss + style_loss
    total_loss.backward()
    optimizer.step()
    return content_loss, style_loss


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--case", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                   help="float64: the same steps in double precision (measures float32 rounding drift)")
    args = p.parse_args()
    torch.set_default_dtype(getattr(torch, args.dtype))
    case = {k: v.astype(args.dtype) if v.dtype == np.float32 else v for k, v in np.load(args.case).items()}
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    batches = case["batch/content"]
    batch_size = batches.shape[1]

    transformer = TransformerNet(int(case["hp/channels"]), int(case["hp/num_res_blocks"]))
    transformer.load_state_dict({k[len("init/generator/"):]: torch.from_numpy(v) for k, v in case.items()
                                 if k.startswith("init/generator/")}, strict=True)
    optimizer = torch.optim.Adam(transformer.parameters(), float(case["hp/lr"]))
    mse_loss = torch.nn.MSELoss()
    vgg = Vgg16(vgg16_features_to_relu4_3(case), requires_grad=False)
    style = to_tensor_255(case["frozen/style"][None])
    style = style.repeat(batch_size, 1, 1, 1)
    features_style = vgg(normalize_batch(style))
    gram_style = [gram_matrix(y) for y in features_style]
    content_weight, style_weight = float(case["hp/content_weight"]), float(case["hp/style_weight"])

    losses = {"content": [], "style": []}
    transformer.train()
    for step, batch in enumerate(batches):
        content_loss, style_loss = train_step(transformer, optimizer, vgg, mse_loss, gram_style, content_weight,
                                              style_weight, to_tensor_255(batch))
        if step == 0:
            grads = {k: p.grad.detach().numpy().copy() for k, p in transformer.named_parameters()}
        losses["content"].append(content_loss.item())
        losses["style"].append(style_loss.item())

    out = {f"losses/{k}": np.asarray(v, np.float64) for k, v in losses.items()}
    out.update({f"params/generator/{k}": v.detach().numpy() for k, v in transformer.state_dict().items()})
    out.update({f"grads0/generator/{k}": v for k, v in grads.items()})
    np.savez(args.out, **out)


if __name__ == "__main__":
    main()
