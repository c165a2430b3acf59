"""Runs 3 data-parallel train steps of a tiny EDSR on a fixed global batch and saves loss + params.

Used by ``test_parallel.py``: the 8-device run in a subprocess (the device count is fixed when jax starts),
    XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/parallel_equivalence.py OUT.npz
and the 1-device run in the test's own process (``main(out, n_devices=1)``: a mesh of its first device).
"""

from __future__ import annotations

import sys

import jax
import ml_collections
import numpy as np

from jaxgen.config import optim_config
from jaxgen.tasks import SRTask, base_config
from jaxgen.train import parallel


def main(out: str, n_devices: int | None = None) -> None:
    """The run on all devices, or on the first ``n_devices``."""
    c = base_config()
    c.scale = 2
    c.model = ml_collections.ConfigDict(dict(name="edsr", num_blocks=1, num_feat=8, res_scale=1.0))
    c.optim = optim_config(lr=1e-3)
    c.ema_decay = 0.5
    c.data.patch_size = 8
    task = SRTask(c)
    mesh = parallel.make_mesh(None if n_devices is None else jax.devices()[:n_devices])
    repl = parallel.replicated(mesh)
    # a fresh state as jaxgen.train.loop makes it: computed on one device, copied to every device of the mesh
    init_sharding = parallel.init_sharding(mesh)
    state = jax.device_put(jax.jit(task.init, out_shardings=init_sharding)(), repl)
    step = jax.jit(
        task.step,
        in_shardings=(repl, parallel.batch_sharding(mesh), repl),
        out_shardings=(repl, repl),
        donate_argnums=(0,),
    )
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(3):
        hr = rng.random((8, 16, 16, 3), dtype=np.float32)
        lr = hr.reshape(8, 8, 2, 8, 2, 3).mean(axis=(2, 4))
        state, metrics = step(state, parallel.global_batch({"lr": lr, "hr": hr}, mesh), {})
        losses.append(float(metrics["loss"]))
    g = state.players["generator"]
    leaves = {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_flatten_with_path(g.params)[0]}
    ema = {"ema" + jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_flatten_with_path(g.ema)[0]}
    np.savez(out, losses=np.array(losses), devices=len(jax.devices()),
             init_devices=len(init_sharding.device_set), **leaves, **ema)


if __name__ == "__main__":
    main(sys.argv[1])
