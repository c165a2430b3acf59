"""Shared fixtures, and one persistent XLA compilation cache for the whole test session."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import jax
import pytest

from jaxgen.models import conv_vjp, layers

# The session's persistent XLA compilation cache: a fresh temp folder made by the controlling pytest process and
# inherited (environment) by the xdist workers and every CLI / multi-process subprocess the tests start, so a
# program compiled once (a tiny config's train step, a pretrained model's forward) is loaded, not compiled again,
# by the next test or process. It only saves time: the cache key covers the program, the devices and the compile
# options, and the folder is removed when the session ends. JAXGEN_TEST_XLA_CACHE=0 turns it off.
CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"
_OWNED_CACHE: list[str] = []


def pytest_configure(config):
    if os.environ.get("JAXGEN_TEST_XLA_CACHE") == "0":  # measuring what the cache saves
        return
    if "PYTEST_XDIST_WORKER" not in os.environ or CACHE_ENV not in os.environ:  # the controller: a fresh cache
        _OWNED_CACHE.append(tempfile.mkdtemp(prefix="jaxgen_test_xla_cache_"))
        os.environ[CACHE_ENV] = _OWNED_CACHE[0]
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    jax.config.update("jax_compilation_cache_dir", os.environ[CACHE_ENV])  # in case JAX read its env already
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_unconfigure(config):
    for path in _OWNED_CACHE:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def trace_switches():
    """Every test starts with the process-wide trace-time switches at their defaults (conv VJP off, block scans
    on): a training run in this process (``train``, ``prepare_training``) sets them for its step and leaves them."""
    conv_vjp.set_enabled(False)
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
