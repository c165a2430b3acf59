"""jaxgen's per-backend XLA defaults: set only what the user has not set, only on CPU, and the tuned train step
computes the same update as the plain one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from jaxgen import xla_setup
from jaxgen.models import conv_vjp, edsr, layers
from tests import conftest
from tests.param_utils import USER_CODEGEN, numpy_params

ROOT = Path(__file__).resolve().parents[1]


def test_configure_process_splits_the_cpu_into_devices():
    # conv_backend "xla": no oneDNN thread count (configure_process's oneDNN cases: tests/test_onednn_conv.py)
    env: dict[str, str] = {}
    assert xla_setup.configure_process(env, cpu_count=2, conv_backend="xla") == {"JAX_NUM_CPU_DEVICES": "2"}
    assert env["JAX_NUM_CPU_DEVICES"] == "2"
    env = {}
    assert xla_setup.configure_process(env, cpu_count=64, conv_backend="xla") == {
        "JAX_NUM_CPU_DEVICES": str(xla_setup.CPU_DEVICES_MAX)}
    assert xla_setup.configure_process({}, cpu_count=1, conv_backend="xla") == {}  # one core: nothing to split


@pytest.mark.parametrize("env", [
    {"JAX_NUM_CPU_DEVICES": "8", "OMP_NUM_THREADS": "2"},
    {"XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAXGEN_CONV_BACKEND": "xla"},
    {"JAXGEN_XLA_DEFAULTS": "0"},
    {"JAXGEN_XLA_DEFAULTS": "off"},
])
def test_configure_process_respects_the_user(env):
    before = dict(env)
    assert xla_setup.configure_process(env, cpu_count=2) == {}
    assert env == before


def test_train_compiler_options_only_on_cpu_and_not_over_user_flags(monkeypatch):
    monkeypatch.setattr(xla_setup, "CPU_TRAIN_OPTIONS", dict(xla_setup.CPU_EIGEN_CONV_OPTIONS, xla_cpu_other="1"))
    assert xla_setup.train_compiler_options("cpu", {}) == xla_setup.CPU_TRAIN_OPTIONS
    assert xla_setup.train_compiler_options("gpu", {}) == {}
    assert xla_setup.train_compiler_options("tpu", {}) == {}
    assert xla_setup.train_compiler_options("cpu", {"JAXGEN_XLA_DEFAULTS": "0"}) == {}
    (key,) = xla_setup.CPU_EIGEN_CONV_OPTIONS
    user = {"XLA_FLAGS": f"--{key}=-individual_convolution --xla_dump_to=/t"}
    assert xla_setup.train_compiler_options("cpu", user) == {"xla_cpu_other": "1"}
    assert xla_setup.user_xla_flags({"XLA_FLAGS": "--a=1  --b --c=x=y"}) == {"a", "b", "c"}


def test_use_conv_vjp_threshold():
    m = xla_setup.CONV_VJP_MAX_BATCH
    assert xla_setup.use_conv_vjp(m - 1, "cpu", {}) is True
    assert xla_setup.use_conv_vjp(m, "cpu", {}) is False
    assert xla_setup.use_conv_vjp(1, "gpu", {}) is False
    assert xla_setup.use_conv_vjp(1, "cpu", {"JAXGEN_XLA_DEFAULTS": "0"}) is False
    try:
        xla_setup.prepare_training(1, "cpu")
        assert conv_vjp.enabled() is xla_setup.use_conv_vjp(1, "cpu")
        xla_setup.prepare_training(m, "gpu")
        assert conv_vjp.enabled() is False
    finally:
        conv_vjp.set_enabled(False)


def _params(model, x):
    return numpy_params(jax.eval_shape(model.init, jax.random.key(0), x)["params"], 0)


def _scans(model, x) -> bool:
    jaxpr = jax.make_jaxpr(jax.grad(lambda p: model.apply({"params": p}, x).sum()))(_params(model, x))
    return "scan" in str(jaxpr)


def test_repeated_blocks_scan_in_a_cpu_train_step_only_with_the_conv_vjp():
    """XLA:CPU runs autodiff's convolution gradients inside a scan's loop body outside its convolution library (a
    scanned EDSR-baseline step at per-device batch 8: 195 s instead of 2.8 s, benchmarks/RESULTS.md), so on CPU
    the blocks unroll unless the conv VJP's gradients are on; other backends and inference keep the scan. A scan
    traced on CPU outside a train step (a step jitted by hand) gives its blocks the conv VJP's gradients."""
    model = edsr.EDSR(scale=2, num_blocks=3, num_feat=8)  # scan_blocks=True by default
    x = jnp.zeros((1, 8, 8, 3))
    m = xla_setup.CONV_VJP_MAX_BATCH
    try:
        assert layers.scan_blocks_enabled() and _scans(model, x)  # before any training: inference scans
        jaxpr = str(jax.make_jaxpr(lambda p: model.apply({"params": p}, x))(_params(model, x)))
        assert not conv_vjp.enabled() and jaxpr.count("custom_vjp_call") == 2  # the block body's two convolutions
        xla_setup.prepare_training(m, "cpu")
        assert not conv_vjp.enabled() and not layers.scan_blocks_enabled() and not _scans(model, x)
        xla_setup.prepare_training(m - 1, "cpu")
        assert conv_vjp.enabled() and layers.scan_blocks_enabled() and _scans(model, x)
        xla_setup.prepare_training(m, "gpu")
        assert layers.scan_blocks_enabled() and _scans(model, x)
        layers.set_scan_blocks(False)
        assert not _scans(edsr.EDSR(scale=2, num_blocks=3, num_feat=8), x)
    finally:
        conv_vjp.set_enabled(False)
        layers.set_scan_blocks(True)


def test_compiler_options_are_accepted_by_this_jax():
    """The option names/values are real XLA options: jit compiles with them (a typo is a compile error)."""
    import jax
    import jax.numpy as jnp

    options = {**xla_setup.CPU_TRAIN_OPTIONS, **xla_setup.CPU_EIGEN_CONV_OPTIONS}
    f = jax.jit(lambda x: x * 2, compiler_options=options)
    assert float(f(jnp.float32(2))) == 4.0
    with pytest.raises(Exception):
        jax.jit(lambda x: x * 2, compiler_options={"xla_cpu_no_such_option": "1"})(jnp.float32(2))


_TUNED_VS_PLAIN = r"""
import json, sys
import numpy as np
from jaxgen import xla_setup
changes = xla_setup.configure_process(cpu_count=2)
import jax, jax.numpy as jnp
from jaxgen.tasks import base_config
from jaxgen.models import conv_vjp
from jaxgen.tasks import get_task
from jaxgen.train import parallel

c = base_config("sr")
c.scale, c.batch_size, c.data.patch_size = 2, 4, 8
c.model.num_blocks, c.model.num_feat = 1, 8
task = get_task("sr")(c)
r = np.random.default_rng(0)
host = {"lr": r.random((4, 8, 8, 3), np.float32), "hr": r.random((4, 16, 16, 3), np.float32)}
start = jax.device_get(jax.jit(task.init)())  # one init for both runs (the steps are compared, not the init)

def run(mesh, **jit_kw):
    repl, bsh = parallel.replicated(mesh), parallel.batch_sharding(mesh)
    state = jax.device_put(start, repl)
    step = jax.jit(task.step, in_shardings=(repl, bsh, repl), out_shardings=(repl, repl), donate_argnums=(0,), **jit_kw)
    for _ in range(2):
        state, m = step(state, parallel.global_batch(host, mesh), {})
    return jax.device_get(state.players["generator"].params), float(m["loss"])

plain_params, plain_loss = run(parallel.make_mesh(jax.devices()[:1]))
mesh = parallel.make_mesh()
opts = xla_setup.prepare_training(c.batch_size // mesh.devices.size)
tuned_params, tuned_loss = run(mesh, compiler_options=opts)
conv_vjp.set_enabled(False)
diff = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(plain_params), jax.tree.leaves(tuned_params)))
print(json.dumps({"changes": changes, "devices": len(jax.devices()), "opts": opts, "vjp": xla_setup.use_conv_vjp(2),
                  "diff": diff, "losses": [plain_loss, tuned_loss]}))
"""


def test_tuned_train_step_equals_plain_step():
    """A fresh process as ``jaxgen train`` sets it up (2 CPU devices, train compile options, conv VJP) takes the
    same two Adam steps as the plain single-device step; max abs param difference at float rounding."""
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_NUM_CPU_DEVICES", "XLA_FLAGS", "JAXGEN_XLA_DEFAULTS")}
    env.update(PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", _TUNED_VS_PLAIN], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["changes"] == {"JAX_NUM_CPU_DEVICES": "2"} and out["devices"] == 2
    assert out["opts"] == xla_setup.CPU_TRAIN_OPTIONS
    assert out["vjp"] is True
    # Adam normalises updates: a flipped gradient sign or a wrong weight gradient moves params by ~lr = 1e-4.
    assert out["diff"] < 2e-6, out
    assert abs(out["losses"][0] - out["losses"][1]) < 1e-5, out


def test_network_names_from_task_architectures():
    from jaxgen.config import load_config
    from jaxgen.tasks import get_task

    arch = {"generator": {"name": "transformer_net", "channels": 32}, "discriminator": {"name": "patchgan", "n": 3},
            "list": [{"name": "a"}, {"nested": {"name": "b"}}], "not_a_name": "x"}
    assert xla_setup.network_names(arch) == {"transformer_net", "patchgan", "a", "b"}
    c = load_config(str(ROOT / "configs/fast_style.py:tiny"))
    assert xla_setup.network_names(get_task(c.task).architecture(c)) == {"transformer_net"}
    c = load_config(str(ROOT / "configs/adain.py:tiny"))
    assert xla_setup.network_names(get_task(c.task).architecture(c)) == {"adain_decoder"}


def test_eigen_convolutions_follow_the_measured_tables(monkeypatch):
    eigen = xla_setup.CPU_EIGEN_CONV_OPTIONS
    monkeypatch.setattr(xla_setup, "CPU_EIGEN_CONV_TRAIN", frozenset({"transformer_net"}))
    monkeypatch.setattr(xla_setup, "CPU_EIGEN_CONV_INFERENCE", frozenset({"gatys"}))
    assert xla_setup.train_compiler_options("cpu", {}, networks={"transformer_net", "patchgan"}) == eigen
    assert xla_setup.train_compiler_options("cpu", {}, networks={"edsr"}) == {}
    # the option picks XLA's convolution library: with oneDNN's convolutions it would only slow XLA's reductions
    assert xla_setup.train_compiler_options("cpu", {}, networks={"transformer_net"}, conv_backend="onednn") == {}
    assert xla_setup.train_compiler_options("cpu", {}, networks={"transformer_net"}, conv_backend="xla") == eigen
    assert xla_setup.train_compiler_options("gpu", {}, networks={"transformer_net"}) == {}
    assert xla_setup.train_compiler_options("cpu", {"JAXGEN_XLA_DEFAULTS": "0"}, networks={"transformer_net"}) == {}
    (key,) = eigen
    assert xla_setup.train_compiler_options("cpu", {"XLA_FLAGS": f"--{key}=dot"}, networks={"transformer_net"}) == {}
    assert xla_setup.inference_compiler_options("gatys", "cpu", {}) == eigen  # the suite's process: XLA's
    assert xla_setup.inference_compiler_options("gatys", "cpu", {}, conv_backend="onednn") == {}
    assert xla_setup.inference_compiler_options("gatys", "cpu", {}, conv_backend="xla") == eigen
    assert xla_setup.inference_compiler_options("edsr", "cpu", {}) == {}
    assert xla_setup.inference_compiler_options("gatys", "gpu", {}) == {}
    try:
        assert xla_setup.prepare_training(8, "cpu", networks=["transformer_net"]) == eigen
    finally:
        conv_vjp.set_enabled(False)


def test_the_measured_tables_hold_the_measured_networks():
    """benchmarks/conv_backends.py (2026-11-30, quiet 2-core EPYC): Eigen won for these and lost for EDSR/RRDBNet."""
    assert {"transformer_net", "adain_decoder"} <= xla_setup.CPU_EIGEN_CONV_TRAIN
    assert {"transformer_net"} <= xla_setup.CPU_EIGEN_CONV_INFERENCE
    assert not {"edsr", "rrdbnet", "srvgg_compact"} & (xla_setup.CPU_EIGEN_CONV_TRAIN | xla_setup.CPU_EIGEN_CONV_INFERENCE)


def test_only_training_commands_and_tiled_upscales_split_the_cpu(monkeypatch):
    from jaxgen import cli

    calls = []
    monkeypatch.setattr(xla_setup, "configure_process", lambda *a, **k: calls.append(1) or {})
    cases = [(["upscale", "-h"], False), (["eval", "-h"], False), (["stylize", "-h"], False),
             (["translate", "-h"], False), (["train", "-h"], True), (["upscale", "--tile", "64", "-h"], True),
             (["upscale", "--tile=0", "-h"], False), (["eval", "--tile", "64", "-h"], False)]
    for args, split in cases:
        calls.clear()
        with pytest.raises(SystemExit) as exc:
            cli.main(["jaxgen", *args])
        assert exc.value.code == 0
        assert calls == [1] * split, args
    assert not xla_setup.splits_host("upscale", ["--tile", "x"])  # not split; argparse then says what is wrong
    assert set(xla_setup.SPLIT_HOST_COMMANDS) == {"train", "demo", "sweep"}
    assert xla_setup.splits_host("upscale", ["a.png", "--tile=128"])
    assert not xla_setup.splits_host("upscale", ["a.png", "-o", "b.png"])


def test_eigen_convolutions_compute_the_style_network_gradient_of_the_default():
    """The fast-style network's layers (reflection-padded 9x9 conv with 3 input channels, stride-2 3x3, instance
    norm, 9x9 conv to 3 channels) compiled with Eigen convolutions (what jaxgen train picks for it on CPU): loss and
    gradients equal the default-compiled ones up to float32 summation order (1e-4 of each leaf's largest entry plus
    1e-6 of the largest entry overall: a conv bias followed by instance norm has a zero gradient, i.e. noise)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxgen.models.transformer_net import ReflectConv, instance_norm

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            y = nn.relu(instance_norm("in1", jnp.float32, jnp.float32)(ReflectConv(6, 9, name="c1")(x * 255.0)))
            y = nn.relu(ReflectConv(8, 3, 2, name="c2")(y))
            return ReflectConv(3, 9, upsample=2, name="c3")(y) / 255.0

    model = Net()
    r = np.random.default_rng(0)
    x, y = jnp.asarray(r.random((2, 16, 16, 3), np.float32)), jnp.asarray(r.random((2, 16, 16, 3), np.float32))
    # numpy-drawn values for the init's shapes (the gradients are compared, not the init: no init program compiled);
    # instance-norm scales near 1 as initialised
    params = numpy_params(jax.eval_shape(model.init, jax.random.key(0), x)["params"], 0, leaves={"scale": (1.0, 0.1)})

    def loss(w):
        return jnp.mean(jnp.abs(model.apply({"params": w}, x) - y))

    out = {name: jax.jit(jax.value_and_grad(loss), compiler_options=options)(params)
           for name, options in (("default", None), ("eigen", xla_setup.CPU_EIGEN_CONV_OPTIONS))}
    assert abs(float(out["default"][0]) - float(out["eigen"][0])) < 1e-6
    leaves = [(np.asarray(a), np.asarray(b))  # compared in NumPy: no eager XLA op per leaf
              for a, b in zip(jax.tree.leaves(out["default"][1]), jax.tree.leaves(out["eigen"][1]))]
    overall = max(float(np.max(np.abs(a))) for a, _ in leaves)
    assert overall > 0
    for a, b in leaves:
        bound = 1e-4 * float(np.max(np.abs(a))) + 1e-6 * overall
        assert float(np.max(np.abs(a - b))) <= bound, (float(np.max(np.abs(a - b))), bound)


def test_compilation_cache_dir_settings(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    default = xla_setup.compilation_cache_dir(env)
    assert default.startswith(str(tmp_path / "jaxgen" / "xla")) and xla_setup.cpu_key() in default
    for off in ("0", "off", "false", "no"):
        assert xla_setup.compilation_cache_dir({xla_setup.CACHE_ENV: off}) is None
    assert xla_setup.compilation_cache_dir({xla_setup.CACHE_ENV: str(tmp_path / "c")}) == str(tmp_path / "c")
    assert xla_setup.compilation_cache_dir({**env, xla_setup.CACHE_ENV: "1"}) == default
    user = {"JAX_COMPILATION_CACHE_DIR": "/mine"}
    assert xla_setup.configure_compilation_cache(user) == {} and user == {"JAX_COMPILATION_CACHE_DIR": "/mine"}
    assert xla_setup.configure_compilation_cache({xla_setup.CACHE_ENV: "0"}) == {}
    set_ = xla_setup.configure_compilation_cache(dict(env))
    assert set_["JAX_COMPILATION_CACHE_DIR"] == default


def test_cpu_key_separates_instruction_sets():
    """Executables compiled for one ISA must never be loaded on another: the cache folder's key follows the
    processor model and its flags (in any order), nothing else."""
    avx512 = "processor: 0\nmodel name: Intel Xeon\nflags: sse avx2 avx512f amx_bf16\nprocessor: 1\nflags: x\n"
    reordered = "model name: Intel Xeon\nflags: amx_bf16 avx512f sse avx2\n"
    zen = "model name: AMD EPYC 9R14\nflags: sse avx2 avx512f\n"
    assert xla_setup.cpu_key(avx512) == xla_setup.cpu_key(reordered)
    assert len({xla_setup.cpu_key(avx512), xla_setup.cpu_key(zen), xla_setup.cpu_key("model name: Intel Xeon\n"
                                                                                      "flags: sse avx2\n")}) == 3


def test_second_process_compiles_nothing(tmp_path):
    """With the persistent cache on (as every jaxgen command sets it), a second process loads the first one's
    executable instead of compiling it."""
    script = (
        "import jax, jax.numpy as jnp\n"
        "hits = []\n"
        "jax.monitoring.register_event_listener(lambda e, **k: hits.append(e) if 'cache_hits' in e else None)\n"
        "f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum() + jnp.sin(x).mean())\n"
        "print(float(f(jnp.ones((32, 32)))), len(hits))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION")}
    env.update({xla_setup.CACHE_ENV: str(tmp_path / "cache")})
    xla_setup.configure_compilation_cache(env)
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
            for _ in range(2)]
    (v1, hits1), (v2, hits2) = (r.stdout.split() for r in runs)
    assert v1 == v2 and int(hits1) == 0 and int(hits2) >= 1
    assert any((tmp_path / "cache").iterdir())


def test_cli_turns_the_cache_on_and_off(monkeypatch, tmp_path):
    from jaxgen import cli

    for argv, expect in ((["jaxgen", "upscale", "-h"], True), (["jaxgen", "--no-compile-cache", "upscale", "-h"], False)):
        monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
        monkeypatch.delenv(xla_setup.CACHE_ENV, raising=False)
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        with pytest.raises(SystemExit):
            cli.main(argv)
        assert ("JAX_COMPILATION_CACHE_DIR" in os.environ) == expect, argv
        monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
        monkeypatch.delenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", raising=False)


def test_the_suites_cache_is_kept_per_cpu_kind_and_bounded(tmp_path):
    """tests/conftest.py: the suite's XLA cache sits beside jaxgen's own, under the same jaxlib + CPU key (never
    shared between CPU kinds), is bounded, and this session (and its subprocesses, through the environment) uses it;
    ``session`` gives a fresh folder, a path is taken as it is."""
    suite = Path(conftest.suite_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}))
    user = Path(xla_setup.compilation_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}))
    assert suite.parent == tmp_path / "jaxgen" / "xla-tests" and suite.name == user.name
    assert xla_setup.cpu_key() in suite.name
    fresh = Path(conftest.suite_cache_dir({conftest.TEST_CACHE_ENV: "session"}))
    assert fresh.is_dir() and not any(fresh.iterdir()) and fresh != suite
    assert conftest.suite_cache_dir({conftest.TEST_CACHE_ENV: str(tmp_path / "x")}) == str(tmp_path / "x")
    if os.environ.get(conftest.TEST_CACHE_ENV) != "0":
        assert jax.config.jax_compilation_cache_dir == os.environ[conftest.CACHE_ENV]
        # bounded by prune_cache at the start of a run, not by JAX's per-write eviction (a scan of the whole folder)
        assert jax.config.jax_compilation_cache_max_size == -1 and "JAX_COMPILATION_CACHE_MAX_SIZE" not in os.environ


def test_the_suites_cache_is_pruned_oldest_written_first(tmp_path):
    """conftest.prune_cache: entries (``KEY-cache`` with its ``KEY-atime``) go oldest-written first until the rest
    fits the bound; other files and a folder already within the bound are left alone."""
    for i, size in enumerate([300, 100, 200, 50]):  # written in this order: k0 oldest
        f = tmp_path / f"k{i}-cache"
        f.write_bytes(b"x" * size)
        (tmp_path / f"k{i}-atime").write_bytes(b"t")
        os.utime(f, ns=(10**18 + i * 10**9, 10**18 + i * 10**9))
    (tmp_path / "lockfile").write_bytes(b"")
    assert conftest.prune_cache(tmp_path, max_bytes=650) == []  # 650 bytes: fits
    assert conftest.prune_cache(tmp_path, max_bytes=260) == ["k0", "k1"]  # 650 -> 350 -> 250
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k2-atime", "k2-cache", "k3-atime", "k3-cache", "lockfile"]
    assert conftest.prune_cache(tmp_path, max_bytes=0) == ["k2", "k3"]


def test_the_suites_codegen_flags_keep_the_users_and_reach_this_process():
    """tests/conftest.py: the everyday suite compiles at -O0 with the classic emitters (XLA_FLAGS, so eager ops
    and subprocesses too); a flag the user set keeps its value; ``JAXGEN_TEST_CODEGEN=default`` adds nothing; and
    the override the fidelity tests use (param_utils.USER_CODEGEN) really is XLA's default codegen: a small conv
    net's loss compiled with it is the one a process without the suite's flags computes, bit for bit."""
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=2"}
    conftest.add_test_xla_flags(env)
    assert env["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=2",
                                        "--xla_backend_optimization_level=2", "--xla_cpu_use_fusion_emitters=false"]
    conftest.add_test_xla_flags(env)  # idempotent
    assert env["XLA_FLAGS"].count("fusion_emitters") == 1
    off = {conftest.TEST_CODEGEN_ENV: "default"}
    conftest.add_test_xla_flags(off)
    assert "XLA_FLAGS" not in off
    script = ("import jax, jax.numpy as jnp, numpy as np, sys\n"  # inputs from numpy and one program: no eager op
              "k = (np.arange(3 * 3 * 4 * 4, dtype=np.float32).reshape(3, 3, 4, 4) / 97 - 0.7).astype(np.float32)\n"
              "x = np.sin(np.arange(2 * 12 * 12 * 4, dtype=np.float32)).reshape(2, 12, 12, 4)\n"
              "a = np.cos(np.arange(12 * 12 * 4, dtype=np.float32)).reshape(12, 12, 4)\n"
              "def loss(k):\n"
              "    y = x\n"
              "    for _ in range(3):\n"
              "        y = jnp.tanh(jax.lax.conv_general_dilated(y, k, (1, 1), 'SAME',\n"
              "                     dimension_numbers=('NHWC', 'HWIO', 'NHWC')) * a + y)\n"
              "    return jnp.mean(jnp.exp(y) * y + a * y)\n"
              "opts = eval(sys.argv[1])\n"
              "print(repr(float(jax.jit(lambda k: jax.grad(loss)(k).sum(), compiler_options=opts)(k))))\n")
    suite_env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", conftest.TEST_CODEGEN_ENV)}
    suite_env["JAX_PLATFORMS"] = "cpu"
    conftest.add_test_xla_flags(suite_env)
    plain_env = {k: v for k, v in suite_env.items() if k not in ("XLA_FLAGS", conftest.CACHE_ENV)}

    def run(environ, opts):
        return subprocess.run([sys.executable, "-c", script, repr(opts)], env=environ, capture_output=True,
                              text=True, check=True, timeout=120).stdout.strip()

    default = run(plain_env, None)
    assert run(suite_env, USER_CODEGEN) == default
    assert run(suite_env, None) != default  # the suite's codegen is in effect (else this test checks nothing)


def test_jemalloc_environ_only_for_training_commands_where_installed_and_wanted(monkeypatch):
    """A training command runs again under jemalloc (its freed 478 MB temporaries are not faulted in afresh every
    step) -- with jaxgen's MALLOC_CONF unless the user set one, after the user's own preload; never for another
    command, never twice (already preloaded), never when opted out or where no libjemalloc is found."""
    monkeypatch.setattr(sys, "platform", "linux")
    found = lambda name: "libjemalloc.so.2" if name == "jemalloc" else None  # noqa: E731
    env = xla_setup.jemalloc_environ("train", {"PATH": "/bin"}, found)
    assert env == {"PATH": "/bin", "LD_PRELOAD": "libjemalloc.so.2", "MALLOC_CONF": xla_setup.JEMALLOC_CONF}
    assert "oversize_threshold:0" in xla_setup.JEMALLOC_CONF  # without it jemalloc purges big blocks at once
    env = xla_setup.jemalloc_environ("sweep", {"LD_PRELOAD": "mine.so", "MALLOC_CONF": "narenas:1"}, found)
    assert env["LD_PRELOAD"] == "libjemalloc.so.2 mine.so" and env["MALLOC_CONF"] == "narenas:1"
    assert set(xla_setup.SPLIT_HOST_COMMANDS) == {"train", "demo", "sweep"}
    for command, environ in [("upscale", {}), ("evaluate", {}), ("train", {"JAXGEN_MALLOC": "system"}),
                             ("train", {"JAXGEN_XLA_DEFAULTS": "0"}), ("train", {"LD_PRELOAD": "/x/libjemalloc.so"})]:
        assert xla_setup.jemalloc_environ(command, environ, found) is None, (command, environ)
    assert xla_setup.jemalloc_environ("train", {}, lambda name: None) is None
    # the environment itself, whatever the command (step_memory.py --malloc jemalloc asks for it directly)
    assert xla_setup.jemalloc_preloaded({"JAXGEN_MALLOC": "system"}, found) == {
        "JAXGEN_MALLOC": "system", "LD_PRELOAD": "libjemalloc.so.2", "MALLOC_CONF": xla_setup.JEMALLOC_CONF}
    assert xla_setup.jemalloc_preloaded({}, lambda name: None) is None
    monkeypatch.setattr(sys, "platform", "darwin")
    assert xla_setup.jemalloc_environ("train", {}, found) is None


def test_the_jaxgen_process_runs_a_training_command_again_under_jemalloc(monkeypatch):
    """``cli.main()`` of the jaxgen process (argv from the command line) replaces itself by ``python -m jaxgen``
    with the same arguments and jemalloc_environ's environment; an in-process caller's ``main([...])`` never does."""
    from jaxgen import cli

    calls = []

    def execve(path, args, env):
        calls.append((path, args, env))
        raise SystemExit(0)

    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.setattr(xla_setup, "jemalloc_environ", lambda command, *a: {"LD_PRELOAD": "j.so"}
                        if command == "train" else None)
    monkeypatch.setattr(sys, "argv", ["jaxgen", "--no-compile-cache", "train", "--config", "c.py"])
    with pytest.raises(SystemExit):
        cli.main()
    assert calls == [(sys.executable, [sys.executable, "-m", "jaxgen", "--no-compile-cache", "train", "--config",
                                       "c.py"], {"LD_PRELOAD": "j.so"})]
    with pytest.raises(SystemExit):  # argparse's --help: the command ran in this process
        cli.main(["jaxgen", "train", "--help"])
    assert len(calls) == 1, calls
