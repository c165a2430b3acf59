"""Loading a sweep file (``experiments/*.py``).

A sweep file defines:

- ``BASE_CONFIG = 'configs/edsr.py:x2,tiny'``: the ``--config`` spec every trial starts from (a relative path is
  looked up from the working directory, then from the folders above the sweep file);
- ``get_sweep(arg=None) -> list[dict]``: one dict of flattened config keys -> values per trial (grid search);
- optionally ``BASE_OVERRIDES = {key: value}``: applied to every trial, not part of the trial names;
- optionally ``get_search_space(arg=None) -> {key: distribution}`` (``jaxgen.sweeps.spec``) for ``--search optuna``;
- optionally ``METRIC = 'val_psnr'`` and ``MODE = 'max'``: the metric that ranks trials (and Optuna's objective).

``arg`` is the text after a colon: ``jaxgen sweep experiments/lr_vs_loss.py:quick``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from jaxgen.config import exec_python_file
from jaxgen.sweeps import naming, spec


@dataclass
class Trial:
    """One run of a sweep: its folder name and overrides (``index``: position in the sweep file's list)."""

    name: str
    overrides: dict[str, Any]
    index: int = 0


@dataclass
class SweepFile:
    path: Path
    arg: str | None
    base_config: str  # absolute path + ':variants'
    base_overrides: dict[str, Any]
    metric: str = "val_psnr"
    mode: str = "max"
    get_sweep: Callable[..., Any] | None = None
    get_search_space: Callable[..., Any] | None = None
    doc: str = ""

    def trials(self) -> list[Trial]:
        """The grid: ``get_sweep(arg)`` checked, named, duplicates refused."""
        if self.get_sweep is None:
            raise ValueError(f"{self.path}: no get_sweep(arg) function (needed for a grid sweep)")
        raw = self.get_sweep(self.arg)
        if not isinstance(raw, (list, tuple)) or not raw:
            raise ValueError(f"{self.path}: get_sweep() returned {type(raw).__name__}; expected a non-empty list of dicts")
        trials, seen = [], {}
        for i, overrides in enumerate(raw):
            overrides = spec.check_overrides(overrides, f"{self.path}: trial {i}")
            clash = set(overrides) & set(self.base_overrides)
            if clash:
                raise ValueError(f"{self.path}: trial {i} sets {sorted(clash)}, already in BASE_OVERRIDES")
            name = naming.trial_name(overrides)
            if name in seen:
                raise ValueError(f"{self.path}: trials {seen[name]} and {i} are the same ({name})")
            seen[name] = i
            trials.append(Trial(name, overrides, i))
        return trials

    def search_space(self) -> dict[str, spec.Distribution]:
        if self.get_search_space is None:
            raise ValueError(f"{self.path}: no get_search_space(arg) function (needed for --search optuna)")
        space = spec.check_space(self.get_search_space(self.arg), f"{self.path}: get_search_space()")
        clash = set(space) & set(self.base_overrides)
        if clash:
            raise ValueError(f"{self.path}: the search space sets {sorted(clash)}, already in BASE_OVERRIDES")
        return space

    def definition(self) -> dict[str, Any]:
        """What must stay the same for a rerun to resume a sweep folder (JSON-able)."""
        return {"base_config": self.base_config,
                "base_overrides": {k: naming.format_value(v) for k, v in self.base_overrides.items()}}


def resolve_config_spec(config_spec: str, sweep_path: Path) -> str:
    """``'configs/edsr.py:x2'`` -> ``'/abs/configs/edsr.py:x2'`` (cwd first, then the folders above the file)."""
    path, sep, arg = config_spec.partition(":")
    candidates = [Path(path)] if Path(path).is_absolute() else (
        [Path.cwd() / path] + [parent / path for parent in sweep_path.resolve().parents])
    for candidate in candidates:
        if candidate.is_file():
            return f"{candidate.resolve()}{sep}{arg}"
    raise ValueError(f"{sweep_path}: BASE_CONFIG file {path!r} not found (from the working directory or above the sweep file)")


def load_sweep_file(spec_text: str) -> SweepFile:
    """``'experiments/lr_vs_loss.py[:arg]'`` -> :class:`SweepFile` (a missing file or attribute: ``ValueError``)."""
    path_text, _, arg = spec_text.partition(":")
    path = Path(path_text)
    module = exec_python_file(path_text, "sweep")
    base = getattr(module, "BASE_CONFIG", None)
    if not isinstance(base, str) or not base:
        raise ValueError(f"sweep file {path_text!r} has no BASE_CONFIG = 'configs/FILE.py:variants' string")
    get_sweep = getattr(module, "get_sweep", None)
    get_space = getattr(module, "get_search_space", None)
    if get_sweep is None and get_space is None:
        raise ValueError(f"sweep file {path_text!r} defines neither get_sweep(arg) nor get_search_space(arg)")
    base_overrides = spec.check_overrides(dict(getattr(module, "BASE_OVERRIDES", {}) or {}), f"{path_text}: BASE_OVERRIDES")
    mode = getattr(module, "MODE", "max")
    if mode not in ("max", "min"):
        raise ValueError(f"sweep file {path_text!r}: MODE={mode!r}; expected 'max' or 'min'")
    return SweepFile(
        path=path.resolve(), arg=arg or None, base_config=resolve_config_spec(base, path), base_overrides=base_overrides,
        metric=str(getattr(module, "METRIC", "val_psnr")), mode=mode, get_sweep=get_sweep,
        get_search_space=get_space, doc=(module.__doc__ or "").strip(),
    )
