"""Single-image inference forwards of the zoo's networks at several sizes, as ``jaxgen upscale``/``stylize`` jit
them (one CPU device, ``xla_setup.inference_compiler_options``), under whatever ``XLA_FLAGS`` the caller sets:
the measurement behind process-level XLA:CPU options that cannot be given per ``jax.jit`` (oneDNN convolutions).

    python benchmarks/forward_flags.py [--cases fwd_rrdbnet_128,fwd_edsr_256] [--out F.json]
    XLA_FLAGS="--xla_cpu_experimental_ynn_fusion_type=-individual_convolution \\
               --xla_cpu_experimental_onednn_fusion_type=individual_convolution" python benchmarks/forward_flags.py

Median of 3 timed calls after the first (2 for RRDBNet at 256 px); the record carries ``XLA_FLAGS`` and the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.conv_backends import FORWARD_CASES  # noqa: E402
from benchmarks.cpuinfo import cpu_info  # noqa: E402
from jaxgen import models, xla_setup  # noqa: E402

# the inference forwards conv_backends.py measures per jit (name: (network, kwargs, input side))
CASES = FORWARD_CASES


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma list of {sorted(CASES)}")
    ap.add_argument("--out")
    args = ap.parse_args()
    report = {**cpu_info(), "xla_flags": os.environ.get("XLA_FLAGS", ""), "jax": jax.__version__, "cases": {}}
    for name in [c for c in args.cases.split(",") if c]:
        net, kwargs, side = CASES[name]
        model = models.build(net, **kwargs)
        params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))["params"]
        x = jnp.asarray(np.random.default_rng(0).random((1, side, side, 3), dtype=np.float32))
        f = jax.jit(lambda p, x: model.apply({"params": p}, x),
                    compiler_options=xla_setup.inference_compiler_options(net) or None)
        t = time.perf_counter()
        jax.block_until_ready(f(params, x))
        first = time.perf_counter() - t
        times = []
        for _ in range(2 if (net, side) == ("rrdbnet", 256) else 3):
            t = time.perf_counter()
            jax.block_until_ready(f(params, x))
            times.append(time.perf_counter() - t)
        report["cases"][name] = {"median_s": statistics.median(times), "first_s": first}
        print(f"{name:22s} median {statistics.median(times):7.3f} s  first {first:6.1f} s", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
