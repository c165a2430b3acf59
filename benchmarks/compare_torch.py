"""jaxgen vs PyTorch, side by side and interleaved: train steps and inference forwards on the same CPU.

    python benchmarks/compare_torch.py [--cases edsr_b16,edsr_b4,...] [--rounds 7] [--settle 1] [--out results.json]
        [--jax-python /work/main/.venv/bin/python] [--torch-python /work/torchvenv/bin/python]
        [--jax-variants tuned,default] [--no-compile] [--smoke]

One driver (stdlib only) starts one worker process per contender and keeps them all alive:

* ``jax:<variant>`` (jaxgen's venv, ``PYTHONPATH`` = this checkout). ``tuned`` is what ``jaxgen train`` does by
  default: under jemalloc where ``jaxgen train`` runs under it (``xla_setup.jemalloc_environ``),
  ``jaxgen.xla_setup.configure_process()`` before JAX is imported (as ``jaxgen.cli.main``), then the
  SR task's real step ``get_task('sr')(config).step`` jitted as ``jaxgen/train/loop.py`` does (state replicated,
  batch sharded on the ``data`` mesh, state donated) with ``compiler_options=xla_setup.prepare_training(...)``.
  ``default`` is the same with ``JAXGEN_XLA_DEFAULTS=0`` (plain XLA defaults, one CPU device). ``infer`` is what the
  inference commands (upscale, stylize, translate) do: one CPU device and ``xla_setup.inference_compiler_options``
  for the network (forward cases; ``tuned`` also uses those options but on the host split for training). Further variants
  (``VARIANTS``) isolate one lever each. ``tuned`` and ``infer`` take ``config.conv_backend``'s default ``"auto"``
  resolved for the case's networks as ``jaxgen train`` / the inference commands resolve it (the task's model names:
  ``resnet`` / ``unet`` for the translation generators, ``resnet`` + ``patchgan`` for the CycleGAN iteration;
  oneDNN's convolutions where ``xla_setup.prefers_onednn`` says so, when installed; XLA's elsewhere);
  ``xla`` is ``tuned`` with XLA's convolutions everywhere. ``onednn`` / ``onednn_bf16`` are ``tuned`` with
  ``conv_backend = "onednn"`` (``jaxgen.models.onednn_conv``: stride-1 convolutions through oneDNN, one OpenMP
  thread per CPU device; ``onednn_bf16`` adds ``compute_dtype = "bfloat16"``: bf16 convolution operands on AMX,
  f32 modules) -- they need ``pip install 'jaxgen[onednn]'`` and g++ in the jax venv. ``tuned`` times one step
  a call; ``jaxgen train``'s ``config.steps_per_call`` default (auto) runs 2 or 4 a call where the run's counts
  allow (``jaxgen.train.loop.steps_per_call``): ``tuned_k4`` is ``tuned`` with 4 steps a call (the loop's
  ``steps_in_one_call`` over 4 copies of the batch; every time reported a step = a call's / 4; ``sys_s`` and
  ``minor_faults`` stay a call's).
* ``torch:eager`` and ``torch:compile`` (the torch venv; ``torch.compile`` of the network, default mode).

Every case is set up (built, compiled, warmed up) in each worker, then timed in rounds: in each round every
worker runs one step in turn (the order rotates), so all contenders see the same machine load. ``--settle N``
runs N untimed steps right before each timed one in the same worker: a worker left idle while the others run
can lose its memory to its allocator's decay (jemalloc returns pages unused for seconds, and the next step maps
them afresh: SRGAN b4 on a 2-core Zen 3, 76,000 page faults and 0.3 s of system time in a step after 7 s idle,
none in back-to-back steps), which a training loop's back-to-back steps never see; the default 0 times the step
after the others' turns, as before 2026-12-08 (the JSON's ``settle``). Reported per
contender (``cases.<case>.by.<worker>``): ``median_s`` / ``min_s`` / ``max_s`` wall seconds and every round's
``walls``, ``cpu_util`` (process CPU seconds / wall seconds; 2.0 = both cores of a 2-core machine busy),
``cpu_s_median`` (process CPU seconds a step: less sensitive than wall time to other work on a shared machine),
``sys_s`` and ``minor_faults`` (each step's system CPU seconds and minor page faults: memory the step maps afresh),
compile / first-step seconds, peak RSS of the worker so far, and the load average during the case.

Cases: the train step is Adam (lr 1e-4) + L1 on a fixed random batch (data loading excluded; see
``loader.py``). ``style_b4`` trains the fast-style TransformerNet with an L1 loss to a fixed target (the
perceptual loss's frozen VGG is the same on both sides and left out: the step measures the trained network).
``rcan_b16`` trains RCAN x2 (``configs/rcan.py``'s batch and patch) the same way against ``torch_models.RCAN``.
``cyclegan_g_b1`` / ``unet_b1`` train CycleGAN's ResNet-9 generator / pix2pix's ``unet_256`` the same way (batch
1 at 256 px, as their protocols; no dropout on either side). ``cyclegan_b1`` is the whole CycleGAN iteration at
256 px: jaxgen's ``cyclegan`` task step (``configs/cyclegan.py``: two generators, two PatchGANs, image pools)
against the official ``optimize_parameters`` (``torch_models.CycleGAN``); batch 1 runs on one of the host split's
devices, as ``jaxgen train`` runs it, with oneDNN's team on the idle device's cores too
(``xla_setup.omp_team``). ``esrgan_b4`` is ESRGAN's GAN-stage iteration at batch 4 (LR 32 px, HR 128):
jaxgen's ``sr_gan`` task step (``configs/esrgan.py``: RRDBNet x4, the VGG-style discriminator, VGG19 ``conv5_4``
perceptual loss, relativistic GAN, EMA) against BasicSR's ``ESRGANModel.optimize_parameters``
(``torch_models.ESRGAN``). ``srgan_b4`` is the same for SRGAN as BasicSR trains it
(``configs/srgan.py:basicsr``: MSRResNet x4, the BatchNorm VGG-style discriminator, the same perceptual loss,
vanilla GAN, EMA) against ``SRGANModel.optimize_parameters`` (``torch_models.SRGAN``).
``realesrgan_b4`` is Real-ESRGAN's GAN-stage iteration (``configs/realesrgan.py``: RRDBNet x4, the spectral-norm
U-Net discriminator, five-layer VGG19 loss on the USM-sharpened GT, EMA) with the second-order degradation
bypassed on both sides, as ``tools/parity``'s ``real_sr_gan`` row runs it (``trainer_real_sr_gan.BypassPairs``:
the batch's own LR; no pair pool), against ``RealESRGANModel``'s ``feed_data`` paired branch and
``optimize_parameters`` (``torch_models.RealESRGAN``); the degradation's cost is
``degradation_cost.py``'s. ``adain_b8`` is AdaIN's iteration at its official batch 8, 256 px:
jaxgen's ``adain`` task step (``configs/adain.py``) against pytorch-AdaIN's ``train.py`` loop body
(``torch_models.AdaIN``). ``pix2pix_b1`` is the whole pix2pix iteration (``configs/pix2pix.py``: ``unet_256``
with dropout, the BatchNorm PatchGAN) against ``Pix2PixModel.optimize_parameters`` (``torch_models.Pix2Pix``).
``fast_style_b4`` is the whole fast-style iteration (``configs/fast_style.py``: TransformerNet, the frozen VGG16's
content and style losses) against pytorch/examples' ``train`` loop body (``torch_models.FastStyle``), where
``style_b4`` times the TransformerNet alone. For the whole iterations ``torch:compile`` compiles each network of
the twin in place (``nn.Module.compile``, ``torch_models``' ``networks()``: the parameter names the official EMA
and ``requires_grad`` switches use stay as they are) and runs the official step around them, as a user compiling
the models in the official trainers would (since 2026-12-07 23:30 UTC; before, every iteration but CycleGAN's
was eager only).
Forward cases run inference on one image (``torch.inference_mode``; jaxgen: ``jax.jit(model.apply)`` as
``jaxgen.inference.make_apply``). Each worker's setup runs the step (or forward) twice, untimed but for the first
call (``first_step_s``, compile included), before the interleaved rounds (since 2026-12-07: the jax worker ran it
once and the torch worker twice). A case a worker could not set up or run is recorded with its ``error`` and
makes the command exit 1 after the results are written.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cpuinfo import cpu_info  # benchmarks/cpuinfo.py (this script's folder is on sys.path, and on the workers')

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# name: (kind, network, scale, batch, lr side)
CASES: dict[str, tuple[str, str, int, int, int]] = {
    "edsr_b16": ("train", "edsr", 2, 16, 48),
    "edsr_b4": ("train", "edsr", 2, 4, 48),
    "rrdb_b4": ("train", "rrdbnet", 4, 4, 32),
    "rcan_b16": ("train", "rcan", 2, 16, 48),  # configs/rcan.py's batch and patch (10 groups x 20 RCABs)
    "style_b4": ("train", "transformer_net", 1, 4, 256),
    "cyclegan_g_b1": ("train", "resnet_generator", 1, 1, 256),
    "unet_b1": ("train", "unet_generator", 1, 1, 256),
    "cyclegan_b1": ("train", "cyclegan", 1, 1, 256),  # the whole iteration: 2 generators, 2 discriminators
    "fast_style_b4": ("train", "fast_style", 1, 4, 256),  # the whole iteration: TransformerNet, VGG16 losses
    "pix2pix_b1": ("train", "pix2pix", 1, 1, 256),  # the whole iteration: U-Net, BatchNorm PatchGAN
    "esrgan_b4": ("train", "esrgan", 4, 4, 32),  # ESRGAN's GAN stage: RRDBNet, VGG-style D, VGG19 loss, EMA
    "srgan_b4": ("train", "srgan", 4, 4, 32),  # SRGAN as BasicSR trains it: MSRResNet, VGG-style D, VGG19 loss
    "realesrgan_b4": ("train", "realesrgan", 4, 4, 32),  # Real-ESRGAN's GAN stage, degradation bypassed
    "adain_b8": ("train", "adain", 1, 8, 256),  # AdaIN's iteration: VGG19 encoder (frozen), decoder, 256 px
    "fwd_edsr_256": ("forward", "edsr", 2, 1, 256),
    "fwd_rrdb_64": ("forward", "rrdbnet", 4, 1, 64),
    "fwd_style_256": ("forward", "transformer_net", 1, 1, 256),
}
SMOKE_CASES: dict[str, tuple[str, str, int, int, int]] = {
    "edsr_b2": ("train", "edsr", 2, 2, 16),
    "style_b2": ("train", "transformer_net", 1, 2, 32),
    "fwd_edsr_32": ("forward", "edsr", 2, 1, 32),
}
# jax worker variants: env set before JAX is imported; setup=True calls xla_setup (what `jaxgen train` does);
# else the explicit levers.
EIGEN = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
# oneDNN instead of YNNPACK convolutions (a process-level XLA flag: XLA:CPU ignores it as a per-jit option)
ONEDNN = EIGEN + " --xla_cpu_experimental_onednn_fusion_type=individual_convolution"
VARIANTS: dict[str, dict] = {
    "tuned": dict(setup=True),
    # tuned with config.steps_per_call = 4 (4 train steps a call; the time a step = a call's / 4)
    "tuned_k4": dict(setup=True, steps_per_call=4),
    # tuned with XLA's convolutions (config.conv_backend = "xla"; tuned's "auto" takes oneDNN's on AVX-512 + AMX)
    "xla": dict(setup=True, conv_backend="xla"),
    # jaxgen's oneDNN convolutions (config.conv_backend / compute_dtype), otherwise as tuned
    "onednn": dict(setup=True, conv_backend="onednn"),
    "onednn_bf16": dict(setup=True, conv_backend="onednn", compute_dtype="bfloat16"),
    # what jaxgen's inference commands do (upscale, stylize, translate): one CPU device, per-network compile options
    "infer": dict(setup=True, split=False),
    # what the inference commands do with --conv-backend auto: oneDNN f32 where xla_setup.prefers_onednn (one
    # device, OpenMP's default team: every core)
    "infer_auto": dict(setup=True, split=False, conv_backend="auto"),
    # the inference commands with --conv-backend onednn (one device, every core)
    "infer_onednn_conv": dict(setup=True, split=False, conv_backend="onednn"),
    "tuned_onednn": dict(setup=True, env={"XLA_FLAGS": ONEDNN}),
    "infer_onednn": dict(setup=True, split=False, env={"XLA_FLAGS": ONEDNN}),
    "default": dict(env={"JAXGEN_XLA_DEFAULTS": "0"}),
    "eigen": dict(env={"JAXGEN_XLA_DEFAULTS": "0", "XLA_FLAGS": EIGEN}),
    "cpu2": dict(env={"JAXGEN_XLA_DEFAULTS": "0", "JAX_NUM_CPU_DEVICES": "2"}),
    "cpu2_eigen": dict(env={"JAXGEN_XLA_DEFAULTS": "0", "JAX_NUM_CPU_DEVICES": "2", "XLA_FLAGS": EIGEN}),
    "cpu2_opts": dict(env={"JAXGEN_XLA_DEFAULTS": "0", "JAX_NUM_CPU_DEVICES": "2"}, options=True),
    "cpu2_vjp": dict(env={"JAXGEN_XLA_DEFAULTS": "0", "JAX_NUM_CPU_DEVICES": "2"}, conv_vjp=True),
    "cpu2_opts_vjp": dict(env={"JAXGEN_XLA_DEFAULTS": "0", "JAX_NUM_CPU_DEVICES": "2"}, options=True, conv_vjp=True),
    "opts": dict(env={"JAXGEN_XLA_DEFAULTS": "0"}, options=True),
    "vjp": dict(env={"JAXGEN_XLA_DEFAULTS": "0"}, conv_vjp=True),
    "opts_vjp": dict(env={"JAXGEN_XLA_DEFAULTS": "0"}, options=True, conv_vjp=True),
}


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ------------------------------------------------------------------------------------------------ jax worker


IMAGE_TO_IMAGE = ("transformer_net", "resnet_generator", "unet_generator")  # output side = input side
# The model names the cyclegan / pix2pix tasks' architecture() gives these generators (`auto` resolves by them).
TASK_NETWORK = {"resnet_generator": "resnet", "unet_generator": "unet"}
# The cases that time a whole task iteration (``configs/<network>.py``'s step, its consts): their batch's keys.
ITERATION_BATCH_KEYS = {"cyclegan": ("A", "B"), "pix2pix": ("A", "B"), "fast_style": ("content",),
                        "adain": ("content", "style"), "esrgan": ("lr", "hr"), "srgan": ("lr", "hr"),
                        "realesrgan": ("lr", "hr")}
# the config file (and argument) of a whole-iteration case, where it is not configs/<network>.py
ITERATION_CONFIGS = {"srgan": "srgan.py:basicsr"}
# and its overrides beside the batch size (realesrgan: no pair pool, one degradation group: the degradation is
# bypassed, as tools/parity's real_sr_gan row)
ITERATION_OVERRIDES = {"realesrgan": [("degradation.queue_size", "0"), ("degradation.groups", "1")]}


def iteration_config(net: str, batch: int):
    """The config a whole-iteration case's jax worker trains (:data:`ITERATION_CONFIGS`, its overrides, the
    case's batch size)."""
    from jaxgen.config import load_config  # here, not at the top: the torch worker imports this file without jaxgen

    return load_config(str(ROOT / "configs" / ITERATION_CONFIGS.get(net, f"{net}.py")),
                       [("batch_size", str(batch)), *ITERATION_OVERRIDES.get(net, [])])


def _image_to_image(net: str):
    """The flax network of a case whose output has the input's size: the fast-style TransformerNet, CycleGAN's
    ResNet generator (``resnet_9blocks``, instance norm) or pix2pix's ``unet_256`` (batch norm on the batch's own
    statistics, as the official training mode; no dropout on either side, so both run the same arithmetic)."""
    if net == "transformer_net":
        from jaxgen.models.transformer_net import TransformerNet

        return TransformerNet()
    from jaxgen.models import translation

    if net == "resnet_generator":
        return translation.ResnetGenerator()
    return translation.UnetGenerator(use_dropout=False)


class JaxWorker:
    def __init__(self, variant: str) -> None:
        spec = VARIANTS[variant]
        os.environ.update(spec.get("env", {}))
        if spec.get("setup") and spec.get("split", True):
            from jaxgen import xla_setup

            xla_setup.configure_process(conv_backend=spec.get("conv_backend"))
        import jax

        self.jax, self.spec, self.cases = jax, spec, {}

    def info(self) -> dict:
        jax = self.jax
        info = {"devices": len(jax.devices()), "backend": jax.default_backend(), "jax": jax.__version__,
                "env": {k: os.environ.get(k) for k in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES", "JAXGEN_XLA_DEFAULTS",
                                                       "LD_PRELOAD", "MALLOC_CONF")}}
        if self.spec.get("conv_backend"):  # the oneDNN variants: their OpenMP team size (set by configure_process)
            info["conv_backend"], info["OMP_NUM_THREADS"] = self.spec["conv_backend"], os.environ.get("OMP_NUM_THREADS")
        return info

    def _jit_kwargs(self, per_device_batch: int, networks: tuple[str, ...], devices: int) -> dict:
        from jaxgen import xla_setup
        from jaxgen.models import conv_vjp

        if self.spec.get("setup"):
            return {"compiler_options": xla_setup.prepare_training(
                per_device_batch, networks=networks, conv_backend=self.spec.get("conv_backend"),
                compute_dtype=self.spec.get("compute_dtype"), devices=devices)}
        conv_vjp.set_enabled(bool(self.spec.get("conv_vjp")))
        if self.spec.get("options"):
            return {"compiler_options": dict(xla_setup.CPU_EIGEN_CONV_OPTIONS)}
        return {}

    def setup(self, name: str, case: tuple) -> dict:
        import jax
        import jax.numpy as jnp
        import numpy as np
        import optax

        from jaxgen.models import conv_vjp
        from jaxgen.train import parallel
        from jaxgen.train.state import apply_gradients, new_player, new_state

        kind, net, scale, batch, side = case
        consts: dict = {}
        mesh = parallel.make_mesh()
        repl, bsh = parallel.replicated(mesh), parallel.batch_sharding(mesh)
        rng = np.random.default_rng(0)
        lr = rng.random((batch, side, side, 3), dtype=np.float32)
        hr = rng.random((batch, side * scale, side * scale, 3), dtype=np.float32)
        n_dev = mesh.devices.size if kind == "train" and batch % mesh.devices.size == 0 else 1
        if kind == "train" and n_dev == 1 and mesh.devices.size > 1:
            mesh = parallel.make_mesh(jax.devices()[:1])
            repl, bsh = parallel.replicated(mesh), parallel.batch_sharding(mesh)
        if kind == "train" and net in ("edsr", "rrdbnet", "rcan"):
            from jaxgen.tasks import base_config
            from jaxgen.tasks import get_task

            c = base_config("sr")
            c.scale, c.batch_size, c.data.patch_size = scale, batch, side
            c.model.name = net
            c.conv_backend = self.spec.get("conv_backend", "xla")
            c.compute_dtype = self.spec.get("compute_dtype", "float32")
            task = get_task("sr")(c)
            step_fn, init_fn, networks = task.step, task.init, (net,)
        elif kind == "train" and net in ITERATION_BATCH_KEYS:  # a whole task iteration from its config
            from jaxgen.tasks import get_task

            from jaxgen import xla_setup

            config = iteration_config(net, batch)
            task = get_task(config.task)(config)
            if net == "realesrgan":  # feed_data's paired branch, as the torch twin (tools/parity is not a package)
                sys.path.insert(0, str(ROOT / "tools" / "parity"))
                from trainer_real_sr_gan import BypassPairs

                task.pairs = BypassPairs(task.pairs)
            step_fn, init_fn = task.step, task.init
            # the names `jaxgen train` resolves `auto` with (cyclegan: {'patchgan', 'resnet'})
            networks = tuple(sorted(xla_setup.network_names(task.architecture(config))))
            consts = jax.device_put(task.consts()[0], repl)  # the frozen VGGs, the style Grams; {} for the rest
            if ITERATION_BATCH_KEYS[net] != ("lr", "hr"):  # image pairs (or one image) of the same size
                lr, hr = (rng.random((batch, side, side, 3), dtype=np.float32) for _ in range(2))
        elif kind == "train":
            model, tx, networks = _image_to_image(net), optax.adam(1e-4), (TASK_NETWORK.get(net, net),)

            def init_fn():
                params = model.init(jax.random.key(0), jnp.zeros((1, side, side, 3)))["params"]
                return new_state(0, {"net": new_player(params, tx)})

            def step_fn(state, b, consts):
                del consts
                p = state.players["net"]
                loss, grads = jax.value_and_grad(lambda w: jnp.mean(jnp.abs(model.apply({"params": w}, b["lr"]) - b["hr"])))(p.params)
                p = apply_gradients(p, grads, tx)
                return state.replace(step=state.step + 1, players={"net": p}), {"loss": loss}

            hr = rng.random((batch, side, side, 3), dtype=np.float32)
        if kind == "train":
            t0 = time.perf_counter()
            kwargs = self._jit_kwargs(batch // mesh.devices.size, networks, mesh.devices.size)
            state = jax.jit(init_fn, out_shardings=repl)()
            k = self.spec.get("steps_per_call", 1)
            if k > 1:  # the same batch k times, as the k = 1 variants step on one batch
                from jaxgen.train.loop import steps_in_one_call

                step_fn, bsh = steps_in_one_call(step_fn), parallel.steps_batch_sharding(mesh)
                lr, hr = np.stack([lr] * k), np.stack([hr] * k)
            step = jax.jit(step_fn, in_shardings=(repl, bsh, repl), out_shardings=(repl, repl), donate_argnums=(0,),
                           **kwargs)
            keys = ITERATION_BATCH_KEYS.get(net, ("lr", "hr"))
            data = parallel.global_batch(dict(zip(keys, (lr, hr))), mesh, stacked=k > 1)
            state, m = step(state, data, consts)
            jax.block_until_ready((state, m))
            first = time.perf_counter() - t0
            state, m = step(state, data, consts)  # a second untimed step, as the torch worker's setup runs two
            jax.block_until_ready((state, m))
            params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves([p.params for p in state.players.values()]))
            self.cases[name] = {"step": step, "state": state, "data": data, "consts": consts, "steps": k}
        else:
            from jaxgen.models import onednn_conv

            conv_vjp.set_enabled(False)
            if self.spec.get("conv_backend"):
                onednn_conv.configure(self.spec["conv_backend"], self.spec.get("compute_dtype"))
            elif self.spec.get("setup"):  # as upscale / stylize / translate: `auto` for the network
                onednn_conv.configure(onednn_conv.resolve("auto", networks=(TASK_NETWORK.get(net, net),)))
            if net in IMAGE_TO_IMAGE:
                model = _image_to_image(net)
            else:
                from jaxgen import models

                model = models.build(net, scale=scale)
            t0 = time.perf_counter()
            params = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))["params"]
            from jaxgen import xla_setup

            options = (xla_setup.inference_compiler_options(net, conv_backend=onednn_conv.current_backend())
                       if self.spec.get("setup") else {})
            apply = jax.jit(lambda p, x: model.apply({"params": p}, x), compiler_options=options or None)
            x = jnp.asarray(lr)
            jax.block_until_ready(apply(params, x))
            first = time.perf_counter() - t0
            jax.block_until_ready(apply(params, x))  # a second untimed call, as the torch worker's setup makes two
            self.cases[name] = {"apply": apply, "params": params, "x": x}
            params = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(params))
        return {"params": params, "first_step_s": first, "devices_used": n_dev if kind == "train" else 1}

    def run(self, name: str) -> tuple[float, float]:
        c = self.cases[name]
        t0, c0 = time.perf_counter(), _cpu()
        if "step" in c:
            c["state"], m = c["step"](c["state"], c["data"], c["consts"])
            self.jax.block_until_ready((c["state"], m))
        else:
            self.jax.block_until_ready(c["apply"](c["params"], c["x"]))
        steps = c.get("steps", 1)  # steps_per_call: a call's time over its steps
        return (time.perf_counter() - t0) / steps, (_cpu() - c0) / steps

    def drop(self, name: str) -> None:
        self.cases.pop(name, None)
        self.jax.clear_caches()


# ------------------------------------------------------------------------------------------------ torch worker


class TorchWorker:
    def __init__(self, variant: str) -> None:
        import torch

        self.torch, self.compile, self.cases = torch, variant == "compile", {}
        torch.manual_seed(0)

    def info(self) -> dict:
        return {"torch": self.torch.__version__, "threads": self.torch.get_num_threads()}

    def _iteration(self, net: str, batch: int, side: int, scale: int, rng) -> tuple | None:
        """``(model, step)`` for the cases that time a whole official iteration (``torch_models``' twins); None
        for a network trained alone."""
        import numpy as np
        import torch

        import torch_models

        def images(n_side: int, count: int = 1):
            return [torch.from_numpy(rng.random((batch, 3, n_side, n_side), dtype=np.float32)) for _ in range(count)]

        if net in ("cyclegan", "pix2pix"):
            model = torch_models.CycleGAN() if net == "cyclegan" else torch_models.Pix2Pix()
            a, b = (x * 2 - 1 for x in images(side, 2))
            step = lambda: model.step(a, b)
        elif net == "fast_style":
            model, (x,) = torch_models.FastStyle(batch, side), images(side)
            x = x.mul(255)
            step = lambda: model.step(x.clone())  # normalize_batch divides its input in place
        elif net == "adain":
            model, (content, style) = torch_models.AdaIN(), images(side, 2)
            step = lambda: model.step(content, style)
        elif net in ("esrgan", "srgan", "realesrgan"):
            model = {"esrgan": torch_models.ESRGAN, "srgan": torch_models.SRGAN,
                     "realesrgan": torch_models.RealESRGAN}[net]()
            (lq,), (gt,) = images(side), images(side * scale)
            step = lambda: model.step(lq, gt)
        else:
            return None
        if self.compile:
            for module in model.networks():
                module.compile()  # in place: the names the official EMA and requires_grad switches use stay
        return model, step

    def setup(self, name: str, case: tuple) -> dict:
        import numpy as np
        import torch

        import torch_models

        kind, net, scale, batch, side = case
        rng = np.random.default_rng(0)
        iteration = self._iteration(net, batch, side, scale, rng)  # a whole task iteration (an official step)
        if iteration is not None:
            model, step = iteration
            t0 = time.perf_counter()
            step()
            step()
            self.cases[name] = step
            return {"params": sum(p.numel() for p in model.parameters()), "first_step_s": time.perf_counter() - t0,
                    "devices_used": 1}
        model = torch_models.build(net, scale)
        params = sum(p.numel() for p in model.parameters())
        fn = torch.compile(model) if self.compile else model
        lr = torch.from_numpy(rng.random((batch, 3, side, side), dtype=np.float32))
        out_side = side if net in IMAGE_TO_IMAGE else side * scale
        hr = torch.from_numpy(rng.random((batch, 3, out_side, out_side), dtype=np.float32))
        if kind == "train":
            opt = torch.optim.Adam(model.parameters(), lr=1e-4)

            def step():
                opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.l1_loss(fn(lr), hr)
                loss.backward()
                opt.step()
                return loss.detach()
        else:
            model.eval()

            def step():
                with torch.inference_mode():
                    return fn(lr)
        t0 = time.perf_counter()
        step()
        step()  # torch.compile may recompile on the second call
        self.cases[name] = step
        return {"params": params, "first_step_s": time.perf_counter() - t0, "devices_used": 1}

    def run(self, name: str) -> tuple[float, float]:
        t0, c0 = time.perf_counter(), _cpu()
        self.cases[name]()
        return time.perf_counter() - t0, _cpu() - c0

    def drop(self, name: str) -> None:
        self.cases.pop(name, None)
        if self.compile:
            self.torch._dynamo.reset()


def worker_main(kind: str, variant: str, jemalloc: bool | None = None) -> None:
    """One worker process. ``jemalloc``: run again under jemalloc as ``jaxgen train`` does; by default where
    ``variant`` is one of this file's jax variants with jaxgen's setup (other benchmarks reusing these workers
    with variants of their own say so themselves)."""
    if jemalloc is None:
        spec = VARIANTS.get(variant, {}) if kind == "jax" else {}
        jemalloc = bool(spec.get("setup")) and spec.get("split", True)
    if jemalloc:
        from jaxgen import xla_setup  # imports no JAX

        xla_setup.run_again_under_jemalloc("train", sys.argv)  # as `jaxgen train` runs itself
    out = sys.stdout
    sys.stdout = sys.stderr  # library prints must not corrupt the protocol
    worker = JaxWorker(variant) if kind == "jax" else TorchWorker(variant)

    def reply(obj: dict) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    reply({"ready": True, **worker.info()})
    all_cases = {**CASES, **SMOKE_CASES}
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            if msg["cmd"] == "setup":
                reply(dict(worker.setup(msg["case"], all_cases[msg["case"]]), rss_mb=_rss_mb()))
            elif msg["cmd"] == "run":
                r0 = resource.getrusage(resource.RUSAGE_SELF)
                wall, cpu = worker.run(msg["case"])
                r1 = resource.getrusage(resource.RUSAGE_SELF)
                reply({"wall": wall, "cpu": cpu, "sys": r1.ru_stime - r0.ru_stime, "minflt": r1.ru_minflt - r0.ru_minflt})
            elif msg["cmd"] == "drop":
                worker.drop(msg["case"])
                reply({"rss_mb": _rss_mb()})
            elif msg["cmd"] == "quit":
                reply({})
                return
        except Exception as e:  # reported to the driver, which records it for the case
            import traceback

            traceback.print_exc()
            reply({"error": f"{type(e).__name__}: {e}"})


# ------------------------------------------------------------------------------------------------ driver


class WorkerDied(RuntimeError):
    """A worker process ended without answering (its stderr, above, says why)."""


class Proc:
    def __init__(self, label: str, python: str, kind: str, variant: str) -> None:
        env = dict(os.environ)
        if kind == "jax":
            env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE)])
        else:
            env["PYTHONPATH"] = str(HERE)
        env.pop("JAX_NUM_CPU_DEVICES", None) if kind == "jax" else None
        self.label = label
        try:
            self.p = subprocess.Popen([python, str(Path(__file__).resolve()), "--worker", kind, "--variant", variant],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=str(ROOT))
        except OSError as e:
            raise WorkerDied(f"worker {label} could not start {python}: {e.strerror or e}") from None
        self.info = self.recv()

    def send(self, **msg) -> dict:
        try:
            self.p.stdin.write(json.dumps(msg) + "\n")
            self.p.stdin.flush()
        except BrokenPipeError:
            raise WorkerDied(f"worker {self.label} died (see its stderr above)") from None
        return self.recv()

    def recv(self) -> dict:
        line = self.p.stdout.readline()
        if not line:
            raise WorkerDied(f"worker {self.label} died (see its stderr above)")
        return json.loads(line)


def summarise(samples: list[tuple[float, float]]) -> dict:
    walls = [w for w, _ in samples]
    return {"median_s": statistics.median(walls), "min_s": min(walls), "max_s": max(walls), "n": len(walls),
            "cpu_util": statistics.median([c / w for w, c in samples])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", choices=["jax", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--variant", default="tuned", help=argparse.SUPPRESS)
    ap.add_argument("--cases", default="", help=f"comma list of {sorted(CASES)} (default all)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--settle", type=int, default=0,
                    help="untimed steps each worker runs right before each timed one (default 0)")
    ap.add_argument("--jax-python", default=sys.executable, help="python of the jaxgen venv (default: this one)")
    ap.add_argument("--torch-python", default="/work/torchvenv/bin/python")
    ap.add_argument("--jax-variants", default="tuned,default", help=f"comma list of {sorted(VARIANTS)}")
    ap.add_argument("--torch-variants", default="eager,compile", help="comma list of eager, compile ('' for none)")
    ap.add_argument("--no-compile", action="store_true", help="same as --torch-variants eager")
    ap.add_argument("--smoke", action="store_true", help="tiny cases, 2 rounds (checks the harness)")
    ap.add_argument("--out", help="write the JSON results here")
    args = ap.parse_args()
    if args.worker:
        return worker_main(args.worker, args.variant)

    cases = SMOKE_CASES if args.smoke else CASES
    names = [n for n in args.cases.split(",") if n] or list(cases)
    unknown = sorted(set(names) - set(cases))
    if unknown:
        print(f"compare_torch: error: unknown cases {unknown}; known: {sorted(cases)}", file=sys.stderr)
        sys.exit(2)
    if args.settle < 0:
        print(f"compare_torch: error: --settle {args.settle}: the untimed steps before each timed one, 0 or more",
              file=sys.stderr)
        sys.exit(2)
    rounds = 2 if args.smoke else args.rounds
    torch_variants = ["eager"] if args.no_compile else [v for v in args.torch_variants.split(",") if v]
    procs: list[Proc] = []
    try:
        for v in [v for v in args.jax_variants.split(",") if v]:
            procs.append(Proc(f"jax:{v}", args.jax_python, "jax", v))
        for v in torch_variants:
            procs.append(Proc(f"torch:{v}", args.torch_python, "torch", v))
        run(args, cases, names, rounds, procs, settle=args.settle)
    except WorkerDied as e:  # one line, no traceback; the other workers are stopped
        for p in procs:
            p.p.kill()
        sys.exit(f"compare_torch: error: {e}; nothing was written")


def run(args: argparse.Namespace, cases: dict, names: list[str], rounds: int, procs: list["Proc"],
        prog: str = "compare_torch", settle: int = 0) -> None:
    """Times ``names`` on the started workers ``procs`` (interleaved rounds; ``settle`` untimed steps before each
    timed one, module doc), writes ``args.out``, prints the table; exits 1 (``PROG: error:``) when a worker could
    not run a case. ``onednn_ffi/train_step.py`` calls it too."""
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": platform.node(), **cpu_info(),
        "cpus": os.cpu_count(), "load_at_start": os.getloadavg(), "rounds": rounds,
        "settle": settle,
        "workers": {p.label: p.info for p in procs}, "cases": {},
    }
    print(json.dumps({k: v for k, v in results.items() if k != "cases"}, indent=1), file=sys.stderr)
    for name in names:
        case_res: dict = {"spec": dict(zip(("kind", "net", "scale", "batch", "side"), cases[name])), "by": {}}
        setup = {p.label: p.send(cmd="setup", case=name) for p in procs}
        live = [p for p in procs if "error" not in setup[p.label]]
        samples: dict[str, list] = {p.label: [] for p in live}
        faults: dict[str, list] = {p.label: [] for p in live}  # (system CPU s, minor page faults) per step
        loads = [os.getloadavg()[0]]
        for r in range(rounds):
            order = live[r % len(live):] + live[:r % len(live)] if live else []
            for p in order:
                for _ in range(settle):  # untimed (an error shows again in the timed step)
                    p.send(cmd="run", case=name)
                res = p.send(cmd="run", case=name)
                if "error" not in res:
                    samples[p.label].append((res["wall"], res["cpu"]))
                    faults[p.label].append((res.get("sys"), res.get("minflt")))
            loads.append(os.getloadavg()[0])
        for p in procs:
            entry = dict(setup[p.label])
            if p in live and samples[p.label]:
                entry.update(summarise(samples[p.label]))
                # process CPU seconds per step: less sensitive than wall time to other work on a shared machine
                entry["cpu_s_median"] = statistics.median(c for _, c in samples[p.label])
                entry["walls"] = [w for w, _ in samples[p.label]]
                entry["sys_s"] = [f for f, _ in faults[p.label]]
                entry["minor_faults"] = [n for _, n in faults[p.label]]
            entry["rss_mb_after"] = p.send(cmd="drop", case=name).get("rss_mb")
            case_res["by"][p.label] = entry
        case_res["load_1min"] = {"min": min(loads), "median": statistics.median(loads), "max": max(loads)}
        counts = {e.get("params") for e in case_res["by"].values() if "params" in e}
        case_res["params_equal"] = len(counts) == 1
        results["cases"][name] = case_res
        print(format_case(name, case_res), file=sys.stderr, flush=True)
        for label, e in case_res["by"].items():
            if "loss_after_setup" in e:
                print(f"  {label:<22} loss after setup {e['loss_after_setup']}", file=sys.stderr, flush=True)
    for p in procs:
        p.send(cmd="quit")
    text = json.dumps(results, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(markdown(results))
    failed = [f"{case} {worker}" for case, r in results["cases"].items() for worker, e in r["by"].items() if "error" in e]
    if failed:  # the results are written; a worker that could not run a case fails the command
        sys.exit(f"{prog}: error: {len(failed)} case/worker pairs failed ({', '.join(failed)}); "
                 "their errors are in the JSON and above")



def format_case(name: str, res: dict) -> str:
    lines = [f"{name} (load {res['load_1min']['median']:.1f}; params equal: {res['params_equal']})"]
    for label, e in res["by"].items():
        if "median_s" in e:
            lines.append(f"  {label:<16} median {e['median_s']:.3f} s  [{e['min_s']:.3f}, {e['max_s']:.3f}]  "
                         f"cpu {e['cpu_util']:.2f}  first {e['first_step_s']:.1f} s  rss {e['rss_mb_after']:.0f} MB  "
                         f"params {e['params']}")
        else:
            lines.append(f"  {label:<16} {e.get('error', 'no samples')}")
    return "\n".join(lines)


def markdown(results: dict) -> str:
    labels = list(results["workers"])
    head = "| case | " + " | ".join(labels) + " | load |"
    rows = [head, "|" + "---|" * (len(labels) + 2)]
    for name, res in results["cases"].items():
        cells = []
        for label in labels:
            e = res["by"].get(label, {})
            cells.append(f"{e['median_s']:.3f} s ({e['cpu_util']:.2f} cpu)" if "median_s" in e else "n/a")
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {res['load_1min']['median']:.1f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
