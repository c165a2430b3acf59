"""Parity plug-in ``sr_gan``: jaxgen's ``sr_gan`` task as BasicSR's ``ESRGANModel`` trains ESRGAN
(``options/train/ESRGAN/train_ESRGAN_x4.yml``): RRDBNet, BasicSR's VGG-style discriminator (``norm='batch'``:
BatchNorm, running statistics in the player's collections), L1 0.01 + VGG19 perceptual (L1) 1.0 (on ``conv2_2``
here: ``conv5_4`` at 128 px takes minutes on 2 CPU cores; ``real_sr_gan`` covers ``conv1_2..conv5_4``) +
relativistic GAN 5e-3 (``ragan_basicsr``), Adam(0.9, 0.99) for both, MultiStepLR, EMA. Small: RRDBNet 8
features, 1 block, growth 4, x4, batch 2 of 32 px LR (128 px HR: the discriminator's input size), D 8 features;
lr 1e-4 (ESRGAN's) halved at step 10; EMA decay 0.9 (ESRGAN's 0.999 barely moves the EMA in 20 steps; same formula). The
frozen VGG19 is random (Kaiming init from ``hp/vgg_seed``): parity needs identical weights, not trained ones;
it is regenerated for the golden (``GOLDEN_DROP``/``restore_case``). Torch side: ``torch_sr_gan.py``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

from jaxgen.config import optim_config
from jaxgen.models import stacking
from jaxgen.tasks import base_config
from jaxgen.models.vgg import VGGFeatures, vgg_layer_names
from jaxgen.tasks import get_task
from jaxgen.train.state import new_player
from jaxgen.weights import convert

import common  # tools/parity is not a package: its folder is on sys.path
import trainer_sr as srp

GOLDEN_DROP = ("frozen/", "batch/")
LAYERS = {"conv2_2": 1.0}  # conv5_4 (ESRGAN) at 128 px is minutes on 2 CPU cores; real_sr_gan covers it
HP = dict(scale=4, num_feat=8, num_block=1, num_grow_ch=4, d_num_feat=8, batch=2, lr_patch=32, lr=1e-4, d_lr=1e-4,
          beta1=0.9, beta2=0.99, d_beta1=0.9, d_beta2=0.99, eps=1e-8, gamma=0.5, pix_weight=0.01,
          percep_weight=1.0, gan_weight=5e-3, ema_decay=0.9)
MILESTONES = (10,)


def config(steps: int, seed: int = 0, layers: dict[str, float] = LAYERS) -> ml_collections.ConfigDict:
    c = base_config("sr_gan")
    c.seed, c.scale, c.total_steps = seed, HP["scale"], steps
    c.model = ml_collections.ConfigDict(dict(name="rrdbnet", num_feat=HP["num_feat"], num_blocks=HP["num_block"],
                                             num_grow_ch=HP["num_grow_ch"]))
    c.losses = ml_collections.ConfigDict(dict(
        l1=HP["pix_weight"],
        perceptual=dict(weight=HP["percep_weight"], layer_weights=dict(layers), criterion="l1", weights="auto"),
        gan=dict(weight=HP["gan_weight"], kind="ragan_basicsr", real_label=1.0, fake_label=0.0, gp_weight=0.0,
                 r1_gamma=0.0)))
    c.disc.name = "vgg_style"
    c.disc.kwargs = ml_collections.ConfigDict(dict(num_feat=HP["d_num_feat"], input_size=128, norm="batch"))
    c.batch_size, c.data.patch_size = HP["batch"], HP["lr_patch"]
    c.ema_decay = HP["ema_decay"]
    opt = dict(b1=HP["beta1"], b2=HP["beta2"], eps=HP["eps"], schedule="multistep", milestones=MILESTONES,
               gamma=HP["gamma"])
    c.optim = optim_config(lr=HP["lr"], **opt)
    c.disc.optim = optim_config(lr=HP["d_lr"], **opt)
    return c


# ------------------------------------------------------------------------------------------ frozen VGG


def random_vgg(seed: int, layers: dict[str, float]) -> dict[str, np.ndarray]:
    """``{features.N.weight|bias: torch layout}`` of a Kaiming-initialised VGG19 up to the deepest layer."""
    names = vgg_layer_names("vgg19")
    deepest = max(layers, key=names.index)
    # one jitted init, compiled as the trainers' programs (eagerly each layer's draws compile op by op: ~5 s)
    init = jax.jit(VGGFeatures(vgg_type="vgg19", taps=(deepest,)).init, compiler_options=common.COMPILER_OPTIONS)
    params = init(jax.random.key(seed), jnp.zeros((1, 32, 32, 3)))
    out = {}
    for mod, leaves in params["params"].items():
        n = mod.split("_")[1]
        out[f"features.{n}.weight"] = np.asarray(leaves["kernel"]).transpose(3, 2, 0, 1).copy()
        # small random biases so the bias path is exercised too
        out[f"features.{n}.bias"] = (0.01 * np.asarray(jax.random.normal(jax.random.key(seed + int(n) + 1),
                                                                         leaves["bias"].shape))).astype(np.float32)
    return out


def vgg_case(seed: int, layers: dict[str, float]) -> dict[str, Any]:
    w = random_vgg(seed, layers)
    return {**{f"frozen/vgg/{k}": v for k, v in w.items()},
            "hp/vgg_seed": seed, "hp/vgg_checksum": np.float64(sum(float(np.abs(v).sum()) for v in w.values())),
            "hp/layer_names": np.array(list(layers)), "hp/layer_weights": np.array(list(layers.values()), np.float64)}


def restore_vgg(case: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    layers = dict(zip([str(n) for n in case["hp/layer_names"]], case["hp/layer_weights"].tolist()))
    w = random_vgg(int(case["hp/vgg_seed"]), layers)
    checksum = sum(float(np.abs(v).sum()) for v in w.values())
    if not np.isclose(checksum, float(case["hp/vgg_checksum"]), rtol=1e-6):
        raise ValueError(f"regenerated VGG differs from the golden's (checksum {checksum} vs "
                         f"{float(case['hp/vgg_checksum'])}): the RNG or the VGG init changed; rewrite goldens")
    return {**case, **{f"frozen/vgg/{k}": v for k, v in w.items()}}


def batch_case(seed: int, steps: int, batch: int, lr_patch: int, scale: int) -> dict[str, Any]:
    """``batch/hr`` (synthetic images from ``np.random.default_rng(seed)``), ``batch/lr`` (box x``scale``) and
    what re-creates them (``hp/data_*``, a checksum)."""
    hr = srp.synthetic_images(np.random.default_rng(seed), steps * batch, lr_patch * scale)
    hr = hr.reshape(steps, batch, *hr.shape[1:])
    return {"batch/lr": srp.box_down(hr, scale), "batch/hr": hr, "hp/data_seed": seed,
            "hp/data_checksum": np.float64(np.abs(hr.astype(np.float64)).sum())}


def restore_batches(case: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    b = batch_case(int(case["hp/data_seed"]), int(case["hp/steps"]), int(case["hp/batch"]), int(case["hp/lr_patch"]),
                   int(case["hp/scale"]))
    if not np.isclose(float(b["hp/data_checksum"]), float(case["hp/data_checksum"]), rtol=1e-9):
        raise ValueError("regenerated batches differ from the golden's (numpy's Generator stream changed?): "
                         "rewrite goldens with tools/parity/run.py --write-goldens")
    return {**case, "batch/lr": b["batch/lr"], "batch/hr": b["batch/hr"]}


def restore_case(case: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The golden's case with the frozen VGG and the batches re-created (both checked by checksums)."""
    return restore_batches(restore_vgg(case))


def vgg_consts(case: dict[str, np.ndarray]) -> dict[str, Any]:
    """``{'vgg': {'torchvision': params}}`` from the case's ``frozen/vgg/features.N.*``."""
    params: dict[str, dict[str, jax.Array]] = {}
    for k, v in case.items():
        if k.startswith("frozen/vgg/features."):
            _, n, leaf = k[len("frozen/vgg/"):].split(".")
            entry = params.setdefault(f"features_{n}", {})
            if leaf == "weight":
                entry["kernel"] = jax.device_put(v.transpose(2, 3, 1, 0))
            else:
                entry["bias"] = jax.device_put(v)
    return {"vgg": {"torchvision": params}}


# ------------------------------------------------------------------------------------------ weights


def disc_to_torch(task: Any, params: Any, collections: Any) -> dict[str, np.ndarray]:
    sd = convert.flax_to_torch("vgg_style", srp.np_tree(params), model=task.discriminator)
    for mod, stats in srp.np_tree(collections).get("batch_stats", {}).items():
        bn = "bn" + mod[len("norm"):]
        sd[f"{bn}.running_mean"] = stats["running_mean"]
        sd[f"{bn}.running_var"] = stats["running_var"]
        sd[f"{bn}.num_batches_tracked"] = np.asarray(stats["num_batches_tracked"], np.int64)
    return sd


def disc_from_torch(task: Any, sd: dict[str, np.ndarray]) -> tuple[Any, Any]:
    params = convert.torch_to_flax("vgg_style", sd, model=task.discriminator)
    stats = {}
    for k, v in sd.items():
        mod, leaf = k.rsplit(".", 1)
        if leaf in ("running_mean", "running_var", "num_batches_tracked"):
            dtype = np.int32 if leaf == "num_batches_tracked" else np.float32
            stats.setdefault("norm" + mod[len("bn"):], {})[leaf] = jax.device_put(np.asarray(v, dtype))
    return params, {"batch_stats": stats}


def init_state(task: Any, case: dict[str, np.ndarray], g_to_flax: Any, d_from_torch: Any) -> Any:
    """``task.init()`` with the case's generator/discriminator weights (and D collections) put in: one jitted
    program, as the training loop's ``jax.jit(task.init)``; the replaced random draws are dead code there, so XLA
    drops them (op-by-op, each init op would be compiled apart)."""
    g = g_to_flax(srp.player_sd(case, "generator"))
    d, coll = d_from_torch(task, srp.player_sd(case, "discriminator"))

    def build(g, d, coll):
        state = task.init()
        g = stacking.stack_like(g, state.players["generator"].params)  # the train state's layout
        srp.check_keys(flatten_dict(g), flatten_dict(state.players["generator"].params), "generator")
        srp.check_keys(flatten_dict(d), flatten_dict(state.players["discriminator"].params), "discriminator")
        srp.check_keys(flatten_dict(coll), flatten_dict(state.players["discriminator"].collections),
                       "discriminator collections")
        players = {"generator": new_player(g, task.g_tx, ema=task.ema_decay > 0),
                   "discriminator": new_player(d, task.d_tx, collections=coll)}
        return state.replace(players=players)

    return jax.jit(build, compiler_options=common.COMPILER_OPTIONS)(jax.device_put(g), jax.device_put(d), coll)


GAN_METRICS = {"l_g_pix": "loss_l1", "l_g_percep": "loss_percep", "l_g_gan": "loss_gan", "l_g_total": "loss",
               "l_d_total": "d_loss", "out_d_real": "d_real_logit", "out_d_fake": "d_fake_logit"}


def export(task: Any, state: Any, g_to_torch: Any, d_to_torch: Any) -> dict[str, np.ndarray]:
    g, d = state.players["generator"], state.players["discriminator"]
    out = {f"generator/{k}": v for k, v in g_to_torch(srp.np_tree(g.params)).items()}
    if g.ema is not None:
        out.update({f"generator_ema/{k}": v for k, v in g_to_torch(srp.np_tree(g.ema)).items()})
    out.update({f"discriminator/{k}": v for k, v in d_to_torch(task, d.params, d.collections).items()})
    return out


# ------------------------------------------------------------------------------------------ plug-in


def make_case(steps: int, seed: int) -> dict[str, Any]:
    c = config(steps, seed)
    task = get_task("sr_gan")(c)
    state = task.init()
    g = state.players["generator"]
    d = state.players["discriminator"]
    case: dict[str, Any] = {f"init/generator/{k}": v
                            for k, v in convert.flax_to_torch("rrdbnet", srp.np_tree(g.params)).items()}
    case.update({f"init/discriminator/{k}": v for k, v in disc_to_torch(task, d.params, d.collections).items()})
    case.update(batch_case(seed, steps, HP["batch"], HP["lr_patch"], HP["scale"]))
    case.update({f"hp/{k}": v for k, v in HP.items()})
    case.update({"hp/steps": steps, "hp/milestones": np.array(MILESTONES)})
    case.update(vgg_case(seed + 1000, LAYERS))
    return case


def run_jax(case: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    steps = int(srp.hp(case, "steps"))
    task = get_task("sr_gan")(config(steps))
    state = init_state(task, case, lambda sd: convert.torch_to_flax("rrdbnet", sd), disc_from_torch)
    state, losses = srp.run_steps(task, state, case, vgg_consts(case), {"lr": "batch/lr", "hr": "batch/hr"},
                                  GAN_METRICS)
    g_to_torch = lambda p: convert.flax_to_torch("rrdbnet", p)  # noqa: E731
    return {"losses": losses, "params": export(task, state, g_to_torch, disc_to_torch)}
