"""Which convolution library each network's train step and inference forward is fastest with.

    python benchmarks/conv_backends.py [--cases fast_style,adain,...] [--backends default,eigen,onednn]
                                       [--steps 4] [--out results.json]

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

``--backends`` adds ``onednn``: ``conv_backend = "onednn"`` (``jaxgen.models.onednn_conv``: oneDNN's float32
convolutions through XLA FFI calls, what ``conv_backend = "auto"`` picks on the CPUs of
``xla_setup.ONEDNN_TRAIN_CPU_FLAGS``) with the per-network compile options for XLA's other convolutions, as
``jaxgen train`` and the inference commands run it; ``default`` and ``eigen`` then run with ``conv_backend =
"xla"``. Every backend is traced afresh (``prepare_training`` / ``onednn_conv.configure`` before its first call),
and the differences reported are each backend's against the first one's. ``onednn_eigen`` is ``onednn`` with
``CPU_EIGEN_CONV_OPTIONS`` added (what the train steps of ``CPU_EIGEN_CONV_TRAIN``'s networks got with oneDNN
before 2026-12-07: the option then only moves XLA's reductions and elementwise ops off YNNPACK).
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
    # ESRGAN's GAN stage: RRDBNet, VGG19 perceptual loss, the VGG-style discriminator on 128 px HR patches
    "esrgan_b4_32": ("configs/esrgan.py", [("batch_size", "4")]),
    # Real-ESRGAN's GAN stage: RRDBNet, the spectral-norm U-Net discriminator, the second-order degradations
    "realesrgan_b4_32": ("configs/realesrgan.py", [("batch_size", "4"), ("data.patch_size", "32"),
                                                   ("degradation.context_size", "192")]),
    # SRGAN: SRResNet and the VGG-style discriminator
    "srgan_b4_32": ("configs/srgan.py", [("batch_size", "4")]),
    # the SR configs' own batches and patches
    "rcan_b16_48": ("configs/rcan.py", []),
    "srresnet_b16_32": ("configs/srresnet.py", []),
    "srcnn_b64_11": ("configs/srcnn.py", []),
    "espcn_b64_17": ("configs/espcn.py", []),
    # pix2pix: the U-Net generator and the BatchNorm PatchGAN (aligned pairs from the contents folder, both sides)
    "pix2pix_b1_256": ("configs/pix2pix.py", [("batch_size", "1"), ("data.source", "folder")]),
    # ... with pix2pixHD's multi-scale discriminator (three instance-norm PatchGANs, in no config's default)
    "pix2pix_msd_b1_256": ("configs/pix2pix.py", [("batch_size", "1"), ("data.source", "folder"),
                                                  ("disc.name", "multiscale_patchgan")]),
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
    "fwd_unet_256": ("unet", {}, 256),
    "fwd_adain_vgg_256": ("adain_vgg", {}, 256),
    # the rest of `jaxgen upscale`'s networks (zoo and trained configs), one image
    "fwd_rcan_64": ("rcan", {"scale": 4}, 64),
    "fwd_srresnet_128": ("srresnet", {"scale": 4}, 128),
    "fwd_srcnn_256": ("srcnn", {"scale": 3}, 256),
    "fwd_espcn_256": ("espcn", {"scale": 3}, 256),
    "fwd_fsrcnn_256": ("fsrcnn", {"scale": 3}, 256),
    "fwd_vdsr_256": ("vdsr", {"scale": 3}, 256),
    "fwd_waifu2x_upconv7_256": ("waifu2x_upconv7", {"scale": 2}, 256),
    "fwd_waifu2x_cunet_256": ("waifu2x_cunet", {"scale": 2}, 256),
    "fwd_realcugan_256": ("realcugan", {"scale": 2}, 256),
    "fwd_realcugan_x4_128": ("realcugan", {"scale": 4}, 128),
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


def train_case(name: str, steps: int, backends: list[str]) -> dict:
    import jax
    import numpy as np

    from jaxgen import xla_setup
    from jaxgen.config import load_config
    from jaxgen.tasks import get_task
    from jaxgen.train import parallel

    spec, overrides = TRAIN_CASES[name]
    shared = os.environ.get("JAXGEN_SHARED", str(ROOT.parent / "shared"))
    data = f"{shared}/data"
    t91 = [("data.source", "folder"), ("data.train_dir", f"{data}/sr-train/T91")]  # every SR case's batches
    pairs = [("data.dir_a", f"{data}/style/contents"), ("data.dir_b", f"{data}/style/contents")]  # pix2pix's
    extra = {
        "fast_style_b4_256": [("data.train_dir", f"{data}/style/contents")],
        "adain_b8_256": [("data.content_dir", f"{data}/style/contents")],
        "cyclegan_b1_256": [("data.dir_a", f"{data}/style/contents"), ("data.dir_b", f"{data}/style/styles")],
        "pix2pix_b1_256": pairs,
        "pix2pix_msd_b1_256": pairs,
    }.get(name, t91)
    config = load_config(str(ROOT / spec), overrides + extra)
    task = get_task(config.task)(config)
    mesh = parallel.make_mesh(parallel.devices_for_batch(config.batch_size))  # as the loop
    repl, bsh = parallel.replicated(mesh), parallel.batch_sharding(mesh)
    consts, _ = task.consts()
    consts = jax.device_put(consts, repl)
    it = task.make_data(0, 1)
    batch = parallel.global_batch(next(iter(it)), mesh)
    per_device = config.batch_size // mesh.devices.size
    networks = xla_setup.network_names(task.architecture(config))
    fns, losses, compile_s = {}, {}, {}
    for backend in backends:
        options = xla_setup.prepare_training(per_device, networks=networks,
                                             conv_backend="xla" if backend in ("default", "eigen") else "onednn",
                                             devices=mesh.devices.size)
        if backend in ("eigen", "onednn_eigen"):
            options = {**options, **xla_setup.CPU_EIGEN_CONV_OPTIONS}
        state = jax.jit(task.init, out_shardings=repl)()
        # a new function per backend: jax.jit's trace cache is keyed on the function, not on the convolution switch
        step = jax.jit(lambda s, b, c: task.step(s, b, c), in_shardings=(repl, bsh, repl),
                       out_shardings=(repl, repl), donate_argnums=(0,), compiler_options=options or None)
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
    first = backends[0]

    def rel_diff(backend):
        keys = sorted(set(losses[first]) & set(losses[backend]))
        return max((abs(losses[first][k] - losses[backend][k]) / max(abs(losses[first][k]), 1e-12) for k in keys),
                   default=None)

    return {
        "devices": mesh.devices.size, "per_device_batch": per_device, "first_step_s": compile_s,
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "min_s": {k: min(v) for k, v in times.items()},
        "first_step_metric_max_rel_diff": {b: rel_diff(b) for b in backends[1:]},
    }


def forward_case(name: str, steps: int, backends: list[str]) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxgen import models, xla_setup
    from jaxgen.models import onednn_conv

    net, kwargs, side = FORWARD_CASES[name]
    model = models.build(net, **kwargs)
    x = jnp.asarray(np.random.default_rng(0).random((1, side, side, 3), dtype=np.float32))
    # the U-Net needs its full depth's multiple; CUNet and Real-CUGAN crop more than 16 px away
    init_side = side if net in ("unet", "waifu2x_cunet", "realcugan") else 16
    params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, init_side, init_side, 3)))["params"]
    fns, outs, first_s = {}, {}, {}
    for backend in backends:
        onednn_conv.configure("xla" if backend in ("default", "eigen") else "onednn")
        options = xla_setup.CPU_EIGEN_CONV_OPTIONS if backend in ("eigen", "onednn_eigen") else {}
        if backend == "onednn":  # as the inference commands: the per-network options with oneDNN's convolutions
            options = xla_setup.inference_compiler_options(net, conv_backend="onednn")
        apply = jax.jit(lambda p, x: model.apply({"params": p}, x), compiler_options=dict(options) or None)
        t = time.perf_counter()
        outs[backend] = jax.device_get(apply(params, x))
        first_s[backend] = time.perf_counter() - t
        fns[backend] = lambda apply=apply: apply(params, x)
    times = _median_times(fns, steps)
    return {"median_s": {k: statistics.median(v) for k, v in times.items()},
            "min_s": {k: min(v) for k, v in times.items()}, "first_s": first_s,
            "max_abs_diff": {b: max(float(np.max(np.abs(np.asarray(u) - np.asarray(v))))  # a feature dict too
                                    for u, v in zip(jax.tree.leaves(outs[backends[0]]), jax.tree.leaves(outs[b])))
                             for b in backends[1:]}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="", help=f"comma list of {sorted(TRAIN_CASES) + sorted(FORWARD_CASES)}")
    ap.add_argument("--backends", default="default,eigen",
                    help="comma list of default (XLA's YNNPACK convolutions), eigen, onednn (jaxgen's oneDNN calls)")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--out")
    ap.add_argument("--forward-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    names = [c for c in args.cases.split(",") if c] or [*TRAIN_CASES, *FORWARD_CASES]
    unknown = [n for n in names if n not in TRAIN_CASES and n not in FORWARD_CASES]
    if unknown:
        sys.exit(f"conv_backends: unknown case(s) {unknown}; expected {sorted(TRAIN_CASES) + sorted(FORWARD_CASES)}")
    backends = [b for b in args.backends.split(",") if b]
    if not backends or set(backends) - {"default", "eigen", "onednn", "onednn_eigen"}:
        sys.exit(f"conv_backends: --backends {args.backends!r}: expected a comma list of default, eigen, onednn, "
                 "onednn_eigen")
    forward = [n for n in names if n in FORWARD_CASES]
    if not args.forward_child:
        names = [n for n in names if n in TRAIN_CASES]
        if forward:  # inference commands run on one CPU device (jaxgen.cli.main splits the host for training only)
            out = ["--out", args.out + ".forward.json"] if args.out else []
            import subprocess

            subprocess.run([sys.executable, __file__, "--forward-child", "--cases", ",".join(forward),
                            "--steps", str(args.steps), "--backends", args.backends, *out], check=True)
        from jaxgen import xla_setup

        # as jaxgen.cli.main for `jaxgen train`: 2 CPU devices (and oneDNN's OpenMP team size when measured)
        xla_setup.configure_process(conv_backend="onednn" if {"onednn", "onednn_eigen"} & set(backends) else "xla")
    import jax

    jax.config.update("jax_platforms", "cpu")
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.processor() or "cpu",
              "cpus": os.cpu_count(), **cpu_info(), "jax": jax.__version__, "devices": jax.device_count(),
              "load_at_start": os.getloadavg(), "cases": {}}
    for name in names:
        run = train_case if name in TRAIN_CASES else forward_case
        r = run(name, args.steps, backends)
        r["load"] = os.getloadavg()[0]
        report["cases"][name] = r
        med = r["median_s"]
        cols = "  ".join(f"{b} {med[b]:7.3f} s" for b in backends)
        ratios = "  ".join(f"{b}/{backends[0]} {med[b] / med[backends[0]]:5.2f}" for b in backends[1:])
        print(f"{name:28s} {cols}  {ratios}  load {r['load']:.1f}", flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
