"""Parity plug-in ``real_sr_gan``: jaxgen's ``real_sr_gan`` task as Real-ESRGAN's ``RealESRGANModel`` trains
(``options/train_realesrgan_x4plus.yml``): RRDBNet, U-Net discriminator with spectral norm, L1 1.0 on the
USM-sharpened GT + VGG19 perceptual 1.0 (``conv1_2`` 0.1, ``conv2_2`` 0.1, ``conv3_4``, ``conv4_4``, ``conv5_4``
1.0; L1; USM GT) + vanilla GAN 0.1 (plain GT for D, ``gan_gt_usm: False``), Adam(0.9, 0.99), MultiStepLR, EMA.

The degradation is bypassed: both sides get the same pre-made LR batch (``batch/lr``; the second-order
degradation has its own goldens) and no training-pair pool (``queue_size=0``); the USM sharpening stays on both
sides (jaxgen's ``usm_sharp`` vs the official ``USMSharp``). Small: RRDBNet 8 features, 1 block, growth 4, x4,
batch 2 of 8 px LR (32 px HR), D 8 features; lr 1e-4 halved at step 10; EMA 0.9; frozen VGG19 random (as
``trainer_sr_gan``). jaxgen's ``task.pairs`` is replaced on the instance by the bypass (feed_data's
non-degrading branch: ``lq = data['lq']``, ``gt_usm = usm_sharp(gt)``). Torch side: ``torch_real_sr_gan.py``.

Spectral norm: torch's ``weight_v`` is not compared: a training-mode forward recomputes ``v`` from ``u`` before
using it (``torch.nn.utils.spectral_norm``), so it carries no state; jaxgen (Flax ``SpectralNorm``) stores ``u``
only. ``weight_u`` is compared.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgen import degradations as degradations_lib
from jaxgen.config import optim_config
from jaxgen.tasks import base_config
from jaxgen.tasks import get_task
from jaxgen.weights import convert

import trainer_sr as srp
import trainer_sr_gan as gan

GOLDEN_DROP = ("frozen/", "batch/")
LAYERS = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}
HP = dict(scale=4, num_feat=8, num_block=1, num_grow_ch=4, d_num_feat=8, batch=2, lr_patch=8, lr=1e-4, d_lr=1e-4,
          beta1=0.9, beta2=0.99, d_beta1=0.9, d_beta2=0.99, eps=1e-8, gamma=0.5, pix_weight=1.0,
          percep_weight=1.0, gan_weight=0.1, ema_decay=0.9)
MILESTONES = (10,)
SN_CONVS = tuple(f"conv{i}" for i in range(1, 9))
restore_case = gan.restore_case


def config(steps: int, seed: int = 0) -> ml_collections.ConfigDict:
    c = base_config("real_sr_gan")
    c.seed, c.scale, c.total_steps = seed, HP["scale"], steps
    c.model = ml_collections.ConfigDict(dict(name="rrdbnet", num_feat=HP["num_feat"], num_blocks=HP["num_block"],
                                             num_grow_ch=HP["num_grow_ch"]))
    c.losses = ml_collections.ConfigDict(dict(
        l1=HP["pix_weight"],
        perceptual=dict(weight=HP["percep_weight"], layer_weights=dict(LAYERS), criterion="l1", weights="auto"),
        gan=dict(weight=HP["gan_weight"], kind="vanilla", real_label=1.0, fake_label=0.0, gp_weight=0.0,
                 r1_gamma=0.0)))
    c.disc.name = "unet_sn"
    c.disc.kwargs = ml_collections.ConfigDict(dict(num_feat=HP["d_num_feat"], skip_connection=True))
    c.batch_size, c.data.patch_size = HP["batch"], HP["lr_patch"]
    c.ema_decay = HP["ema_decay"]
    c.degradation.queue_size = 0
    c.degradation.groups = 1  # the degradation is bypassed (no draws); the default 4 groups need batch % 4 == 0
    c.degradation.l1_gt_usm, c.degradation.percep_gt_usm, c.degradation.gan_gt_usm = True, True, False
    opt = dict(b1=HP["beta1"], b2=HP["beta2"], eps=HP["eps"], schedule="multistep", milestones=MILESTONES,
               gamma=HP["gamma"])
    c.optim = optim_config(lr=HP["lr"], **opt)
    c.disc.optim = optim_config(lr=HP["d_lr"], **opt)
    return c


def _l2n(x: np.ndarray) -> np.ndarray:
    return x / max(float(np.linalg.norm(x)), 1e-12)


def disc_to_torch(task: Any, params: Any, collections: Any) -> dict[str, np.ndarray]:
    """jaxgen U-Net SN -> ``UNetDiscriminatorSN`` state dict (``weight_orig``, ``weight_u``, ``weight_v``)."""
    params, coll = srp.np_tree(params), srp.np_tree(collections)
    sd = {}
    for name, leaves in params.items():
        w = leaves["kernel"].transpose(3, 2, 0, 1).copy()
        if name in SN_CONVS:
            u = coll["spectral"][f"{name}_sn"][f"{name}/kernel/u"].reshape(-1)
            sd[f"{name}.weight_orig"] = w
            sd[f"{name}.weight_u"] = u.astype(np.float32)
            sd[f"{name}.weight_v"] = _l2n(w.reshape(w.shape[0], -1).T @ u).astype(np.float32)  # derived, see above
        else:
            sd[f"{name}.weight"] = w
            sd[f"{name}.bias"] = leaves["bias"]
    return sd


def disc_from_torch(task: Any, sd: dict[str, np.ndarray]) -> tuple[Any, Any]:
    params: dict[str, Any] = {}
    spectral: dict[str, Any] = {}
    for k, v in sd.items():
        name, leaf = k.split(".")
        if leaf in ("weight", "weight_orig"):
            params.setdefault(name, {})["kernel"] = jax.device_put(v.transpose(2, 3, 1, 0))
        elif leaf == "bias":
            params.setdefault(name, {})["bias"] = jax.device_put(v)
        elif leaf == "weight_u":
            spectral.setdefault(f"{name}_sn", {})[f"{name}/kernel/u"] = jax.device_put(v.reshape(1, -1))
            spectral[f"{name}_sn"][f"{name}/kernel/sigma"] = jnp.ones((), jnp.float32)
    return params, {"spectral": spectral}


class BypassPairs:
    """``RealESRGANModel.feed_data`` without the degradation (and no pool): the batch's own LR, USM GT targets
    as the task's ``usm_targets`` say; replaces the task's ``pairs`` on the instance."""

    def __init__(self, pairs: Any) -> None:
        self.usm_targets = pairs.usm_targets
        self.buffers = pairs.buffers

    def __call__(self, state: Any, batch: dict[str, jax.Array]) -> tuple[jax.Array, dict[str, jax.Array], Any]:
        gt = batch["hr"].astype(jnp.float32)
        gt_usm = degradations_lib.usm_sharp(gt)
        return batch["lr"], {k: gt_usm if use else gt for k, use in self.usm_targets.items()}, state.buffers


def make_case(steps: int, seed: int) -> dict[str, Any]:
    c = config(steps, seed)
    task = get_task("real_sr_gan")(c)
    state = task.init()
    g, d = state.players["generator"], state.players["discriminator"]
    case: dict[str, Any] = {f"init/generator/{k}": v
                            for k, v in convert.flax_to_torch("rrdbnet", srp.np_tree(g.params)).items()}
    case.update({f"init/discriminator/{k}": v for k, v in disc_to_torch(task, d.params, d.collections).items()})
    case.update(gan.batch_case(seed, steps, HP["batch"], HP["lr_patch"], HP["scale"]))
    case.update({f"hp/{k}": v for k, v in HP.items()})
    case.update({"hp/steps": steps, "hp/milestones": np.array(MILESTONES)})
    case.update(gan.vgg_case(seed + 1000, LAYERS))
    return case


def run_jax(case: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    steps = int(srp.hp(case, "steps"))
    task = get_task("real_sr_gan")(config(steps))

    task.pairs = BypassPairs(task.pairs)
    state = gan.init_state(task, case, lambda sd: convert.torch_to_flax("rrdbnet", sd), disc_from_torch)
    state, losses = srp.run_steps(task, state, case, gan.vgg_consts(case), {"lr": "batch/lr", "hr": "batch/hr"},
                                  gan.GAN_METRICS)
    params = gan.export(task, state, lambda p: convert.flax_to_torch("rrdbnet", p), disc_to_torch)
    params = {k: v for k, v in params.items() if not k.endswith(".weight_v")}
    return {"losses": losses, "params": params}
