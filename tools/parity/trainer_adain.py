"""Parity case for ``adain`` (jaxgen side), against naoto0804/pytorch-AdaIN ``train.py`` / ``net.py`` /
``function.py`` (see ``torch_adain.py`` for the commit).

Case (numpy, official names):

* ``init/decoder/<i>.{weight,bias}``: jaxgen's initial decoder (``AdaINTask.init``, PyTorch init; tiny widths
  ``features=(8, 8, 8)`` instead of ``(256, 128, 64)``) exported with ``flax_to_torch('adain_decoder', ...)`` --
  the official ``decoder`` Sequential indices;
* ``frozen/vgg/<i>.{weight,bias}``: the official ``vgg`` (``vgg_normalised.pth`` layout: a 1x1 input conv, then the VGG19
  convs with reflection padding) up to ``relu4_1`` (index 30), He-normal weights from numpy ``default_rng(seed +
  1)`` (not the released ``vgg_normalised.pth``: 80 MB, not in the shared data), identical on both sides, re-made from ``hp/seed`` by ``restore_case`` (not in the golden); jaxgen
  reads them with ``torch_to_flax('adain_vgg', ...)`` (``encoder=<file>``, ``input_conv=True``);
* ``batch/content``, ``batch/style``: ``[steps,B,S,S,3]`` float32 in [0,1] (uint8 / 255, what ``ToTensor`` gives);
* ``hp/``: ``lr`` 1e-4, ``lr_decay`` 5e-5, ``content_weight`` 1, ``style_weight`` 10 (official defaults).
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from jaxgen.config import load_config
from jaxgen.tasks import get_task
from jaxgen.weights.convert import flax_to_torch, torch_to_flax

import common  # tools/parity is not a package: its folder is on sys.path

REPO = Path(__file__).resolve().parents[2]
NAME = "adain"
BATCH, SIZE, FEATURES = 2, 32, (8, 8, 8)
# official ``vgg`` Sequential index -> (in, out, kernel) for the convs up to relu4_1
VGG_CONVS = {0: (3, 3, 1), 2: (3, 64, 3), 5: (64, 64, 3), 9: (64, 128, 3), 12: (128, 128, 3), 16: (128, 256, 3),
             19: (256, 256, 3), 22: (256, 256, 3), 25: (256, 256, 3), 29: (256, 512, 3)}
TERMS = ("content", "style")


def _config(case: dict | None = None):
    c = load_config(f"{REPO}/configs/adain.py:tiny")
    c.batch_size, c.data.image_size, c.data.resize = BATCH, SIZE, SIZE
    c.model.features = FEATURES
    c.optim.lr = 1e-4 if case is None else float(case["hp/lr"])
    if case is not None:
        c.lr_decay = float(case["hp/lr_decay"])
        c.losses.content, c.losses.style = float(case["hp/content_weight"]), float(case["hp/style_weight"])
    return c


def _vgg_weights(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    out = {}
    for idx, (c_in, c_out, k) in VGG_CONVS.items():
        std = np.sqrt(2.0 / (c_out * k * k))
        out[f"{idx}.weight"] = (rng.standard_normal((c_out, c_in, k, k)) * std).astype(np.float32)
        out[f"{idx}.bias"] = (rng.standard_normal(c_out) * 0.01).astype(np.float32)
    return out


def make_case(steps: int, seed: int) -> dict:
    task = get_task(NAME)(_config())
    params = jax.device_get(task.init().players["decoder"].params)
    rng = np.random.default_rng(seed)
    case = {f"init/decoder/{k}": v for k, v in flax_to_torch("adain_decoder", params, model=task.decoder).items()}
    case.update(restore_case({"hp/seed": np.int64(seed)}))
    case["batch/content"] = common.images(rng, (steps, BATCH, SIZE, SIZE, 3))
    case["batch/style"] = common.images(rng, (steps, BATCH, SIZE, SIZE, 3))
    case.update({"hp/lr": np.float32(1e-4), "hp/lr_decay": np.float32(5e-5), "hp/content_weight": np.float32(1.0),
                 "hp/style_weight": np.float32(10.0)})
    return case


GOLDEN_DROP = ("frozen/vgg/",)


def restore_case(case: dict) -> dict:
    """Adds the ``frozen/vgg/`` encoder weights (left out of the golden: 14 MB) from ``hp/seed``."""
    return {**case, **{f"frozen/vgg/{k}": v for k, v in _vgg_weights(int(case["hp/seed"])).items()}}


def _encoder_params(case: dict, model) -> dict:
    state = {k[len("frozen/vgg/"):]: v for k, v in case.items() if k.startswith("frozen/vgg/")}
    return jax.device_put(torch_to_flax("adain_vgg", state, model=model))


def run_jax(case: dict) -> dict:
    config = _config(case)
    config.encoder = str(REPO / "configs" / "adain.py")  # any existing file: input_conv=True (the .pth layout)
    task = get_task(NAME)(config)
    consts = {"encoder": _encoder_params(case, task.encoder)}
    init = {k[len("init/decoder/"):]: v for k, v in case.items() if k.startswith("init/decoder/")}
    params = jax.device_put(torch_to_flax("adain_decoder", init, model=task.decoder))

    def build(params):  # one jitted program, as the training loop's jax.jit(task.init); the replaced draws are dead
        state = task.init()
        p = state.players["decoder"]
        return state.replace(players={"decoder": p.replace(params=params, opt_state=task.tx.init(params))})

    state = jax.jit(build, compiler_options=common.COMPILER_OPTIONS)(params)
    step = jax.jit(task.step, compiler_options=common.COMPILER_OPTIONS)
    losses = {t: [] for t in TERMS}
    for content, style in zip(case["batch/content"], case["batch/style"]):
        state, metrics = step(state, {"content": jax.device_put(content), "style": jax.device_put(style)}, consts)
        for t in TERMS:
            losses[t].append(float(metrics[f"loss_{t}"]))
    final = flax_to_torch("adain_decoder", jax.device_get(state.players["decoder"].params), model=task.decoder)
    return {"losses": {t: np.asarray(v, np.float64) for t, v in losses.items()},
            "params": {f"decoder/{k}": v for k, v in final.items()}}
