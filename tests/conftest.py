"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    import os

    path = tmp_path_factory.mktemp("jaxgen_data")
    previous = os.environ.get("JAXGEN_DATA_DIR")
    os.environ["JAXGEN_DATA_DIR"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("JAXGEN_DATA_DIR", None)
    else:
        os.environ["JAXGEN_DATA_DIR"] = previous
