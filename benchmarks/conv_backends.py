"""Which XLA:CPU convolution library each network's train step and inference forward is fastest with.

    python benchmarks/conv_backends.py [--cases fast_style,adain,...] [--steps 4] [--out results.json]

XLA:CPU runs convolutions with YNNPACK by default; ``compiler_options=xla_setup.CPU_EIGEN_CONV_OPTIONS`` (per
``jax.jit``) hands them to Eigen instead. Neither wins everywhere on this project's 2-core CPU (YNNPACK keeps
only one core busy on single-image forwards of some networks and is slow on 9x9 convolutions with 3 channels;
Eigen is slower on EDSR's 64-channel 3x3 stacks), so ``jaxgen.xla_setup`` keeps a measured table per network
(``CPU_EIGEN_CONV_TRAIN`` / ``CPU_EIGEN_CONV_INFERENCE``). This script is the measurement behind that table.

Each case builds the real task from its config (real VGG weights when installed, the shared data folders for
batches), jits the real train step as ``jaxgen train`` does (2 CPU devices, state donated, batch sharded on the
``data`` mesh, ``prepare_training``'s conv-VJP choice) once with the default and once with Eigen convolutions,
and times ``--steps`` steps of each interleaved (medians); forward cases time ``jax.jit(model.apply)`` on one
image. It also reports the max abs difference between the two backends' first-step losses.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cpuinfo import cpu_info  # noqa: E402  (stdlib only: lscpu model and flags for every record)

# name: (config spec, overrides)
TRAIN_CASES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "fast_style_b4_256": ("configs/fast_style.py", [("batch_size", "4")]),
    "adain_b8_256": ("configs/adain.py", [("batch_size", "8")]),
    "edsr_b16_48": ("configs/edsr.py", [("batch_size", "16")]),
    "rrdbnet_b4_32": ("configs/rrdbnet.py", [("batch_size", "4"), ("data.patch_size", "32")]),
    "cyclegan_b1_256": ("configs/cyclegan.py", [("data.source", "folder")]),
}
# name: (network, kwargs, input side, scale)
FORWARD_CASES: dict[str, tuple[str, dict, int]] = {
    "fwd_transformer_net_256": ("transformer_net", {}, 256),
    "fwd_edsr_256": ("edsr", {"scale": 2}, 256),
    "fwd_rrdbnet_64": ("rrdbnet", {"scale": 4}, 64),
    "fwd_rrdbnet_128": ("rrdbnet", {"scale": 4}, 128),
    "fwd_rrdbnet_256": ("rrdbnet", {"scale": 4}, 256),
    "fwd_srvgg_compact_256": ("srvgg_compact", {"scale": 4}, 256),
    "fwd_resnet_256": ("resnet", {}, 256),
}


def _median_times(fns: dict, steps: int) -> dict[str, list[float]]:
    import jax

    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(steps):
        for k, f in fns.items():
            t = time.perf_counter()
            jax.block_until_ready(f())
            times[k].append(time.perf_counter() - t)
    return times


def train_case(name: str, steps: int) -> dict:
    import jax
    import numpy as np

    from jaxgen import xla_setup
    from jaxgen.config import load_config
    from jaxgen.tasks import get_task
    from jaxgen.train import parallel

    spec, overrides = TRAIN_CASES[name]
    shared = os.environ.get("JAXGEN_SHARED", str(ROOT.parent / "shared"))
    data = f"{shared}/data"
    extra = {
        "fast_style_b4_256": [("data.train_dir", f"{data}/style/contents")],
        "adain_b8_256": [("data.content_dir", f"{data}/style/contents")],
        "edsr_b16_48": [("data.source", "folder"), ("data.train_dir", f"{data}/sr-train/T91")],
        "rrdbnet_b4_32": [("data.source", "folder"), ("data.train_dir", f"{data}/sr-train/T91")],
        "cyclegan_b1_256": [("data.dir_a", f"{data}/style/contents"), ("data.dir_b", f"{data}/style/styles")],
    }.get(name, [])
    config = load_config(str(ROOT / spec), overrides + extra)
    task = get_task(config.task)(config)
    mesh = parallel.make_mesh(parallel.devices_for_batch(config.batch_size))  # as the loop
    repl, bsh = parallel.replicated(mesh), parallel.batch_sharding(mesh)
    consts, _ = task.consts()
    consts = jax.device_put(consts, repl)
    it = task.make_data(0, 1)
    batch = parallel.global_batch(next(iter(it)), mesh)
    per_device = config.batch_size // mesh.devices.size
    base_options = xla_setup.prepare_training(per_device, networks=())
    fns, losses, compile_s = {}, {}, {}
    for backend, options in (("default", base_options), ("eigen", {**base_options, **xla_setup.CPU_EIGEN_CONV_OPTIONS})):
        state = jax.jit(task.init, out_shardings=repl)()
        step = jax.jit(task.step, in_shardings=(repl, bsh, repl), out_shardings=(repl, repl), donate_argnums=(0,),
                       compiler_options=options or None)
        t = time.perf_counter()
        state, metrics = step(state, batch, consts)
        jax.block_until_ready(metrics)
        compile_s[backend] = time.perf_counter() - t
        losses[backend] = {k: float(np.asarray(v)) for k, v in metrics.items() if np.ndim(v) == 0}
        holder = {"state": state}

        def run(step=step, holder=holder):
            holder["state"], m = step(holder["state"], batch, consts)
            return m

        fns[backend] = run
    times = _median_times(fns, steps)
    keys = sorted(set(losses["default"]) & set(losses["eigen"]))
    return {
        "devices": mesh.devices.size, "per_device_batch": per_device, "first_step_s": compile_s,
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "min_s": {k: min(v) for k, v in times.items()},
        "first_step_metric_max_rel_diff": max((abs(losses["default"][k] - losses["eigen"][k])
                                               / max(abs(losses["default"][k]), 1e-12) for k in keys), default=None),
    }


def forward_case(name: str, steps: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxgen import models, xla_setup

    net, kwargs, side = FORWARD_CASES[name]
    model = models.build(net, **kwargs)
    params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))["params"]
    x = jnp.asarray(np.random.default_rng(0).random((1, side, side, 3), dtype=np.float32))
    fns, outs = {}, {}
    for backend, options in (("default", {}), ("eigen", xla_setup.CPU_EIGEN_CONV_OPTIONS)):
        apply = jax.jit(lambda p, x: model.apply({"params": p}, x), compiler_options=dict(options) or None)
        outs[backend] = np.asarray(apply(params, x))
        fns[backend] = lambda apply=apply: apply(params, x)
    times = _median_times(fns, steps)
    return {"median_s": {k: statistics.median(v) for k, v in times.items()},
            "min_s": {k: min(v) for k, v in times.items()},
            "max_abs_diff": float(np.max(np.abs(outs["default"] - outs["eigen"])))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="", help=f"comma list of {sorted(TRAIN_CASES) + sorted(FORWARD_CASES)}")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--out")
    ap.add_argument("--forward-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    names = [c for c in args.cases.split(",") if c] or [*TRAIN_CASES, *FORWARD_CASES]
    unknown = [n for n in names if n not in TRAIN_CASES and n not in FORWARD_CASES]
    if unknown:
        sys.exit(f"conv_backends: unknown case(s) {unknown}; expected {sorted(TRAIN_CASES) + sorted(FORWARD_CASES)}")
    forward = [n for n in names if n in FORWARD_CASES]
    if not args.forward_child:
        names = [n for n in names if n in TRAIN_CASES]
        if forward:  # inference commands run on one CPU device (jaxgen.cli.main splits the host for training only)
            out = ["--out", args.out + ".forward.json"] if args.out else []
            import subprocess

            subprocess.run([sys.executable, __file__, "--forward-child", "--cases", ",".join(forward),
                            "--steps", str(args.steps), *out], check=True)
        from jaxgen import xla_setup

        xla_setup.configure_process()  # as jaxgen.cli.main for `jaxgen train`: 2 CPU devices
    import jax

    jax.config.update("jax_platforms", "cpu")
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.processor() or "cpu",
              "cpus": os.cpu_count(), **cpu_info(), "jax": jax.__version__, "devices": jax.device_count(),
              "load_at_start": os.getloadavg(), "cases": {}}
    for name in names:
        r = train_case(name, args.steps) if name in TRAIN_CASES else forward_case(name, args.steps)
        r["load"] = os.getloadavg()[0]
        report["cases"][name] = r
        d, e = r["median_s"]["default"], r["median_s"]["eigen"]
        print(f"{name:28s} default {d:7.3f} s  eigen {e:7.3f} s  eigen/default {e / d:5.2f}  load {r['load']:.1f}",
              flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
