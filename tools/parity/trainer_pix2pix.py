"""Parity case for ``pix2pix`` (jaxgen side), against junyanz/pytorch-CycleGAN-and-pix2pix
``models/pix2pix_model.py`` (see ``torch_pix2pix.py`` for the files and commit).

Case (numpy; layouts and module names as in ``trainer_cyclegan.py``):

* ``init/G/...`` (U-Net, batch norm: ``num_downs`` 5, ``ngf`` 4 -- no dropout block, the official U-Net puts
  dropout only in the ``num_downs - 5`` innermost ``ngf*8`` blocks, so no random draw enters the parity run; the
  step-key test in ``tests/test_objective_defaults.py`` covers the dropout draws) and ``init/D/...`` (conditional
  PatchGAN with batch norm on 6 channels, ``ndf`` 4, 2 layers): jaxgen's initial params (``Pix2PixTask.init``);
* ``batch/A``, ``batch/B``: ``[steps,B,S,S,3]`` float32 in [0,1]; direction AtoB;
* ``hp/``: ``lr`` 2e-4, ``beta1`` 0.5, ``lambda_L1`` 100 (official), vanilla GAN, pool 0 (official), constant lr.

Loss terms: ``G_GAN``, ``G_L1`` (times ``lambda_L1``) and ``D`` = ``0.5 * (D_fake + D_real)``.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from jaxgen.config import load_config, optim_config
from jaxgen.tasks import get_task

import common  # tools/parity is not a package: its folder is on sys.path
from trainer_cyclegan import put_params, to_torch

REPO = Path(__file__).resolve().parents[2]
NAME = "pix2pix"
BATCH, SIZE = 2, 32
PLAYERS = ("G", "D")
TERMS = ("G_GAN", "G_L1", "D")


def _config(case: dict | None = None):
    c = load_config(f"{REPO}/configs/pix2pix.py:tiny")
    c.batch_size, c.data.crop_size, c.direction = BATCH, SIZE, "AtoB"
    c.model.num_downs, c.model.ngf, c.disc.ndf, c.disc.n_layers = 5, 4, 4, 2
    hp = {"lr": 2e-4, "beta1": 0.5, "lambda_L1": 100.0}
    if case is not None:
        hp = {k: float(case[f"hp/{k}"]) for k in hp}
    c.optim = optim_config(lr=hp["lr"], b1=hp["beta1"], b2=0.999)
    c.losses.lambda_L1, c.losses.gan_kind = hp["lambda_L1"], "vanilla"
    return c, hp


def make_case(steps: int, seed: int) -> dict:
    config, hp = _config()
    task = get_task(NAME)(config)
    state = task.init()
    case = {f"init/{p}/{k}": v for p in PLAYERS for k, v in to_torch(state.players[p].params).items()}
    rng = np.random.default_rng(seed)
    case["batch/A"] = common.images(rng, (steps, BATCH, SIZE, SIZE, 3))
    case["batch/B"] = common.images(rng, (steps, BATCH, SIZE, SIZE, 3))
    case.update({f"hp/{k}": np.float32(v) for k, v in hp.items()})
    return case


def run_jax(case: dict) -> dict:
    config, _ = _config(case)
    task = get_task(NAME)(config)
    state = put_params(task, case, PLAYERS)
    step = jax.jit(task.step, compiler_options=common.COMPILER_OPTIONS)
    losses = {t: [] for t in TERMS}
    for a, b in zip(case["batch/A"], case["batch/B"]):
        state, m = step(state, {"A": jax.device_put(a), "B": jax.device_put(b)}, {})
        for t in TERMS:
            losses[t].append(float(m[t] if t == "D" else m[f"loss_{t}"]))
    params = {f"{p}/{k}": v for p in PLAYERS for k, v in to_torch(state.players[p].params).items()}
    return {"losses": {t: np.asarray(v, np.float64) for t, v in losses.items()}, "params": params}
