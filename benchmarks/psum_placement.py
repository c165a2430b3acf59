"""Where the data-parallel train step sums its weight gradients: after every convolution, or once at the end.

    .venv/bin/python benchmarks/psum_placement.py [--out F.json] [--net rrdbnet] [--batch 4] [--side 32]
                                                  [--scale 4] [--steps 8] [--conv-backend onednn]

On the 2-device host split ``jaxgen train`` uses (``xla_setup.configure_process``), with oneDNN's convolutions
(``onednn_conv``, whose backward-weights partition rule ``psum``\\ s each convolution's weight gradient over the
batch shards where it is made: two rendezvous of the devices per convolution), one L1 + Adam step of ``--net``
two ways, interleaved step by step on the same batch:

* ``gspmd`` -- ``jax.jit`` over the batch-sharded mesh, as ``jaxgen train`` runs its steps;
* ``shard_map`` -- the loss and gradient computed per shard under ``jax.shard_map`` with one ``pmean`` of the
  loss and the whole gradient tree, then the same update.

Prints and records each one's first step (compile included), the median step and the largest parameter
difference between the two after the first step (the same arithmetic: 0 expected). Measured 2026-12-07 on AMD
Zen 3 (``benchmarks/RESULTS.md``): no gain from the single sum, so the per-convolution sums stay.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jaxgen import xla_setup  # noqa: E402  (imports no JAX)

PLACEMENTS = ("gspmd", "shard_map")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="", help="write the JSON here too")
    ap.add_argument("--net", default="rrdbnet", help="a jaxgen.models name (default rrdbnet: 23 RRDBs)")
    ap.add_argument("--batch", type=int, default=4, help="global batch (split over the 2 devices)")
    ap.add_argument("--side", type=int, default=32, help="LR patch side")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--steps", type=int, default=8, help="timed steps of each placement")
    ap.add_argument("--conv-backend", default="onednn", choices=("onednn", "xla", "auto"))
    args = ap.parse_args()
    # as `jaxgen train`: jemalloc where installed, the host split, oneDNN's team per device
    xla_setup.run_again_under_jemalloc("train", sys.argv)
    xla_setup.configure_process(conv_backend=args.conv_backend)
    # JAX after configure_process (it sets the device count first)
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax.sharding import PartitionSpec as P

    from benchmarks.cpuinfo import cpu_info, write_record
    from jaxgen import models
    from jaxgen.train import parallel

    mesh = parallel.make_mesh()
    n_dev = mesh.devices.size
    options = xla_setup.prepare_training(max(1, args.batch // n_dev), networks=(args.net,),
                                         conv_backend=args.conv_backend, devices=n_dev)
    repl, bsh = parallel.replicated(mesh), parallel.batch_sharding(mesh)
    model = models.build(args.net, scale=args.scale)
    params = model.init(jax.random.key(0), jnp.zeros((1, args.side, args.side, 3)))["params"]
    tx = optax.adam(1e-4)
    rng = np.random.default_rng(0)
    hr_side = args.side * args.scale
    lr = jax.device_put(rng.random((args.batch, args.side, args.side, 3), dtype=np.float32), bsh)
    hr = jax.device_put(rng.random((args.batch, hr_side, hr_side, 3), dtype=np.float32), bsh)

    def loss_fn(p, lr, hr):
        return jnp.mean(jnp.abs(model.apply({"params": p}, lr) - hr))

    def per_shard(p, lr, hr):
        return jax.lax.pmean(jax.value_and_grad(loss_fn)(p, lr, hr), parallel.DATA_AXIS)

    def grads(placement, p, lr, hr):
        if placement == "gspmd":
            return jax.value_and_grad(loss_fn)(p, lr, hr)
        # check_vma off: the oneDNN custom calls' results carry no varying-axes type
        return jax.shard_map(per_shard, mesh=mesh, in_specs=(P(), P(parallel.DATA_AXIS), P(parallel.DATA_AXIS)),
                             out_specs=(P(), P()), check_vma=False)(p, lr, hr)

    def step(placement, p, o, lr, hr):
        loss, g = grads(placement, p, lr, hr)
        updates, o = tx.update(g, o, p)
        return optax.apply_updates(p, updates), o, loss

    record = {"benchmark": "psum_placement", **cpu_info(), "devices": n_dev, "net": args.net, "batch": args.batch,
              "side": args.side, "scale": args.scale, "conv_backend": args.conv_backend, "placements": {}}
    fns, states = {}, {}
    for placement in PLACEMENTS:
        fns[placement] = jax.jit(lambda p, o, x, y, placement=placement: step(placement, p, o, x, y),
                                 in_shardings=(repl, repl, bsh, bsh), out_shardings=(repl, repl, repl),
                                 compiler_options=options or None)
        p, o = jax.device_put(params, repl), jax.device_put(tx.init(params), repl)
        t0 = time.perf_counter()
        p, o, loss = fns[placement](p, o, lr, hr)
        jax.block_until_ready((p, o, loss))
        states[placement] = (p, o)
        record["placements"][placement] = {"first_step_s": time.perf_counter() - t0, "first_loss": float(loss)}
    record["max_param_diff_after_first_step"] = max(
        float(jnp.max(jnp.abs(a - b))) for a, b in zip(*(jax.tree.leaves(states[k][0]) for k in PLACEMENTS)))
    walls: dict[str, list[float]] = {k: [] for k in PLACEMENTS}
    for _ in range(args.steps):
        for placement in PLACEMENTS:
            p, o = states[placement]
            t0 = time.perf_counter()
            p, o, loss = fns[placement](p, o, lr, hr)
            jax.block_until_ready((p, o, loss))
            walls[placement].append(time.perf_counter() - t0)
            states[placement] = (p, o)
    for placement in PLACEMENTS:
        r = record["placements"][placement]
        r["walls_s"], r["median_s"] = walls[placement], statistics.median(walls[placement])
        print(f"{placement:9s}: first step {r['first_step_s']:.2f} s, median {r['median_s']:.3f} s "
              f"[{min(walls[placement]):.3f}, {max(walls[placement]):.3f}]", flush=True)
    print(f"largest parameter difference after the first step: {record['max_param_diff_after_first_step']:.3g}")
    write_record(record, args.out)


if __name__ == "__main__":
    main()
