"""Training-parity harness: the plug-in interface, the comparison and the goldens (issue 17).

A trainer ``NAME`` is two files in ``tools/parity/``, discovered by ``run.py`` (nothing else to register):

``trainer_NAME.py`` (runs in jaxgen's venv; never imports torch) exposes

* ``make_case(steps: int, seed: int) -> dict[str, np.ndarray | scalar]``: everything both sides need, as a flat
  ``{key: array}`` map saved as one ``.npz`` (keys use ``/``; scalars become 0-d arrays). Conventions:

  - ``hp/<name>``: hyper-parameters (learning rates, loss weights, betas, milestones as an int array, ...);
  - ``init/<player>/<torch state-dict key>``: the initial weights, made by jaxgen (``task.init()``) and exported
    in the official PyTorch module's naming and layout (OIHW convs, ``[out, in]`` linears, BatchNorm running
    stats included), so ``load_state_dict(strict=True)`` takes them;
  - ``batch/<name>``: ``[steps, B, H, W, C]`` float32 NHWC, one slice per step (the torch side transposes);
  - ``frozen/<...>``: frozen networks (e.g. the perceptual VGG); big ones may be left out of the goldens (below).

* ``run_jax(case) -> {"losses": {term: np.ndarray[steps]}, "params": {name: np.ndarray}}``: runs jaxgen's task
  (``jaxgen.tasks.get_task(name)(config)``, ``.init()`` with the case's weights put in, ``.step``) for ``steps``
  steps on the case's batches; ``losses`` are the per-step values of every loss term (the names the torch side
  uses), ``params`` the final weights exported to the torch naming, prefixed ``<player>/`` (e.g.
  ``generator/conv_first.weight``, ``generator_ema/...``, ``discriminator/bn0_1.running_mean``).

* optional ``GOLDEN_DROP: tuple[str, ...]`` (case-key prefixes not stored in the golden, e.g. ``('frozen/',)``)
  and ``restore_case(case) -> case`` (re-creates them deterministically from what is stored);
  optional ``NOISE_FLOOR = 'float64'``: measure the floor (below) as the torch side in float64 on the same case
  (its script takes ``--dtype float64``) instead of the 1e-7 weight perturbation -- the official code's own
  float32 error, for a case where that perturbation starts diverging later than float32 rounding does.

``torch_NAME.py --case CASE.npz --out OUT.npz`` (runs with ``--torch-python``; imports only torch, torchvision,
numpy and the standard library) re-creates the OFFICIAL training step from the official files (repository, file
and commit named in its docstring), loads ``init/...`` with ``strict=True``, runs ``steps`` steps on
``batch/...`` and writes ``losses/<term>`` ([steps] float64) and ``params/<name>`` -- the same structure as
``run_jax``'s result, flattened with :func:`save_flat`.

Comparison (:func:`compare`), in float32 on both sides:

* loss: for every term of the torch side and every step, ``|jax - torch| / max(|torch|, LOSS_FLOOR)``; a term
  the jax side lacks is a failure; the row reports the max (tolerance ``LOSS_RTOL = 1e-4``);
* params: per tensor, ``max|jax - torch| / max|torch|`` (relative to the tensor's scale, so near-zero entries do
  not blow up); the row reports the max over tensors (tolerance ``PARAM_RTOL = 1e-4``). Also reported, for
  information: the same measure on the *update* ``final - init`` (``upd``), which is much stricter because 20
  small steps move weights little.

Measured exception (the float32 noise floor): some official steps are chaotic in float32 -- a perturbation of
the initial weights by 1e-7 relative (rounding size) grows to 1e-3..1 within 20 steps of the *official code
itself* (measured: a BatchNorm discriminator updated by Adam, whose first steps are ~``lr * sign(g)``). Then no
implementation can match to 1e-4, and the measure of parity is the official code's own spread: ``run.py`` runs
the torch side a second time on the weights times ``1 + 1e-7 N(0,1)`` (``--noise-floor``; automatic when a
trainer is out of tolerance) and a trainer is *explained* (row ``floor``) when, for every term and step, the
jax-vs-torch difference is at most ``FLOOR_FACTOR`` x the torch-vs-torch difference's running maximum up to that
step (and at most ``LOSS_RTOL`` wherever that is larger), and every param tensor within ``FLOOR_FACTOR`` x the
largest torch-vs-torch difference among its player's tensors (or ``PARAM_RTOL``). Per player, not per tensor:
the 1e-7 perturbation is one random draw and smaller than the step-0 differences of two implementations
(summation order, ~1e-6), which grow the same way, so a single tensor's floor is too noisy a yardstick. The goldens store that measured floor
(``floor/losses/<term>``, ``floor/params/<tensor>``) and the test applies the same rule.

One sample is not the spread: the official code itself, run on another CPU (AMD EPYC Zen 3, AVX2, against
goldens written on an Intel Xeon with AVX-512), landed up to 14.5x beyond the allowance of the writer's sample
(cyclegan; fast_style 2.5x and sr_gan 4.2x with other 1e-7 draws). ``floor.py`` folds such samples -- the torch
side on the stored case on another CPU, and further perturbed draws -- into a golden's floor by the elementwise
max (:func:`fold_floor`); ``floor/sources`` lists every sample a golden's floor is the max of.

Goldens (``run.py --write-goldens``): ``tests/goldens/parity/NAME.npz`` holds ``case/<key>`` (the case minus
``GOLDEN_DROP``), ``torch/losses/<term>``, ``torch/params/<name>`` (every tensor when the total is small, else
``SUBSET`` evenly spaced entries per tensor at ``torch/index/<name>`` plus ``torch/absmax/<name>``), so
``tests/test_training_parity.py`` checks jaxgen against them without torch, with the same tolerances.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
GOLDEN_DIR = ROOT / "tests" / "goldens" / "parity"

LOSS_RTOL = 1e-4
PARAM_RTOL = 1e-4
LOSS_FLOOR = 1e-8  # |torch| below this counts as this (a loss term that is exactly 0 on both sides passes)
FULL_PARAMS_MAX = 300_000  # goldens store every final param when the total is at most this many numbers
SUBSET = 64
FLOOR_FACTOR = 3.0  # margin over one sample of the torch-vs-torch float32 spread (its running max over steps)
# Compile options of the programs the trainers jit (init, step): None = what XLA_FLAGS says, as in a user's run.
# tests/test_training_parity.py sets XLA's defaults here (param_utils.USER_CODEGEN), because the test suite
# compiles everything else at -O0 with XLA's classic emitters (tests/conftest.py).
COMPILER_OPTIONS: dict[str, Any] | None = None
# floor/sources' first entry: the sample run.py --write-goldens measured on the machine that wrote the golden
WRITER_FLOOR = "run.py --write-goldens: the official torch side, perturbed or float64, on the writing machine"

__all__ = ["FLOOR_FACTOR", "FULL_PARAMS_MAX", "GOLDEN_DIR", "LOSS_RTOL", "PARAM_RTOL", "compare", "discover",
           "WRITER_FLOOR", "floor_allowance", "fold_floor", "golden_case", "golden_floor", "golden_reference",
           "load_flat", "load_trainer", "loss_rel", "param_rel", "perturbed_case", "run_torch", "save_flat",
           "usage_error", "write_golden"]


# ------------------------------------------------------------------------------------------ files


def images(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Test batches ``shape = (..., H, W, C)`` (H, W multiples of 8) of uint8-valued images in [0,1], float32, with
    some spatial structure: a coarse uniform field (1/8 resolution, 0-255) upsampled by repetition, plus Gaussian
    noise (std 20), rounded and clipped."""
    *lead, h, w, c = shape
    coarse = rng.uniform(0, 255, (*lead, h // 8, w // 8, c))
    img = np.repeat(np.repeat(coarse, 8, axis=-3), 8, axis=-2) + rng.normal(0, 20, shape)
    return (np.clip(np.rint(img), 0, 255) / 255.0).astype(np.float32)


def save_flat(path: str | Path, flat: Mapping[str, Any]) -> None:
    """``{key: array | scalar}`` -> ``.npz`` (compressed)."""
    np.savez_compressed(path, **{k: np.asarray(v) for k, v in flat.items()})


def load_flat(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def flatten_result(result: Mapping[str, Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """``{"losses": {...}, "params": {...}}`` -> ``{"losses/<term>": ..., "params/<name>": ...}``."""
    out = {}
    for group in ("losses", "params"):
        for k, v in result[group].items():
            out[f"{group}/{k}"] = np.asarray(v)
    return out


def unflatten_result(flat: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, np.ndarray]] = {"losses": {}, "params": {}}
    for k, v in flat.items():
        group, _, name = k.partition("/")
        if group in out:
            out[group][name] = v
    return out


# ------------------------------------------------------------------------------------------ plug-ins


def discover() -> list[str]:
    """Trainer names with both ``trainer_NAME.py`` and ``torch_NAME.py`` in ``tools/parity``."""
    names = sorted(p.stem[len("trainer_"):] for p in HERE.glob("trainer_*.py"))
    return [n for n in names if (HERE / f"torch_{n}.py").exists()]


def load_trainer(name: str) -> ModuleType:
    """Imports ``tools/parity/trainer_NAME.py`` (``tools`` is not a package)."""
    path = HERE / f"trainer_{name}.py"
    if not path.exists():
        raise FileNotFoundError(f"no trainer plug-in {path}")
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))  # plug-ins may import sibling helper modules
    spec = importlib.util.spec_from_file_location(f"parity_trainer_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------ comparison


def _param_rel(j: np.ndarray, t: np.ndarray) -> float:
    scale = float(np.max(np.abs(t))) if t.size else 0.0
    diff = float(np.max(np.abs(j.astype(np.float64) - t.astype(np.float64)))) if t.size else 0.0
    if scale == 0.0:
        return 0.0 if diff == 0.0 else float("inf")
    return diff / scale


def loss_rel(torch_res: Mapping[str, Mapping[str, np.ndarray]], other: Mapping[str, Mapping[str, np.ndarray]]
             ) -> dict[str, np.ndarray]:
    """``{term: per-step relative difference}`` of ``other``'s losses from ``torch_res``'s (terms both have)."""
    out = {}
    for term, t in torch_res["losses"].items():
        if term in other["losses"]:
            t = np.asarray(t, np.float64).ravel()
            o = np.asarray(other["losses"][term], np.float64).ravel()
            if o.shape == t.shape:
                out[term] = np.abs(o - t) / np.maximum(np.abs(t), LOSS_FLOOR)
    return out


def param_rel(torch_res: Mapping[str, Mapping[str, np.ndarray]], other: Mapping[str, Mapping[str, np.ndarray]]
              ) -> dict[str, float]:
    """``{tensor: max|other - torch| / max|torch|}`` over the params both have (same shapes)."""
    return {k: _param_rel(np.asarray(other["params"][k]), np.asarray(t)) for k, t in torch_res["params"].items()
            if k in other["params"] and np.shape(other["params"][k]) == np.shape(t)}


def floor_allowance(floor_rel: Mapping[str, np.ndarray], floor_param: Mapping[str, float]
                    ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Per-term per-step loss allowance and per-tensor param allowance from a measured torch-vs-torch floor."""
    loss = {k: np.maximum(LOSS_RTOL, FLOOR_FACTOR * np.maximum.accumulate(np.asarray(v, np.float64)))
            for k, v in floor_rel.items()}
    players: dict[str, float] = {}
    for k, v in floor_param.items():  # per player: one perturbation sample per tensor is too noisy a scale
        players[k.split("/")[0]] = max(players.get(k.split("/")[0], 0.0), float(v))
    return loss, {k: max(PARAM_RTOL, FLOOR_FACTOR * players[k.split("/")[0]]) for k in floor_param}


def compare(torch_res: Mapping[str, Mapping[str, np.ndarray]], jax_res: Mapping[str, Mapping[str, np.ndarray]],
            init: Mapping[str, np.ndarray] | None = None, floor_rel: Mapping[str, np.ndarray] | None = None,
            floor_param: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Max relative loss / param differences (module docstring). ``init``: ``{<player>/<name>: initial}`` for
    the update measure (optional). ``floor_rel``/``floor_param``: a measured torch-vs-torch noise floor (per
    term per step; per tensor): then ``explained`` says whether every difference is within it. Returns
    ``{'loss', 'loss_at', 'param', 'param_at', 'update', 'update_at', 'problems', 'ok', 'explained',
    'worst_excess'}``."""
    problems: list[str] = []
    loss, loss_at = 0.0, ""
    for term, t in torch_res["losses"].items():
        if term not in jax_res["losses"]:
            problems.append(f"jax side has no loss term {term!r}")
            continue
        t = np.asarray(t, np.float64).ravel()
        j = np.asarray(jax_res["losses"][term], np.float64).ravel()
        if j.shape != t.shape:
            problems.append(f"loss {term}: {j.shape[0]} steps vs torch {t.shape[0]}")
            continue
        rel = np.abs(j - t) / np.maximum(np.abs(t), LOSS_FLOOR)
        k = int(np.argmax(rel)) if rel.size else 0
        if rel.size and (rel[k] > loss or not np.isfinite(rel[k])):
            loss, loss_at = float(rel[k]), f"{term}@{k}"
    param, param_at, update, update_at = 0.0, "", 0.0, ""
    for name, t in torch_res["params"].items():
        if name not in jax_res["params"]:
            problems.append(f"jax side has no param {name!r}")
            continue
        j = np.asarray(jax_res["params"][name])
        t = np.asarray(t)
        if j.shape != t.shape:
            problems.append(f"param {name}: shape {j.shape} vs torch {t.shape}")
            continue
        rel = _param_rel(j, t)
        if rel > param or not np.isfinite(rel):
            param, param_at = rel, name
        if init is not None and name in init and np.issubdtype(t.dtype, np.floating):
            i = np.asarray(init[name], np.float64)
            urel = _param_rel(j - i, t - i)
            if urel > update:
                update, update_at = urel, name
    ok = not problems and loss <= LOSS_RTOL and param <= PARAM_RTOL
    explained, worst_excess = False, 0.0
    if not ok and not problems and floor_rel is not None and floor_param is not None:
        allow_loss, allow_param = floor_allowance(floor_rel, floor_param)
        rel = loss_rel(torch_res, jax_res)
        excess = [float(np.max(rel[k] / allow_loss[k])) if k in allow_loss else float("inf") for k in rel]
        excess += [v / allow_param.get(k, PARAM_RTOL) for k, v in param_rel(torch_res, jax_res).items()]
        worst_excess = max(excess)
        explained = worst_excess <= 1.0
    return dict(loss=loss, loss_at=loss_at, param=param, param_at=param_at, update=update, update_at=update_at,
                problems=problems, ok=ok, explained=explained, worst_excess=worst_excess)


def initial_params(case: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``{<player>/<name>: array}`` from the case's ``init/`` keys."""
    return {k[len("init/"):]: v for k, v in case.items() if k.startswith("init/")}


# ------------------------------------------------------------------------------------------ goldens


def write_golden(name: str, case: Mapping[str, np.ndarray], torch_res: Mapping[str, Mapping[str, np.ndarray]],
                 drop: tuple[str, ...] = (), floor: Mapping[str, Mapping[str, np.ndarray]] | None = None) -> Path:
    """``tests/goldens/parity/NAME.npz`` (module docstring); ``floor``: the torch side's result on perturbed
    weights (stored as the measured noise floor); returns its path."""
    out: dict[str, np.ndarray] = {}
    if floor is not None:
        for term, v in loss_rel(torch_res, floor).items():
            out[f"floor/losses/{term}"] = v
        for tensor, v in param_rel(torch_res, floor).items():
            out[f"floor/params/{tensor}"] = np.float64(v)
        out["floor/sources"] = np.asarray([WRITER_FLOOR])
    for k, v in case.items():
        if not any(k.startswith(p) for p in drop):
            out[f"case/{k}"] = np.asarray(v)
    for term, v in torch_res["losses"].items():
        out[f"torch/losses/{term}"] = np.asarray(v, np.float64)
    params = {k: np.asarray(v) for k, v in torch_res["params"].items()}
    full = sum(v.size for v in params.values()) <= FULL_PARAMS_MAX
    for k, v in params.items():
        if full or v.size <= SUBSET:
            out[f"torch/params/{k}"] = v
        else:
            idx = np.unique(np.linspace(0, v.size - 1, SUBSET).astype(np.int64))
            out[f"torch/params/{k}"] = v.ravel()[idx]
            out[f"torch/index/{k}"] = idx
            out[f"torch/absmax/{k}"] = np.asarray(np.max(np.abs(v)), v.dtype)
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    path = GOLDEN_DIR / f"{name}.npz"
    save_flat(path, out)
    return path


def golden_case(golden: Mapping[str, np.ndarray], trainer: ModuleType) -> dict[str, np.ndarray]:
    """The case stored in a golden, with the dropped parts re-created by ``trainer.restore_case``."""
    case = {k[len("case/"):]: v for k, v in golden.items() if k.startswith("case/")}
    restore = getattr(trainer, "restore_case", None)
    return restore(case) if restore is not None else case


def golden_floor(golden: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray] | None, dict[str, float] | None]:
    """The measured noise floor stored in a golden (``(None, None)`` when it has none)."""
    rel = {k[len("floor/losses/"):]: v for k, v in golden.items() if k.startswith("floor/losses/")}
    if not rel:
        return None, None
    return rel, {k[len("floor/params/"):]: float(v) for k, v in golden.items() if k.startswith("floor/params/")}


def usage_error(*checks: tuple[bool, str]) -> int:
    """The scripts' argument checks: for the first ``(failed, message)`` that failed, one ``jaxgen: error:`` line on
    stderr and 2 (a usage error's exit status); 0 when none did."""
    for failed, message in checks:
        if failed:
            print(f"jaxgen: error: {message}", file=sys.stderr)
            return 2
    return 0


def run_torch(torch_python: str, name: str, case: Mapping[str, np.ndarray], folder: Path, suffix: str = "",
              extra: tuple[str, ...] = ()) -> tuple[dict[str, dict[str, np.ndarray]] | None, str]:
    """The official torch side (``torch_NAME.py``, run with ``torch_python``) on ``case``, saved as
    ``folder/NAME_case<suffix>.npz`` (its result ``NAME_torch<suffix>.npz``): ``(result, "")``, or ``(None, why)``
    with its exit status and stderr's tail when it fails."""
    case_path, out_path = folder / f"{name}_case{suffix}.npz", folder / f"{name}_torch{suffix}.npz"
    save_flat(case_path, case)
    proc = subprocess.run([torch_python, str(HERE / f"torch_{name}.py"), "--case", str(case_path),
                           "--out", str(out_path), *extra], capture_output=True, text=True)
    if proc.returncode != 0:
        return None, f"exit {proc.returncode}:\n{proc.stderr[-3000:]}"
    return unflatten_result(load_flat(out_path)), ""


def perturbed_case(case: Mapping[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """``case`` with every float ``init/`` weight times ``1 + 1e-7 N(0,1)`` (float32 rounding size; the draw
    seeded by ``seed``): the torch side on it is one sample of the official code's own float32 spread."""
    rng = np.random.default_rng(seed + 12345)
    return {k: (v * (1 + 1e-7 * rng.standard_normal(v.shape))).astype(v.dtype)
            if k.startswith("init/") and np.issubdtype(v.dtype, np.floating) else v for k, v in case.items()}


def fold_floor(golden: Mapping[str, np.ndarray], sample: Mapping[str, Mapping[str, np.ndarray]], source: str
               ) -> dict[str, np.ndarray]:
    """``golden`` with one more sample of the official code's float32 spread folded into its stored floor: the
    official torch side's result ``sample`` on the golden's own case (another CPU, perturbed weights) measured
    against the stored torch reference like a jax run is (:func:`golden_reference`), then the elementwise max with
    ``floor/losses/<term>`` (per step) and ``floor/params/<tensor>``; ``source`` is appended to ``floor/sources``.
    A golden without a floor (a case within ``LOSS_RTOL``/``PARAM_RTOL`` everywhere) is a ``ValueError``."""
    floor_rel, floor_param = golden_floor(golden)
    if floor_rel is None or floor_param is None:
        raise ValueError("fold_floor: the golden stores no float32 floor (not a chaotic case)")
    ref, sel = golden_reference(golden, sample)
    out = dict(golden)
    for term, v in loss_rel(ref, sel).items():
        old = np.asarray(floor_rel.get(term, np.zeros_like(v)), np.float64)
        out[f"floor/losses/{term}"] = np.maximum(old, v)
    for tensor, v in param_rel(ref, sel).items():
        out[f"floor/params/{tensor}"] = np.float64(max(floor_param.get(tensor, 0.0), v))
    sources = [str(s) for s in np.asarray(golden.get("floor/sources", np.array([WRITER_FLOOR]))).ravel()]
    out["floor/sources"] = np.asarray(sources + [source], dtype=str)
    return out


def golden_reference(golden: Mapping[str, np.ndarray], jax_res: Mapping[str, Mapping[str, np.ndarray]]
                     ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, np.ndarray]]]:
    """``(torch_res, jax_res)`` restricted to what the golden stores (subset entries picked from the jax side;
    a subset's relative measure uses the stored full-tensor ``absmax``), ready for :func:`compare`."""
    torch_res: dict[str, dict[str, np.ndarray]] = {"losses": {}, "params": {}}
    jax_sel: dict[str, dict[str, np.ndarray]] = {"losses": dict(jax_res["losses"]), "params": {}}
    for k, v in golden.items():
        if k.startswith("torch/losses/"):
            torch_res["losses"][k[len("torch/losses/"):]] = v
    for k, v in golden.items():
        if not k.startswith("torch/params/"):
            continue
        name = k[len("torch/params/"):]
        if name not in jax_res["params"]:
            torch_res["params"][name] = v
            continue
        j = np.asarray(jax_res["params"][name])
        if f"torch/index/{name}" in golden:
            idx = golden[f"torch/index/{name}"]
            absmax = golden[f"torch/absmax/{name}"]
            # append the full tensor's absmax to both so the per-tensor scale is the full tensor's
            torch_res["params"][name] = np.concatenate([v, np.asarray(absmax).reshape(1)])
            jax_sel["params"][name] = np.concatenate([j.ravel()[idx], np.asarray(absmax, j.dtype).reshape(1)])
        else:
            torch_res["params"][name] = v
            jax_sel["params"][name] = j
    return torch_res, jax_sel
