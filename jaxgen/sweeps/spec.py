"""Helpers that build a sweep: lists of override dicts (flattened config keys -> values).

A sweep file's ``get_sweep(arg)`` returns ``list[dict]``, e.g.::

    from jaxgen.sweeps import spec as s
    s.product(s.sweep('losses', ['l1', 'mse']), s.sweep('optim.lr', [1e-3, 3e-4]))   # 4 trials
    s.zip(s.sweep('model.num_blocks', [4, 8]), s.sweep('model.num_feat', [32, 64]))  # 2 trials
    s.random_search(8, seed=0, **{'optim.lr': s.log_uniform(1e-4, 1e-2)})           # 8 seeded draws

The same distributions (:class:`Uniform`, :class:`LogUniform`, :class:`IntUniform`, :class:`Choice`) declare an
Optuna search space (``get_search_space(arg) -> {key: distribution}``, see ``jaxgen.sweeps.optuna_search``).
Values are Python scalars (bool/int/float/str) or tuples of them; anything else is a ``ValueError``.
"""

from __future__ import annotations

import builtins
import itertools
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = [
    "Choice",
    "IntUniform",
    "LogUniform",
    "Uniform",
    "check_overrides",
    "choice",
    "int_uniform",
    "log_uniform",
    "product",
    "random_search",
    "sweep",
    "uniform",
    "zip",
]

Overrides = dict[str, Any]
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")
SCALARS = (bool, int, float, str)


def check_value(key: str, value: Any) -> Any:
    """``value`` if it can go on a command line as ``--config.key=value`` (scalar or tuple of scalars)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, list):
        value = tuple(value)
    if isinstance(value, tuple):
        return tuple(check_value(key, v) for v in value)
    if not isinstance(value, SCALARS):
        raise ValueError(f"sweep value for {key!r} is a {type(value).__name__} ({value!r}); "
                         "expected bool, int, float, str or a tuple of them")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"sweep value for {key!r} is {value!r}; expected a finite number")
    return value


def check_overrides(overrides: Any, where: str = "sweep") -> Overrides:
    """One trial's overrides, checked: a dict of dotted config keys (no ``config.`` prefix) to values."""
    if not isinstance(overrides, dict):
        raise ValueError(f"{where}: a trial must be a dict of config keys to values, got {type(overrides).__name__}")
    out = {}
    for key, value in overrides.items():
        if not isinstance(key, str) or not _KEY.fullmatch(key) or key.startswith("config."):
            raise ValueError(f"{where}: bad config key {key!r}; expected a dotted key like 'optim.lr'")
        out[key] = check_value(key, value)
    return out


def sweep(key: str, values: Iterable[Any]) -> list[Overrides]:
    """``[{key: v} for v in values]``."""
    values = list(values)
    if not values:
        raise ValueError(f"sweep({key!r}, ...): no values")
    return [check_overrides({key: v}) for v in values]


def _merge(parts: Sequence[Overrides]) -> Overrides:
    merged: Overrides = {}
    for part in parts:
        clash = set(merged) & set(part)
        if clash:
            raise ValueError(f"the same key is swept twice in one trial: {sorted(clash)}")
        merged.update(part)
    return merged


def product(*sweeps: Sequence[Overrides]) -> list[Overrides]:
    """Every combination (the last sweep varies fastest), each trial the union of one dict from each."""
    return [_merge(combo) for combo in itertools.product(*sweeps)]


def zip(*sweeps: Sequence[Overrides]) -> list[Overrides]:  # noqa: A001 (a sweep helper, as big_vision's)
    """Element-wise union of sweeps of the same length."""
    lengths = {len(s) for s in sweeps}
    if len(lengths) > 1:
        raise ValueError(f"zip of sweeps of different lengths {sorted(len(s) for s in sweeps)}")
    return [_merge(parts) for parts in builtins.zip(*sweeps)]


# ------------------------------------------------------------------------------------------ distributions


def _round(value: float, digits: int) -> float:
    """``value`` rounded to ``digits`` significant digits (readable trial names; exact on the command line)."""
    return float(f"{value:.{digits}g}")


@dataclass(frozen=True)
class Uniform:
    """A float uniform in ``[low, high]``."""

    low: float
    high: float
    digits: int = 4

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"uniform({self.low}, {self.high}): expected low < high")

    def draw(self, rng: np.random.Generator) -> float:
        return _round(rng.uniform(self.low, self.high), self.digits)


@dataclass(frozen=True)
class LogUniform:
    """A float whose log is uniform in ``[log low, log high]`` (``0 < low < high``)."""

    low: float
    high: float
    digits: int = 4

    def __post_init__(self) -> None:
        if not 0 < self.low < self.high:
            raise ValueError(f"log_uniform({self.low}, {self.high}): expected 0 < low < high")

    def draw(self, rng: np.random.Generator) -> float:
        return _round(math.exp(rng.uniform(math.log(self.low), math.log(self.high))), self.digits)


@dataclass(frozen=True)
class IntUniform:
    """An integer uniform in ``[low, high]`` (both included)."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise ValueError(f"int_uniform({self.low}, {self.high}): expected low <= high")

    def draw(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.low, self.high + 1))


@dataclass(frozen=True)
class Choice:
    """One of ``values`` with equal probability."""

    values: tuple

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("choice([]): no values")

    def draw(self, rng: np.random.Generator) -> Any:
        return self.values[int(rng.integers(len(self.values)))]


Distribution = Uniform | LogUniform | IntUniform | Choice


def uniform(low: float, high: float, digits: int = 4) -> Uniform:
    return Uniform(float(low), float(high), digits)


def log_uniform(low: float, high: float, digits: int = 4) -> LogUniform:
    return LogUniform(float(low), float(high), digits)


def int_uniform(low: int, high: int) -> IntUniform:
    return IntUniform(int(low), int(high))


def choice(values: Iterable[Any]) -> Choice:
    return Choice(tuple(check_value("choice", v) for v in values))


def check_space(space: Any, where: str = "search space") -> dict[str, Distribution]:
    if not isinstance(space, dict) or not space:
        raise ValueError(f"{where}: expected a non-empty dict of config keys to distributions")
    for key, dist in space.items():
        check_overrides({key: 0}, where)
        if not isinstance(dist, (Uniform, LogUniform, IntUniform, Choice)):
            raise ValueError(f"{where}: {key!r} is a {type(dist).__name__}; expected uniform/log_uniform/"
                             "int_uniform/choice from jaxgen.sweeps.spec")
    return dict(space)


def random_search(n: int, seed: int = 0, **space: Distribution) -> list[Overrides]:
    """``n`` trials drawn independently from ``space`` (config key -> distribution) with ``numpy``'s
    ``default_rng(seed)``: the same seed gives the same trials. Keys with dots go through ``**{...}``."""
    if n < 1:
        raise ValueError(f"random_search(n={n}): expected n >= 1")
    space = check_space(space, "random_search")
    rng = np.random.default_rng(seed)
    return [check_overrides({key: dist.draw(rng) for key, dist in space.items()}) for _ in range(n)]
