"""Parity case for ``fast_style`` (jaxgen side), against pytorch/examples ``fast_neural_style`` (see
``torch_fast_style.py`` for the official files and commit).

Case (all numpy, PyTorch layouts/names so the torch script reads it without jaxgen):

* ``init/generator/<key>``: jaxgen's initial TransformerNet params (``FastStyleTask.init``, PyTorch init) exported with
  ``jaxgen.weights.convert.flax_to_torch('transformer_net', ...)`` -- official ``TransformerNet`` keys;
* ``frozen/vgg/features.N.{weight,bias}``: VGG16 ``features`` weights up to ``relu4_3``. Not the ImageNet weights (30 MB,
  too big for a golden): He-normal (torchvision's ``kaiming_normal_(mode='fan_out')``) from numpy's
  ``default_rng(seed + 1)``, biases ``N(0, 0.01)``, identical on both sides -- the objective's code path is the
  same whatever the weights; left out of the golden (``GOLDEN_DROP``) and re-made by ``restore_case``;
* ``frozen/style``: ``[h,w,3]`` float32 in [0,1] (uint8 / 255: what ``ToTensor`` gives); ``batch/content``: ``[steps,B,S,S,3]``
  likewise (the content photos after ``Resize + CenterCrop``, here random pixels smoothed into blobs);
* ``hp/``: ``lr`` 1e-3, ``content_weight`` 1e5, ``style_weight`` 1e10 (the official defaults), tiny
  widths ``channels`` / ``num_res_blocks``.

``run_jax`` runs ``FastStyleTask.step`` (``losses.tv=0``: pytorch/examples has no TV term) on that case.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from jaxgen.config import load_config
from jaxgen.losses import gram_matrix
from jaxgen.tasks import get_task
from jaxgen.weights.convert import flax_to_torch, torch_to_flax

import common  # tools/parity is not a package: its folder is on sys.path

REPO = Path(__file__).resolve().parents[2]
NAME = "fast_style"
BATCH, SIZE, CHANNELS, BLOCKS = 2, 32, 8, 1
VGG16_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21)  # up to conv4_3 (relu4_3 = features[22])
VGG16_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512)
TERMS = ("content", "style")


def _config(case: dict | None = None):
    c = load_config(f"{REPO}/configs/fast_style.py:tiny", [("losses.tv", "0.0")])
    c.batch_size, c.data.image_size = BATCH, SIZE
    c.model.channels, c.model.num_res_blocks = CHANNELS, BLOCKS
    if case is not None:
        c.optim.lr = float(case["hp/lr"])
        c.losses.content, c.losses.style = float(case["hp/content_weight"]), float(case["hp/style_weight"])
    return c


def _vgg_weights(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    out, c_in = {}, 3
    for idx, c_out in zip(VGG16_CONVS, VGG16_WIDTHS):
        std = np.sqrt(2.0 / (c_out * 9))  # kaiming_normal_(mode='fan_out', nonlinearity='relu')
        out[f"features.{idx}.weight"] = (rng.standard_normal((c_out, c_in, 3, 3)) * std).astype(np.float32)
        out[f"features.{idx}.bias"] = (rng.standard_normal(c_out) * 0.01).astype(np.float32)
        c_in = c_out
    return out


GOLDEN_DROP = ("frozen/vgg/",)


def restore_case(case: dict) -> dict:
    """Adds the ``frozen/vgg/`` weights (left out of the golden: 30 MB) from ``hp/seed``."""
    return {**case, **{f"frozen/vgg/{k}": v for k, v in _vgg_weights(int(case["hp/seed"])).items()}}


def _vgg_to_flax(case: dict) -> dict:
    return {f"features_{i}": {"kernel": jax.device_put(case[f"frozen/vgg/features.{i}.weight"].transpose(2, 3, 1, 0)),
                              "bias": jax.device_put(case[f"frozen/vgg/features.{i}.bias"])} for i in VGG16_CONVS}


def make_case(steps: int, seed: int) -> dict:
    task = get_task(NAME)(_config())
    params = jax.device_get(task.init().players["generator"].params)
    rng = np.random.default_rng(seed)
    case = {f"init/generator/{k}": v for k, v in flax_to_torch("transformer_net", params, model=task.generator).items()}
    case.update(restore_case({"hp/seed": np.int64(seed)}))
    case["frozen/style"] = common.images(rng, (48, 40, 3))
    case["batch/content"] = common.images(rng, (steps, BATCH, SIZE, SIZE, 3))
    case.update({"hp/lr": np.float32(1e-3), "hp/content_weight": np.float32(1e5), "hp/style_weight": np.float32(1e10),
                 "hp/channels": np.int64(CHANNELS), "hp/num_res_blocks": np.int64(BLOCKS)})
    return case


def run_jax(case: dict) -> dict:
    task = get_task(NAME)(_config(case))
    vgg = _vgg_to_flax(case)
    feats = jax.jit(task.vgg.apply, compiler_options=common.COMPILER_OPTIONS)({"params": vgg}, jax.device_put(case["frozen/style"][None]))
    consts = {"vgg": vgg, "style_grams": {k: gram_matrix(feats[k]) for k in task.config.style_layers}}
    init = {k[len("init/generator/"):]: v for k, v in case.items() if k.startswith("init/generator/")}
    params = jax.device_put(torch_to_flax("transformer_net", init, model=task.generator))

    def build(params):  # one jitted program, as the training loop's jax.jit(task.init); the replaced draws are dead
        state = task.init()
        g = state.players["generator"]
        return state.replace(players={**state.players, "generator": g.replace(params=params,
                                                                              opt_state=task.g_tx.init(params))})

    state = jax.jit(build, compiler_options=common.COMPILER_OPTIONS)(params)
    step = jax.jit(task.step, compiler_options=common.COMPILER_OPTIONS)
    losses = {t: [] for t in TERMS}
    for batch in case["batch/content"]:
        state, metrics = step(state, {"content": jax.device_put(batch)}, consts)
        for t in TERMS:
            losses[t].append(float(metrics[f"loss_{t}"]))
    final = flax_to_torch("transformer_net", jax.device_get(state.players["generator"].params), model=task.generator)
    return {"losses": {t: np.asarray(v, np.float64) for t, v in losses.items()},
            "params": {f"generator/{k}": v for k, v in final.items()}}
