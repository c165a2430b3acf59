"""Torch side of parity plug-in ``sr``: BasicSR's ``SRModel`` training step on EDSR, re-created from the official
files (XPixelGroup/BasicSR at commit 8d56e3a045f9fb3e1d8872f92ee4a4f07f886b0a):

* ``basicsr/archs/edsr_arch.py`` ``EDSR``, ``basicsr/archs/arch_util.py`` ``ResidualBlockNoBN``, ``Upsample``,
  ``make_layer`` (copied below, registry/imports removed);
* ``basicsr/models/sr_model.py`` ``SRModel.optimize_parameters`` (zero_grad, forward, ``l_pix``, backward,
  step, EMA) and ``basicsr/models/base_model.py`` ``update_learning_rate`` (the scheduler steps before every
  iteration but the first), ``get_optimizer`` (``torch.optim.Adam(params, lr, betas=...)``), ``model_ema``;
* ``basicsr/models/lr_scheduler.py`` ``MultiStepRestartLR`` (copied below);
* ``basicsr/losses/basic_loss.py`` ``L1Loss`` (``loss_weight * F.l1_loss(pred, target, reduction='mean')``).

Also the shared pieces of ``torch_sr_gan.py`` / ``torch_real_sr_gan.py`` (they import this file).

    python torch_sr.py --case CASE.npz --out OUT.npz       (torch + numpy only)
"""

from __future__ import annotations

import argparse
import math
from collections import Counter, OrderedDict

import numpy as np
import torch
from torch import nn as nn
from torch.nn import functional as F
from torch.optim.lr_scheduler import _LRScheduler

torch.use_deterministic_algorithms(True)
torch.set_num_threads(2)


# ---------------------------------------------------------------- basicsr/archs/arch_util.py (8d56e3a)


def make_layer(basic_block, num_basic_block, **kwarg):
    layers = []
    for _ in range(num_basic_block):
        layers.append(basic_block(**kwarg))
    return nn.Sequential(*layers)


class ResidualBlockNoBN(nn.Module):
    def __init__(self, num_feat=64, res_scale=1, pytorch_init=False):
        super(ResidualBlockNoBN, self).__init__()
        self.res_scale = res_scale
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=True)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        # (default_init_weights skipped: the weights are loaded from the case)

    def forward(self, x):
        identity = x
        out = self.conv2(self.relu(self.conv1(x)))
        return identity + out * self.res_scale


class Upsample(nn.Sequential):
    def __init__(self, scale, num_feat):
        m = []
        if (scale & (scale - 1)) == 0:  # scale = 2^n
            for _ in range(int(math.log(scale, 2))):
                m.append(nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1))
                m.append(nn.PixelShuffle(2))
        elif scale == 3:
            m.append(nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1))
            m.append(nn.PixelShuffle(3))
        else:
            raise ValueError(f'scale {scale} is not supported. Supported scales: 2^n and 3.')
        super(Upsample, self).__init__(*m)


# ---------------------------------------------------------------- basicsr/archs/edsr_arch.py (8d56e3a)


class EDSR(nn.Module):
    def __init__(self, num_in_ch, num_out_ch, num_feat=64, num_block=16, upscale=4, res_scale=1, img_range=255.,
                 rgb_mean=(0.4488, 0.4371, 0.4040)):
        super(EDSR, self).__init__()
        self.img_range = img_range
        self.mean = torch.Tensor(rgb_mean).view(1, 3, 1, 1)
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = make_layer(ResidualBlockNoBN, num_block, num_feat=num_feat, res_scale=res_scale, pytorch_init=True)
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x):
        self.mean = self.mean.type_as(x)
        x = (x - self.mean) * self.img_range
        x = self.conv_first(x)
        res = self.conv_after_body(self.body(x))
        res += x
        x = self.conv_last(self.upsample(res))
        x = x / self.img_range + self.mean
        return x


# ---------------------------------------------------------------- basicsr/models/lr_scheduler.py (8d56e3a)


class MultiStepRestartLR(_LRScheduler):
    def __init__(self, optimizer, milestones, gamma=0.1, restarts=(0, ), restart_weights=(1, ), last_epoch=-1):
        self.milestones = Counter(milestones)
        self.gamma = gamma
        self.restarts = restarts
        self.restart_weights = restart_weights
        assert len(self.restarts) == len(self.restart_weights), 'restarts and their weights do not match.'
        super(MultiStepRestartLR, self).__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch in self.restarts:
            weight = self.restart_weights[self.restarts.index(self.last_epoch)]
            return [group['initial_lr'] * weight for group in self.optimizer.param_groups]
        if self.last_epoch not in self.milestones:
            return [group['lr'] for group in self.optimizer.param_groups]
        return [group['lr'] * self.gamma**self.milestones[self.last_epoch] for group in self.optimizer.param_groups]


# ---------------------------------------------------------------- shared harness pieces


def load_case(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def hp(case, name):
    v = case[f"hp/{name}"]
    return v.item() if v.ndim == 0 else v


def state_dict(case, player):
    pre = f"init/{player}/"
    return OrderedDict((k[len(pre):], torch.from_numpy(np.ascontiguousarray(v))) for k, v in case.items()
                       if k.startswith(pre))


def batch(case, key, i):
    """``batch/<key>`` slice ``i``: NHWC numpy -> NCHW float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(case[f"batch/{key}"][i].transpose(0, 3, 1, 2)))


def adam(net, case, prefix=""):
    """``BaseModel.get_optimizer('Adam', params, lr, betas=[b1, b2])`` (eps left at torch's 1e-8, weight_decay 0)."""
    return torch.optim.Adam([p for p in net.parameters() if p.requires_grad], hp(case, f"{prefix}lr"),
                            betas=(hp(case, f"{prefix}beta1"), hp(case, f"{prefix}beta2")), eps=hp(case, "eps"))


def model_ema(net_g, net_g_ema, decay):
    """``BaseModel.model_ema``."""
    net_g_params = dict(net_g.named_parameters())
    net_g_ema_params = dict(net_g_ema.named_parameters())
    for k in net_g_ema_params.keys():
        net_g_ema_params[k].data.mul_(decay).add_(net_g_params[k].data, alpha=1 - decay)


def update_learning_rate(schedulers, current_iter):
    """``BaseModel.update_learning_rate`` without warm-up."""
    if current_iter > 1:
        for scheduler in schedulers:
            scheduler.step()


def export(out, player, module):
    for k, v in module.state_dict().items():
        out[f"params/{player}/{k}"] = v.detach().numpy().copy()


def save(path, losses, out):
    for k, v in losses.items():
        out[f"losses/{k}"] = np.asarray(v, np.float64)
    np.savez_compressed(path, **out)


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", required=True)
    ap.add_argument("--out", required=True)
    return ap.parse_args()


# ---------------------------------------------------------------- SRModel.optimize_parameters


def main():
    args = parse()
    case = load_case(args.case)
    net_g = EDSR(3, 3, num_feat=hp(case, "num_feat"), num_block=hp(case, "num_block"), upscale=hp(case, "scale"),
                 res_scale=hp(case, "res_scale"), img_range=hp(case, "img_range"))
    net_g.load_state_dict(state_dict(case, "generator"), strict=True)
    net_g.train()
    optimizer_g = adam(net_g, case)
    schedulers = [MultiStepRestartLR(optimizer_g, milestones=[int(m) for m in hp(case, "milestones")],
                                     gamma=hp(case, "gamma"))]
    l1_weight = hp(case, "l1_weight")
    losses = {"l_pix": [], "l_total": []}
    for i in range(hp(case, "steps")):
        current_iter = i + 1
        update_learning_rate(schedulers, current_iter)
        lq, gt = batch(case, "lr", i), batch(case, "hr", i)
        # SRModel.optimize_parameters
        optimizer_g.zero_grad()
        output = net_g(lq)
        l_total = 0
        l_pix = l1_weight * F.l1_loss(output, gt, reduction='mean')  # L1Loss
        l_total += l_pix
        l_total.backward()
        optimizer_g.step()
        losses["l_pix"].append(l_pix.item())
        losses["l_total"].append(l_total.item())
    out = {}
    export(out, "generator", net_g)
    save(args.out, losses, out)


if __name__ == "__main__":
    main()
