"""Per-backend XLA settings that jaxgen chooses when the user has not chosen their own.

Measured choices (``benchmarks/RESULTS.md`` has the numbers and how to rerun them):

* CPU, process level, training commands and tiled upscales (:func:`configure_process`, called by
  ``jaxgen.cli.main`` before JAX is imported when :func:`splits_host`: ``train``/``demo``/``sweep``, ``upscale
  --tile N``): the host is split into ``min(os.cpu_count(), 2)`` XLA CPU devices (``JAX_NUM_CPU_DEVICES``), so the
  training batch, sharded on the ``data`` mesh axis, runs as concurrent per-device programs that keep every core
  busy (one XLA:CPU program keeps ~1.2 of 2 cores busy in a conv-net backward pass), and so do an upscale's
  windows, one per device. Skipped when the user set ``JAX_NUM_CPU_DEVICES`` or
  ``--xla_force_host_platform_device_count``. Whole-image inference keeps one device (a split host makes
  single-image forwards up to 1.7x slower).
* CPU, per network (:func:`train_compiler_options` for the train step, :func:`inference_compiler_options` for
  inference ``jax.jit`` s): Eigen instead of YNNPACK convolutions (:data:`CPU_EIGEN_CONV_OPTIONS`) for the
  networks in :data:`CPU_EIGEN_CONV_TRAIN` / :data:`CPU_EIGEN_CONV_INFERENCE` -- measured per network by
  ``benchmarks/conv_backends.py``: the style and translation networks (9x9/7x7 convolutions with 3 channels,
  reflection padding, instance norm) run 1.25-2.7x faster with Eigen, the SR networks (EDSR, RRDBNet, SRVGG)
  1.0-1.16x slower (numbers in ``benchmarks/RESULTS.md``); train steps with oneDNN's convolutions leave it out.
  :data:`CPU_TRAIN_OPTIONS` (for every train step) is empty. A key the user set in ``XLA_FLAGS`` is left out.
* CPU, train step at small per-device batches: the transposed-roles convolution weight gradient
  (``jaxgen.models.conv_vjp``; numerically equal to the plain one up to summation order), see
  :func:`use_conv_vjp`.
* CPU, train step at per-device batches >= 4: repeated blocks unrolled instead of scanned
  (``layers.set_scan_blocks``, from :func:`prepare_training`): XLA:CPU runs autodiff's convolution gradients inside
  a scan's loop body outside its convolution library (EDSR b16: 195 s a step instead of 2.4 s). Not a tuning:
  it applies with ``JAXGEN_XLA_DEFAULTS=0`` too.
* Accelerators: nothing (XLA's GPU/TPU defaults).
* Every command (:func:`configure_compilation_cache`, called by ``jaxgen.cli.main`` before JAX starts): JAX's
  persistent compilation cache in ``~/.cache/jaxgen/xla/<jaxlib>-<machine>-<CPU key>-<code key>``
  (``$XDG_CACHE_HOME`` honoured), so a second process reuses the executables the first one compiled (RRDBNet x4's
  first train step, a second ``jaxgen upscale``; numbers in ``benchmarks/RESULTS.md``). The CPU key hashes the
  processor model and its ISA flags, so a cache folder shared between machines never hands one CPU code compiled
  for another; the code key hashes the oneDNN convolutions' partitioning rules (:data:`CACHE_KEYED_SOURCES`).
  ``JAXGEN_COMPILATION_CACHE=0`` (or ``jaxgen --no-compile-cache COMMAND``) turns it off, ``=PATH`` moves it; a
  ``JAX_COMPILATION_CACHE_DIR`` the user set is left alone.

* Training commands on Linux (:func:`jemalloc_environ`, from ``jaxgen.cli.main`` of the ``jaxgen`` process):
  the process runs itself again under jemalloc (``LD_PRELOAD``, ``MALLOC_CONF`` :data:`JEMALLOC_CONF`) when a
  ``libjemalloc`` is installed (``apt-get install libjemalloc2``). XLA:CPU allocates each execution's temporary
  buffer afresh (one 478 MB block a device for RRDBNet x4 b4) and glibc hands blocks that large back to the
  kernel when freed, so every step faults them in again (245k minor faults a step); jemalloc so configured keeps
  them: RRDBNet x4 b4 40 steps 3.16 vs 3.51 s a step, 0.03 vs 0.60 s of system time, RSS 1.97 vs 1.85 GB, flat
  (AMD Zen 3, ``benchmarks/step_memory.py --malloc jemalloc``; beside other processes glibc's steps spent 1.3-3.5
  s in the kernel). ``JAXGEN_MALLOC=system`` keeps glibc's; the preload is inherited by the run's subprocesses.

``JAXGEN_XLA_DEFAULTS=0`` in the environment turns all of it off (plain XLA defaults), the unrolled CPU train
steps excepted.

``conv_backend = "onednn"`` (config key, ``jaxgen upscale/stylize/translate --conv-backend``, default from
``JAXGEN_CONV_BACKEND``; ``jaxgen.models.onednn_conv``) runs the undilated, ungrouped convolutions (strided ones
too) through oneDNN on CPU. The default ``"auto"`` (the config's and the inference commands') takes it for
float32 on the CPUs where it measured faster (:data:`ONEDNN_TRAIN_CPU_FLAGS`: Intel Xeons with AVX-512 and AMX or
AVX512-FP16; :data:`ONEDNN_TRAIN_CPU_NETWORKS`: on AVX2 CPUs without AVX-512, AMD Zen 3, the train steps and
forwards of the networks measured faster there -- every network but TransformerNet) when its extra and a
compiler are installed (``onednn_conv.resolve``), XLA's convolutions otherwise.
:func:`configure_process` then also sets ``OMP_NUM_THREADS`` to cores / XLA CPU devices (one oneDNN thread per
device on the 2-device mesh) unless the user set it, before GNU OpenMP loads; a train step on fewer devices (an
odd batch) gets the cores of the devices it leaves idle (:func:`omp_team`, through :func:`prepare_training`).
"""

from __future__ import annotations

import ctypes.util
import hashlib
import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Iterable, Mapping, MutableMapping

from jaxgen.config import default_conv_backend  # jaxgen.config imports no JAX either

__all__ = [
    "CPU_DEVICES_MAX",
    "CPU_EIGEN_CONV_INFERENCE",
    "CPU_EIGEN_CONV_OPTIONS",
    "CPU_EIGEN_CONV_TRAIN",
    "CPU_TRAIN_OPTIONS",
    "CONV_VJP_MAX_BATCH",
    "OPT_OUT_ENV",
    "MALLOC_ENV",
    "JEMALLOC_CONF",
    "jemalloc_environ",
    "jemalloc_preloaded",
    "run_again_under_jemalloc",
    "CACHE_ENV",
    "CACHE_KEYED_SOURCES",
    "code_key",
    "compilation_cache_dir",
    "configure_compilation_cache",
    "configure_process",
    "cpu_key",
    "cpu_model",
    "cpu_device_count",
    "conv_backend_from_argv",
    "SPLIT_HOST_COMMANDS",
    "enabled",
    "inference_compiler_options",
    "network_names",
    "omp_team",
    "omp_threads",
    "ONEDNN_SCAN_F32",
    "ONEDNN_TRAIN_CPU_FLAGS",
    "ONEDNN_TRAIN_CPU_NETWORKS",
    "cpu_flags",
    "prefers_onednn",
    "prepare_training",
    "set_default_omp_threads",
    "splits_host",
    "train_compiler_options",
    "use_conv_vjp",
    "user_xla_flags",
]

OPT_OUT_ENV = "JAXGEN_XLA_DEFAULTS"
MALLOC_ENV = "JAXGEN_MALLOC"
# jemalloc for the training commands (jemalloc_environ): no separate, immediately purged arena for blocks over
# 8 MiB (XLA:CPU's per-execution temporary is one) and freed pages kept 30 s before they go back to the kernel.
JEMALLOC_CONF = "oversize_threshold:0,dirty_decay_ms:30000,muzzy_decay_ms:30000"
CACHE_ENV = "JAXGEN_COMPILATION_CACHE"
# "1" when jaxgen set OMP_NUM_THREADS (set_default_omp_threads): a step on fewer devices may then widen the team.
OMP_AUTO_ENV = "JAXGEN_OMP_AUTO"
# Compiles shorter than this are not written to the persistent cache (JAX's default is 1 s).
CACHE_MIN_COMPILE_S = "0.5"
CPU_DEVICES_MAX = 2
# Eigen instead of YNNPACK convolutions (YNNPACK keeps the dots) as a per-jit option: much faster for the style and
# translation networks, slower for the SR networks (benchmarks/conv_backends.py), hence the per-network tables.
CPU_EIGEN_CONV_OPTIONS: dict[str, str] = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}
# XLA:CPU compile options jaxgen gives every train step (none measured better with 2 CPU devices).
CPU_TRAIN_OPTIONS: dict[str, str] = {}
# Networks whose XLA:CPU train step / single-image inference forward measured faster with Eigen convolutions
# (CPU_EIGEN_CONV_OPTIONS) than with the default YNNPACK ones (benchmarks/conv_backends.py; numbers in
# benchmarks/RESULTS.md). A train step gets Eigen convolutions when any of its networks is listed.
CPU_EIGEN_CONV_TRAIN: frozenset[str] = frozenset({"transformer_net", "adain_decoder", "resnet"})
CPU_EIGEN_CONV_INFERENCE: frozenset[str] = frozenset({"transformer_net", "resnet"})
# conv_backend "auto" (the config default) takes oneDNN's convolutions (jaxgen.models.onednn_conv) for float32
# training on CPUs whose /proc/cpuinfo flags include every flag of one of these sets: the two CPU kinds where it
# was measured faster than XLA's -- Intel Xeon with AVX-512 and AMX (2026-12-06) and Intel Xeon with AVX-512 and
# AVX512-FP16 but no AMX flags (2026-12-07): train steps 1.3-2x faster than XLA's, level with or ahead of PyTorch
# eager (benchmarks/RESULTS.md, "The opt-in oneDNN backend" and "oneDNN convolutions by default"). Other CPUs (AMD
# Zen 4: AVX-512 without either; ARM) are unmeasured with oneDNN and keep XLA.
ONEDNN_TRAIN_CPU_FLAGS: tuple[frozenset[str], ...] = (frozenset({"avx512f", "amx_bf16"}),
                                                     frozenset({"avx512f", "avx512_fp16"}))
# ... and for the float32 train steps and forwards of these networks only (every network of the step listed), on
# CPUs whose flags hold every flag of the first set and none of the second: AMD EPYC Zen 3 (AVX2, no AVX-512;
# 2026-12-07, benchmarks/RESULTS.md "AMD EPYC Zen 3"): EDSR b4 0.596 s a step vs XLA's 0.783 (PyTorch eager
# 0.584), RRDBNet x4 b4 3.97 vs 6.63 s (eager 3.86); forwards EDSR 256 px 1.17 vs 1.58 s (eager 1.86), RRDBNet
# 64 px 1.28 vs 1.99 s (eager 1.15); the translation steps: the whole CycleGAN iteration (ResNet generators,
# PatchGANs) 21.9 vs 54.9 s (eager 15.3), pix2pix's U-Net generator alone 0.58 vs 5.90 s (eager 0.66; XLA's
# transposed-convolution gradient; its BatchNorm PatchGAN unmeasured). Then, with oneDNN's backward-weights on its
# blocked layout (RESULTS.md, the 15:00 section): the CycleGAN iteration 15.4 s (eager 15.6); ESRGAN's step
# (RRDBNet + VGG-style discriminator) 5.85 vs 9.28 s, SRGAN's (SRResNet + the same) 2.57 vs 3.92 s, Real-ESRGAN's
# (RRDBNet + spectral-norm U-Net discriminator) 10.1 vs 14.5 s, AdaIN's 13.9 vs 15.8 s; forwards 256 px: SRVGG
# compact 0.58 vs 0.76 s, CycleGAN's generator 0.68 vs 2.47 s, pix2pix's U-Net 0.17 vs 0.29 s, AdaIN's VGG encoder
# 0.24 vs 0.66 s. TransformerNet stays slower with oneDNN (step 3.26 vs 2.49 s; forward 0.47 vs 0.24 s). The rest
# (RESULTS.md, the 18:00 section of 2026-12-07): steps RCAN b16 31.6 vs 38.0 s, SRResNet b16 2.45 vs 5.24, SRCNN
# b64 0.10 vs 0.23, ESPCN b64 0.034 vs 0.052, pix2pix (U-Net + BatchNorm PatchGAN) 1.18 vs 6.54; forwards of the
# zoo's sr-vulkan networks at 256 px: waifu2x upconv_7 0.50 vs 2.22 s, waifu2x CUNet 0.94 vs 3.84, Real-CUGAN x2
# 0.96 vs 3.79 (x4 at 128 px: 0.37 vs 1.33); RCAN x4 64 px 1.07 vs 1.99, VDSR 4.80 vs 5.73, SRCNN 0.35 vs 0.46,
# FSRCNN 0.08 vs 0.16, ESPCN 0.038 vs 0.053; pix2pix with the multi-scale PatchGAN 1.25 vs 6.87 s.
ONEDNN_TRAIN_CPU_NETWORKS: tuple[tuple[frozenset[str], frozenset[str], frozenset[str]], ...] = (
    (frozenset({"avx2", "fma"}), frozenset({"avx512f"}),
     frozenset({"edsr", "rrdbnet", "resnet", "patchgan", "unet", "patchgan_bn", "vgg_style", "unet_sn",
                "srresnet", "srvgg_compact", "adain_vgg", "adain_decoder", "rcan", "srcnn", "espcn", "fsrcnn",
                "vdsr", "waifu2x_upconv7", "waifu2x_cunet", "realcugan", "multiscale_patchgan"})),)
# With oneDNN's float32 convolutions these networks' repeated blocks stay one scan in the train step (RRDBNet x4
# b4: 2.02 s a step scanned vs 2.30 s unrolled, first step 10 s vs 44 s); the others unroll (EDSR b16 1.22 vs 1.41 s).
ONEDNN_SCAN_F32: frozenset[str] = frozenset({"rrdbnet"})
# Commands that train, and so get configure_process's CPU device split (splits_host).
SPLIT_HOST_COMMANDS = ("train", "demo", "sweep")
# The transposed-roles weight gradient measured faster below this per-device batch on XLA:CPU (and up to 1.5x
# slower at per-device batch 8 with YNNPACK convolutions).
CONV_VJP_MAX_BATCH = 4


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    """False when ``JAXGEN_XLA_DEFAULTS`` is ``0``/``false``/``no``/``off``."""
    environ = os.environ if environ is None else environ
    return environ.get(OPT_OUT_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def user_xla_flags(environ: Mapping[str, str] | None = None) -> set[str]:
    """Names of the flags in ``XLA_FLAGS`` (``--name=value`` or ``--name`` -> ``name``)."""
    environ = os.environ if environ is None else environ
    names = set()
    for token in environ.get("XLA_FLAGS", "").split():
        if token.startswith("--"):
            names.add(token[2:].split("=", 1)[0])
    return names


def cpu_device_count(cpu_count: int | None = None) -> int:
    """How many XLA CPU devices jaxgen makes of this host: ``min(cpus, CPU_DEVICES_MAX)`` (at least 1)."""
    return max(1, min(_cpus(cpu_count), CPU_DEVICES_MAX))


def _cpus(cpu_count: int | None = None) -> int:
    """``cpu_count``, else the cores this process may run on."""
    if cpu_count is not None:
        return int(cpu_count)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _argv_value(args: Iterable[str], *flags: str) -> str | None:
    """The value of the first of ``flags`` in command-line ``args`` (``--flag=value`` or ``--flag value``)."""
    args = list(args)
    for i, a in enumerate(args):
        for flag in flags:
            if a == flag and i + 1 < len(args):
                return args[i + 1].strip()
            if a.startswith(flag + "="):
                return a.split("=", 1)[1].strip()
    return None


def conv_backend_from_argv(args: Iterable[str]) -> str | None:
    """The value of ``--conv-backend`` / ``--config.conv_backend`` in command-line ``args`` (``=value`` or the next
    argument), or ``None``: ``jaxgen.cli.main`` reads it before JAX starts, for :func:`configure_process`."""
    value = _argv_value(args, "--conv-backend", "--config.conv_backend")
    return None if value is None else value.lower()


def splits_host(command: str, args: Iterable[str]) -> bool:
    """Whether ``jaxgen COMMAND args`` gets :func:`configure_process`'s CPU device split: the training commands
    (:data:`SPLIT_HOST_COMMANDS`), and ``upscale`` with ``--tile N`` > 0, whose windows then run one per device
    (``jaxgen.inference.Upscaler``): an XLA:CPU device keeps ~1 of 2 cores busy in the convolutions of a small
    window's forward, two devices both (RRDBNet x4, 64 px windows: 2.15x the windows a second, 128 px 1.26x;
    ``benchmarks/tile_devices.py``, ``benchmarks/RESULTS.md``). Whole-image inference keeps one device (a split
    host makes single-image forwards up to 1.7x slower)."""
    if command in SPLIT_HOST_COMMANDS:
        return True
    if command != "upscale":
        return False
    try:
        return int(_argv_value(args, "--tile") or 0) > 0
    except ValueError:  # argparse says what is wrong with it
        return False


def omp_threads(xla_cpu_devices: int, cpu_count: int | None = None) -> int:
    """OpenMP threads for oneDNN: the cores divided among the XLA CPU devices (at least 1). Each device's thread
    calls oneDNN with its own team; more threads than that oversubscribe the cores (benchmarks/RESULTS.md)."""
    return max(1, _cpus(cpu_count) // max(1, int(xla_cpu_devices)))


def set_default_omp_threads(xla_cpu_devices: int, environ: MutableMapping[str, str] | None = None,
                            cpu_count: int | None = None) -> dict[str, str]:
    """Sets ``OMP_NUM_THREADS`` to :func:`omp_threads` of ``xla_cpu_devices`` in ``environ`` (default
    ``os.environ``) unless it is set, marking it as jaxgen's (:data:`OMP_AUTO_ENV`, inherited by child processes
    with it) so :func:`omp_team` may resize the team for a step on fewer devices; returns what it set."""
    environ = os.environ if environ is None else environ
    if "OMP_NUM_THREADS" in environ:
        return {}
    changes = {"OMP_NUM_THREADS": str(omp_threads(xla_cpu_devices, cpu_count)), OMP_AUTO_ENV: "1"}
    environ.update(changes)
    return changes


def omp_team(devices_in_use: int, environ: Mapping[str, str] | None = None, cpu_count: int | None = None) -> int:
    """oneDNN's OpenMP team for a step that runs on ``devices_in_use`` XLA CPU devices: :func:`omp_threads` of
    them when jaxgen chose ``OMP_NUM_THREADS`` (:func:`set_default_omp_threads`), else 0 (the user's
    ``OMP_NUM_THREADS`` stands). A batch-1 CycleGAN step on one of the host split's two devices otherwise leaves
    oneDNN one core of two (its generator's train step: 2.70 s with one thread, 1.41 s with two; RESULTS.md)."""
    environ = os.environ if environ is None else environ
    return omp_threads(devices_in_use, cpu_count) if environ.get(OMP_AUTO_ENV) == "1" else 0


def jemalloc_preloaded(environ: Mapping[str, str], find_library: Any = ctypes.util.find_library
                       ) -> dict[str, str] | None:
    """``environ`` with this machine's ``libjemalloc`` first in ``LD_PRELOAD`` (the user's preloads after it) and
    ``MALLOC_CONF`` :data:`JEMALLOC_CONF` unless the user set one; ``None`` where no ``libjemalloc`` is found."""
    lib = find_library("jemalloc")
    if not lib:
        return None
    preload = " ".join(p for p in (lib, environ.get("LD_PRELOAD", "")) if p)
    return {**environ, "LD_PRELOAD": preload, "MALLOC_CONF": environ.get("MALLOC_CONF", JEMALLOC_CONF)}


def jemalloc_environ(command: str, environ: Mapping[str, str] | None = None,
                     find_library: Any = ctypes.util.find_library) -> dict[str, str] | None:
    """The environment to run training ``command`` (:data:`SPLIT_HOST_COMMANDS`) again under jemalloc with
    (:func:`jemalloc_preloaded`), or ``None``: another command, not Linux, already preloaded, opted out
    (``JAXGEN_MALLOC=system`` or ``JAXGEN_XLA_DEFAULTS=0``) or no ``libjemalloc`` here."""
    environ = os.environ if environ is None else environ
    if (command not in SPLIT_HOST_COMMANDS or sys.platform != "linux" or not enabled(environ)
            or environ.get(MALLOC_ENV, "jemalloc") == "system" or "jemalloc" in environ.get("LD_PRELOAD", "")):
        return None
    return jemalloc_preloaded(environ, find_library)


def run_again_under_jemalloc(command: str, args: list[str]) -> None:
    """Replaces this process by ``sys.executable *args`` under jemalloc where :func:`jemalloc_environ` gives an
    environment for ``command`` (stdout and stderr flushed first); returns, doing nothing, elsewhere."""
    environ = jemalloc_environ(command)
    if environ is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, *args], environ)


def configure_process(environ: MutableMapping[str, str] | None = None, cpu_count: int | None = None,
                      conv_backend: str | None = None) -> dict[str, str]:
    """Sets jaxgen's process-level defaults in ``environ`` (default ``os.environ``); returns what it set.

    Must run before JAX initialises its CPU backend (``jaxgen.cli.main`` calls it before importing JAX). Only
    affects the CPU backend; a no-op when the user chose the CPU device count or opted out. With ``conv_backend``
    (default :func:`default_conv_backend`) ``"onednn"``, or ``"auto"`` on a CPU :func:`prefers_onednn`, it also
    sets ``OMP_NUM_THREADS`` to :func:`omp_threads` of the device count, unless the user set it (GNU OpenMP reads
    it once, when oneDNN loads it; a train step with ``"auto"`` measured 13% more CPU a step without it).
    """
    environ = os.environ if environ is None else environ
    if not enabled(environ):
        return {}
    changes: dict[str, str] = {}
    if "JAX_NUM_CPU_DEVICES" not in environ and "xla_force_host_platform_device_count" not in user_xla_flags(environ):
        n = cpu_device_count(cpu_count)
        if n > 1:
            changes["JAX_NUM_CPU_DEVICES"] = str(n)
    backend = default_conv_backend(environ) if conv_backend is None else conv_backend
    onednn = backend == "onednn" or (backend == "auto" and prefers_onednn(environ=environ))
    environ.update(changes)
    if onednn:
        changes.update(set_default_omp_threads(_cpu_devices(environ), environ, cpu_count))
    return changes


def _cpu_devices(environ: Mapping[str, str]) -> int:
    """The XLA CPU device count ``environ`` asks for (``JAX_NUM_CPU_DEVICES`` or the XLA flag), default 1."""
    value = environ.get("JAX_NUM_CPU_DEVICES")
    for token in environ.get("XLA_FLAGS", "").split():
        if token.startswith("--xla_force_host_platform_device_count="):
            value = token.split("=", 1)[1]
    try:
        return max(1, int(value)) if value is not None else 1
    except ValueError:
        return 1


def _cpuinfo_fields(cpuinfo: str | None = None) -> dict[str, str]:
    """The first ``model name``, ``flags``/``Features`` (sorted), ``CPU implementer``/``CPU part`` of
    ``/proc/cpuinfo`` (``cpuinfo`` text; read when ``None``; ``{}`` where there is none)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    fields = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "flags", "Features", "CPU implementer", "CPU part") and key not in fields:
            fields[key] = " ".join(sorted(value.split())) if key in ("flags", "Features") else value.strip()
    return fields


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """This CPU's ISA flags (``/proc/cpuinfo``'s ``flags``/``Features``; empty where there is no such file)."""
    fields = _cpuinfo_fields(cpuinfo)
    return frozenset((fields.get("flags") or fields.get("Features") or "").split())


def cpu_model(cpuinfo: str | None = None) -> str:
    """This CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` where there is none)."""
    return _cpuinfo_fields(cpuinfo).get("model name") or platform.processor() or "unknown CPU"


def prefers_onednn(float32_compute: bool = True, environ: Mapping[str, str] | None = None,
                   cpuinfo: str | None = None, networks: Iterable[str] | None = None) -> bool:
    """Whether ``conv_backend = "auto"`` should take oneDNN on this CPU (installed or not: ``onednn_conv.resolve``
    checks that): float32 compute, jaxgen's defaults on (:func:`enabled`), and the CPU has every flag of one of
    :data:`ONEDNN_TRAIN_CPU_FLAGS`' sets -- or is a kind of :data:`ONEDNN_TRAIN_CPU_NETWORKS` and every one of
    ``networks`` (a train step's or a forward's model names) is among that kind's networks. ``networks=None``:
    for some network (``configure_process``, before the task is known); empty: the network is not known."""
    if not (float32_compute and enabled(environ)):
        return False
    flags = cpu_flags(cpuinfo)
    if any(measured <= flags for measured in ONEDNN_TRAIN_CPU_FLAGS):
        return True
    names = None if networks is None else set(networks)
    return any(need <= flags and not without & flags and (names is None or (names and names <= nets))
               for need, without, nets in ONEDNN_TRAIN_CPU_NETWORKS)


def cpu_key(cpuinfo: str | None = None) -> str:
    """A short hash of this processor's model name and ISA flags (``/proc/cpuinfo``; ``platform`` elsewhere).

    XLA:CPU compiles for the host's instruction set, so executables cached on one CPU kind must never be loaded
    on another (an AVX-512 kernel on a CPU without it dies with SIGILL): the cache folder is keyed by this."""
    fields = _cpuinfo_fields(cpuinfo)
    text = "|".join(f"{k}={fields[k]}" for k in sorted(fields)) or f"{platform.machine()}|{platform.processor()}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# Python code that shapes compiled programs without showing in the program JAX hashes for the cache key: the
# oneDNN convolutions' custom_partitioning rules (onednn_conv.configure has JAX leave their callback pointers out of
# the key, so their programs are cached at all). The cache folder name carries a hash of these files instead.
CACHE_KEYED_SOURCES = ("models/onednn_conv.py",)


def code_key() -> str:
    """A short hash of :data:`CACHE_KEYED_SOURCES` (part of :func:`compilation_cache_dir`'s folder name)."""
    h = hashlib.sha256()
    for name in CACHE_KEYED_SOURCES:
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()[:8]


def compilation_cache_dir(environ: Mapping[str, str] | None = None) -> str | None:
    """Where jaxgen keeps JAX's persistent compilation cache, or ``None`` when it is off (see the module doc)."""
    environ = os.environ if environ is None else environ
    setting = environ.get(CACHE_ENV, "").strip()
    if setting.lower() in ("0", "false", "no", "off"):
        return None
    if setting and setting.lower() not in ("1", "true", "yes", "on"):
        return setting
    try:
        jax_version = version("jaxlib")
    except PackageNotFoundError:  # pragma: no cover - jaxlib is a dependency
        jax_version = "unknown"
    base = Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return str(base / "jaxgen" / "xla" / f"jaxlib-{jax_version}-{platform.machine()}-{cpu_key()}-{code_key()}")


def configure_compilation_cache(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Turns on JAX's persistent compilation cache for this process and its children (``environ``, default
    ``os.environ``; before JAX is imported); returns what it set. Leaves a user's ``JAX_COMPILATION_CACHE_DIR``."""
    environ = os.environ if environ is None else environ
    if "JAX_COMPILATION_CACHE_DIR" in environ:
        return {}
    path = compilation_cache_dir(environ)
    if path is None:
        return {}
    changes = {"JAX_COMPILATION_CACHE_DIR": path}
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in environ:
        changes["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = CACHE_MIN_COMPILE_S
    environ.update(changes)
    return changes


def network_names(architecture: Any) -> set[str]:
    """Every ``'name'`` string in a task's ``architecture(config)`` summary (nested dicts/lists), e.g.
    ``{'generator': {'name': 'transformer_net', ...}}`` -> ``{'transformer_net'}``."""
    names: set[str] = set()
    if isinstance(architecture, Mapping):
        for key, value in architecture.items():
            if key == "name" and isinstance(value, str):
                names.add(value)
            else:
                names |= network_names(value)
    elif isinstance(architecture, (list, tuple)):
        for value in architecture:
            names |= network_names(value)
    return names


def _cpu_options(options: Mapping[str, str], backend: str | None, environ: Mapping[str, str] | None) -> dict[str, Any]:
    if not enabled(environ):
        return {}
    if backend is None:
        import jax

        backend = jax.default_backend()
    if backend != "cpu":
        return {}
    user = user_xla_flags(environ)
    return {k: v for k, v in options.items() if k not in user}


def train_compiler_options(backend: str | None = None, environ: Mapping[str, str] | None = None,
                           networks: Iterable[str] = (), conv_backend: str = "xla") -> dict[str, Any]:
    """``compiler_options`` for the train step's ``jax.jit`` on ``backend`` (default ``jax.default_backend()``):
    :data:`CPU_TRAIN_OPTIONS` on CPU, plus Eigen convolutions when one of ``networks`` (model names) is in
    :data:`CPU_EIGEN_CONV_TRAIN` and XLA runs the convolutions (``conv_backend`` ``"xla"``; with ``"onednn"`` the
    option would only take XLA's reductions and elementwise ops away from YNNPACK: instance norms' gradients 2.9x
    slower, CycleGAN / fast-style / AdaIN steps 4% / 5% / 2% slower, RESULTS.md), minus any flag the user set in
    ``XLA_FLAGS``; ``{}`` elsewhere or opted out."""
    options = dict(CPU_TRAIN_OPTIONS)
    if set(networks) & CPU_EIGEN_CONV_TRAIN and conv_backend == "xla":
        options.update(CPU_EIGEN_CONV_OPTIONS)
    return _cpu_options(options, backend, environ)


def inference_compiler_options(network: str, backend: str | None = None, environ: Mapping[str, str] | None = None,
                               conv_backend: str = "xla") -> dict[str, Any]:
    """``compiler_options`` for an inference ``jax.jit`` of the model named ``network``: Eigen convolutions on
    CPU when it is in :data:`CPU_EIGEN_CONV_INFERENCE`, XLA runs the convolutions (``conv_backend``: the process's,
    ``onednn_conv.current_backend()``; with oneDNN's the option only slows XLA's other ops, as in
    :func:`train_compiler_options`: CycleGAN's generator 0.532 -> 0.492 s, TransformerNet 0.138 -> 0.134 s at 256
    px) and the user set no such flag; ``{}`` otherwise."""
    eigen = network in CPU_EIGEN_CONV_INFERENCE and conv_backend == "xla"
    return _cpu_options(CPU_EIGEN_CONV_OPTIONS if eigen else {}, backend, environ)


def use_conv_vjp(per_device_batch: int, backend: str | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the train step should use ``jaxgen.models.conv_vjp``: on CPU at per-device batch
    ``< CONV_VJP_MAX_BATCH``."""
    if not enabled(environ):
        return False
    return _backend(backend) == "cpu" and per_device_batch < CONV_VJP_MAX_BATCH


def prepare_training(per_device_batch: int, backend: str | None = None, networks: Iterable[str] = (),
                     conv_backend: str | None = None, compute_dtype: Any = None,
                     devices: int | None = None) -> dict[str, Any]:
    """Call once before the train step is first traced: picks the convolution backend (``conv_backend``, as
    ``config.conv_backend``, default :func:`default_conv_backend`: ``"auto"`` is resolved by
    ``onednn_conv.resolve``), switches ``jaxgen.models.conv_vjp`` per :func:`use_conv_vjp`, lets
    ``layers.repeat_blocks`` scan only where the convolution gradients are fast inside a loop
    (``layers.set_scan_blocks``), and returns
    :func:`train_compiler_options` (for the step's ``networks``, model names) for the train step's ``jax.jit``.

    With XLA's convolutions the blocks scan on any backend but CPU, and on CPU with the conv VJP. oneDNN
    (``onednn_conv.configure``; bf16 multiplies when ``compute_dtype`` is bfloat16; an error off CPU) unrolls them on
    CPU, except in float32 for the networks of :data:`ONEDNN_SCAN_F32` -- the measured configurations
    (``benchmarks/RESULTS.md``; either way works). ``devices``: the XLA CPU devices the step runs on (its mesh);
    with oneDNN, its OpenMP team becomes :func:`omp_team` of them (``onednn_conv.set_threads``)."""
    # here, not at the top: this module is imported before JAX
    from jaxgen.models import conv_vjp, layers, onednn_conv

    backend, networks = _backend(backend), tuple(networks)
    conv_backend = onednn_conv.resolve(conv_backend or default_conv_backend(), compute_dtype, backend, networks)
    onednn_conv.configure(conv_backend, compute_dtype, backend)
    if conv_backend == "onednn" and devices is not None:
        onednn_conv.set_threads(omp_team(devices))
    vjp = use_conv_vjp(per_device_batch, backend) and conv_backend == "xla"
    conv_vjp.set_enabled(vjp)
    onednn_scan = (conv_backend == "onednn" and not onednn_conv.bf16(compute_dtype)
                   and bool(set(networks) & ONEDNN_SCAN_F32))
    layers.set_scan_blocks(vjp or backend != "cpu" or onednn_scan)
    return train_compiler_options(backend, networks=networks, conv_backend=conv_backend)


def _backend(backend: str | None) -> str:
    if backend is None:
        import jax  # here, not at the top: this module is imported before JAX (configure_process)

        backend = jax.default_backend()
    return backend
