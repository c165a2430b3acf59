"""PyTorch state dicts <-> Flax params of jaxgen's models, per architecture, as explicit name maps.

Each architecture is a list of ``Rule(torch module pattern, flax module pattern, kind)``; ``{i}`` matches a
decimal index, ``{2*k}`` an even index ``2k`` (``tail.0.{2*k}`` <-> ``tail_0/conv_{k}``). Leaves and layouts
by ``kind``:

* ``param`` (conv / linear / PReLU): ``weight`` OIHW <-> ``kernel`` HWIO (``w.transpose(2, 3, 1, 0)``),
  ``weight`` ``(out, in)`` <-> ``kernel`` ``(in, out)``, 1-D ``weight`` (PReLU slopes) <-> ``weight``,
  ``bias`` <-> ``bias``.
* ``norm``: BatchNorm ``weight``/``bias`` <-> affine InstanceNorm ``scale``/``bias``. ``running_mean``,
  ``running_var``, ``num_batches_tracked`` are dropped (torch -> flax) / written as 0, 1, 0 (flax -> torch).
* ``linear_chw``: ``linear1`` of the VGG-style discriminator, whose input PyTorch flattens in ``C,4,4`` order
  and jaxgen in ``4,4,C`` order: ``W[out, c*16+h*4+w]`` <-> ``kernel[h*4C+w*C+c, out]``.
* ``mean_shift``: EDSR-PyTorch's frozen ``sub_mean``/``add_mean`` 1x1 convs. jaxgen has no parameters for them
  (constants ``rgb_mean``, ``img_range``): reading checks them against the model (``bias = -/+ rgb_range *
  mean``, weight identity) when one is given and otherwise drops them; writing creates them from the model.

Architectures (``ARCHS``; keys are the official PyTorch names):

==================  ==========================================================================================
``srvgg_compact``   Real-ESRGAN ``SRVGGNetCompact``: ``body.{i}`` <-> ``body_{i}`` (convs and PReLUs)
``rrdbnet``         BasicSR ``RRDBNet``: ``conv_first``, ``body.{i}.rdb{k}.conv{j}``, ``conv_body``,
                    ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last`` (flax ``/`` for ``.``)
``srresnet``        BasicSR ``MSRResNet`` (``act='lrelu'``, the official one): ``conv_first``,
                    ``body.{i}.conv{1,2}``, ``upconv{k}``, ``conv_hr``, ``conv_last``
``edsr``            EDSR-PyTorch ``EDSR``: ``head.0``, ``body.{i}.body.{0,2}`` <-> ``body_{i}/conv{1,2}``,
                    ``body.{n}``, ``tail.0.{2k}`` <-> ``tail_0/conv_{k}``, ``tail.1``, mean shifts
``rcan``            RCAN (yulunzhang/RCAN = EDSR-PyTorch ``rcan.py``): ``head.0``,
                    ``body.{g}.body.{b}.body.{0,2}``, ``body.{g}.body.{b}.body.3.conv_du.{0,2}``,
                    ``body.{g}.body.{n}``, ``body.{G}``, ``tail.0.{2k}``, ``tail.1``, mean shifts
``vgg_style``       BasicSR ``VGGStyleDiscriminator`` (128/256): ``conv{i}_{j}``, ``bn{i}_{j}`` <->
                    ``norm{i}_{j}`` (jaxgen ``norm='instance'``), ``linear1`` (``linear_chw``), ``linear2``
``patchgan``        pix2pix/CycleGAN ``NLayerDiscriminator`` with ``norm='instance'``: ``model.0`` <-> ``conv0``,
                    ``model.{3n-1}`` <-> ``conv{n}``, ``model.{3L+2}`` <-> ``conv_out``
``transformer_net`` pytorch/examples fast_neural_style ``TransformerNet``: ``conv{i}.conv2d``, ``in{i}``
                    (``instance_norm``), ``res{i}.conv{j}.conv2d``, ``res{i}.in{j}``, ``deconv{i}.conv2d``
``waifu2x_upconv7`` nunif ``UpConv7``: ``net.{i}`` <-> ``net_{i}`` (``net.12`` the ConvTranspose2d)
``waifu2x_cunet``   nunif ``CUNet`` / ``UpCUNet``: ``unet{u}.conv{j}.conv.{k}`` <-> ``unet{u}/conv{j}/conv_{k}``,
                    ``unet{u}.conv{j}.seblock.conv{k}``, ``unet{u}.conv{j}_down``, ``unet{u}.conv{j}_up``,
                    ``unet{u}.conv{j}``, ``unet{u}.conv_bottom`` (flax ``/`` for ``.``)
``realcugan``       bilibili/ailab ``UpCunet{2,3,4}x``: the same, plus ``conv_final`` (x4); the ``pro`` marker key
                    of ``weights_pro`` files is dropped on reading (build the model with ``pro=True``)
``adain_decoder``   naoto0804/pytorch-AdaIN ``decoder`` (``decoder.pth``): ``{i}`` <-> ``layers_{i}``
``adain_vgg``       its ``vgg_normalised.pth`` up to ``relu4_1``: ``0`` <-> ``input_conv`` (1x1), the 3x3 convs
                    ``2, 5, 9, ..., 29`` <-> ``features_{0, 2, 5, ..., 19}``; the deeper convs are dropped
==================  ==========================================================================================

``instance_norm`` (affine ``InstanceNorm2d`` without running statistics): ``weight``/``bias`` <-> ``scale``/``bias``;
the ``running_mean``/``running_var`` keys that old pytorch/examples checkpoints carry (PyTorch < 0.4 saved them)
are dropped on reading and not written. ``drop``: official layers jaxgen does not build (read and discarded).

Semantics to know: jaxgen's ``vgg_style`` (``norm='instance'``) normalises with per-image statistics, i.e.
official BatchNorm in training mode with batch size 1, not BatchNorm with running statistics (eval mode);
jaxgen's ``norm='none'`` variant and the official pix2pix ``norm='batch'`` PatchGAN have no counterpart and fail
the key check. MSRResNet's ``act='prelu'`` (jaxgen's SRGAN option) has no official counterpart either.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

from jaxgen.models import MODELS, build, stacking
from jaxgen.models.layers import DIV2K_RGB_MEAN
from jaxgen.weights.state_dict_io import load_state_dict, save_state_dict

__all__ = ["ARCHS", "Rule", "export_torch_weights", "flax_to_torch", "load_pretrained", "model_param_shapes",
           "torch_to_flax"]

_PLACEHOLDER = re.compile(r"\{(?:(\d+)\*)?(\w+)\}")
_BN_STATS = ("running_mean", "running_var", "num_batches_tracked")


class _Pattern:
    """A module path with ``{var}`` / ``{m*var}`` integer placeholders: full-match and format."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.fields: list[tuple[str, int]] = []
        regex, pos = "", 0
        for m in _PLACEHOLDER.finditer(text):
            regex += re.escape(text[pos : m.start()]) + r"(\d+)"
            self.fields.append((m.group(2), int(m.group(1) or 1)))
            pos = m.end()
        self.regex = re.compile(regex + re.escape(text[pos:]))

    def match(self, path: str) -> dict[str, int] | None:
        m = self.regex.fullmatch(path)
        if m is None:
            return None
        values: dict[str, int] = {}
        for (var, mult), digits in zip(self.fields, m.groups()):
            n = int(digits)
            if n % mult or values.setdefault(var, n // mult) != n // mult:
                return None
        return values

    def format(self, values: Mapping[str, int]) -> str:
        it = iter(self.fields)

        def sub(_: re.Match) -> str:
            var, mult = next(it)
            return str(values[var] * mult)

        return _PLACEHOLDER.sub(sub, self.text)


@dataclasses.dataclass(frozen=True)
class Rule:
    """Torch module path pattern <-> flax module path pattern (``/``-joined), with a leaf ``kind``."""

    torch: str
    flax: str
    kind: str = "param"  # 'param' | 'norm' | 'linear_chw' | 'mean_shift'

    def __post_init__(self) -> None:
        object.__setattr__(self, "_t", _Pattern(self.torch))
        object.__setattr__(self, "_f", _Pattern(self.flax))

    def torch_to_flax_path(self, module: str) -> str | None:
        values = self._t.match(module)  # type: ignore[attr-defined]
        return None if values is None else self._f.format(values)  # type: ignore[attr-defined]

    def flax_to_torch_path(self, module: str) -> str | None:
        values = self._f.match(module)  # type: ignore[attr-defined]
        return None if values is None else self._t.format(values)  # type: ignore[attr-defined]


@dataclasses.dataclass(frozen=True)
class ArchSpec:
    """``rules(n)``: the rules; ``n`` is an architecture size hint (PatchGAN's ``n_layers``, else unused)."""

    rules: Callable[[int | None], list[Rule]]
    example_input: Callable[[nn.Module], tuple[int, ...]]
    hint_from_model: Callable[[nn.Module], int | None] = lambda model: None
    hint_from_torch: Callable[[Iterable[str]], int | None] = lambda keys: None
    hint_from_flax: Callable[[Iterable[str]], int | None] = lambda modules: None


def _generator_input(model: nn.Module) -> tuple[int, ...]:
    return (1, 16, 16, model.num_in_ch)


def _static(*rules: Rule) -> Callable[[int | None], list[Rule]]:
    return lambda _: list(rules)


_MEAN_SHIFT = (Rule("sub_mean", "", "mean_shift"), Rule("add_mean", "", "mean_shift"))
_TAIL = (Rule("tail.0.{2*k}", "tail_0/conv_{k}"), Rule("tail.1", "tail_1"), Rule("head.0", "head_0"))


_CUNET = (  # the U-Nets of waifu2x CUNet and Real-CUGAN; ConvTranspose2d weights [in, out, k, k] map as convs
    Rule("unet{u}.conv{j}.conv.{k}", "unet{u}/conv{j}/conv_{k}"),
    Rule("unet{u}.conv{j}.seblock.conv{k}", "unet{u}/conv{j}/seblock/conv{k}"),
    Rule("unet{u}.conv{j}_down", "unet{u}/conv{j}_down"),
    Rule("unet{u}.conv{j}_up", "unet{u}/conv{j}_up"),
    Rule("unet{u}.conv{j}", "unet{u}/conv{j}"),
    Rule("unet{u}.conv_bottom", "unet{u}/conv_bottom"),
)


def _patchgan_rules(n_layers: int | None) -> list[Rule]:
    if n_layers is None or n_layers < 1:
        raise ValueError(f"patchgan: cannot tell n_layers from the keys (got {n_layers})")
    rules = [Rule("model.0", "conv0")]
    rules += [Rule(f"model.{3 * n - 1}", f"conv{n}") for n in range(1, n_layers + 1)]
    return rules + [Rule(f"model.{3 * n_layers + 2}", "conv_out")]


def _patchgan_layers_torch(keys: Iterable[str]) -> int | None:
    convs = {k.split(".")[1] for k in keys if re.fullmatch(r"model\.\d+\.weight", k)}
    return len(convs) - 2 if convs else None


def _patchgan_layers_flax(modules: Iterable[str]) -> int | None:
    convs = {m for m in modules if re.fullmatch(r"conv\d+", m)}
    return len(convs) - 1 if convs else None


ARCHS: dict[str, ArchSpec] = {
    "srvgg_compact": ArchSpec(_static(Rule("body.{i}", "body_{i}")), _generator_input),
    "rrdbnet": ArchSpec(
        _static(
            Rule("body.{i}.rdb{k}.conv{j}", "body_{i}/rdb{k}/conv{j}"),
            *(Rule(n, n) for n in ("conv_first", "conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last")),
        ),
        _generator_input,
    ),
    "srresnet": ArchSpec(
        _static(
            Rule("body.{i}.conv{j}", "body_{i}/conv{j}"),
            Rule("upconv{k}", "upconv{k}"),
            *(Rule(n, n) for n in ("conv_first", "conv_hr", "conv_last")),
        ),
        _generator_input,
    ),
    "edsr": ArchSpec(
        _static(
            Rule("body.{i}.body.0", "body_{i}/conv1"),
            Rule("body.{i}.body.2", "body_{i}/conv2"),
            Rule("body.{i}", "body_{i}"),
            *_TAIL,
            *_MEAN_SHIFT,
        ),
        _generator_input,
    ),
    "rcan": ArchSpec(
        _static(
            Rule("body.{g}.body.{b}.body.{j}", "body_{g}/body_{b}/body_{j}"),
            Rule("body.{g}.body.{b}.body.3.conv_du.{j}", "body_{g}/body_{b}/body_3/conv_du_{j}"),
            Rule("body.{g}.body.{b}", "body_{g}/body_{b}"),
            Rule("body.{g}", "body_{g}"),
            *_TAIL,
            *_MEAN_SHIFT,
        ),
        _generator_input,
    ),
    "vgg_style": ArchSpec(
        _static(
            Rule("conv{i}_{j}", "conv{i}_{j}"),
            Rule("bn{i}_{j}", "norm{i}_{j}", "norm"),
            Rule("linear1", "linear1", "linear_chw"),
            Rule("linear2", "linear2"),
        ),
        lambda m: (1, m.input_size, m.input_size, m.num_in_ch),
    ),
    "transformer_net": ArchSpec(
        _static(
            Rule("conv{i}.conv2d", "conv{i}/conv2d"),
            Rule("in{i}", "in{i}", "instance_norm"),
            Rule("res{i}.conv{j}.conv2d", "res{i}/conv{j}/conv2d"),
            Rule("res{i}.in{j}", "res{i}/in{j}", "instance_norm"),
            Rule("deconv{i}.conv2d", "deconv{i}/conv2d"),
        ),
        lambda m: (1, 16, 16, 3),
    ),
    "adain_decoder": ArchSpec(_static(Rule("{i}", "layers_{i}")), lambda m: (1, 4, 4, 512)),
    "adain_vgg": ArchSpec(
        _static(
            Rule("0", "input_conv"),
            *(Rule(str(o), f"features_{t}") for o, t in zip((2, 5, 9, 12, 16, 19, 22, 25, 29),
                                                          (0, 2, 5, 7, 10, 12, 14, 16, 19))),
            *(Rule(str(o), "", "drop") for o in (32, 35, 38, 42, 45, 48, 51)),
        ),
        lambda m: (1, 16, 16, 3),
    ),
    # waifu2x (nagadomi/nunif waifu2x/models/upconv_7.py, cunet.py) and Real-CUGAN (bilibili/ailab upcunet_v3.py)
    "waifu2x_upconv7": ArchSpec(_static(Rule("net.{i}", "net_{i}")), _generator_input),
    "waifu2x_cunet": ArchSpec(_static(*_CUNET), _generator_input),
    "realcugan": ArchSpec(_static(*_CUNET, Rule("conv_final", "conv_final"), Rule("", "", "drop")), _generator_input),
    "patchgan": ArchSpec(
        _patchgan_rules,
        lambda m: (1, 4 * 2**m.n_layers, 4 * 2**m.n_layers, m.num_in_ch),
        hint_from_model=lambda m: m.n_layers,
        hint_from_torch=_patchgan_layers_torch,
        hint_from_flax=_patchgan_layers_flax,
    ),
}


# --------------------------------------------------------------------------------------------- leaves


def _leaf_to_flax(kind: str, leaf: str, w: np.ndarray) -> tuple[str, np.ndarray] | None:
    """Torch leaf -> (flax leaf, array); ``None`` for a dropped leaf; ``KeyError`` for an unknown one."""
    if kind == "param":
        if leaf == "bias" and w.ndim == 1:
            return "bias", w
        if leaf == "weight" and w.ndim == 4:
            return "kernel", w.transpose(2, 3, 1, 0)
        if leaf == "weight" and w.ndim == 2:
            return "kernel", w.T
        if leaf == "weight" and w.ndim == 1:
            return "weight", w  # PReLU slopes
    elif kind in ("norm", "instance_norm"):
        if leaf in _BN_STATS:
            return None
        if leaf in ("weight", "bias") and w.ndim == 1:
            return {"weight": "scale", "bias": "bias"}[leaf], w
    elif kind == "drop":
        return None
    elif kind == "linear_chw":
        if leaf == "bias" and w.ndim == 1:
            return "bias", w
        if leaf == "weight" and w.ndim == 2 and w.shape[1] % 16 == 0:
            out = w.shape[0]
            return "kernel", w.reshape(out, -1, 4, 4).transpose(2, 3, 1, 0).reshape(-1, out)
    raise KeyError(leaf)


def _leaf_to_torch(kind: str, leaf: str, v: np.ndarray) -> list[tuple[str, np.ndarray]]:
    if kind == "param":
        if leaf == "bias" and v.ndim == 1:
            return [("bias", v)]
        if leaf == "kernel" and v.ndim == 4:
            return [("weight", v.transpose(3, 2, 0, 1))]
        if leaf == "kernel" and v.ndim == 2:
            return [("weight", v.T)]
        if leaf == "weight" and v.ndim == 1:
            return [("weight", v)]
    elif kind == "norm":
        if leaf == "scale" and v.ndim == 1:
            n = v.shape[0]
            return [("weight", v), ("running_mean", np.zeros(n, v.dtype)), ("running_var", np.ones(n, v.dtype)),
                    ("num_batches_tracked", np.array(0, np.int64))]
        if leaf == "bias" and v.ndim == 1:
            return [("bias", v)]
    elif kind == "instance_norm":
        if leaf in ("scale", "bias") and v.ndim == 1:
            return [({"scale": "weight", "bias": "bias"}[leaf], v)]
    elif kind == "linear_chw":
        if leaf == "bias" and v.ndim == 1:
            return [("bias", v)]
        if leaf == "kernel" and v.ndim == 2 and v.shape[0] % 16 == 0:
            out = v.shape[1]
            return [("weight", v.reshape(4, 4, -1, out).transpose(3, 2, 0, 1).reshape(out, -1))]
    raise KeyError(leaf)


# --------------------------------------------------------------------------------------------- helpers


def _spec(arch: str) -> ArchSpec:
    if arch not in ARCHS:
        raise ValueError(f"no PyTorch name map for architecture {arch!r}; available: {', '.join(sorted(ARCHS))}")
    return ARCHS[arch]


def _check_model(arch: str, model: nn.Module | None) -> None:
    if model is not None and not isinstance(model, MODELS[arch]):
        raise ValueError(f"{arch}: model is a {type(model).__name__}, not a {MODELS[arch].__name__}")


def model_param_shapes(arch: str, model: nn.Module) -> dict[tuple[str, ...], tuple[tuple[int, ...], Any]]:
    """``{flax path: (shape, dtype)}`` of ``model``'s params, from ``jax.eval_shape`` (nothing is computed)."""
    shape = ARCHS[arch].example_input(model)
    abstract = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct(shape, jnp.float32))
    return {k: (tuple(v.shape), v.dtype) for k, v in flatten_dict(abstract["params"]).items()}


def _find(rules: list[Rule], path: str, direction: str) -> tuple[Rule, str] | None:
    for rule in rules:
        other = rule.torch_to_flax_path(path) if direction == "to_flax" else rule.flax_to_torch_path(path)
        if other is not None:
            return rule, other
    return None


def _fmt(items: Iterable[str]) -> str:
    return "[" + ", ".join(items) + "]"


def _mean_shift_check(arch: str, key: str, value: np.ndarray, model: nn.Module) -> str | None:
    """A problem description when the checkpoint's mean shift differs from the model's constants, else None."""
    module, _, leaf = key.rpartition(".")
    sign = -1.0 if module == "sub_mean" else 1.0
    mean = np.zeros(3) if model.rgb_mean is None else np.asarray(model.rgb_mean, np.float64)
    expected = np.eye(3).reshape(3, 3, 1, 1) if leaf == "weight" else sign * model.img_range * mean
    if leaf not in ("weight", "bias") or value.shape != expected.shape:
        return f"{key} {value.shape} (expected {expected.shape})"
    if np.allclose(value.astype(np.float64), expected, rtol=1e-5, atol=1e-6 * max(1.0, model.img_range)):
        return None
    hint = ""
    if leaf == "bias" and model.rgb_mean is not None:
        ratio = value.astype(np.float64) / (sign * mean)
        if np.allclose(ratio, ratio[0], rtol=1e-4):
            hint = f" (the checkpoint's rgb_range is {ratio[0]:g}: build the model with img_range={ratio[0]:g})"
    return f"{key} = {np.round(value.reshape(-1), 5).tolist()} differs from the model's {np.round(expected.reshape(-1), 5).tolist()}{hint}"


# --------------------------------------------------------------------------------------------- API


def torch_to_flax(arch: str, state_dict: Mapping[str, Any], *, model: nn.Module | None = None) -> dict[str, Any]:
    """Official PyTorch ``state_dict`` (``{name: array}``, e.g. from ``load_state_dict``) -> jaxgen Flax params
    (the tree under ``'params'``, numpy arrays).

    With ``model`` (a jaxgen module of architecture ``arch``), the result is checked against the model's parameter
    tree: missing, unexpected and mis-shaped keys are all listed in one ``ValueError``; arrays are cast to the
    model's ``param_dtype``; EDSR/RCAN mean shifts are checked against ``rgb_mean``/``img_range``. Without it, only
    the names are mapped (a key no rule matches is still an error) and dtypes are kept.
    """
    spec = _spec(arch)
    _check_model(arch, model)
    hint = spec.hint_from_model(model) if model is not None else spec.hint_from_torch(state_dict.keys())
    rules = spec.rules(hint)
    flat: dict[tuple[str, ...], np.ndarray] = {}
    origin: dict[tuple[str, ...], str] = {}
    unexpected: list[str] = []
    problems: list[str] = []
    for key, value in state_dict.items():
        value = np.asarray(value)
        module, _, leaf = key.rpartition(".")
        found = _find(rules, module, "to_flax")
        if found is None:
            unexpected.append(key)
            continue
        rule, flax_module = found
        if rule.kind == "mean_shift":
            if model is not None:
                problem = _mean_shift_check(arch, key, value, model)
                if problem:
                    problems.append(problem)
            continue
        try:
            converted = _leaf_to_flax(rule.kind, leaf, value)
        except KeyError:
            unexpected.append(f"{key} {tuple(value.shape)}")
            continue
        if converted is not None:
            path = tuple(flax_module.split("/")) + (converted[0],)
            flat[path] = np.asarray(converted[1], order="C")
            origin[path] = key
    missing: list[str] = []
    if model is not None:
        shapes = model_param_shapes(arch, model)
        for path, (shape, dtype) in shapes.items():
            if path not in flat:
                torch_name = _torch_name(rules, path, shape)
                missing.append(f"{torch_name} (flax {'/'.join(path)} {shape})")
            elif flat[path].shape != shape:
                problems.append(f"{origin[path]} -> {'/'.join(path)}: {flat[path].shape} != model {shape}")
            else:
                flat[path] = flat[path].astype(dtype)
        unexpected += [f"{origin[p]} (flax {'/'.join(p)})" for p in flat if p not in shapes]
    _raise_if(arch, "PyTorch state dict", missing, unexpected, problems)
    return unflatten_dict(flat)


def _torch_name(rules: list[Rule], path: tuple[str, ...], shape: tuple[int, ...]) -> str:
    """The torch key(s) a missing flax leaf would come from (for error messages)."""
    found = _find(rules, "/".join(path[:-1]), "to_torch")
    if found is None:
        return "(no torch name)"
    rule, module = found
    try:
        leaves = _leaf_to_torch(rule.kind, path[-1], np.broadcast_to(np.float32(0), shape))
    except KeyError:
        return f"{module}.?"
    return ", ".join(f"{module}.{leaf}" for leaf, _ in leaves)


def _raise_if(arch: str, what: str, missing: list[str], unexpected: list[str], problems: list[str]) -> None:
    if missing or unexpected or problems:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: {_fmt(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)}: {_fmt(unexpected)}")
        if problems:
            parts.append(f"mismatched {len(problems)}: {_fmt(problems)}")
        raise ValueError(f"{arch}: {what} does not match: " + "; ".join(parts))


def flax_to_torch(arch: str, params: Mapping[str, Any], *, model: nn.Module | None = None) -> dict[str, np.ndarray]:
    """jaxgen Flax params (the tree under ``'params'``, or ``{'params': tree}``) -> ``{official torch key:
    np.ndarray}`` loadable with ``load_state_dict(strict=True)`` into the official PyTorch module. A train
    state's params (repeated blocks stacked, ``jaxgen.models.stacking``) are unstacked to the official names first.

    With ``model``, ``params`` are first checked against its parameter tree (all missing / unexpected /
    mis-shaped paths in one ``ValueError``), and EDSR/RCAN mean shifts use its ``rgb_mean``/``img_range``;
    without it they are the class defaults (DIV2K mean, range 1). Flax paths no rule maps -> ``ValueError``.
    """
    spec = _spec(arch)
    _check_model(arch, model)
    if set(params) == {"params"}:
        params = params["params"]
    params = stacking.unstack(dict(params))
    flat = {k: np.asarray(v) for k, v in flatten_dict(params).items()}
    if model is not None:
        shapes = model_param_shapes(arch, model)
        missing = ["/".join(p) + f" {s}" for p, (s, _) in shapes.items() if p not in flat]
        unexpected = ["/".join(p) for p in flat if p not in shapes]
        problems = ["/".join(p) + f": {flat[p].shape} != model {shapes[p][0]}" for p in flat
                    if p in shapes and flat[p].shape != shapes[p][0]]
        _raise_if(arch, "Flax params", missing, unexpected, problems)
    modules = {"/".join(p[:-1]) for p in flat}
    hint = spec.hint_from_model(model) if model is not None else spec.hint_from_flax(modules)
    rules = spec.rules(hint)
    out: dict[str, np.ndarray] = {}
    unmapped: list[str] = []
    for rule in rules:  # mean shifts first, as the official modules are declared
        if rule.kind == "mean_shift":
            rgb_mean = DIV2K_RGB_MEAN if model is None else model.rgb_mean
            img_range = 1.0 if model is None else model.img_range
            mean = np.zeros(3) if rgb_mean is None else np.asarray(rgb_mean, np.float64)
            sign = -1.0 if rule.torch == "sub_mean" else 1.0
            out[f"{rule.torch}.weight"] = np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1)
            out[f"{rule.torch}.bias"] = (sign * img_range * mean).astype(np.float32)
    for path, value in flat.items():
        found = _find(rules, "/".join(path[:-1]), "to_torch")
        if found is None:
            unmapped.append("/".join(path))
            continue
        rule, module = found
        try:
            leaves = _leaf_to_torch(rule.kind, path[-1], value)
        except KeyError:
            unmapped.append("/".join(path) + f" {value.shape}")
            continue
        for leaf, arr in leaves:
            out[f"{module}.{leaf}"] = np.asarray(arr, order="C")
    _raise_if(arch, "Flax params", [], unmapped, [])
    return out


def load_pretrained(arch: str, path: str, **model_kwargs: Any) -> tuple[nn.Module, dict[str, Any]]:
    """``(jaxgen.models.build(arch, **model_kwargs), params)`` with ``params`` read from the official PyTorch weight
    file ``path`` (any format of ``load_state_dict``) and checked against the model. A mismatch -> ``ValueError``
    naming the file and every missing / unexpected / mis-shaped key.

    E.g. ``load_pretrained('srvgg_compact', 'realesr-animevideov3.pth', scale=4)``.
    """
    model = build(arch, **model_kwargs)
    state = load_state_dict(path)
    try:
        params = torch_to_flax(arch, state, model=model)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return model, params


def export_torch_weights(arch: str, params: Mapping[str, Any], path: str, *, model: nn.Module | None = None) -> None:
    """``save_state_dict(path, flax_to_torch(arch, params, model=model))``: jaxgen params as an official PyTorch
    state dict in ``.safetensors``, ``.npz`` or (with PyTorch installed) ``.pth``."""
    save_state_dict(path, flax_to_torch(arch, params, model=model))
