"""jaxgen train steps with every stride-1 convolution on oneDNN (jaxgen's opt-in ``conv_backend = "onednn"``,
``jaxgen.models.onednn_conv``; f32 or bf16 on AMX) against XLA and PyTorch (eager f32, and bf16 under
``torch.autocast('cpu')``), interleaved on the same CPU.

    .venv/bin/python benchmarks/onednn_ffi/train_step.py [--cases edsr_b4,edsr_b16,style_b4] [--rounds 7]
        [--variants xla_tuned,onednn_f32_2dev,...] [--torch-variants eager,autocast] [--out F.json]

Needs ``pip install 'jaxgen[onednn]'`` and g++ (the handler is built on first use into ``~/.cache/jaxgen/onednn``).
The driver, the workers' protocol, the cases (EDSR-baseline x2 / TransformerNet, Adam lr 1e-4, L1 on a fixed
random batch) and the torch models are ``benchmarks/compare_torch.py``'s, and so are the oneDNN settings
(``compare_torch``'s ``onednn`` / ``onednn_bf16`` variants: ``prepare_training(conv_backend="onednn")``, bf16 as
``compute_dtype``); this script adds worker variants around them:

* ``xla_tuned``: compare_torch's ``tuned`` (what ``jaxgen train`` does: 2 CPU devices, conv VJP per batch).
* ``xla_bf16act``: ``tuned`` with ``config.compute_dtype = 'bfloat16'`` (jaxgen's bf16 modules: bf16 activations
  between layers, f32 params and loss; EDSR cases only).
* ``onednn_<f32|bf16>_2dev``: what ``jaxgen train --config.conv_backend=onednn`` does: the 2-device data mesh and
  ``OMP_NUM_THREADS=1`` (one oneDNN thread per device, set by ``xla_setup.configure_process``); bf16 =
  ``compute_dtype='bfloat16'``: bf16 convolution operands, f32 modules (autocast-style).
* ``onednn_<f32|bf16>_2dev_scan``: the same with ``layers.repeat_blocks`` scanning (one compiled block body);
  ``onednn_f32_2dev_unrolled`` unrolling (``prepare_training`` scans RRDBNet's blocks with oneDNN f32).
* ``onednn_<f32|bf16>_1dev``: one CPU device, ``OMP_NUM_THREADS=2`` (oneDNN's GNU OpenMP team on both cores);
  ``..._passive`` adds ``OMP_WAIT_POLICY=passive`` (no spinning OpenMP threads).

``torch:autocast`` runs the forward and the loss under ``torch.autocast('cpu', bfloat16)``; ``torch:eager_cl`` /
``torch:autocast_cl`` the same with the model and batch in ``channels_last``. Each worker also reports the loss
of one extra step after setup (the jax variants share the init and the batch, so the f32 rows must agree; the
bf16 rows show the rounding).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))

import compare_torch  # noqa: E402  (benchmarks/compare_torch.py: stdlib only, importable from both venvs)

CASES = {k: compare_torch.CASES[k] for k in ("edsr_b4", "edsr_b16", "rrdb_b4", "style_b4")}
SMOKE_CASES = {k: compare_torch.SMOKE_CASES[k] for k in ("edsr_b2", "style_b2")}
ONE_DEVICE = {"JAX_NUM_CPU_DEVICES": "1", "OMP_NUM_THREADS": "2"}
# GNU OpenMP's threads spin ~0.3 s after each parallel region by default, competing with XLA's own threads
PASSIVE = {**ONE_DEVICE, "OMP_WAIT_POLICY": "passive"}
# variant: (compare_torch variant, its extra spec keys, environment before the worker starts)
VARIANTS: dict[str, tuple[str, dict, dict]] = {
    "xla_tuned": ("tuned", {}, {}),
    "xla_bf16act": ("tuned", {"compute_dtype": "bfloat16"}, {}),
    "onednn_f32_1dev": ("onednn", {}, ONE_DEVICE),
    "onednn_bf16_1dev": ("onednn_bf16", {}, ONE_DEVICE),
    "onednn_f32_1dev_passive": ("onednn", {}, PASSIVE),
    "onednn_bf16_1dev_passive": ("onednn_bf16", {}, PASSIVE),
    "onednn_f32_2dev": ("onednn", {}, {}),
    "onednn_bf16_2dev": ("onednn_bf16", {}, {}),
    # the same with the repeated blocks scanned (prepare_training unrolls them with oneDNN on CPU)
    "onednn_f32_2dev_scan": ("onednn", {"scan": True}, {}),
    "onednn_bf16_2dev_scan": ("onednn_bf16", {"scan": True}, {}),
    "onednn_f32_2dev_unrolled": ("onednn", {"scan": False}, {}),
}


class JaxWorker(compare_torch.JaxWorker):
    """compare_torch's jax worker on the variant's compare_torch spec; reports the loss of one step after setup."""

    def __init__(self, variant: str) -> None:
        base, extra, _ = VARIANTS[variant]
        compare_torch.VARIANTS[variant] = {**compare_torch.VARIANTS[base], **extra}
        super().__init__(variant)

    def _jit_kwargs(self, per_device_batch: int, network: str, devices: int) -> dict:
        kwargs = super()._jit_kwargs(per_device_batch, network, devices)
        if "scan" in self.spec:  # else prepare_training's rule
            from jaxgen.models import layers  # the worker's venv (this file is also imported by the torch worker)

            layers.set_scan_blocks(self.spec["scan"])
        return kwargs

    def info(self) -> dict:
        return {**super().info(), "conv": self.spec.get("conv_backend", "xla"),
                "compute_dtype": self.spec.get("compute_dtype", "float32"),
                "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}

    def setup(self, name: str, case: tuple) -> dict:
        res = super().setup(name, case)
        c = self.cases[name]
        c["state"], m = c["step"](c["state"], c["data"], {})
        res["loss_after_setup"] = float(m["loss"])
        return res


class TorchWorker(compare_torch.TorchWorker):
    """compare_torch's torch worker; ``autocast`` runs the forward and the loss in bf16 autocast."""

    def __init__(self, variant: str) -> None:
        super().__init__("eager")
        self.autocast = variant.startswith("autocast")
        self.channels_last = variant.endswith("_cl")

    def info(self) -> dict:
        return {**super().info(), "autocast": self.autocast, "channels_last": self.channels_last}

    def setup(self, name: str, case: tuple) -> dict:
        import numpy as np  # the torch venv (this file is also imported by the jax worker)
        import torch

        import torch_models

        kind, net, scale, batch, side = case
        torch.manual_seed(0)
        model = torch_models.build(net, scale)
        rng = np.random.default_rng(0)
        lr = torch.from_numpy(rng.random((batch, 3, side, side), dtype=np.float32))
        if self.channels_last:
            model, lr = model.to(memory_format=torch.channels_last), lr.contiguous(memory_format=torch.channels_last)
        out_side = side * scale if net != "transformer_net" else side
        hr = torch.from_numpy(rng.random((batch, 3, out_side, out_side), dtype=np.float32))
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        autocast = self.autocast

        def step():
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = torch.nn.functional.l1_loss(model(lr).float(), hr)
            loss.backward()
            opt.step()
            return loss.detach()

        t0 = time.perf_counter()
        step()
        step()
        self.cases[name] = step
        loss = float(step())
        return {"params": sum(p.numel() for p in model.parameters()), "first_step_s": time.perf_counter() - t0,
                "devices_used": 1, "loss_after_setup": loss}


def worker_main(kind: str, variant: str) -> None:
    compare_torch.JaxWorker, compare_torch.TorchWorker = JaxWorker, TorchWorker
    compare_torch.SMOKE_CASES.update(SMOKE_CASES)
    compare_torch.worker_main(kind, variant, jemalloc=False)  # as measured before jemalloc: kept comparable


class Proc(compare_torch.Proc):
    def __init__(self, label: str, python: str, kind: str, variant: str) -> None:
        env = dict(os.environ)
        for key in ("JAX_NUM_CPU_DEVICES", "OMP_NUM_THREADS", "OMP_WAIT_POLICY"):
            env.pop(key, None)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE.parent), str(HERE)] if kind == "jax"
                                            else [str(HERE.parent), str(HERE)])
        if kind == "jax":
            env.update(VARIANTS[variant][2])  # before the worker starts: libgomp reads OMP_NUM_THREADS at load
        self.label = label
        self.p = subprocess.Popen([python, str(Path(__file__).resolve()), "--worker", kind, "--variant", variant],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=str(ROOT))
        self.info = self.recv()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", choices=["jax", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--variant", default="xla_tuned", help=argparse.SUPPRESS)
    ap.add_argument("--cases", default="edsr_b4,edsr_b16")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--jax-python", default=sys.executable)
    ap.add_argument("--torch-python", default="/work/torchvenv/bin/python")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--torch-variants", default="eager,autocast")
    ap.add_argument("--smoke", action="store_true", help="tiny cases, 2 rounds")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.worker:
        return worker_main(args.worker, args.variant)
    cases = SMOKE_CASES if args.smoke else CASES
    names = [n for n in args.cases.split(",") if n] if not args.smoke else list(SMOKE_CASES)
    rounds = 2 if args.smoke else args.rounds
    procs = [Proc(f"jax:{v}", args.jax_python, "jax", v) for v in args.variants.split(",") if v]
    procs += [Proc(f"torch:{v}", args.torch_python, "torch", v) for v in args.torch_variants.split(",") if v]
    compare_torch.run(args, cases, names, rounds, procs, prog="train_step")


if __name__ == "__main__":
    main()
