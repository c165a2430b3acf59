"""Parity plug-in ``sr``: jaxgen's ``sr`` task as BasicSR's ``SRModel`` trains EDSR (``train_EDSR_Mx2.yml``: L1,
Adam(0.9, 0.99), MultiStepLR), small: 2 blocks of 16 features, x2, batch 4 of 12 px LR patches, lr 1e-3 halved at
steps 8 and 15 (so the schedule is exercised in 20 steps). Torch side: ``torch_sr.py``.

Also the helpers the other SR plug-ins (``trainer_sr_gan.py``, ``trainer_real_sr_gan.py``) share: synthetic
image batches, the BasicSR <-> jaxgen weight names, running a task for the case's steps.
"""

from __future__ import annotations

import re
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

from jaxgen.config import optim_config
from jaxgen.models import stacking
from jaxgen.tasks import base_config
from jaxgen.tasks import get_task
from jaxgen.train.state import new_player
from jaxgen.weights import convert

import common  # tools/parity is not a package: its folder is on sys.path

NAME = "sr"


# ------------------------------------------------------------------------------------------ shared helpers


def synthetic_images(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``[n, size, size, 3]`` float32 in [0,1]: smooth random colour fields plus edges and a little noise (not
    flat, not white noise, so every loss term and gradient is non-trivial)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        img = np.zeros((size, size, 3), np.float32)
        for _ in range(4):
            fx, fy, ph = rng.uniform(0.5, 4.0), rng.uniform(0.5, 4.0), rng.uniform(0, 2 * np.pi)
            img += rng.uniform(0.1, 0.3, 3) * np.sin(2 * np.pi * (fx * xx + fy * yy) + ph)[..., None]
        x0, y0 = rng.uniform(0.2, 0.8, 2)
        img += 0.3 * ((xx > x0) ^ (yy > y0))[..., None] * rng.uniform(-1, 1, 3)
        img += 0.03 * rng.standard_normal(img.shape)
        out[i] = np.clip(0.5 + img, 0.0, 1.0)
    return out


def box_down(hr: np.ndarray, s: int) -> np.ndarray:
    """``[..., H, W, C] -> [..., H/s, W/s, C]`` mean of s x s blocks (any LR works: both sides get the same)."""
    *lead, h, w, c = hr.shape
    return hr.reshape(*lead, h // s, s, w // s, s, c).mean(axis=(-4, -2)).astype(np.float32)


def _rename(sd: dict[str, np.ndarray], rules: list[tuple[str, str]]) -> dict[str, np.ndarray]:
    out = {}
    for k, v in sd.items():
        for pat, rep in rules:
            new, n = re.subn(pat, rep, k)
            if n:
                k = new
                break
        out[k] = v
    return out


# EDSR-PyTorch names (jaxgen's converter) <-> BasicSR's EDSR (basicsr/archs/edsr_arch.py)
_EDSR_TO_BASICSR = [(r"^head\.0\.", "conv_first."), (r"^body\.(\d+)\.body\.0\.", r"body.\1.conv1."),
                    (r"^body\.(\d+)\.body\.2\.", r"body.\1.conv2."), (r"^tail\.0\.(\d+)\.", r"upsample.\1."),
                    (r"^tail\.1\.", "conv_last.")]


def edsr_to_basicsr(params: Any, model: Any) -> dict[str, np.ndarray]:
    sd = convert.flax_to_torch("edsr", params, model=model)
    sd = {k: v for k, v in sd.items() if not k.startswith(("sub_mean", "add_mean"))}
    n = model.num_blocks
    sd = {(f"conv_after_body.{k.split('.', 2)[2]}" if k.startswith(f"body.{n}.") and k.count(".") == 2 else k): v
          for k, v in sd.items()}
    return _rename(sd, _EDSR_TO_BASICSR)


def basicsr_to_edsr(sd: dict[str, np.ndarray], model: Any) -> Any:
    n = model.num_blocks
    back = [(r"^conv_first\.", "head.0."), (r"^body\.(\d+)\.conv1\.", r"body.\1.body.0."),
            (r"^body\.(\d+)\.conv2\.", r"body.\1.body.2."), (r"^upsample\.(\d+)\.", r"tail.0.\1."),
            (r"^conv_last\.", "tail.1."), (r"^conv_after_body\.", f"body.{n}.")]
    return convert.torch_to_flax("edsr", _rename(sd, back))


def player_sd(case: dict[str, np.ndarray], player: str) -> dict[str, np.ndarray]:
    pre = f"init/{player}/"
    return {k[len(pre):]: v for k, v in case.items() if k.startswith(pre)}


def hp(case: dict[str, np.ndarray], name: str) -> Any:
    v = np.asarray(case[f"hp/{name}"])
    return v.item() if v.ndim == 0 else v


def run_steps(task: Any, state: Any, case: dict[str, np.ndarray], consts: Any, batch_keys: dict[str, str],
              metric_names: dict[str, str]) -> tuple[Any, dict[str, np.ndarray]]:
    """``task.step`` (jitted) for the case's steps; ``batch_keys`` {task batch key: case key};
    ``metric_names`` {parity term: jaxgen metric}. Returns the final state and ``{term: [steps]}``."""
    step = jax.jit(task.step, compiler_options=common.COMPILER_OPTIONS)
    steps = int(hp(case, "steps"))
    losses: dict[str, list[float]] = {t: [] for t in metric_names}
    for i in range(steps):
        batch = {k: jax.device_put(case[v][i]) for k, v in batch_keys.items()}
        state, metrics = step(state, batch, consts)
        for term, m in metric_names.items():
            losses[term].append(float(metrics[m]))
    return state, {t: np.asarray(v, np.float64) for t, v in losses.items()}


def np_tree(tree: Any) -> Any:
    return jax.tree.map(lambda a: np.asarray(a), tree)


def check_keys(got: dict[str, np.ndarray], want: dict[str, np.ndarray], what: str) -> None:
    if set(got) != set(want):
        raise ValueError(f"{what}: key mismatch; only jaxgen: {sorted(set(got) - set(want))[:5]}, only case: "
                         f"{sorted(set(want) - set(got))[:5]}")


# ------------------------------------------------------------------------------------------ sr


def config(case: dict[str, np.ndarray] | None = None, steps: int = 20, seed: int = 0) -> ml_collections.ConfigDict:
    c = base_config("sr")
    c.seed = seed
    c.scale = 2
    c.model = ml_collections.ConfigDict(dict(name="edsr", num_blocks=2, num_feat=16, res_scale=1.0, img_range=255.0))
    c.losses = ml_collections.ConfigDict({"l1": 1.0})
    c.batch_size, c.data.patch_size = 4, 12
    c.total_steps = steps
    c.optim = optim_config(lr=1e-3, b1=0.9, b2=0.99, eps=1e-8, schedule="multistep", milestones=(8, 15), gamma=0.5)
    return c


def make_case(steps: int, seed: int) -> dict[str, Any]:
    c = config(steps=steps, seed=seed)
    task = get_task("sr")(c)
    params = task.init().players["generator"].params
    rng = np.random.default_rng(seed)
    hr = synthetic_images(rng, steps * c.batch_size, c.data.patch_size * c.scale)
    hr = hr.reshape(steps, c.batch_size, *hr.shape[1:])
    case: dict[str, Any] = {f"init/generator/{k}": v for k, v in edsr_to_basicsr(params, task.generator).items()}
    case.update({"batch/lr": box_down(hr, c.scale), "batch/hr": hr})
    case.update({"hp/steps": steps, "hp/scale": c.scale, "hp/num_feat": 16, "hp/num_block": 2, "hp/res_scale": 1.0,
                 "hp/img_range": 255.0, "hp/lr": 1e-3, "hp/beta1": 0.9, "hp/beta2": 0.99, "hp/eps": 1e-8,
                 "hp/milestones": np.array([8, 15]), "hp/gamma": 0.5, "hp/l1_weight": 1.0})
    return case


def run_jax(case: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    steps = int(hp(case, "steps"))
    c = config(steps=steps)
    task = get_task("sr")(c)
    params = jax.device_put(basicsr_to_edsr(player_sd(case, "generator"), task.generator))

    def build(params):  # one jitted program, as the training loop's jax.jit(task.init); the replaced draws are dead
        state = task.init()
        params = stacking.stack_like(params, state.players["generator"].params)  # the train state's layout
        check_keys(flatten_dict(params), flatten_dict(state.players["generator"].params), "generator")
        return state.replace(players={"generator": new_player(params, task.g_tx)})

    state = jax.jit(build, compiler_options=common.COMPILER_OPTIONS)(params)
    state, losses = run_steps(task, state, case, {}, {"lr": "batch/lr", "hr": "batch/hr"},
                              {"l_pix": "loss_l1", "l_total": "loss"})
    out = edsr_to_basicsr(np_tree(state.players["generator"].params), task.generator)
    return {"losses": losses, "params": {f"generator/{k}": v for k, v in out.items()}}
