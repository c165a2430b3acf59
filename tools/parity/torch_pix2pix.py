"""The official pix2pix training step in PyTorch, for the parity harness (``tools/parity/run.py``).

Official code: junyanz/pytorch-CycleGAN-and-pix2pix --

* ``models/pix2pix_model.py`` (read at commit 032e88438b1b2690e538c2cf399ebceb76adbea9): ``forward``,
  ``backward_D`` (fake pair ``cat(real_A, fake_B)`` detached first, then the real pair, ``0.5 * (D_fake +
  D_real)``), ``backward_G`` (``GAN(D(cat(real_A, fake_B)), True) + L1(fake_B, real_B) * lambda_L1``, against
  the *updated* D), ``optimize_parameters`` (D step, then G step; one forward of G shared), ``Adam(lr, betas=(beta1,
  0.999))`` for each; pool 0 (``ImagePool(0)`` returns its input) -- copied below as one loop body;
* ``models/networks.py``: ``GANLoss('vanilla')`` (``BCEWithLogitsLoss``), ``UnetGenerator`` /
  ``UnetSkipConnectionBlock`` (``norm='batch'``: ``BatchNorm2d`` in training mode, bias-free convs before it) and
  ``NLayerDiscriminator`` (batch norm) -- the PyTorch re-creation in ``tools/translation_goldens.py`` (``unet``,
  ``patchgan``), as for CycleGAN (``torch_cyclegan.py``, whose helpers this imports).

Run: ``/work/torchvenv/bin/python tools/parity/torch_pix2pix.py --case CASE.npz --out OUT.npz [--dtype float64]``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_cyclegan import GANLoss, export, load, nchw_signed, set_requires_grad, tg  # noqa: E402


def optimize_parameters(netG, netD, optimizer_G, optimizer_D, criterionGAN, criterionL1, lambda_L1, real_A, real_B):
    """``Pix2PixModel.optimize_parameters`` on NCHW batches in [-1, 1]: D step, then G step against the updated D;
    returns ``(loss_G_GAN, loss_G_L1, loss_D)``."""
    fake_B = netG(real_A)  # forward()
    # update D
    set_requires_grad(netD, True)
    optimizer_D.zero_grad()
    fake_AB = torch.cat((real_A, fake_B), 1)  # fake_AB_pool.query(...) with pool_size 0
    pred_fake = netD(fake_AB.detach())
    loss_D_fake = criterionGAN(pred_fake, False)
    real_AB = torch.cat((real_A, real_B), 1)
    pred_real = netD(real_AB)
    loss_D_real = criterionGAN(pred_real, True)
    loss_D = (loss_D_fake + loss_D_real) * 0.5
    loss_D.backward()
    optimizer_D.step()
    # update G
    set_requires_grad(netD, False)
    optimizer_G.zero_grad()
    fake_AB = torch.cat((real_A, fake_B), 1)
    pred_fake = netD(fake_AB)
    loss_G_GAN = criterionGAN(pred_fake, True)
    loss_G_L1 = criterionL1(fake_B, real_B) * lambda_L1
    loss_G = loss_G_GAN + loss_G_L1
    loss_G.backward()
    optimizer_G.step()
    return loss_G_GAN, loss_G_L1, loss_D


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    args = ap.parse_args()
    torch.set_default_dtype(getattr(torch, args.dtype))
    torch.use_deterministic_algorithms(True)
    case = {k: v.astype(args.dtype) if v.dtype == np.float32 else v for k, v in np.load(args.case).items()}
    ngf = case["init/G/down0.weight"].shape[0]
    num_downs = len([k for k in case if re.fullmatch(r"init/G/down\d+\.weight", k)])
    ndf = case["init/D/conv0.weight"].shape[0]
    n_layers = len({k for k in case if k.startswith("init/D/conv") and k.endswith(".weight")}) - 2
    netG = tg.unet(num_downs, ngf, "batch", dropout=False)
    netD = tg.patchgan(6, ndf=ndf, n_layers=n_layers, norm="batch")
    load(netG, case, "G")
    load(netD, case, "D")
    netG.train()
    netD.train()
    criterionGAN = GANLoss('vanilla')
    criterionL1 = torch.nn.L1Loss()
    lr, beta1, lambda_L1 = float(case["hp/lr"]), float(case["hp/beta1"]), float(case["hp/lambda_L1"])
    optimizer_G = torch.optim.Adam(netG.parameters(), lr=lr, betas=(beta1, 0.999))
    optimizer_D = torch.optim.Adam(netD.parameters(), lr=lr, betas=(beta1, 0.999))
    losses = {"G_GAN": [], "G_L1": [], "D": []}
    for a, b in zip(case["batch/A"], case["batch/B"]):
        real_A, real_B = nchw_signed(a), nchw_signed(b)
        loss_G_GAN, loss_G_L1, loss_D = optimize_parameters(netG, netD, optimizer_G, optimizer_D, criterionGAN,
                                                            criterionL1, lambda_L1, real_A, real_B)
        for k, v in (("G_GAN", loss_G_GAN), ("G_L1", loss_G_L1), ("D", loss_D)):
            losses[k].append(v.item())
    out = {f"losses/{k}": np.asarray(v, np.float64) for k, v in losses.items()}
    out.update(export(netG, "G"))
    out.update(export(netD, "D"))
    np.savez(args.out, **out)


if __name__ == "__main__":
    main()
