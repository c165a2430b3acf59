"""Shared fixtures, and one persistent XLA compilation cache for the whole test session."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# The suite's XLA:CPU code generation, set before JAX starts a backend (XLA reads XLA_FLAGS once) and inherited
# by the xdist workers and the subprocesses: LLVM -O0 and XLA's classic elemental emitters instead of the MLIR
# fusion emitters. Most test programs are tiny and run once, so compiling is most of their cost: a 60-op batch
# of tiny programs compiles in 15 ms median each instead of 48 ms, a small conv net's train step in 0.26 s
# instead of 0.70 s, and a machine's first `make test` (an empty compilation cache) takes ~30% less CPU
# (benchmarks/RESULTS.md, "The test suite's codegen"). Results differ from XLA's default codegen in the last bits
# (no fused multiply-adds), so the checks that are about what a user's run computes bit for bit, or that
# compare with the official code's float32 spread, compile with XLA's defaults (tests/param_utils.py's
# USER_CODEGEN: the init equalities between program layouts, the chaotic CycleGAN parity golden; every parity
# golden again in the slow tier: tests/test_training_parity.py). JAXGEN_TEST_CODEGEN=default runs the whole suite
# with XLA's defaults (CI's `make test-slow` tier does).
TEST_CODEGEN_ENV = "JAXGEN_TEST_CODEGEN"
TEST_XLA_FLAGS = ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false")


# The suite trains with XLA's convolutions wherever it runs: config.conv_backend's default "auto" would take
# oneDNN's on the CPUs where jaxgen measured them faster (xla_setup.ONEDNN_TRAIN_CPU_FLAGS), so the same test would
# check a different program on such a CPU than on another. The oneDNN backend and "auto" have their own tests
# (tests/test_onednn_conv.py); JAXGEN_CONV_BACKEND=auto in the environment runs the suite as users' runs go.
os.environ.setdefault("JAXGEN_CONV_BACKEND", "xla")


def add_test_xla_flags(environ=os.environ) -> None:
    """Append :data:`TEST_XLA_FLAGS` to ``environ['XLA_FLAGS']`` (flags the user set there win), unless
    ``JAXGEN_TEST_CODEGEN=default``."""
    if environ.get(TEST_CODEGEN_ENV, "").strip() == "default":
        return
    current = environ.get("XLA_FLAGS", "").split()
    names = {token.split("=", 1)[0] for token in current}
    environ["XLA_FLAGS"] = " ".join(current + [f for f in TEST_XLA_FLAGS if f.split("=", 1)[0] not in names])


def without_test_xla_flags(flags: str) -> str:
    """``XLA_FLAGS`` less :data:`TEST_XLA_FLAGS`: for a subprocess that must compile as a user's run does (a
    benchmark whose numbers and variants are the check)."""
    return " ".join(token for token in flags.split() if token not in TEST_XLA_FLAGS)


add_test_xla_flags()

import jax  # noqa: E402  (after XLA_FLAGS: see above)
import pytest  # noqa: E402

from jaxgen import xla_setup  # noqa: E402
from jaxgen.models import conv_vjp, layers  # noqa: E402

# The suite's persistent XLA compilation cache, inherited (environment) by the xdist workers and every CLI /
# multi-process subprocess the tests start, so a program compiled once (a tiny config's train step, a pretrained
# model's forward) is loaded, not compiled again, by the next test, process or `make test`. It only saves time:
# JAX's cache key covers the program, the devices, the compile options, XLA_FLAGS and the jaxlib version, and the
# folder is keyed like jaxgen's own cache by the CPU model and ISA flags (xla_setup.compilation_cache_dir), so
# code compiled for one CPU kind is never loaded on another. Where, by JAXGEN_TEST_XLA_CACHE:
#   unset / 1   ~/.cache/jaxgen/xla-tests/<jaxlib>-<machine>-<CPU key> ($XDG_CACHE_HOME honoured), kept between
#               runs and bounded to TEST_CACHE_MAX_BYTES: the controller deletes the oldest-written entries at the
#               start of a session (prune_cache). Not JAX's own bound (jax_compilation_cache_max_size): with it,
#               every cache write lists, stats and reads the access time of every entry under a lock (0.9 s at
#               5,000 entries here), so a cold run of ~2,500 compiles paid for a quadratic scan.
#   session     a fresh temp folder for this session, removed at its end (a cold run: what CI's first run sees)
#   0           off (measuring what the cache saves)
#   PATH        that folder, kept
CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"
TEST_CACHE_ENV = "JAXGEN_TEST_XLA_CACHE"
TEST_CACHE_MAX_BYTES = 2 << 30
_OWNED_CACHE: list[str] = []


def suite_cache_dir(environ=os.environ) -> str:
    """The folder :func:`pytest_configure` gives JAX (see above); ``session`` makes a fresh temp folder."""
    setting = environ.get(TEST_CACHE_ENV, "").strip()
    if setting == "session":
        _OWNED_CACHE.append(tempfile.mkdtemp(prefix="jaxgen_test_xla_cache_"))
        return _OWNED_CACHE[-1]
    if setting and setting != "1":
        return setting
    user = Path(xla_setup.compilation_cache_dir({"XDG_CACHE_HOME": environ.get("XDG_CACHE_HOME", "")}))
    return str(user.parent.parent / "xla-tests" / user.name)


def prune_cache(path: str | Path, max_bytes: int = TEST_CACHE_MAX_BYTES) -> list[str]:
    """Delete the oldest-written entries of JAX's cache folder ``path`` (``*-cache`` files, and their
    ``*-atime`` files) until the rest fits in ``max_bytes``; returns the deleted entries' keys, oldest first."""
    entries = []
    for f in Path(path).glob("*-cache"):
        try:
            st = f.stat()
        except FileNotFoundError:  # removed meanwhile
            continue
        entries.append((st.st_mtime_ns, f.name, st.st_size, f))
    total, deleted = sum(e[2] for e in entries), []
    for _, name, size, f in sorted(entries):
        if total <= max_bytes:
            break
        f.unlink(missing_ok=True)
        f.with_name(name.removesuffix("-cache") + "-atime").unlink(missing_ok=True)
        total -= size
        deleted.append(name.removesuffix("-cache"))
    return deleted


def pytest_configure(config):
    if os.environ.get(TEST_CACHE_ENV) == "0":
        return
    if "PYTEST_XDIST_WORKER" not in os.environ or CACHE_ENV not in os.environ:  # the controller picks the folder
        path = suite_cache_dir()
        try:
            Path(path).mkdir(parents=True, exist_ok=True)
            prune_cache(path)
        except OSError:  # an unwritable home (some CI runners): a session folder, as `session`
            path = suite_cache_dir({TEST_CACHE_ENV: "session"})
        os.environ[CACHE_ENV] = path
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    os.environ.pop("JAX_COMPILATION_CACHE_MAX_SIZE", None)  # no per-write eviction (above)
    jax.config.update("jax_compilation_cache_dir", os.environ[CACHE_ENV])  # in case JAX read its env already
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", -1)


def pytest_unconfigure(config):
    for path in _OWNED_CACHE:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def trace_switches():
    """Every test starts with the process-wide trace-time switches at their defaults (conv VJP off, no conv
    override, block scans on): a training run in this process (``train``, ``prepare_training``) sets them for its
    step and leaves them."""
    conv_vjp.set_enabled(False)
    conv_vjp.set_override(None)  # the opt-in oneDNN convolutions (onednn_conv.configure) off
    layers.set_scan_blocks(True)
    yield


SHARED_DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repo (public benchmark images); skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def isolated_data_cache(tmp_path_factory) -> Path:
    """Prepared datasets (TFDS ArrayRecord caches, the sample photos) go to a per-session temp dir, inherited
    by CLI subprocesses, instead of ``~/.cache/jaxgen``."""
    path = tmp_path_factory.mktemp("jaxgen_data")
    previous = os.environ.get("JAXGEN_DATA_DIR")
    os.environ["JAXGEN_DATA_DIR"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("JAXGEN_DATA_DIR", None)
    else:
        os.environ["JAXGEN_DATA_DIR"] = previous
