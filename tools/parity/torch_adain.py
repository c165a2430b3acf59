"""The official AdaIN training step in PyTorch, for the parity harness (``tools/parity/run.py``).

Official code: naoto0804/pytorch-AdaIN, commit 47950d0e6656a95a80a4b105c4c0f58d38ef785c:

* ``net.py``: ``decoder`` and ``vgg`` Sequentials (copied; the decoder's widths 256/128/64 are arguments so a tiny
  decoder runs in seconds -- ``widths=(256, 128, 64)`` is the official one) and ``Net`` (copied: ``enc_1..enc_4``
  = ``vgg[:4]``, ``[4:11]``, ``[11:18]``, ``[18:31]``; ``forward`` with ``alpha=1``, content loss on relu4_1 against
  ``t``, style loss = mse of means + mse of stds at relu1_1..relu4_1);
* ``function.py``: ``calc_mean_std`` (unbiased variance + eps 1e-5, then sqrt), ``adaptive_instance_normalization``
  (copied);
* ``train.py``: the loop body (``adjust_learning_rate`` = ``lr / (1 + lr_decay * i)`` before step ``i``, ``Adam`` on
  the decoder, ``loss = content_weight * loss_c + style_weight * loss_s``). Images: the case's ``[0,1]`` batches
  (what ``ToTensor`` gives after ``Resize((512, 512)) + RandomCrop(256)``).

Run: ``/work/torchvenv/bin/python tools/parity/torch_adain.py --case CASE.npz --out OUT.npz [--dtype float64]``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn as nn


def calc_mean_std(feat, eps=1e-5):
    # eps is a small value added to the variance to avoid divide-by-zero.
    size = feat.size()
    assert (len(size) == 4)
    N, C = size[:2]
    feat_var = feat.view(N, C, -1).var(dim=2) + eps
    feat_std = feat_var.sqrt().view(N, C, 1, 1)
    feat_mean = feat.view(N, C, -1).mean(dim=2).view(N, C, 1, 1)
    return feat_mean, feat_std


def adain(content_feat, style_feat):
    assert (content_feat.size()[:2] == style_feat.size()[:2])
    size = content_feat.size()
    style_mean, style_std = calc_mean_std(style_feat)
    content_mean, content_std = calc_mean_std(content_feat)

    normalized_feat = (content_feat - content_mean.expand(
        size)) / content_std.expand(size)
    return normalized_feat * style_std.expand(size) + style_mean.expand(size)


def make_decoder(widths=(256, 128, 64)):
    a, b, c = widths
    return nn.Sequential(
        nn.ReflectionPad2d((1, 1, 1, 1)),
        nn.Conv2d(512, a, (3, 3)),
        nn.ReLU(),
        nn.Upsample(scale_factor=2, mode='nearest'),
        nn.ReflectionPad2d((1, 1, 1, 1)),
        nn.Conv2d(a, a, (3, 3)),
        nn.ReLU(),
        nn.ReflectionPad2d((1, 1, 1, 1)),
        nn.Conv2d(a, a, (3, 3)),
        nn.ReLU(),
        nn.ReflectionPad2d((1, 1, 1, 1)),
        nn.Conv2d(a, a, (3, 3)),
        nn.ReLU(),
        nn.ReflectionPad2d((1, 1, 1, 1)),
        nn.Conv2d(a, b, (3, 3)),
        nn.ReLU(),
        nn.Upsample(scale_factor=2, mode='nearest'),
        nn.ReflectionPad2d((1, 1, 1, 1)),
        nn.Conv2d(b, b, (3, 3)),
        nn.ReLU(),
        nn.ReflectionPad2d((1, 1, 1, 1)),
        nn.Conv2d(b, c, (3, 3)),
        nn.ReLU(),
        nn.Upsample(scale_factor=2, mode='nearest'),
        nn.ReflectionPad2d((1, 1, 1, 1)),
        nn.Conv2d(c, c, (3, 3)),
        nn.ReLU(),
        nn.ReflectionPad2d((1, 1, 1, 1)),
        nn.Conv2d(c, 3, (3, 3)),
    )


vgg = nn.Sequential(  # official ``net.vgg`` up to relu4_1 (index 30): train.py keeps ``children()[:31]``
    nn.Conv2d(3, 3, (1, 1)),
    nn.ReflectionPad2d((1, 1, 1, 1)),
    nn.Conv2d(3, 64, (3, 3)),
    nn.ReLU(),  # relu1-1
    nn.ReflectionPad2d((1, 1, 1, 1)),
    nn.Conv2d(64, 64, (3, 3)),
    nn.ReLU(),  # relu1-2
    nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True),
    nn.ReflectionPad2d((1, 1, 1, 1)),
    nn.Conv2d(64, 128, (3, 3)),
    nn.ReLU(),  # relu2-1
    nn.ReflectionPad2d((1, 1, 1, 1)),
    nn.Conv2d(128, 128, (3, 3)),
    nn.ReLU(),  # relu2-2
    nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True),
    nn.ReflectionPad2d((1, 1, 1, 1)),
    nn.Conv2d(128, 256, (3, 3)),
    nn.ReLU(),  # relu3-1
    nn.ReflectionPad2d((1, 1, 1, 1)),
    nn.Conv2d(256, 256, (3, 3)),
    nn.ReLU(),  # relu3-2
    nn.ReflectionPad2d((1, 1, 1, 1)),
    nn.Conv2d(256, 256, (3, 3)),
    nn.ReLU(),  # relu3-3
    nn.ReflectionPad2d((1, 1, 1, 1)),
    nn.Conv2d(256, 256, (3, 3)),
    nn.ReLU(),  # relu3-4
    nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True),
    nn.ReflectionPad2d((1, 1, 1, 1)),
    nn.Conv2d(256, 512, (3, 3)),
    nn.ReLU(),  # relu4-1, this is the last layer used
)


class Net(nn.Module):
    def __init__(self, encoder, decoder):
        super(Net, self).__init__()
        enc_layers = list(encoder.children())
        self.enc_1 = nn.Sequential(*enc_layers[:4])  # input -> relu1_1
        self.enc_2 = nn.Sequential(*enc_layers[4:11])  # relu1_1 -> relu2_1
        self.enc_3 = nn.Sequential(*enc_layers[11:18])  # relu2_1 -> relu3_1
        self.enc_4 = nn.Sequential(*enc_layers[18:31])  # relu3_1 -> relu4_1
        self.decoder = decoder
        self.mse_loss = nn.MSELoss()

        # fix the encoder
        for name in ['enc_1', 'enc_2', 'enc_3', 'enc_4']:
            for param in getattr(self, name).parameters():
                param.requires_grad = False

    # extract relu1_1, relu2_1, relu3_1, relu4_1 from input image
    def encode_with_intermediate(self, input):
        results = [input]
        for i in range(4):
            func = getattr(self, 'enc_{:d}'.format(i + 1))
            results.append(func(results[-1]))
        return results[1:]

    # extract relu4_1 from input image
    def encode(self, input):
        for i in range(4):
            input = getattr(self, 'enc_{:d}'.format(i + 1))(input)
        return input

    def calc_content_loss(self, input, target):
        assert (input.size() == target.size())
        assert (target.requires_grad is False)
        return self.mse_loss(input, target)

    def calc_style_loss(self, input, target):
        assert (input.size() == target.size())
        assert (target.requires_grad is False)
        input_mean, input_std = calc_mean_std(input)
        target_mean, target_std = calc_mean_std(target)
        return self.mse_loss(input_mean, target_mean) + \
            self.mse_loss(input_std, target_std)

    def forward(self, content, style, alpha=1.0):
        assert 0 <= alpha <= 1
        style_feats = self.encode_with_intermediate(style)
        content_feat = self.encode(content)
        t = adain(content_feat, style_feats[-1])
        t = alpha * t + (1 - alpha) * content_feat

        g_t = self.decoder(t)
        g_t_feats = self.encode_with_intermediate(g_t)

        loss_c = self.calc_content_loss(g_t_feats[-1], t)
        loss_s = self.calc_style_loss(g_t_feats[0], style_feats[0])
        for i in range(1, 4):
            loss_s += self.calc_style_loss(g_t_feats[i], style_feats[i])
        return loss_c, loss_s


def nchw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def train_step(network, optimizer, content, style, content_weight, style_weight):
    """``train.py``'s loop body after ``adjust_learning_rate``: one Adam step of the decoder on NCHW batches;
    returns the weighted ``(loss_c, loss_s)``."""
    loss_c, loss_s = network(content, style)
    loss_c = content_weight * loss_c
    loss_s = style_weight * loss_s
    loss = loss_c + loss_s

    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss_c, loss_s


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--case", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    args = p.parse_args()
    torch.set_default_dtype(getattr(torch, args.dtype))
    torch.use_deterministic_algorithms(True)
    case = {k: v.astype(args.dtype) if v.dtype == np.float32 else v for k, v in np.load(args.case).items()}
    init = {k[len("init/decoder/"):]: torch.from_numpy(v) for k, v in case.items() if k.startswith("init/decoder/")}
    decoder = make_decoder(tuple(init[f"{i}.weight"].shape[0] for i in (1, 14, 21)))
    decoder.load_state_dict(init, strict=True)
    vgg.to(getattr(torch, args.dtype)).load_state_dict(
        {k[len("frozen/vgg/"):]: torch.from_numpy(v) for k, v in case.items() if k.startswith("frozen/vgg/")}, strict=True)
    network = Net(vgg, decoder)
    network.train()
    lr, lr_decay = float(case["hp/lr"]), float(case["hp/lr_decay"])
    content_weight, style_weight = float(case["hp/content_weight"]), float(case["hp/style_weight"])
    optimizer = torch.optim.Adam(network.decoder.parameters(), lr=lr)
    losses = {"content": [], "style": []}
    for i, (content, style) in enumerate(zip(case["batch/content"], case["batch/style"])):
        for param_group in optimizer.param_groups:  # adjust_learning_rate(optimizer, iteration_count=i)
            param_group['lr'] = lr / (1.0 + lr_decay * i)
        loss_c, loss_s = train_step(network, optimizer, nchw(content), nchw(style), content_weight, style_weight)
        losses["content"].append(loss_c.item())
        losses["style"].append(loss_s.item())
    out = {f"losses/{k}": np.asarray(v, np.float64) for k, v in losses.items()}
    out.update({f"params/decoder/{k}": v.detach().numpy() for k, v in decoder.state_dict().items()})
    np.savez(args.out, **out)


if __name__ == "__main__":
    main()
