"""The first training steps of ``configs/fast_style.py:study`` (real VGG16, candy; batches from the study's own
data iterator): output brightness and the weighted validation content/style losses every ``steps // 4`` steps, and
the picture (validation photo | result) under ``experiments/results/fast_style_first_steps/``.

Run: ``PYTHONPATH=$PWD python experiments/fast_style_first_steps.py 40 style512`` (or ``40 style256
style_size=256`` for the study's former style size).

Measured 2026-12-06 (a 2-core CPU shared with other jobs), validation photo ``chelsea`` (128 px):

====  =====================================  =====================================
step  style 256 px: out mean, content, style  style 512 px: out mean, content, style
====  =====================================  =====================================
0     4.3e-5, 8.25e5, 2.81e7                 (same init)
10    2.7e-3, 8.96e5, 2.54e7
20    5.5e-3, 1.02e6, 2.30e7
30    9.9e-3, 1.10e6, 2.13e7                 2.0e-2, 8.75e5, 8.73e6
40    1.6e-2, 1.09e6, 1.98e7                 2.8e-2, 8.92e5, 7.68e6
====  =====================================  =====================================

The output starts black because the official TransformerNet's last 9x9 conv (PyTorch default init, fan-in
32 * 81) gives ``0 +- 0.4`` on its 0-255 scale from unit-variance features; Adam(1e-3) raises the mean by a few
hundredths per step at first, so 40 steps stay near-black in the official code as well (the step is the official
one: ``tools/parity/*fast_style*``). The content loss first rises above the black image's (the style term
dominates, 19-29x the content term at init with the 256 px style, 9x with 512 px, 8.6x in the official setting:
``experiments/fast_style_balance.py``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import image
from jaxgen.config import load_config
from jaxgen.tasks import get_task

OUT = Path(__file__).resolve().parent / "results" / "fast_style_first_steps"


def main() -> None:
    steps, tag = int(sys.argv[1]), sys.argv[2]
    overrides = [tuple(a.split("=", 1)) for a in sys.argv[3:]]
    task = get_task("fast_style")(load_config("configs/fast_style.py:study,style=candy", overrides))
    consts, sources = task.consts()
    print(sources, flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    task.prepare(OUT)
    data = task.make_data(0, 1)
    state = task.init()
    step = jax.jit(task.step)
    val = jnp.asarray(np.stack(task.val_images))
    log, t0 = [], time.time()
    for t in range(steps + 1):
        if t % max(1, steps // 4) == 0 or t == steps:
            y = task.generator.apply({"params": state.players["generator"].params}, val)
            parts = {f"val_{k}": float(v) for k, v in task.losses(y, val, consts).items()}
            rec = dict(step=t, out_mean=float(y.mean()), secs=time.time() - t0, **parts)
            print(json.dumps(rec), flush=True)
            log.append(rec)
            pic = np.clip(np.concatenate([np.asarray(val[0]), np.asarray(y[0])], 1), 0, 1)
            image.write_image(OUT / f"{tag}_step{t}.png", image.to_uint8(pic))
        if t < steps:
            state, _ = step(state, {k: jnp.asarray(v) for k, v in next(data).items()}, consts)
    (OUT / f"{tag}.json").write_text(json.dumps(log, indent=1))


if __name__ == "__main__":
    main()
