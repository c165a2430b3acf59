"""What the test suite's XLA:CPU codegen (tests/conftest.py) saves: compile time of small programs per flag set.

    .venv/bin/python benchmarks/suite_codegen.py [--out F.json] [--repeats 3]

For each flag set (XLA's defaults; LLVM -O0; the classic elemental emitters; both, the suite's choice; -O1 with
the classic emitters) a fresh process (no compilation cache) compiles

* ``tiny_median_ms``: 60 tiny programs of the kind a test's eager ops and small helpers make (elementwise ops,
  a reduction, a cumulative sum; a new shape each), the median XLA compile of one;
* ``step_compile_s``: the train step (value_and_grad + Adam) of a 7-layer 16-channel conv net on 2x24x24x3;
* ``step_run20_s``: 20 runs of that step (what the codegen costs at run time), and its loss (bits differ: -O0
  contracts no multiply-adds).

Medians over ``--repeats`` processes; the machine (``lscpu`` model and flags) and the load go with the numbers.
Numbers: ``benchmarks/RESULTS.md``, the section "the suite's codegen".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cpuinfo import cpu_info, write_record  # noqa: E402

FLAG_SETS = {
    "default": "",
    "O0": "--xla_backend_optimization_level=0",
    "classic_emitters": "--xla_cpu_use_fusion_emitters=false",
    "O0_classic_emitters (the suite's)": "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false",
    "O1_classic_emitters": "--xla_backend_optimization_level=1 --xla_cpu_use_fusion_emitters=false",
}

CHILD = r"""
import json, time
import jax, jax.numpy as jnp, flax.linen as nn, optax
ops = [jnp.sin, jnp.exp, lambda v: v * 2 + 1, jnp.tanh, lambda v: jnp.sum(v, axis=1), lambda v: jnp.cumsum(v, 0)]
tiny = []
for i in range(60):
    lowered = jax.jit(ops[i % 6]).lower(jnp.ones((3, 17 + i, 5)))
    t = time.perf_counter(); lowered.compile(); tiny.append(time.perf_counter() - t)
class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Conv(16, (3, 3))(x)
        for _ in range(5):
            x = nn.relu(nn.Conv(16, (3, 3))(x)) + x
        return nn.Conv(3, (3, 3))(x)
net, x = Net(), jnp.ones((2, 24, 24, 3))
params = net.init(jax.random.key(0), x)
tx = optax.adam(1e-3)
opt = tx.init(params)
def step(p, o, x):
    loss, grads = jax.value_and_grad(lambda p: jnp.mean(jnp.abs(net.apply(p, x) - x)))(p)
    updates, o = tx.update(grads, o, p)
    return optax.apply_updates(p, updates), o, loss
lowered = jax.jit(step).lower(params, opt, x)
t = time.perf_counter(); compiled = lowered.compile(); step_compile = time.perf_counter() - t
out = jax.block_until_ready(compiled(params, opt, x))
t = time.perf_counter()
for _ in range(20):
    out = compiled(params, opt, x)
jax.block_until_ready(out); run20 = time.perf_counter() - t
print(json.dumps({"tiny_median_ms": sorted(tiny)[30] * 1000, "step_compile_s": step_compile, "step_run20_s": run20,
                  "loss": float(out[2])}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="", help="write the JSON here too")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    record = {"benchmark": "suite_codegen", **cpu_info(), "flag_sets": {}}
    for name, flags in FLAG_SETS.items():
        env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_COMPILATION_CACHE_DIR")}
        env.update(XLA_FLAGS=flags, JAX_PLATFORMS="cpu", JAX_ENABLE_COMPILATION_CACHE="false")
        runs = [json.loads(subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True,
                                          check=True).stdout.strip().splitlines()[-1]) for _ in range(args.repeats)]
        row = {k: round(statistics.median(r[k] for r in runs), 3) for k in ("tiny_median_ms", "step_compile_s",
                                                                             "step_run20_s")}
        row.update(xla_flags=flags, loss=runs[0]["loss"])
        record["flag_sets"][name] = row
        print(f"{name:36s} tiny {row['tiny_median_ms']:6.1f} ms  step compile {row['step_compile_s']:.2f} s  "
              f"20 runs {row['step_run20_s']:.3f} s  loss {row['loss']!r}", flush=True)
    write_record(record, args.out)


if __name__ == "__main__":
    main()
