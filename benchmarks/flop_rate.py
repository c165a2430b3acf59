"""How close the train steps come to this machine's arithmetic peak: FLOPs per step and the measured matmul rate.

    python benchmarks/flop_rate.py [--times benchmarks/results/compare_torch_<date>.json] [--out flops.json]

* FLOPs per train step of each ``compare_torch.py`` case, from XLA's cost analysis of the lowered (unpartitioned,
  so global-batch) step: the same network and Adam + L1 step on both sides, so one count serves jaxgen and PyTorch.
* The machine's dense float32 rate: the best of a few ``jnp.dot`` of 4096x4096 matrices (XLA:CPU, all cores) and of
  numpy's BLAS (``np.dot``), in GFLOP/s.
* With ``--times`` (a ``compare_torch.py`` result file): GFLOP/s each contender reached in each train case and its
  share of the matmul rate. A convolution step at ~80% of a large matmul's rate has little left to gain.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def step_flops(case: tuple) -> float:
    import jax
    import jax.numpy as jnp
    import optax

    from jaxgen.train.state import apply_gradients, new_player, new_state

    kind, net, scale, batch, side = case
    if net in ("edsr", "rrdbnet"):
        from jaxgen.tasks import base_config
        from jaxgen.tasks import get_task

        c = base_config("sr")
        c.scale, c.batch_size, c.data.patch_size = scale, batch, side
        c.model.name = net
        task = get_task("sr")(c)
        state = jax.eval_shape(task.init)
        data = {"lr": jnp.zeros((batch, side, side, 3)), "hr": jnp.zeros((batch, side * scale, side * scale, 3))}
        lowered = jax.jit(task.step).lower(state, data, {})
    else:
        from jaxgen.models.transformer_net import TransformerNet

        model, tx = TransformerNet(), optax.adam(1e-4)

        def init():
            params = model.init(jax.random.key(0), jnp.zeros((1, side, side, 3)))["params"]
            return new_state(0, {"net": new_player(params, tx)})

        def step(state, b):
            p = state.players["net"]
            loss, grads = jax.value_and_grad(
                lambda w: jnp.mean(jnp.abs(model.apply({"params": w}, b["lr"]) - b["hr"])))(p.params)
            return state.replace(step=state.step + 1, players={"net": apply_gradients(p, grads, tx)}), loss

        x = jnp.zeros((batch, side, side, 3))
        lowered = jax.jit(step).lower(jax.eval_shape(init), {"lr": x, "hr": x})
    cost = lowered.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"])


def matmul_rate(n: int = 4096, repeats: int = 5) -> dict[str, float]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = np.random.default_rng(1).random((n, n), dtype=np.float32)
    dot = jax.jit(jnp.dot)
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    jax.block_until_ready(dot(ja, jb))
    best = {}
    for name, fn in (("xla", lambda: jax.block_until_ready(dot(ja, jb))), ("numpy_blas", lambda: np.dot(a, b))):
        fn()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        best[name] = 2 * n**3 / min(times) / 1e9
    return best


def main() -> None:
    from compare_torch import CASES

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--times", help="a compare_torch.py result JSON")
    ap.add_argument("--out")
    args = ap.parse_args()
    report: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
                    "load": os.getloadavg(), "matmul_gflops": matmul_rate(), "cases": {}}
    peak = max(report["matmul_gflops"].values())
    print(f"dense f32 matmul 4096^2: " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in report["matmul_gflops"].items()))
    times = json.loads(Path(args.times).read_text())["cases"] if args.times else {}
    for name, case in CASES.items():
        if case[0] != "train":
            continue
        flops = step_flops(case)
        row: dict = {"gflop_per_step": flops / 1e9, "by": {}}
        for who, r in times.get(name, {}).get("by", {}).items():
            if "median_s" in r:
                rate = flops / r["median_s"] / 1e9
                row["by"][who] = {"median_s": r["median_s"], "gflops": rate, "share_of_matmul": rate / peak}
        report["cases"][name] = row
        line = ", ".join(f"{w} {v['gflops']:.0f} GFLOP/s ({100 * v['share_of_matmul']:.0f}%)" for w, v in row["by"].items())
        print(f"{name}: {flops / 1e9:.1f} GFLOP/step  {line}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
