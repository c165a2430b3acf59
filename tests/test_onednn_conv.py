"""The opt-in oneDNN convolution backend (``jaxgen.models.onednn_conv``, ``conv_backend = "onednn"``).

Everyday (no compiler run, nothing built or downloaded): the config key's one-line error, the missing-compiler and
missing-wheel error lines (an empty ``PATH`` / prefix), the build cache key, ``OMP_NUM_THREADS`` from
``configure_process``, the non-CPU refusal, the ``conv_vjp`` override hook (and that stacked-block init never
traces it), bf16 as autocast (f32 modules).

Slow (``pytest.mark.slow``; build the handler with g++ against the ``jaxgen[onednn]`` wheels into a temporary
cache, skipped when either is missing): against ``lax.conv_general_dilated`` -- values and both gradients in f32
(equal up to summation order), in bf16 (within the rounding bound of bf16 inputs, and equal to the f32
convolution of the bf16-rounded operands), inside ``jit`` / ``lax.scan``, as flax's ``conv_general_dilated``,
on a 2-device batch-sharded mesh (a subprocess); the build cache under concurrent builds; ``jaxgen train`` with
``conv_backend=onednn`` (losses equal to the xla backend's) and ``jaxgen upscale --conv-backend onednn``; the
benchmark driver's smoke run."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax import lax

from jaxgen import image, inference, models, xla_setup
from jaxgen.config import ConfigError, check_run_config, run_config
from jaxgen.models import conv_vjp, layers, onednn_conv
from jaxgen.tasks.common import compute_dtype
from jaxgen.weights import zoo, zoo_sr_vulkan
from tests import conftest
from tests.inprocess_cli import run_jaxgen

ROOT = Path(__file__).resolve().parents[1]
TINY = f"{ROOT / 'configs' / 'edsr.py'}:x2,tiny"
DN = ("NHWC", "HWIO", "NHWC")
U_BF16 = 2.0 ** -8  # bf16 unit roundoff (8 significand bits)
QUIET = ["--config.progress_bar=False"]


def _one_error_line(proc, *fragments: str) -> str:
    """Exit 2, exactly one stderr line, 'jaxgen: error: ...' holding every fragment, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jaxgen: error: "), proc.stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


# ------------------------------------------------------------------------------------ everyday: no build


def test_config_key_defaults_to_auto_and_follows_the_environment(monkeypatch):
    monkeypatch.delenv("JAXGEN_CONV_BACKEND", raising=False)
    assert run_config("sr").conv_backend == "auto"
    parser = argparse.ArgumentParser()
    onednn_conv.add_argument(parser)
    assert parser.parse_args([]).conv_backend == "auto"  # the inference commands' default
    monkeypatch.setenv("JAXGEN_CONV_BACKEND", " oneDNN ")
    assert run_config("sr").conv_backend == "onednn"


SAPPHIRE_RAPIDS = ("model name\t: Intel(R) Xeon(R) Processor\n"
                   "flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n")
NO_AMX = "model name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_fp16\n"
ZEN4 = "model name\t: AMD EPYC 9R14\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
NEOVERSE = "processor\t: 0\nFeatures\t: fp asimd sve bf16\nCPU implementer\t: 0x41\n"
ZEN3 = "model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx fma avx2 bmi2 sha_ni vaes\n"  # lscpu family 25 model 1


def test_auto_prefers_onednn_only_for_float32_on_the_measured_cpus():
    """``ONEDNN_TRAIN_CPU_FLAGS`` (the two Xeon flag sets where oneDNN measured faster) by ISA flags, never by
    vendor: an AVX-512 CPU with neither AMX nor AVX512-FP16 (Zen 4, unmeasured) and an ARM CPU keep XLA; bf16 and
    the global opt-out keep XLA."""
    assert xla_setup.cpu_flags(SAPPHIRE_RAPIDS) >= {"avx512f", "amx_bf16"}
    assert xla_setup.cpu_flags(NEOVERSE) == {"fp", "asimd", "sve", "bf16"}
    assert xla_setup.cpu_flags("") == frozenset()
    assert xla_setup.prefers_onednn(True, {}, SAPPHIRE_RAPIDS)
    assert xla_setup.prefers_onednn(True, {}, NO_AMX)
    assert not xla_setup.prefers_onednn(False, {}, SAPPHIRE_RAPIDS)
    assert not xla_setup.prefers_onednn(True, {"JAXGEN_XLA_DEFAULTS": "0"}, SAPPHIRE_RAPIDS)
    assert not xla_setup.prefers_onednn(True, {}, ZEN4)
    assert not xla_setup.prefers_onednn(True, {}, NEOVERSE)


def test_auto_prefers_onednn_on_avx2_without_avx512_for_the_measured_train_steps_only():
    """``ONEDNN_TRAIN_CPU_NETWORKS``: on an AVX2 CPU without AVX-512 (AMD Zen 3) oneDNN for the EDSR and RRDBNet
    train steps and forwards, the CycleGAN / pix2pix, ESRGAN, AdaIN and RCAN steps and the sr-vulkan zoo's
    forwards, where it measured faster; not for a step with any other network in it (TransformerNet measured
    slower; a network not yet measured), not where the network is unknown (no
    networks), not on Zen 4 (AVX-512, unmeasured) nor in bf16; ``networks=None`` (before the task is known) says
    whether some network may take it."""
    assert xla_setup.prefers_onednn(True, {}, ZEN3, ["edsr"])
    assert xla_setup.prefers_onednn(True, {}, ZEN3, {"rrdbnet"})
    assert xla_setup.prefers_onednn(True, {}, ZEN3, {"resnet", "patchgan"})  # the CycleGAN step
    assert xla_setup.prefers_onednn(True, {}, ZEN3, {"unet", "patchgan_bn"})  # pix2pix's
    assert xla_setup.prefers_onednn(True, {}, ZEN3)
    assert not xla_setup.prefers_onednn(True, {}, ZEN3, ["transformer_net"])
    assert xla_setup.prefers_onednn(True, {}, ZEN3, ["rrdbnet", "vgg_style"])  # ESRGAN's step
    assert xla_setup.prefers_onednn(True, {}, ZEN3, ["adain_decoder"])  # AdaIN's
    assert xla_setup.prefers_onednn(True, {}, ZEN3, ["rcan"])
    for zoo_net in ("waifu2x_upconv7", "waifu2x_cunet", "realcugan"):  # upscale's forwards, 4x faster
        assert xla_setup.prefers_onednn(True, {}, ZEN3, [zoo_net])
    assert xla_setup.prefers_onednn(True, {}, ZEN3, ["unet", "multiscale_patchgan"])
    assert not xla_setup.prefers_onednn(True, {}, ZEN3, ["a_new_network"])  # unmeasured
    assert not xla_setup.prefers_onednn(True, {}, ZEN3, ["resnet", "a_new_network"])
    assert not xla_setup.prefers_onednn(True, {}, ZEN3, [])
    assert not xla_setup.prefers_onednn(False, {}, ZEN3, ["edsr"])
    assert not xla_setup.prefers_onednn(True, {"JAXGEN_XLA_DEFAULTS": "0"}, ZEN3, ["edsr"])
    assert not xla_setup.prefers_onednn(True, {}, ZEN4, ["edsr"])
    assert not xla_setup.prefers_onednn(True, {}, ZEN4)
    assert xla_setup.prefers_onednn(True, {}, NO_AMX, [])  # the Xeon kinds: every network and the forwards


def test_translate_and_stylize_resolve_auto_for_their_networks(monkeypatch, tmp_path):
    """``auto`` is per network on AVX2 CPUs (CycleGAN's generator forward 0.68 s on oneDNN vs 2.47 s on XLA's,
    TransformerNet's 0.47 vs 0.24 s on Zen 3): translate passes the checkpoint's generator, stylize its method's
    networks -- none passed would keep XLA's convolutions for every network there."""
    from jaxgen.commands import stylize, translate

    seen = []
    monkeypatch.setattr(onednn_conv, "configure", lambda backend, *a, networks=(), **k: seen.append(tuple(networks)))
    for name in ("resnet", "unet"):
        config = ml_collections.ConfigDict({"model": {"name": name}})
        monkeypatch.setattr(translate, "load_translator", lambda *a, config=config: (config, None, None, 0, 4))
        monkeypatch.setattr(translate.inference, "make_apply", lambda *a: None)
        translate.translate(argparse.Namespace(conv_backend="auto", workdir="w", direction="AtoB", which="latest",
                                               output=str(tmp_path), inputs=[]))
    assert seen == [("resnet",), ("unet",)]
    seen.clear()
    for method in stylize.METHODS:  # a blend out of range: refused right after the backend is configured
        args = argparse.Namespace(size=None, style_size=None, contents=[str(tmp_path / "c.png")], conv_backend="auto",
                                  temporal_blend=2.0, method=method)
        with pytest.raises(ValueError, match="temporal-blend"):
            stylize.stylize(args)
    assert seen == [("vgg19",), ("transformer_net",), ("adain_vgg", "adain_decoder")]
    assert all(n in models.STYLE_NETS or n == "vgg19" for names in seen for n in names)
    assert xla_setup.prefers_onednn(True, {}, ZEN3, stylize.METHOD_NETWORKS["adain"])
    assert not xla_setup.prefers_onednn(True, {}, ZEN3, stylize.METHOD_NETWORKS["fast"])


def test_auto_resolves_to_onednn_only_where_preferred_and_loadable(monkeypatch):
    """``resolve``: explicit backends pass through; ``auto`` is oneDNN only on the CPU backend, for float32, where
    ``prefers_onednn`` and the library loads -- a missing compiler or wheel falls back to XLA, never an error."""
    loads = []
    monkeypatch.setattr(onednn_conv, "load", lambda: loads.append(1))
    monkeypatch.setattr(xla_setup, "prefers_onednn", lambda float32=True, **kw: float32)
    assert onednn_conv.resolve("xla", None, "cpu") == "xla" and onednn_conv.resolve("onednn", None, "gpu") == "onednn"
    assert onednn_conv.resolve("auto", None, "cpu") == "onednn" and len(loads) == 1
    assert onednn_conv.resolve("auto", "float32", "cpu") == "onednn"
    assert onednn_conv.resolve("auto", jnp.float32, "cpu") == "onednn"
    assert onednn_conv.resolve("auto", "bfloat16", "cpu") == "xla"
    assert onednn_conv.resolve("auto", None, "gpu") == "xla"
    monkeypatch.setattr(jax, "process_count", lambda: 2)  # several hosts: unmeasured with oneDNN
    assert onednn_conv.resolve("auto", None, "cpu") == "xla"
    monkeypatch.setattr(jax, "process_count", lambda: 1)
    with pytest.raises(ConfigError, match="'auto', 'xla', 'onednn'"):
        onednn_conv.resolve("mkl", None, "cpu")

    def missing():
        raise onednn_conv.OnednnUnavailableError("no g++")

    monkeypatch.setattr(onednn_conv, "load", missing)
    assert onednn_conv.resolve("auto", None, "cpu") == "xla"
    monkeypatch.setattr(xla_setup, "prefers_onednn", lambda float32=True, **kw: False)
    assert onednn_conv.resolve("auto", None, "cpu") == "xla"


def test_onednn_float32_scans_rrdbnet_blocks_only(monkeypatch):
    """With oneDNN the train step unrolls repeated blocks on CPU, except RRDBNet's in float32
    (``ONEDNN_SCAN_F32``: scanned it measured faster and compiles 4x shorter); XLA keeps its rule (scan with the
    conv VJP only); ``auto`` follows what it resolves to."""
    configured = []
    monkeypatch.setattr(onednn_conv, "configure", lambda b, d=None, p=None: configured.append(b))
    monkeypatch.setattr(onednn_conv, "load", lambda: None)
    try:
        for backend, dtype, nets, scan in (("onednn", None, ["rrdbnet", "vgg19"], True),
                                           ("onednn", "float32", ["rrdbnet"], True),
                                           ("onednn", "bfloat16", ["rrdbnet"], False),
                                           ("onednn", None, ["edsr"], False)):
            xla_setup.prepare_training(1, "cpu", networks=nets, conv_backend=backend, compute_dtype=dtype)
            assert layers.scan_blocks_enabled() is scan and not conv_vjp.enabled(), (backend, dtype, nets)
        xla_setup.prepare_training(1, "cpu", networks=["rrdbnet"], conv_backend="xla")
        assert layers.scan_blocks_enabled() and conv_vjp.enabled()
        xla_setup.prepare_training(8, "cpu", networks=["rrdbnet"], conv_backend="xla")
        assert not layers.scan_blocks_enabled() and not conv_vjp.enabled()
        eigen_net = next(iter(xla_setup.CPU_EIGEN_CONV_TRAIN))  # XLA's convolution library: only with XLA's
        assert xla_setup.prepare_training(1, "cpu", networks=[eigen_net], conv_backend="onednn") == {}
        assert xla_setup.prepare_training(1, "cpu", networks=[eigen_net], conv_backend="xla") == \
            xla_setup.CPU_EIGEN_CONV_OPTIONS
        monkeypatch.setattr(xla_setup, "prefers_onednn", lambda float32=True, **kw: float32)
        xla_setup.prepare_training(8, "cpu", networks=["rrdbnet"], conv_backend="auto")
        assert configured[-1] == "onednn" and layers.scan_blocks_enabled()
        monkeypatch.setattr(xla_setup, "prefers_onednn", lambda float32=True, **kw: False)
        xla_setup.prepare_training(8, "cpu", networks=["rrdbnet"], conv_backend="auto")
        assert configured[-1] == "xla" and not layers.scan_blocks_enabled()
    finally:
        conv_vjp.set_enabled(False)
        layers.set_scan_blocks(True)


def test_unknown_conv_backend_is_one_config_error_line(tmp_path):
    c = run_config("sr")
    c.conv_backend = "mkl"
    with pytest.raises(ConfigError, match="config.conv_backend='mkl': expected one of 'auto', 'xla', 'onednn'"):
        check_run_config(c)
    proc = run_jaxgen("train", f"--config={TINY}", f"--workdir={tmp_path / 'w'}", "--config.conv_backend=mkl", *QUIET)
    _one_error_line(proc, "config.conv_backend='mkl'", "'auto', 'xla', 'onednn'")
    assert not (tmp_path / "w" / "checkpoints").exists()


def _no_compiler_env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "CXX"}
    (tmp_path / "empty_bin").mkdir(exist_ok=True)
    env["PATH"] = str(tmp_path / "empty_bin")
    return env


def test_missing_compiler_and_missing_wheels_name_what_to_install(tmp_path):
    with pytest.raises(onednn_conv.OnednnUnavailableError) as e:
        onednn_conv.find_toolchain(_no_compiler_env(tmp_path))
    assert "C++ compiler" in str(e.value) and "'g++' is not on PATH" in str(e.value)
    assert "pip install 'jaxgen[onednn]'" in str(e.value) and "\n" not in str(e.value)
    fake_gxx = tmp_path / "bin" / "g++"
    fake_gxx.parent.mkdir()
    fake_gxx.write_text("#!/bin/sh\nexit 1\n")
    fake_gxx.chmod(0o755)
    (tmp_path / "prefix").mkdir()
    env = {"PATH": str(fake_gxx.parent), onednn_conv.PREFIX_ENV: str(tmp_path / "prefix")}
    with pytest.raises(onednn_conv.OnednnUnavailableError) as e:
        onednn_conv.find_toolchain(env)
    message = str(e.value)
    assert "oneDNN 3.2's headers and library" in message and str(tmp_path / "prefix") in message
    assert "dnnl.hpp" in message and "libdnnl.so" in message and "pip install 'jaxgen[onednn]'" in message


def test_cxx_names_the_compiler(tmp_path):
    with pytest.raises(onednn_conv.OnednnUnavailableError, match="'clang-none' is not on PATH"):
        onednn_conv.find_toolchain({"PATH": str(tmp_path), "CXX": "clang-none"})


def test_cli_missing_compiler_is_one_line_exit_2(tmp_path, monkeypatch):
    """``jaxgen upscale --conv-backend onednn`` without a compiler: one line saying what to install, exit 2, and
    nothing written. (This process may have loaded a build in an earlier slow test: forget it for this run.)"""
    monkeypatch.setattr(onednn_conv, "_LOADED", {})
    for key, value in _no_compiler_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CXX", raising=False)
    src = tmp_path / "in.png"
    image.write_image(src, np.zeros((8, 8, 3), np.uint8))
    proc = run_jaxgen("upscale", src, "-o", tmp_path / "out.png", "--model", "realesr-animevideov3-x2",
                      "--conv-backend", "onednn")
    _one_error_line(proc, "conv_backend 'onednn' needs a C++ compiler", "pip install 'jaxgen[onednn]'")
    assert not (tmp_path / "out.png").exists() and conv_vjp.override() is None


def test_cli_flag_rejects_unknown_backends(tmp_path):
    proc = run_jaxgen("upscale", tmp_path / "x.png", "-o", tmp_path / "y.png", "--model", "realesrgan-x4plus",
                      "--conv-backend", "mkl")
    assert proc.returncode == 2 and "--conv-backend: invalid choice: 'mkl'" in proc.stderr


def test_non_cpu_backend_is_refused():
    with pytest.raises(onednn_conv.OnednnUnavailableError, match="CPU backend only; this run's JAX backend is 'gpu'"):
        onednn_conv.configure("onednn", platform="gpu")
    assert conv_vjp.override() is None
    onednn_conv.configure("xla", platform="gpu")  # the default backend is fine anywhere
    assert not onednn_conv.enabled() and onednn_conv.current_backend() == "xla"


def test_build_key_changes_with_source_jaxlib_onednn_and_location():
    base = (b"// handler v1", "0.10.2", "#define DNNL_VERSION_MINOR 2", "/venv/lib")
    key = onednn_conv.build_key(*base)
    assert key == onednn_conv.build_key(*base) and len(key) == 16
    for i, other in enumerate((b"// handler v2", "0.10.3", "#define DNNL_VERSION_MINOR 3", "/other/lib")):
        changed = list(base)
        changed[i] = other
        assert onednn_conv.build_key(*changed) != key, i
    # parts are length-prefixed: moving bytes from one part to the next is another key
    assert onednn_conv.build_key(b"ab", "c", "d", "e") != onednn_conv.build_key(b"a", "bc", "d", "e")


def test_cache_dir_honours_xdg_cache_home(tmp_path):
    assert onednn_conv.cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "jaxgen" / "onednn"
    assert onednn_conv.cache_dir({}) == Path.home() / ".cache" / "jaxgen" / "onednn"


AUTO = {xla_setup.OMP_AUTO_ENV: "1"}  # marks OMP_NUM_THREADS as jaxgen's choice (omp_team may widen it)


@pytest.mark.parametrize("environ,conv_backend,cpus,want", [
    ({}, "onednn", 2, {"JAX_NUM_CPU_DEVICES": "2", "OMP_NUM_THREADS": "1", **AUTO}),
    ({}, "onednn", 8, {"JAX_NUM_CPU_DEVICES": "2", "OMP_NUM_THREADS": "4", **AUTO}),
    ({"JAXGEN_CONV_BACKEND": "onednn"}, None, 2, {"JAX_NUM_CPU_DEVICES": "2", "OMP_NUM_THREADS": "1", **AUTO}),
    ({"JAX_NUM_CPU_DEVICES": "1"}, "onednn", 6, {"OMP_NUM_THREADS": "6", **AUTO}),
    ({"XLA_FLAGS": "--xla_force_host_platform_device_count=3"}, "onednn", 6, {"OMP_NUM_THREADS": "2", **AUTO}),
    ({"OMP_NUM_THREADS": "5"}, "onednn", 2, {"JAX_NUM_CPU_DEVICES": "2"}),  # the user's choice stays
    ({}, "xla", 2, {"JAX_NUM_CPU_DEVICES": "2"}),
    ({"JAXGEN_CONV_BACKEND": "xla"}, None, 2, {"JAX_NUM_CPU_DEVICES": "2"}),
    ({"JAXGEN_XLA_DEFAULTS": "0"}, "onednn", 2, {}),
])
def test_configure_process_sets_omp_threads_only_for_onednn(environ, conv_backend, cpus, want):
    env = dict(environ)
    assert xla_setup.configure_process(env, cpu_count=cpus, conv_backend=conv_backend) == want
    assert env == {**environ, **want}


def test_configure_process_sets_omp_threads_for_auto_where_onednn_is_preferred(monkeypatch):
    for preferred, want in ((True, {"JAX_NUM_CPU_DEVICES": "2", "OMP_NUM_THREADS": "1", **AUTO}),
                            (False, {"JAX_NUM_CPU_DEVICES": "2"})):
        monkeypatch.setattr(xla_setup, "prefers_onednn", lambda float32=True, environ=None, p=preferred, **kw: p)
        assert xla_setup.configure_process({}, cpu_count=2, conv_backend="auto") == want
        assert xla_setup.configure_process({}, cpu_count=2) == want  # the default: auto


def test_omp_team_widens_only_jaxgens_own_choice():
    """A step on fewer devices than the host split gets their cores -- only when jaxgen set OMP_NUM_THREADS: the
    user's value stands (0 = leave the team as OMP_NUM_THREADS made it)."""
    env: dict[str, str] = {}
    xla_setup.configure_process(env, cpu_count=2, conv_backend="onednn")  # 2 devices, 1 thread each
    assert env["OMP_NUM_THREADS"] == "1"
    assert [xla_setup.omp_team(d, env, cpu_count=2) for d in (1, 2)] == [2, 1]
    assert [xla_setup.omp_team(d, env, cpu_count=16) for d in (1, 2, 3, 8, 32)] == [16, 8, 5, 2, 1]
    user = {"OMP_NUM_THREADS": "1"}
    xla_setup.configure_process(user, cpu_count=2, conv_backend="onednn")
    assert xla_setup.OMP_AUTO_ENV not in user and xla_setup.omp_team(1, user, cpu_count=2) == 0
    assert xla_setup.set_default_omp_threads(1, user, cpu_count=2) == {}  # never overrides a set value
    assert xla_setup.set_default_omp_threads(4, {}, cpu_count=8) == {"OMP_NUM_THREADS": "2", **AUTO}


def test_conv_backend_read_from_the_command_line():
    assert xla_setup.conv_backend_from_argv(["--config", "c.py", "--config.conv_backend=oneDNN"]) == "onednn"
    assert xla_setup.conv_backend_from_argv(["--config.conv_backend", "onednn", "--workdir", "w"]) == "onednn"
    assert xla_setup.conv_backend_from_argv(["x.png", "--conv-backend", "xla"]) == "xla"
    assert xla_setup.conv_backend_from_argv(["--config.conv_backend_x=onednn", "--config", "c"]) is None


def test_bf16_with_onednn_keeps_f32_modules():
    """With oneDNN, compute_dtype bfloat16 is autocast-style: f32 modules, bf16 convolution operands."""
    c = ml_collections.ConfigDict({"compute_dtype": "bfloat16", "conv_backend": "xla"})
    assert compute_dtype(c) == jnp.bfloat16
    c.conv_backend = "onednn"
    assert compute_dtype(c) == jnp.float32
    c.compute_dtype = "float16"
    assert compute_dtype(c) == jnp.float16


def _no_batching_conv():
    """A ``lax.conv_general_dilated`` drop-in that records its calls and, like the oneDNN custom calls, has no
    vmap rule (a custom_vmap whose rule raises)."""
    calls = []

    def fn(lhs, rhs, *args, **kwargs):
        calls.append(lhs.shape)

        @jax.custom_batching.custom_vmap
        def conv(a, b):
            return lax.conv_general_dilated(a, b, *args, **kwargs)

        @conv.def_vmap
        def rule(axis_size, in_batched, a, b):
            raise NotImplementedError("no batching rule")

        return conv(lhs, rhs)

    return fn, calls


def test_override_reaches_the_layers_and_stacked_init_never_traces_it():
    """``conv_vjp``'s override is what ``layers.conv`` builds with (inside scanned blocks too), and the stacked
    block init (evaluated under ``vmap``) traces XLA's convolutions instead: the oneDNN calls have no vmap rule."""
    fn, calls = _no_batching_conv()
    model = models.build("edsr", scale=2, num_feat=8, num_blocks=3)
    x = jnp.asarray(np.random.default_rng(0).random((1, 6, 6, 3), np.float32))
    # jitted (a fresh lambda each: traced anew, so under the override when inside it); eager would compile op by op
    params = jax.jit(lambda k, x: model.init(k, x))(jax.random.key(0), x)["params"]
    want = jax.jit(lambda p, x: model.apply({"params": p}, x))(params, x)
    with conv_vjp.overridden(fn):
        assert conv_vjp.flax_conv_fn() is fn
        init = jax.jit(lambda k, x: model.init(k, x))(jax.random.key(0), x)["params"]
        assert calls, "the override was never called"
        calls.clear()
        got = jax.jit(lambda p, x: model.apply({"params": p}, x))(params, x)
        assert len(calls) >= 4  # head, the scanned block body's two, body tail, upsampler
    assert conv_vjp.flax_conv_fn() is conv_vjp.default_conv and conv_vjp.override() is None
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), init, params))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- slow: the built handler


@pytest.fixture(scope="module")
def lib_env(tmp_path_factory) -> dict:
    """The environment of a process using the handler built (with g++, against the ``jaxgen[onednn]`` wheels) into
    a temporary cache; this process has it loaded. Skips when the compiler or the wheels are missing; a handler
    that does not compile with them fails (a broken ``onednn_conv.cc`` must not read as "not installed")."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("onednn_cache"))}
    try:
        onednn_conv.find_toolchain(env)
    except onednn_conv.OnednnUnavailableError as e:
        pytest.skip(str(e))
    onednn_conv.build(env)
    onednn_conv.load(env)
    return env


@pytest.fixture
def bf16_env(lib_env) -> dict:
    """``lib_env`` on a CPU where oneDNN has bf16 convolutions (``onednn_conv.bf16_supported``); skips elsewhere
    (an AVX2-only CPU: there ``test_bf16_without_onednn_support_is_one_error_line`` checks the refusal)."""
    if not onednn_conv.bf16_supported():
        pytest.skip(f"oneDNN has no bf16 convolution on this CPU ({xla_setup.cpu_model()})")
    return lib_env


def _ref(x, w, pad, strides=(1, 1)):
    return lax.conv_general_dilated(x, w, strides, pad, dimension_numbers=DN, precision="highest")


def _value_and_grads(f, x, w, g):
    """y = f(x, w) and (dx, dw) of sum(y * g): the VJP of f with cotangent g."""
    y, vjp = jax.vjp(f, x, w)
    return (y, *vjp(g))


def _rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))) / np.max(np.abs(b)))


# (batch, H, W, C, O, kh, kw, ((top, bottom), (left, right))): non-square images and kernels (an H/W swap fails),
# C != O (a transposed HWIO -> OIHW mapping fails), asymmetric padding on each side (swapped top/bottom, left/right
# or (t,b)/(l,r) pads change the output shape or shift it), 1x1 .. 9x9 kernels (a wrong flip of the kernel in the
# input gradient fails every k > 1), 'VALID' and over-padding (pad >= k). Then strides (the last item): the
# discriminators' 4x4/2 with padding 1, a 3x3/2 whose bottom-right padding no window reaches, unequal strides (2, 3)
# (swapped sh/sw fails) that leave the last input row and column unread (their input gradient must be 0, not
# garbage), a 1x1/2 shortcut, and asymmetric padding with strides.
CASES = [
    (2, 7, 5, 3, 4, 1, 1, ((0, 0), (0, 0)), (1, 1)),
    (2, 9, 6, 4, 6, 3, 3, ((1, 1), (1, 1)), (1, 1)),
    (1, 8, 11, 5, 3, 3, 3, ((0, 2), (1, 0)), (1, 1)),
    (2, 11, 13, 3, 5, 5, 5, ((2, 1), (0, 3)), (1, 1)),
    (1, 12, 10, 2, 3, 9, 9, ((4, 4), (3, 5)), (1, 1)),
    (2, 9, 7, 3, 2, 1, 3, ((0, 0), (2, 0)), (1, 1)),
    (1, 10, 9, 4, 4, 5, 3, ((0, 0), (0, 0)), (1, 1)),
    (1, 6, 5, 2, 3, 3, 3, ((3, 0), (0, 4)), (1, 1)),
    (2, 8, 10, 3, 5, 4, 4, ((1, 1), (1, 1)), (2, 2)),
    (1, 9, 8, 4, 3, 3, 3, ((1, 1), (1, 1)), (2, 2)),
    (1, 10, 7, 2, 4, 3, 3, ((0, 0), (0, 0)), (2, 3)),
    (2, 7, 9, 3, 4, 1, 1, ((0, 0), (0, 0)), (2, 2)),
    (1, 11, 12, 3, 2, 5, 3, ((2, 1), (0, 2)), (3, 2)),
]
IDS = [f"k{c[5]}x{c[6]}_pad{c[7]}_s{c[8][0]}x{c[8][1]}" for c in CASES]


def _data(case, seed=0, bf16_exact=False):
    n, h, w, c, o, kh, kw, pad, (sh, sw) = case
    r = np.random.default_rng(seed)
    oh, ow = (h + sum(pad[0]) - kh) // sh + 1, (w + sum(pad[1]) - kw) // sw + 1
    arrays = [r.standard_normal(s).astype(np.float32) for s in ((n, h, w, c), (kh, kw, c, o), (n, oh, ow, o))]
    if bf16_exact:  # representable in bf16: the bf16 products are then exact in f32
        arrays = [np.asarray(jnp.asarray(a, jnp.bfloat16).astype(jnp.float32)) for a in arrays]
    return [jnp.asarray(a) for a in arrays]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_f32_values_and_gradients_equal_lax(lib_env, case):
    x, w, g = _data(case)
    pad, st = case[-2:]
    got = _value_and_grads(jax.jit(lambda x, w: onednn_conv.conv2d_nhwc(x, w, pad, jnp.float32, st)), x, w, g)
    want = _value_and_grads(lambda x, w: _ref(x, w, pad, st), x, w, g)
    for name, a, b in zip(("y", "dx", "dw"), got, want):
        assert a.shape == b.shape and a.dtype == jnp.float32, name
        assert _rel(a, b) < 1e-5, (name, _rel(a, b))


@pytest.mark.slow
def test_backward_weights_on_oneDNNs_blocked_layout_where_its_avx2_kernel_runs(lib_env):
    """Where oneDNN's pick for an NHWC backward-weights is its AVX2 direct kernel, the handler reorders x and dy
    into the kernel's blocked layout (``/blocked``; 2x faster on CycleGAN's 256-channel blocks on Zen 3) -- and
    the weight gradient is still lax's: channels that are no multiple of the 8-wide blocks (the padding a wrong
    reorder leaves in), strides and asymmetric padding. Elsewhere (brgemm or AVX-512 kernels) NHWC stays."""
    names = [onednn_conv.implementations(c[:4], (c[5], c[6], c[3], c[4]), c[7], c[8])[2] for c in CASES]
    assert all(n.endswith("/blocked") == n.startswith("jit:avx2") for n in names), names
    if "avx2" in xla_setup.cpu_flags() and "avx512f" not in xla_setup.cpu_flags():
        blocked = [c for c, n in zip(CASES, names) if n.endswith("/blocked")]
        assert len(blocked) >= 3, names
        shapes = [(1, 18, 18, 256, 256, 3, 3, ((0, 0), (0, 0)), (1, 1)),
                  (2, 17, 16, 5, 13, 3, 3, ((1, 0), (2, 1)), (2, 2))]
        assert all(onednn_conv.implementations(c[:4], (c[5], c[6], c[3], c[4]), c[7], c[8])[2] == "jit:avx2/blocked"
                   for c in shapes)
        for case in blocked + shapes:
            x, w, g = _data(case)
            pad, st = case[-2:]
            got = jax.jit(jax.grad(lambda w: jnp.vdot(onednn_conv.conv2d_nhwc(x, w, pad, jnp.float32, st), g)))(w)
            want = jax.grad(lambda w: jnp.vdot(_ref(x, w, pad, st), g))(w)
            assert _rel(got, want) < 1e-5, (case, _rel(got, want))


@pytest.mark.slow
def test_team_size_follows_set_threads_and_keeps_the_values(lib_env, monkeypatch):
    """``set_threads(n)`` makes the next primitives run on n OpenMP threads (what the handler's thread asked
    oneDNN for), each team with its own primitive, with the same values and gradients; 0 goes back to
    ``OMP_NUM_THREADS``'s team. ``prepare_training`` sets :func:`xla_setup.omp_team` of the step's devices."""
    case = CASES[1]
    x, w, g = _data(case)
    want = _value_and_grads(lambda x, w: _ref(x, w, case[-2], case[-1]), x, w, g)
    initial = int(os.environ.get("OMP_NUM_THREADS", "0")) or None
    try:
        for n in (2, 1, 3):
            onednn_conv.set_threads(n)
            f = jax.jit(lambda x, w: onednn_conv.conv2d_nhwc(x, w, case[-2], jnp.float32, case[-1]))
            got = _value_and_grads(f, x, w, g)
            assert onednn_conv.last_team() == n
            for name, a, b in zip(("y", "dx", "dw"), got, want):
                assert _rel(a, b) < 1e-5, (n, name, _rel(a, b))
        onednn_conv.set_threads(0)
        jax.block_until_ready(f(x, w))
        if initial is not None:
            assert onednn_conv.last_team() == initial
        calls = []
        monkeypatch.setattr(onednn_conv, "set_threads", calls.append)
        monkeypatch.setenv(xla_setup.OMP_AUTO_ENV, "1")
        for devices in (1, 2):
            xla_setup.prepare_training(1, "cpu", conv_backend="onednn", devices=devices)
            assert onednn_conv.current_backend() == "onednn"
        xla_setup.prepare_training(1, "cpu", conv_backend="xla", devices=1)  # XLA's convolutions: no team to set
        monkeypatch.delenv(xla_setup.OMP_AUTO_ENV)
        xla_setup.prepare_training(1, "cpu", conv_backend="onednn", devices=1)  # the user's OMP_NUM_THREADS: 0
        assert calls == [xla_setup.omp_threads(1), xla_setup.omp_threads(2), 0]
    finally:
        onednn_conv.set_threads(0)
        onednn_conv.configure("xla")


@pytest.mark.slow
def test_convolutions_with_only_onednn_reference_code_stay_in_xla(lib_env, monkeypatch):
    """``implementations`` names oneDNN's kernels (a 3x3 64->64 convolution has optimised ones for all three
    primitives on any x86 CPU oneDNN supports); a convolution with a ``ref:`` one -- TransformerNet's 9x9 32->3
    backward-data on AVX2: 11 s a call -- is traced as XLA's convolution, the others as the custom call."""
    names = onednn_conv.implementations((2, 16, 16, 64), (3, 3, 64, 64), ((1, 1), (1, 1)))
    assert len(names) == 3 and all(n and not n.startswith("ref") for n in names), names
    x, w = jnp.ones((2, 12, 12, 32)), jnp.ones((9, 9, 32, 3))

    def program():
        return str(jax.make_jaxpr(lambda x, w: onednn_conv.conv_general_dilated(
            x, w, (1, 1), ((4, 4), (4, 4)), dimension_numbers=DN))(x, w))

    real = onednn_conv.reference_kernels(x.shape, w.shape, ((4, 4), (4, 4)))
    assert ("conv_general_dilated" in program()) == real  # this CPU's own answer
    monkeypatch.setattr(onednn_conv, "implementations", lambda *a: ("brgconv:avx2", "jit:avx2", "jit:avx2"))
    assert "conv_general_dilated" not in program()
    monkeypatch.setattr(onednn_conv, "implementations", lambda *a: ("brgconv:avx2", "ref:any", "jit:avx2"))
    assert "conv_general_dilated" in program()


@pytest.mark.slow
def test_transposed_convolutions_with_only_onednn_reference_code_stay_in_xla(lib_env, monkeypatch):
    """The same for a transposed convolution (the U-Net's and ResNet generator's up path): it is asked about the
    convolution it transposes (input [N, 2H, 2W, O] for a 4x4/2 one: a wrong geometry asks about another
    convolution) and traced as lax's where any of that one's primitives is oneDNN's reference code."""
    x, k = jnp.ones((1, 8, 8, 16)), jnp.ones((4, 4, 8, 16))
    asked = []

    def program():
        return str(jax.make_jaxpr(lambda x, k: onednn_conv.conv_transpose(x, k, (2, 2), ((2, 2), (2, 2))))(x, k))

    for impls in (("brgconv:avx2", "jit:avx2", "jit:avx2"), ("brgconv:avx2", "ref:any", "jit:avx2")):
        monkeypatch.setattr(onednn_conv, "implementations", lambda *a, impls=impls: asked.append(a[:4]) or impls)
        assert ("conv_general_dilated" in program()) == (impls[1] == "ref:any")
    assert asked[0] == ((1, 16, 16, 8), (4, 4, 8, 16), ((1, 1), (1, 1)), (2, 2)), asked


@pytest.mark.slow
def test_bf16_without_onednn_support_is_one_error_line(lib_env, monkeypatch):
    """Where oneDNN has no bf16 convolution (an AVX2-only CPU: AMD Zen 3), ``configure("onednn", "bfloat16")``
    refuses with the user-error class (one ``jaxgen: error:`` line, exit 2) naming ``compute_dtype`` and the f32 /
    xla ways out -- before any program is traced, instead of a JaxRuntimeError traceback at the first step -- and
    leaves the switch on XLA; float32 still configures oneDNN."""
    monkeypatch.setattr(onednn_conv, "bf16_supported", lambda: False)
    try:
        with pytest.raises(onednn_conv.OnednnUnavailableError, match=r"compute_dtype 'bfloat16'.*'float32'.*'xla'"):
            onednn_conv.configure("xla")
            onednn_conv.configure("onednn", "bfloat16")
        assert conv_vjp.override() is None
        onednn_conv.configure("onednn", "float32")
        assert onednn_conv.current_backend() == "onednn"
    finally:
        onednn_conv.configure("xla")


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bf16_within_the_rounding_bound(bf16_env, case):
    """Each product of bf16-rounded operands is off by at most 2u(1+u) of |x w|, so |y_bf16 - y| <= 2.01 u (|x| * |w|)
    elementwise (likewise the gradients, with |g|): a bf16 *result* (error ~u |y|, no |x||w| slack on cancelling
    sums) or an f32 path that never reaches bf16 (error 0) is told apart by the next test; this one catches wrong
    values at bf16-level sizes (a dropped padding row, a shifted window) that a loose max-norm check would miss."""
    x, w, g = _data(case, seed=1)
    pad, st = case[-2:]
    got = _value_and_grads(jax.jit(lambda x, w: onednn_conv.conv2d_nhwc(x, w, pad, jnp.bfloat16, st)), x, w, g)
    want = _value_and_grads(lambda x, w: _ref(x, w, pad, st), x, w, g)
    bounds = _value_and_grads(lambda x, w: _ref(x, w, pad, st), jnp.abs(x), jnp.abs(w), jnp.abs(g))
    # the output gradient g is rounded to bf16 too (a third rounding in the gradients): 3.01 u
    for name, a, b, bound, k in zip(("y", "dx", "dw"), got, want, bounds, (2.01, 3.01, 3.01)):
        assert a.dtype == jnp.float32, name
        excess = np.abs(np.asarray(a) - np.asarray(b)) - (k * U_BF16 * np.asarray(bound) + 1e-5)
        assert excess.max() <= 0, (name, float(excess.max()))


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES[1:5] + CASES[8:10], ids=IDS[1:5] + IDS[8:10])
def test_bf16_of_bf16_exact_operands_equals_f32(bf16_env, case):
    """With operands representable in bf16 the products are exact and oneDNN accumulates in f32: the result equals
    the f32 convolution up to summation order (a bf16 accumulator or bf16 result would be ~1e-3 off)."""
    x, w, g = _data(case, seed=2, bf16_exact=True)
    pad, st = case[-2:]
    got = _value_and_grads(jax.jit(lambda x, w: onednn_conv.conv2d_nhwc(x, w, pad, jnp.bfloat16, st)), x, w, g)
    want = _value_and_grads(lambda x, w: _ref(x, w, pad, st), x, w, g)
    for name, a, b in zip(("y", "dx", "dw"), got, want):
        assert _rel(a, b) < 1e-5, (name, _rel(a, b))


@pytest.mark.slow
def test_inside_scan_and_a_nonlinear_loss(lib_env):
    """The custom calls inside a jitted ``lax.scan`` body (a while loop), two convolutions deep, reused weights."""
    case = CASES[3]
    x, w, _ = _data(case)
    w2 = jnp.asarray(np.random.default_rng(5).standard_normal((3, 3, 5, 5)).astype(np.float32) * 0.2)
    pad = case[-2]

    def loss(conv_fn):
        def f(x, w, w2):
            def body(h, _):
                y = jnp.tanh(conv_fn(h, w, pad))
                y = conv_fn(y, w2, ((1, 1), (1, 1)))
                return h * 0.5, jnp.mean(y ** 2)
            _, ys = lax.scan(body, x, None, length=3)
            return ys.sum()
        return f

    got = jax.jit(jax.value_and_grad(loss(lambda a, b, p: onednn_conv.conv2d_nhwc(a, b, p, jnp.float32)), (0, 1, 2)))(
        x, w, w2)
    want = jax.value_and_grad(loss(_ref), (0, 1, 2))(x, w, w2)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert _rel(a, b) < 1e-5


@pytest.mark.slow
def test_flax_drop_in_routes_plain_convolutions_to_onednn(lib_env):
    """``nn.Conv(conv_general_dilated=flax_conv_fn())``: SAME with an even kernel (asymmetric padding) and a bias, and
    strided convolutions (SAME 3x3/2 on an odd map; the discriminators' 4x4/2 with padding 1) go through oneDNN and
    equal the default conv; grouped and dilated kernels and transposed convolutions (dilated inputs) fall back to
    lax (no custom call)."""
    x = jnp.asarray(np.random.default_rng(3).standard_normal((2, 9, 8, 4)).astype(np.float32))
    for kw, calls in ((dict(kernel_size=(4, 2)), 1), (dict(kernel_size=(3, 3), strides=2), 1),
                      (dict(kernel_size=(4, 4), strides=2, padding=1), 1),
                      (dict(kernel_size=(3, 3), feature_group_count=2), 0),
                      (dict(kernel_size=(3, 3), kernel_dilation=2), 0)):
        ref = nn.Conv(6, **kw)
        mine = nn.Conv(6, conv_general_dilated=onednn_conv.flax_conv_fn(jnp.float32), **kw)
        params = ref.init(jax.random.key(0), x)
        with jax.default_matmul_precision("highest"):
            want = ref.apply(params, x)
        got = jax.jit(mine.apply)(params, x)
        assert got.shape == want.shape and _rel(got, want) < 1e-5, kw
        hlo = jax.jit(mine.apply).lower(params, x).compile().as_text()
        assert hlo.count("custom_call_target=\"onednn_conv_fwd\"") == calls, kw
    # a transposed convolution's form (dilated input, as lax.conv_transpose builds it): lax's, unchanged
    w = jnp.asarray(np.random.default_rng(4).standard_normal((3, 3, 4, 3)).astype(np.float32))
    pad = ((2, 2), (2, 2))
    up = jax.jit(lambda x, w: onednn_conv.conv_general_dilated(x, w, (1, 1), pad, lhs_dilation=(2, 2),
                                                               dimension_numbers=DN))
    want = lax.conv_general_dilated(x, w, (1, 1), pad, lhs_dilation=(2, 2), dimension_numbers=DN)
    assert _rel(up(x, w), want) < 1e-6
    assert "custom_call_target=\"onednn_conv" not in up.lower(x, w).compile().as_text()


MESH_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from jax import lax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from jaxgen.models import onednn_conv
    onednn_conv.load()
    mesh = Mesh(np.array(jax.devices()), ("data",))
    r = np.random.default_rng(0)
    x = jnp.asarray(r.standard_normal((4, 9, 8, 3)).astype(np.float32))
    w = jnp.asarray(r.standard_normal((3, 3, 3, 5)).astype(np.float32))
    pad = ((1, 1), (2, 0))
    def loss(f):
        return lambda w, x: jnp.sum(jnp.tanh(f(x, w)) ** 2)
    on = lambda x, w: onednn_conv.conv2d_nhwc(x, w, pad, jnp.float32)
    ref = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), pad, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                                precision="highest")
    xs, ws = jax.device_put(x, NamedSharding(mesh, P("data"))), jax.device_put(w, NamedSharding(mesh, P()))
    step = jax.jit(jax.value_and_grad(loss(on), (0, 1)))
    got = step(ws, xs)
    want = jax.value_and_grad(loss(ref), (0, 1))(w, x)
    hlo = step.lower(ws, xs).compile().as_text()
    print(json.dumps({
        "devices": len(jax.devices()),
        "rel": [float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b))) for a, b in zip(jax.tree.leaves(got),
                                                                                     jax.tree.leaves(want))],
        "all_gather": "all-gather" in hlo,
        "local_fwd": "f32[2,9,8,5]{3,2,1,0} custom-call" in hlo,
        "dx_sharding": list(got[1][1].sharding.spec)}))
""")


@pytest.mark.slow
def test_two_device_mesh_partitions_on_the_batch(lib_env, tmp_path):
    """On a 2-device batch-sharded mesh each device convolves its half (no all-gather; the forward custom call sees
    batch 2 of 4) and the weight gradient is summed over both halves (a missing psum halves it)."""
    script = tmp_path / "mesh.py"
    script.write_text(MESH_SCRIPT)
    env = {**lib_env, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "PYTHONPATH": str(ROOT),
           "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=str(ROOT),
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["devices"] == 2
    assert max(out["rel"]) < 1e-5, out
    assert not out["all_gather"] and out["local_fwd"], out
    assert out["dx_sharding"] == ["data"], out


@pytest.mark.slow
def test_train_step_benchmark_smoke(lib_env, tmp_path):
    """``benchmarks/onednn_ffi/train_step.py --smoke`` runs on compare_torch's driver and workers (a renamed or
    changed compare_torch API fails here): the oneDNN f32 step's loss equals XLA's on the same init and batch, and
    the bf16 one differs by bf16 rounding (where oneDNN has bf16 convolutions)."""
    out = tmp_path / "smoke.json"
    bf16 = onednn_conv.bf16_supported()
    variants = ["xla_tuned", "onednn_f32_2dev"] + (["onednn_bf16_2dev"] if bf16 else [])
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "onednn_ffi" / "train_step.py"), "--smoke",
                        "--variants", ",".join(variants), "--torch-variants", "",
                        "--out", str(out)], capture_output=True, text=True, cwd=str(ROOT), timeout=600,
                       env={**lib_env, "PYTHONPATH": str(ROOT),
                            "XLA_FLAGS": conftest.without_test_xla_flags(lib_env.get("XLA_FLAGS", ""))})
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    for case in ("edsr_b2", "style_b2"):
        by = res["cases"][case]["by"]
        losses = [by[f"jax:{v}"]["loss_after_setup"] for v in variants]
        xla, f32 = losses[:2]
        assert abs(f32 - xla) <= 1e-5 * xla, (case, losses)
        if bf16:
            assert 0 < abs(losses[2] - xla) <= 1e-2 * xla, (case, losses)


BUILD_SCRIPT = textwrap.dedent("""
    import sys
    from jaxgen.models import onednn_conv
    print(onednn_conv.build())
""")


@pytest.mark.slow
def test_concurrent_first_builds_share_one_complete_library(lib_env, tmp_path):
    """Two processes building into one empty cache at once: both get the same path, the library loads and no
    temporary file is left (each compiles to its own temp name and renames it into place)."""
    env = {**lib_env, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", BUILD_SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=str(ROOT)) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    paths = {o[0].strip().splitlines()[-1] for o in outs}
    assert len(paths) == 1
    path = Path(paths.pop())
    assert path.parent.parent == tmp_path / "cache" / "jaxgen" / "onednn"
    assert sorted(p.name for p in path.parent.iterdir()) == ["libonednn_conv.so"]
    check = subprocess.run([sys.executable, "-c", f"import ctypes; ctypes.CDLL({str(path)!r}).OnednnConvFwd"],
                           env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr[-1000:]


def _train_losses(tmp_path: Path, env: dict, name: str, *overrides: str) -> list[float]:
    workdir = tmp_path / name
    r = subprocess.run([sys.executable, "-m", "jaxgen", "train", f"--config={TINY}", f"--workdir={workdir}",
                        "--config.total_steps=4", "--config.log_every=1", "--config.eval_every=0", *QUIET,
                        *overrides], capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    backend = "onednn" if "--config.conv_backend=onednn" in overrides else "xla" if overrides else None
    if backend:  # the summary line says which convolutions ran
        assert f", {backend} convolutions" in r.stdout, r.stdout[-2000:]
    else:  # the default, "auto": oneDNN's float32 convolutions where jaxgen prefers them for EDSR, else XLA's
        want = "onednn" if xla_setup.prefers_onednn(networks=["edsr"]) else "xla"  # TINY is an EDSR
        assert f", {want} convolutions" in r.stdout, r.stdout[-2000:]
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "loss" in r]


@pytest.mark.slow
def test_jaxgen_train_with_onednn_takes_the_xla_backends_steps(lib_env, tmp_path):
    """``jaxgen train`` (tiny EDSR, 4 Adam steps on 2 CPU devices) with ``--config.conv_backend=onednn`` logs the
    xla backend's losses up to summation order; with ``compute_dtype=bfloat16`` (bf16 convolution operands, f32
    modules) they differ by bf16 rounding -- not at all would mean the convolutions never reached oneDNN."""
    env = {**lib_env, "PYTHONPATH": str(ROOT), "JAXGEN_COMPILATION_CACHE": "0"}
    for key in ("JAX_NUM_CPU_DEVICES", "OMP_NUM_THREADS", "XLA_FLAGS", "JAXGEN_CONV_BACKEND"):
        env.pop(key, None)
    xla = _train_losses(tmp_path, env, "xla", "--config.conv_backend=xla")
    f32 = _train_losses(tmp_path, env, "onednn", "--config.conv_backend=onednn")
    assert len(xla) == len(f32) == 4
    np.testing.assert_allclose(f32, xla, rtol=2e-5)
    bf16_flags = ("--config.conv_backend=onednn", "--config.compute_dtype=bfloat16")
    if onednn_conv.bf16_supported():
        bf16 = _train_losses(tmp_path, env, "onednn_bf16", *bf16_flags)
        gap = np.abs(np.asarray(bf16) - np.asarray(xla)) / np.asarray(xla)
        assert len(bf16) == 4 and gap.max() > 1e-6 and gap.max() < 2e-2, gap
    else:  # an AVX2-only CPU: one error line naming the key and what to use, exit 2, before any step
        r = subprocess.run([sys.executable, "-m", "jaxgen", "train", f"--config={TINY}",
                            f"--workdir={tmp_path / 'onednn_bf16'}", "--config.total_steps=4", *QUIET, *bf16_flags],
                           capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=600)
        assert r.returncode == 2 and r.stderr.strip().startswith("jaxgen: error: compute_dtype 'bfloat16'"), r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "compute_dtype 'float32'" in r.stderr, r.stderr
        assert not list((tmp_path / "onednn_bf16").glob("checkpoints/*")), "no step may run"
    assert json.loads((tmp_path / "onednn" / "config.json").read_text())["conv_backend"] == "onednn"
    auto = _train_losses(tmp_path, env, "auto")  # the default; which backend it took: checked in _train_losses
    assert json.loads((tmp_path / "auto" / "config.json").read_text())["conv_backend"] == "auto"
    np.testing.assert_allclose(auto, xla, rtol=2e-5)


@pytest.mark.slow
def test_jaxgen_upscale_with_onednn_equals_xla(lib_env, tmp_path, monkeypatch):
    """``jaxgen upscale --conv-backend onednn`` (a zoo SRVGG, in this process) writes the xla backend's image up
    to one level of rounding; with ``--bf16`` the output still lies within a few levels."""
    rng = np.random.default_rng(0)
    src = tmp_path / "in.png"
    image.write_image(src, rng.integers(0, 256, (24, 20, 3), dtype=np.uint8))
    outs = {}
    bf16 = onednn_conv.bf16_supported()
    for name, flags in (("xla", ["--conv-backend", "xla"]), ("onednn", ["--conv-backend", "onednn"]),
                        ("onednn_bf16", ["--conv-backend", "onednn", "--bf16"])):
        proc = run_jaxgen("upscale", src, "-o", tmp_path / f"{name}.png", "--model", "realesr-animevideov3-x2", *flags)
        assert conv_vjp.override() is None  # run_jaxgen puts the process switch back
        if name == "onednn_bf16" and not bf16:  # an AVX2-only CPU: one error line, exit 2, no image
            assert proc.returncode == 2 and "jaxgen: error: compute_dtype 'bfloat16'" in proc.stderr, proc.stderr
            assert not (tmp_path / f"{name}.png").exists()
            continue
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs[name] = image.read_image(tmp_path / f"{name}.png").astype(int)
    assert np.abs(outs["onednn"] - outs["xla"]).max() <= 1
    if bf16:
        assert 0 < np.abs(outs["onednn_bf16"] - outs["xla"]).max() <= 8


@pytest.mark.slow
def test_every_zoo_model_gives_xlas_image_with_onednn(lib_env, monkeypatch):
    """``jaxgen upscale``'s default ``--conv-backend auto`` takes oneDNN's convolutions on the CPUs where it
    measured faster, for every pretrained model: each zoo model (RRDBNet, SRVGG, RealSR, waifu2x upconv_7 / CUNet,
    Real-CUGAN se / pro, when its package is installed) upscales a 20x24 image to XLA's result within 1e-4
    (measured <= 5.4e-5, Real-CUGAN pro; a convolution routed wrongly is off by O(0.1)), and the flag's default
    is ``auto`` for ``upscale`` only."""
    x = np.random.default_rng(0).random((20, 24, 3), dtype=np.float32)
    checked = differing = 0
    try:
        for name in [*zoo.ZOO, *zoo_sr_vulkan.ENTRIES]:
            outs = {}
            for backend in ("xla", "onednn"):
                onednn_conv.configure(backend)
                try:
                    model = zoo.load(name) if name in zoo.ZOO else zoo_sr_vulkan.load(name)
                except ValueError:  # its weights' package is not installed
                    break
                outs[backend] = inference.Upscaler(model).upscale_rgb(x)
            if outs:
                diff = float(np.abs(outs["onednn"] - outs["xla"]).max())
                assert diff < 1e-4, (name, diff)
                checked, differing = checked + 1, differing + (diff > 0)
    finally:
        onednn_conv.configure("xla")
    # oneDNN sums in another order than XLA: equal images everywhere would mean its convolutions never ran
    assert checked >= 3 and differing >= checked // 2, (checked, differing)
    monkeypatch.delenv("JAXGEN_CONV_BACKEND")  # the suite's pin (conftest.py)
    for command, default in (("upscale", "auto"), ("stylize", "auto"), ("translate", "auto")):
        proc = run_jaxgen(command, "-h")
        assert proc.returncode == 0 and f"default {default}" in " ".join(proc.stdout.split()), (command, proc.stdout)


# transposed convolutions (x [n, h, w, c], kernel [kh, kw, o, c], strides, lax.conv_transpose padding): CycleGAN's
# 3x3/2 (PyTorch padding 1, output_padding 1), pix2pix's 4x4/2 (padding 1), waifu2x's 4x4/2 with padding 3
# (lax padding 0: the transpose of a convolution padded 3), unequal strides with asymmetric padding (a sh/sw or
# top/bottom swap fails), and one whose convolution would need negative padding (lax's, unchanged)
CT_CASES = [
    (2, 5, 6, 3, 4, 3, 3, (2, 2), ((1, 2), (1, 2)), True),
    (1, 4, 5, 4, 2, 4, 4, (2, 2), ((2, 2), (2, 2)), True),
    (2, 6, 5, 3, 3, 4, 4, (2, 2), ((0, 0), (0, 0)), True),
    (1, 5, 3, 2, 2, 3, 2, (2, 3), ((0, 1), (1, 0)), True),
    (1, 4, 4, 2, 3, 3, 3, (2, 2), ((3, 1), (1, 1)), False),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", CT_CASES, ids=[f"k{c[5]}x{c[6]}_s{c[7]}_pad{c[8]}" for c in CT_CASES])
def test_conv_transpose_equals_lax(lib_env, case):
    """``onednn_conv.conv_transpose`` (backward-data forward; forward and backward-weights gradients): value, input
    and kernel gradients equal ``lax.conv_transpose(..., transpose_kernel=True)`` within 1e-5, through oneDNN's
    custom calls where its convolution has non-negative padding, lax's otherwise."""
    n, h, w, c, o, kh, kw, strides, pad, on_onednn = case
    r = np.random.default_rng(7)
    x = jnp.asarray(r.standard_normal((n, h, w, c)).astype(np.float32))
    k = jnp.asarray(r.standard_normal((kh, kw, o, c)).astype(np.float32))

    def ref(x, k):
        return lax.conv_transpose(x, k, strides, pad, dimension_numbers=DN, transpose_kernel=True,
                                  precision="highest")

    g = jnp.asarray(r.standard_normal(ref(x, k).shape).astype(np.float32))
    mine = jax.jit(lambda x, k: onednn_conv.conv_transpose(x, k, strides, pad))
    got, want = _value_and_grads(mine, x, k, g), _value_and_grads(ref, x, k, g)
    for name, a, b in zip(("y", "dx", "dk"), got, want):
        assert a.shape == b.shape and _rel(a, b) < 1e-5, (name, _rel(a, b))
    hlo = jax.jit(jax.value_and_grad(lambda x, k: jnp.sum(mine(x, k) * g), (0, 1))).lower(x, k).compile().as_text()
    calls = {t: hlo.count(f'custom_call_target="onednn_conv_{t}"') for t in ("fwd", "bwd_data", "bwd_weights")}
    assert calls == ({"fwd": 1, "bwd_data": 1, "bwd_weights": 1} if on_onednn else
                     {"fwd": 0, "bwd_data": 0, "bwd_weights": 0}), calls


@pytest.mark.slow
@pytest.mark.parametrize("name,kwargs,side", [
    ("patchgan", {}, 64), ("vgg_style", {"num_feat": 8}, 128), ("unet_sn", {"num_feat": 8}, 32),
    ("resnet", {"ngf": 8, "n_blocks": 2}, 32), ("unet", {"ngf": 4, "num_downs": 5}, 32),
    ("adain_vgg", {}, 32)])
def test_discriminators_and_translation_nets_reach_onednn(lib_env, name, kwargs, side):
    """The layers built with ``conv_vjp.override_or_lax()`` (the discriminators, the CycleGAN / pix2pix generators,
    AdaIN's encoder) and ``layers.ConvTranspose`` (the generators' upsamplings): with oneDNN configured their plain
    and transposed convolutions -- the 4x4/2 downsamplings included -- are oneDNN custom calls, the output and
    the input gradient equal XLA's within 1e-4 of their scale; with XLA the program is flax's own (no custom
    call)."""
    model = models.build(name, **kwargs)
    x = jnp.asarray(np.random.default_rng(6).random((2, side, side, 3), dtype=np.float32))
    variables = model.init(jax.random.key(0), x)

    def loss(x):
        out = model.apply(variables, x)
        return sum(jnp.sum(jnp.tanh(leaf)) for leaf in jax.tree.leaves(out))  # AdaIN's encoder: a feature dict

    outs, calls = {}, {}
    try:
        for backend in ("xla", "onednn"):
            onednn_conv.configure(backend)
            f = jax.jit(jax.value_and_grad(loss))
            outs[backend] = f(x)
            calls[backend] = f.lower(x).compile().as_text().count('custom_call_target="onednn_conv_')
    finally:
        onednn_conv.configure("xla")
    assert calls["xla"] == 0 and calls["onednn"] >= 2, calls
    for a, b in zip(outs["onednn"], outs["xla"]):
        assert _rel(a, b) < 1e-4, (name, _rel(a, b))


@pytest.mark.slow
def test_scanned_repeated_blocks_on_onednn(lib_env):
    """EDSR's repeated blocks as one ``lax.scan`` (``layers.repeat_blocks``) with every convolution on oneDNN: the
    custom calls sit inside the loop body, and output and parameter gradients equal XLA's up to summation order."""
    model = models.build("edsr", scale=2, num_feat=8, num_blocks=3)
    x = jnp.asarray(np.random.default_rng(4).random((2, 7, 6, 3), np.float32))
    params = model.init(jax.random.key(0), x)["params"]

    def loss(p):
        return jnp.mean(jnp.tanh(model.apply({"params": p}, x)) ** 2)

    with jax.default_matmul_precision("highest"):
        want = jax.value_and_grad(loss)(params)
    with conv_vjp.overridden(onednn_conv.flax_conv_fn(jnp.float32)):
        step = jax.jit(jax.value_and_grad(loss))
        got = step(params)
        hlo = step.lower(params).compile().as_text()
    assert "while" in hlo and hlo.count('custom_call_target="onednn_conv_fwd"') >= 2, "no scan or no oneDNN call"
    assert abs(float(got[0]) - float(want[0])) <= 1e-5 * abs(float(want[0]))
    for a, b in zip(jax.tree.leaves(got[1]), jax.tree.leaves(want[1])):
        assert _rel(a, b) < 1e-4, _rel(a, b)
