"""The official CycleGAN training step in PyTorch, for the parity harness (``tools/parity/run.py``).

Official code: junyanz/pytorch-CycleGAN-and-pix2pix --

* ``models/cycle_gan_model.py`` (read at commit 032e88438b1b2690e538c2cf399ebceb76adbea9): ``forward``,
  ``backward_G``, ``backward_D_basic``, ``backward_D_A/B``, ``optimize_parameters`` (copied below as functions:
  the G step with the discriminators frozen, then both D losses on pooled fakes, one Adam step each; the loss
  terms and their weights -- ``loss_idt_A = L1(G_A(B), B) * lambda_B * lambda_idt``, ``loss_idt_B = L1(G_B(A), A)
  * lambda_A * lambda_idt``, ``loss_cycle_A = L1(rec_A, A) * lambda_A``, ``loss_cycle_B = L1(rec_B, B) *
  lambda_B`` -- exactly as there); the optimizers ``Adam(chain(G_A, G_B), lr, betas=(beta1, 0.999))`` and the
  same for ``D_A, D_B``;
* ``models/networks.py``: ``GANLoss('lsgan')`` (``MSELoss`` against a target tensor of 1.0 / 0.0 expanded to the
  prediction), ``ResnetGenerator`` / ``ResnetBlock`` (``norm='instance'``: ``InstanceNorm2d(affine=False)``,
  biased convs, reflection padding, no dropout) and ``NLayerDiscriminator`` -- here the PyTorch re-creation of
  those layouts in ``tools/translation_goldens.py`` (``ResnetG``, ``patchgan``; the forward passes are checked
  against jaxgen by ``tests/goldens/translation_nets.npz``), whose modules carry jaxgen's names;
* ``util/image_pool.py``: ``ImagePool`` (copied), with Python's ``random`` replaced by :class:`Replay`, which hands
  back the case's draws (jaxgen's) in the order the official code asks for them.

Images: the case's ``[0,1]`` batches mapped to ``[-1,1]`` (the official ``Normalize((0.5,)*3, (0.5,)*3)``).
Run: ``/work/torchvenv/bin/python tools/parity/torch_cyclegan.py --case CASE.npz --out OUT.npz [--dtype float64]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
from pathlib import Path

import numpy as np
import torch

_spec = importlib.util.spec_from_file_location("translation_goldens",
                                               Path(__file__).resolve().parents[1] / "translation_goldens.py")
tg = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tg)

PLAYERS = ("G_A", "G_B", "D_A", "D_B")


class Replay:
    """Stands in for the ``random`` module inside ``ImagePool.query``: ``uniform`` returns the next full-pool
    image's ``p``, ``randint`` that image's slot (the official code draws the slot only when ``p > 0.5``)."""

    def __init__(self, p: np.ndarray, slot: np.ndarray, pool_size: int):
        pairs = list(zip(p.ravel().tolist(), slot.ravel().tolist()))
        self.pairs = iter(pairs[pool_size:])  # the first pool_size images fill the pool and draw nothing
        self.current = None

    def uniform(self, a, b):
        self.current = next(self.pairs)
        return a + (b - a) * self.current[0]

    def randint(self, a, b):
        assert a == 0
        return int(self.current[1])


class ImagePool():
    def __init__(self, pool_size, random):
        self.pool_size = pool_size
        self.random = random
        if self.pool_size > 0:  # create an empty pool
            self.num_imgs = 0
            self.images = []

    def query(self, images):
        random = self.random
        if self.pool_size == 0:  # if the buffer size is 0, do nothing
            return images
        return_images = []
        for image in images:
            image = torch.unsqueeze(image.data, 0)
            if self.num_imgs < self.pool_size:   # if the buffer is not full; keep inserting current images to the buffer
                self.num_imgs = self.num_imgs + 1
                self.images.append(image)
                return_images.append(image)
            else:
                p = random.uniform(0, 1)
                if p > 0.5:  # by 50% chance, the buffer will return a previously stored image, and insert the current image into the buffer
                    random_id = random.randint(0, self.pool_size - 1)  # randint is inclusive
                    tmp = self.images[random_id].clone()
                    self.images[random_id] = image
                    return_images.append(tmp)
                else:       # by another 50% chance, the buffer will return the current image
                    return_images.append(image)
        return_images = torch.cat(return_images, 0)   # collect all the images and return
        return return_images


class GANLoss(torch.nn.Module):
    """``networks.GANLoss`` for ``lsgan`` and ``vanilla``."""

    def __init__(self, gan_mode, target_real_label=1.0, target_fake_label=0.0):
        super(GANLoss, self).__init__()
        self.register_buffer('real_label', torch.tensor(target_real_label))
        self.register_buffer('fake_label', torch.tensor(target_fake_label))
        self.gan_mode = gan_mode
        if gan_mode == 'lsgan':
            self.loss = torch.nn.MSELoss()
        elif gan_mode == 'vanilla':
            self.loss = torch.nn.BCEWithLogitsLoss()
        else:
            raise NotImplementedError('gan mode %s not implemented' % gan_mode)

    def get_target_tensor(self, prediction, target_is_real):
        if target_is_real:
            target_tensor = self.real_label
        else:
            target_tensor = self.fake_label
        return target_tensor.expand_as(prediction)

    def __call__(self, prediction, target_is_real):
        target_tensor = self.get_target_tensor(prediction, target_is_real)
        return self.loss(prediction, target_tensor)


def named_modules(net: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """jaxgen module name -> the re-created PyTorch module holding its params."""
    if isinstance(net, tg.ResnetG):
        return {k: m for k, m in net.m.items() if any(True for _ in m.parameters())}
    if isinstance(net, tg.UnetBlock):
        out, block, lvl = {}, net, 0
        while block is not None:
            layers = list(block.model)
            sub = next((m for m in layers if isinstance(m, tg.UnetBlock)), None)
            out[f"down{lvl}"] = next(m for m in layers if isinstance(m, torch.nn.Conv2d))
            out[f"up{lvl}"] = next(m for m in layers if isinstance(m, torch.nn.ConvTranspose2d))
            norms = [m for m in layers if isinstance(m, torch.nn.BatchNorm2d)]
            names = [f"up{lvl}_norm"] if sub is None else ([] if lvl == 0 else [f"down{lvl}_norm", f"up{lvl}_norm"])
            out.update(zip(names, norms))
            block, lvl = sub, lvl + 1
        return out
    convs = [m for m in net if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in net if isinstance(m, torch.nn.BatchNorm2d)]
    out = dict(zip([f"conv{i}" for i in range(len(convs) - 1)] + ["conv_out"], convs))
    out.update({f"norm{i}": m for i, m in enumerate(norms, start=1)})
    return out


def load(net: torch.nn.Module, case: dict, player: str) -> None:
    """``init/<player>/<module>.<leaf>`` -> the net's params; every param must be set exactly once."""
    mods = named_modules(net)
    pre = f"init/{player}/"
    seen = set()
    with torch.no_grad():
        for key, v in case.items():
            if not key.startswith(pre):
                continue
            module, _, leaf = key[len(pre):].rpartition(".")
            p = getattr(mods[module], leaf)
            assert tuple(p.shape) == v.shape, (key, p.shape, v.shape)
            p.copy_(torch.from_numpy(v))
            seen.add(id(p))
    missing = [n for n, p in net.named_parameters() if id(p) not in seen]
    assert not missing, f"{player}: no init for {missing}"


def export(net: torch.nn.Module, player: str) -> dict[str, np.ndarray]:
    return {f"params/{player}/{name}.{leaf}": p.detach().numpy().copy()
            for name, m in named_modules(net).items() for leaf, p in m.named_parameters(recurse=False)}


def nchw_signed(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))) * 2.0 - 1.0


def set_requires_grad(nets, requires_grad=False):
    if not isinstance(nets, list):
        nets = [nets]
    for net in nets:
        if net is not None:
            for param in net.parameters():
                param.requires_grad = requires_grad


def optimize_parameters(nets, optimizer_G, optimizer_D, fake_A_pool, fake_B_pool, criterionGAN, lambda_idt,
                        lambda_A, lambda_B, real_A, real_B):
    """One official ``CycleGANModel.optimize_parameters`` (``forward``, ``backward_G``, ``backward_D_A/B``, copied
    below) on ``real_A``/``real_B`` (NCHW in [-1, 1]); ``nets`` maps each of :data:`PLAYERS` to its module
    (``benchmarks/torch_models.CycleGAN`` times it, compiled in place by ``Module.compile`` in the torch.compile
    variant). Returns the eight loss terms (tensors)."""
    netG_A, netG_B, netD_A, netD_B = (nets[k] for k in PLAYERS)
    criterionCycle, criterionIdt = torch.nn.L1Loss(), torch.nn.L1Loss()
    # forward()
    fake_B = netG_A(real_A)
    rec_A = netG_B(fake_B)
    fake_A = netG_B(real_B)
    rec_B = netG_A(fake_A)
    # G_A and G_B
    set_requires_grad([nets["D_A"], nets["D_B"]], False)
    optimizer_G.zero_grad()
    # backward_G()
    idt_A = netG_A(real_B)
    loss_idt_A = criterionIdt(idt_A, real_B) * lambda_B * lambda_idt
    idt_B = netG_B(real_A)
    loss_idt_B = criterionIdt(idt_B, real_A) * lambda_A * lambda_idt
    loss_G_A = criterionGAN(netD_A(fake_B), True)
    loss_G_B = criterionGAN(netD_B(fake_A), True)
    loss_cycle_A = criterionCycle(rec_A, real_A) * lambda_A
    loss_cycle_B = criterionCycle(rec_B, real_B) * lambda_B
    loss_G = loss_G_A + loss_G_B + loss_cycle_A + loss_cycle_B + loss_idt_A + loss_idt_B
    loss_G.backward()
    optimizer_G.step()
    # D_A and D_B
    set_requires_grad([nets["D_A"], nets["D_B"]], True)
    optimizer_D.zero_grad()
    loss_D = {}
    for name, netD, real, pool_, fake in (("D_A", netD_A, real_B, fake_B_pool, fake_B),
                                           ("D_B", netD_B, real_A, fake_A_pool, fake_A)):
        fake = pool_.query(fake)
        # backward_D_basic(netD, real, fake)
        pred_real = netD(real)
        loss_D_real = criterionGAN(pred_real, True)
        pred_fake = netD(fake.detach())
        loss_D_fake = criterionGAN(pred_fake, False)
        loss_D[name] = (loss_D_real + loss_D_fake) * 0.5
        loss_D[name].backward()
    optimizer_D.step()
    return dict(G_A=loss_G_A, G_B=loss_G_B, cycle_A=loss_cycle_A, cycle_B=loss_cycle_B, idt_A=loss_idt_A,
                idt_B=loss_idt_B, **loss_D)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    args = ap.parse_args()
    torch.set_default_dtype(getattr(torch, args.dtype))
    torch.use_deterministic_algorithms(True)
    case = {k: v.astype(args.dtype) if v.dtype == np.float32 and not k.startswith("hp/pool") else v
            for k, v in np.load(args.case).items()}
    hp = {k[3:]: case[k] for k in case if k.startswith("hp/")}
    ngf = case["init/G_A/conv_in.weight"].shape[0]
    n_blocks = len({k for k in case if k.startswith("init/G_A/block") and k.endswith("conv1.weight")})
    ndf = case["init/D_A/conv0.weight"].shape[0]
    n_layers = len({k for k in case if k.startswith("init/D_A/conv") and k.endswith(".weight")}) - 2
    netG_A, netG_B = tg.ResnetG(ngf, n_blocks), tg.ResnetG(ngf, n_blocks)
    netD_A, netD_B = (tg.patchgan(3, ndf=ndf, n_layers=n_layers, norm="instance") for _ in range(2))
    nets = dict(zip(PLAYERS, (netG_A, netG_B, netD_A, netD_B)))
    for name, net in nets.items():
        load(net, case, name)
        net.train()
    pool = int(hp["pool_size"])
    fake_A_pool = ImagePool(pool, Replay(hp["pool_A_p"], hp["pool_A_slot"], pool))
    fake_B_pool = ImagePool(pool, Replay(hp["pool_B_p"], hp["pool_B_slot"], pool))
    criterionGAN = GANLoss('lsgan')
    lr, beta1 = float(hp["lr"]), float(hp["beta1"])
    optimizer_G = torch.optim.Adam(itertools.chain(netG_A.parameters(), netG_B.parameters()), lr=lr, betas=(beta1, 0.999))
    optimizer_D = torch.optim.Adam(itertools.chain(netD_A.parameters(), netD_B.parameters()), lr=lr, betas=(beta1, 0.999))
    lambda_idt, lambda_A, lambda_B = float(hp["lambda_identity"]), float(hp["lambda_A"]), float(hp["lambda_B"])
    terms = ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B")
    losses = {t: [] for t in terms}

    for a, b in zip(case["batch/A"], case["batch/B"]):
        values = optimize_parameters(nets, optimizer_G, optimizer_D, fake_A_pool, fake_B_pool, criterionGAN,
                                     lambda_idt, lambda_A, lambda_B, nchw_signed(a), nchw_signed(b))
        for t in terms:
            losses[t].append(values[t].item())

    out = {f"losses/{k}": np.asarray(v, np.float64) for k, v in losses.items()}
    for name, net in nets.items():
        out.update(export(net, name))
    np.savez(args.out, **out)


if __name__ == "__main__":
    main()
