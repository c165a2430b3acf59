"""Cost of Real-ESRGAN's on-device degradation per batch, next to the generator update, and its data-parallel run.

    python benchmarks/degradation_cost.py [--devices 8] [--batch 8] [--hr 128] [--blocks 23] [--steps 3]
                                          [--out benchmarks/results_degradation_cpu.json]

``--devices N`` (CPU) splits the host into N XLA devices (``--xla_force_host_platform_device_count``) and runs the
jitted degradation on the global batch sharded over the ``data`` mesh axis; it also runs it on one device and
reports the largest difference (the pipeline is one program: the result must not depend on the sharding).

Times (median of ``--steps`` after one warm-up call; compile reported separately):

* ``degrade``: USM sharpening + second-order degradation + the pair pool update (queue 4 x batch), jitted;
* ``generator_step``: one RRDBNet (``--blocks``) Adam update on the degraded LR with L1 (no VGG / D), jitted;
* ``realesrnet_step``: the ``real_sr`` task's whole step (degradation + pool + G update) through the task.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=0, help="CPU: split the host into this many XLA devices")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--hr", type=int, default=128, help="HR patch side (official 256)")
    ap.add_argument("--blocks", type=int, default=23, help="RRDB blocks of the generator (official 23)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    if a.devices:
        os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={a.devices}"
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    import jax
    import jax.numpy as jnp
    import ml_collections
    import numpy as np

    from jaxgen import degradations as D
    from jaxgen.config import optim_config
    from jaxgen.tasks import base_config
    from jaxgen.tasks import get_task
    from jaxgen.train import parallel

    mesh = parallel.make_mesh()
    repl, batch_sh = parallel.replicated(mesh), parallel.batch_sharding(mesh)
    scale, b = 4, a.batch
    cfg = D.DegradationConfig.from_config(D.default_degradation_config(), scale)
    hr = np.random.default_rng(0).random((b, a.hr, a.hr, 3), np.float32)
    hr_sh = jax.device_put(hr, batch_sh)
    pool = jax.device_put(D.pool_init(4 * b, (b, a.hr // scale, a.hr // scale, 3), (b, a.hr, a.hr, 3)), repl)

    def degrade(key, pool, gt):
        lq = D.degrade(key, D.usm_sharp(gt), cfg)
        pool, lq, gt = D.pool_update(pool, lq, gt, jax.random.fold_in(key, 1))
        return pool, lq, D.usm_sharp(gt)

    def timed(fn, *args, n=a.steps):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        compile_s = time.perf_counter() - t0
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            out = jax.block_until_ready(fn(*args))
            times.append(time.perf_counter() - t0)
        return out, compile_s, statistics.median(times)

    f = jax.jit(degrade, in_shardings=(None, repl, batch_sh), out_shardings=(repl, batch_sh, batch_sh))
    key = jax.random.key(0)
    (_, lq, _), deg_compile, deg_s = timed(f, key, pool, hr_sh)
    result = {"devices": mesh.devices.size, "backend": jax.default_backend(), "batch": b, "hr": a.hr,
              "degrade_compile_s": deg_compile, "degrade_s": deg_s, "machine": platform.processor() or platform.machine(),
              "load_avg": os.getloadavg()}
    if mesh.devices.size > 1:  # the same program on one device
        one = jax.devices()[0]
        f1 = jax.jit(degrade)
        _, lq1, _ = f1(key, jax.device_put(pool, one), jax.device_put(hr, one))
        result["max_abs_diff_vs_1_device"] = float(np.max(np.abs(np.asarray(lq) - np.asarray(lq1))))

    # generator update on the degraded batch (L1 only)
    c = base_config("real_sr")
    c.scale, c.batch_size = scale, b
    c.model = ml_collections.ConfigDict(dict(name="rrdbnet", num_feat=64, num_blocks=a.blocks, num_grow_ch=32))
    c.optim = optim_config(lr=1e-4)
    c.data.patch_size = a.hr // scale
    c.degradation.queue_size = 4 * b
    task = get_task("real_sr")(c)
    state = jax.jit(task.init, out_shardings=repl)()
    g = task.generator
    tx = task.g_tx

    def g_step(params, opt_state, lr, target):
        def loss(p):
            return jnp.mean(jnp.abs(g.apply({"params": p}, lr) - target))
        grads = jax.grad(loss)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return jax.tree.map(jnp.add, params, updates), opt_state

    gp = state.players["generator"]
    fg = jax.jit(g_step, in_shardings=(repl, repl, batch_sh, batch_sh), out_shardings=(repl, repl))
    target = jax.device_put(hr, batch_sh)
    _, g_compile, g_s = timed(fg, gp.params, gp.opt_state, lq, target)
    result.update(generator_blocks=a.blocks, generator_step_compile_s=g_compile, generator_step_s=g_s)
    fs = jax.jit(task.step, in_shardings=(repl, batch_sh, repl), out_shardings=(repl, repl))
    batch = {"lr": jax.device_put(np.zeros((b, a.hr // scale, a.hr // scale, 3), np.float32), batch_sh), "hr": target}
    _, s_compile, s_s = timed(fs, state, batch, {})
    result.update(realesrnet_step_compile_s=s_compile, realesrnet_step_s=s_s,
                  degrade_fraction_of_step=deg_s / s_s)
    print(json.dumps(result, indent=1))
    if a.out:
        rows = json.load(open(a.out)) if os.path.exists(a.out) else []
        rows.append(result)
        json.dump(rows, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
