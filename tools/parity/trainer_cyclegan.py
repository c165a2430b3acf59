"""Parity case for ``cyclegan`` (jaxgen side), against junyanz/pytorch-CycleGAN-and-pix2pix
``models/cycle_gan_model.py`` + ``util/image_pool.py`` (see ``torch_cyclegan.py`` for the files and commit).

Case (numpy):

* ``init/<player>/<module>.<weight|bias>`` for ``G_A, G_B, D_A, D_B``: jaxgen's initial params
  (``CycleGANTask.init``: official ``init_type='normal'``, gain 0.02) in PyTorch layout (OIHW convs, transposed
  convs ``[in, out, kh, kw]``, norm ``weight``/``bias``). Module names are jaxgen's (``conv_in``, ``down0``,
  ``block0_conv1``, ``up0``, ``conv_out``; PatchGAN ``conv0..conv_out``), which are the module names of the PyTorch
  re-creation of the official networks in ``tools/translation_goldens.py`` (checked against it by
  ``tests/goldens/translation_nets.npz``); the official ``nn.Sequential`` indices differ only in naming;
* ``batch/A``, ``batch/B``: ``[steps,B,S,S,3]`` float32 in [0,1] (uint8 / 255);
* ``hp/``: ``lr`` 2e-4, ``beta1`` 0.5 (official), ``lambda_A`` 10, ``lambda_B`` 5 (different on purpose, so
  swapping them shows), ``lambda_identity`` 0.5, ``pool_size`` 3 (fills in the 2nd step, then swaps);
* ``hp/pool_{A,B}_p``, ``hp/pool_{A,B}_slot``: ``[steps,B]`` -- jaxgen's own pool draws (``step_key(state,
  STREAM_POOL)``, ``fold_in`` 1 for the A pool / 0 for the B pool, ``split`` per image, then ``split`` into the
  ``p`` and the slot draw, as ``jaxgen.tasks.image_pool.query_pool``), which the torch side replays in place of
  Python's ``random.uniform`` / ``random.randint`` in the official ``ImagePool.query``.

Constant learning rate (the official linear decay is per epoch; it starts after 100 epochs).

Float32 chaos (measured, 20 steps): the official step in float32 leaves its own float64 trajectory from step 6
(G_A 6e-5 relative, 1.3e-2 by step 16); jaxgen agrees with the official float32 run to <= 3e-6 for steps 0-9 and
its distance to the float64 run equals the official float32 run's at every step (G_A max 1.5e-2 vs 1.3e-2). A
1e-7 perturbation of the weights (``run.py``'s default floor) happens to start diverging later (step 12) than
float32 rounding does, so the floor of this case is the official code's own float32 error (``NOISE_FLOOR``).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

from jaxgen.config import load_config, optim_config
from jaxgen.tasks import get_task
from jaxgen.train.state import STREAM_POOL, step_key

import common  # tools/parity is not a package: its folder is on sys.path

REPO = Path(__file__).resolve().parents[2]
NAME = "cyclegan"
BATCH, SIZE, POOL = 2, 32, 3
PLAYERS = ("G_A", "G_B", "D_A", "D_B")
TERMS = ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B")
NOISE_FLOOR = "float64"  # run.py: the torch side in float64 is this case's measured floor (module docstring)


def to_torch(params) -> dict[str, np.ndarray]:
    """Flax params of a translation net -> ``{module.weight|bias: array}`` in PyTorch layout."""
    out = {}
    for path, v in flatten_dict(jax.device_get(params)).items():
        module, leaf = ".".join(path[:-1]), path[-1]
        v = np.asarray(v)
        if leaf == "kernel":  # conv HWIO -> OIHW; transposed conv (transpose_kernel) HW,out,in -> in,out,H,W
            out[f"{module}.weight"] = np.ascontiguousarray(v.transpose(3, 2, 0, 1))
        elif leaf == "scale":
            out[f"{module}.weight"] = v
        else:
            out[f"{module}.{leaf}"] = v
    return out


def to_flax(state: dict[str, np.ndarray]) -> dict:
    flat = {}
    for key, v in state.items():
        module, _, leaf = key.rpartition(".")
        path = tuple(module.split("."))
        if leaf == "weight" and v.ndim == 4:
            flat[path + ("kernel",)] = jax.device_put(v.transpose(2, 3, 1, 0))
        elif leaf == "weight":
            flat[path + ("scale",)] = jax.device_put(v)
        else:
            flat[path + (leaf,)] = jax.device_put(v)
    return unflatten_dict(flat)


def put_params(task, case: dict, players) -> object:
    """``task.init()``'s state with every player's params from the case's ``init/`` and a fresh optimizer state.
    One jitted program, as the training loop's ``jax.jit(task.init)``; the replaced random draws are dead code
    there, so XLA drops them (op-by-op, each init op would be compiled apart)."""
    params = {}
    for name in players:
        pre = f"init/{name}/"
        params[name] = to_flax({k[len(pre):]: v for k, v in case.items() if k.startswith(pre)})

    def build(params):
        state = task.init()
        new = dict(state.players)
        for name in players:
            tx = task.players[name][1]
            new[name] = state.players[name].replace(params=params[name], opt_state=tx.init(params[name]))
        return state.replace(players=new)

    return jax.jit(build, compiler_options=common.COMPILER_OPTIONS)(params)


def _config(case: dict | None = None):
    c = load_config(f"{REPO}/configs/cyclegan.py:tiny")
    c.batch_size, c.data.crop_size, c.pool_size = BATCH, SIZE, POOL
    c.model.ngf, c.model.n_blocks, c.disc.ndf, c.disc.n_layers = 4, 1, 4, 2
    hp = {"lr": 2e-4, "beta1": 0.5, "lambda_A": 10.0, "lambda_B": 5.0, "lambda_identity": 0.5}
    if case is not None:
        hp = {k: float(case[f"hp/{k}"]) for k in hp}
        c.pool_size = int(case["hp/pool_size"])
    c.optim = optim_config(lr=hp["lr"], b1=hp["beta1"], b2=0.999)
    c.losses.lambda_A, c.losses.lambda_B, c.losses.lambda_identity = hp["lambda_A"], hp["lambda_B"], hp["lambda_identity"]
    return c, hp


def pool_draws(state, steps: int, batch: int, size: int) -> dict[str, np.ndarray]:
    """jaxgen's pool draws per step and image (module docstring)."""
    out = {f"hp/pool_{d}_{w}": np.zeros((steps, batch), np.float32 if w == "p" else np.int64)
           for d in "AB" for w in ("p", "slot")}
    for t in range(steps):
        key = step_key(state.replace(step=jnp.asarray(t, jnp.int32)), STREAM_POOL)
        for domain, fold in (("B", 0), ("A", 1)):
            for i, k in enumerate(jax.random.split(jax.random.fold_in(key, fold), batch)):
                k_p, k_slot = jax.random.split(k)
                out[f"hp/pool_{domain}_p"][t, i] = float(jax.random.uniform(k_p))
                out[f"hp/pool_{domain}_slot"][t, i] = int(jax.random.randint(k_slot, (), 0, size))
    return out


def make_case(steps: int, seed: int) -> dict:
    config, hp = _config()
    task = get_task(NAME)(config)
    state = task.init()
    case = {f"init/{p}/{k}": v for p in PLAYERS for k, v in to_torch(state.players[p].params).items()}
    rng = np.random.default_rng(seed)
    case["batch/A"] = common.images(rng, (steps, BATCH, SIZE, SIZE, 3))
    case["batch/B"] = common.images(rng, (steps, BATCH, SIZE, SIZE, 3))
    case.update({f"hp/{k}": np.float32(v) for k, v in hp.items()})
    case["hp/pool_size"] = np.int64(POOL)
    case.update(pool_draws(state, steps, BATCH, POOL))
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
            losses[t].append(float(m[t] if t in ("D_A", "D_B") else m[f"loss_{t}"]))
    params = {f"{p}/{k}": v for p in PLAYERS for k, v in to_torch(state.players[p].params).items()}
    return {"losses": {t: np.asarray(v, np.float64) for t, v in losses.items()}, "params": params}
