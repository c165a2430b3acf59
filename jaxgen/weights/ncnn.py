"""Reader for ncnn models (``.param`` text graph + ``.bin`` weights) and converters of the Real-ESRGAN ncnn
graphs into jaxgen params.

Format (ncnn ``src/paramdict.cpp``, ``src/modelbin.cpp``, ``docs/developer-guide/param-and-model-file-structure``):

* ``.param``: magic ``7767517``; ``layer_count blob_count``; one line per layer ``Type name n_in n_out
  in_blobs... out_blobs... k=v ...``. A key ``-23300 - k`` holds the array for key ``k`` as ``count,v1,v2,...``.
  A value with ``.``, ``e`` or ``E`` is a float, else an int.
* ``.bin``: each layer's weights in layer order, no padding between layers. ``Convolution``: weight
  ``[num_output, C_in, kh, kw]`` (OIHW) as a *tagged* blob, then (``5=1``) the bias as raw float32 ``[num_output]``.
  ``PReLU``: the slopes as raw float32 ``[num_slope]``. A tagged blob starts with a 4-byte little-endian tag:
  ``0x01306B47`` = float16 (data padded to 4 bytes), ``0`` or ``0x0002C056`` = raw float32; ``0x000D4B38``
  (int8) and the 256-entry quantisation table (any other non-zero tag) are refused.

Hostile or malformed files: every count and size is checked as an integer in range before use (a non-integer
array count, a negative conv weight size or PReLU count is an error naming the ``.param`` file and line), the
``.bin`` reader only moves forward and never past the end, and every error is a one-line ``WeightsError`` (a
``ValueError``).

Only the layer types of the Real-ESRGAN, RealSR, waifu2x and Real-CUGAN ncnn graphs are read (weight-free
``Input``, ``Split``, ``Concat``, ``Eltwise``, ``BinaryOp``, ``Interp``, ``PixelShuffle``, ``Pooling``, ``Crop``,
``Scale`` with ``0=-233`` (scale from a second blob); weighted ``Convolution``, ``PReLU``, ``Deconvolution`` (stored
as ``Convolution``), ``InnerProduct`` (weight ``[num_output, num_input]`` tagged, then a raw fp32 bias)); any other
type is an error naming it, since its weight layout would be unknown. The waifu2x / Real-CUGAN graphs are mapped
to jaxgen modules by :mod:`jaxgen.weights.ncnn_unet`.

Converters (``convert_realesrgan``) recognise the two graphs the Real-ESRGAN ncnn release exports:

* RRDBNet (``realesrgan-x4plus``, 23 blocks; ``realesrgan-x4plus-anime``, 6 blocks): convolutions in file order
  ``conv_first``, per block ``rdb{1,2,3}.conv{1..5}``, ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``,
  ``conv_last``; the LeakyReLU(0.2) fused into the convs (``9=2 -23310=1,0.2``), the dense-block and RRDB
  residuals as ``Eltwise`` sums with coefficients ``(0.2, 1)``, two nearest ``Interp`` x2. This is jaxgen's
  ``rrdbnet`` (BasicSR ``RRDBNet``) at scale 4.
* SRVGGNetCompact (``realesr-animevideov3``): ``num_conv + 2`` convs each but the last followed by a per-channel
  ``PReLU``, ``PixelShuffle(4)``, plus the nearest ``Interp`` x4 of the input (jaxgen ``srvgg_compact``, scale
  4). The x2 / x3 files are the *same* x4 weights followed by a bicubic ``Interp`` by 0.5 / 0.75 (ncnn
  bicubic = PyTorch ``F.interpolate(mode='bicubic', align_corners=False)``: Keys ``a = -0.75``, edge-clamped
  taps, no antialiasing); this is returned as ``output_resize`` (see :func:`torch_bicubic_resize`).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from jaxgen.weights.safe_pickle import WeightsError, one_line

__all__ = [
    "NcnnConversion",
    "NcnnLayer",
    "convert_realesrgan",
    "parse_param",
    "read_ncnn",
    "torch_bicubic_resize",
]

PARAM_MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FP32_SCALED = 0x0002C056

_WEIGHTLESS = {"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle", "Pooling", "Crop"}
_WEIGHTED = {"Convolution", "PReLU", "Deconvolution", "InnerProduct"}  # + "Scale" with 0=-233 (weight-free)

Value = int | float | tuple[int | float, ...]


@dataclasses.dataclass(frozen=True)
class NcnnLayer:
    """One ncnn layer: ``type``, ``name``, blob names, ``params`` ``{key: int | float | tuple}`` and (after
    :func:`read_ncnn`) ``weights``: ``{'weight': float32 [O,I,kh,kw], 'bias': float32 [O]}`` for a
    ``Convolution``, ``{'slope': float32 [n]}`` for a ``PReLU``, ``{}`` otherwise."""

    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, Value]
    weights: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    line: int = 0  # line number in the .param file (1-based; 0: unknown)

    def get(self, key: int, default: Value) -> Value:
        return self.params.get(key, default)


def _number(token: str, where: str) -> int | float:
    try:
        return float(token) if re.search(r"[.eE]", token) else int(token)
    except ValueError:
        raise WeightsError(f"{where}: bad number {token!r:.40}") from None


def _integer(token: str, where: str, what: str, minimum: int = 0) -> int:
    try:
        value = int(token)
    except ValueError:
        raise WeightsError(f"{where}: {what} must be an integer, got {token!r:.40}") from None
    if value < minimum:
        raise WeightsError(f"{where}: {what} must be >= {minimum}, got {value}")
    return value


def _int_param(layer: NcnnLayer, key: int, default: int, where: str, minimum: int) -> int:
    """Layer param ``key`` as an int >= ``minimum`` (an array or a float there is an error naming ``where``)."""
    value = layer.params.get(key, default)
    if type(value) is not int:
        raise WeightsError(f"{where}: {layer.type} {layer.name}: param {key} must be an integer, got {value!r:.40}")
    if value < minimum:
        raise WeightsError(f"{where}: {layer.type} {layer.name}: param {key} must be >= {minimum}, got {value}")
    return value


def parse_param(text: str, *, source: str = "<param>") -> list[NcnnLayer]:
    """Parse a text ``.param`` file's content -> layers (no weights). Malformed text -> ``WeightsError`` naming
    ``source`` and the line (line numbers count every line of the file, blank ones included)."""
    numbered = [(i, ln) for i, ln in enumerate(text.splitlines(), start=1) if ln.strip()]
    if not numbered or numbered[0][1].strip() != str(PARAM_MAGIC):
        raise WeightsError(f"{source}: not an ncnn text .param file (first line must be {PARAM_MAGIC})")
    if len(numbered) < 2 or len(numbered[1][1].split()) != 2:
        raise WeightsError(f"{source}: line 2 must be 'layer_count blob_count'")
    where2 = f"{source}:{numbered[1][0]}"
    layer_count = _integer(numbered[1][1].split()[0], where2, "layer_count")
    _integer(numbered[1][1].split()[1], where2, "blob_count")
    if len(numbered) - 2 != layer_count:
        raise WeightsError(f"{source}: header says {layer_count} layers, file has {len(numbered) - 2} layer lines")
    layers = []
    for lineno, line in numbered[2:]:
        where = f"{source}:{lineno}"
        tok = line.split()
        if len(tok) < 4:
            raise WeightsError(f"{where}: expected 'Type name n_in n_out ...'; got {line.strip()!r:.80}")
        typ, name = tok[0], tok[1]
        n_in, n_out = _integer(tok[2], where, "n_in"), _integer(tok[3], where, "n_out")
        blobs = tok[4 : 4 + n_in + n_out]
        if len(blobs) != n_in + n_out:
            raise WeightsError(f"{where}: layer {name} lists fewer than {n_in + n_out} blobs")
        params: dict[int, Value] = {}
        for kv in tok[4 + n_in + n_out :]:
            key_s, eq, val = kv.partition("=")
            if not eq:
                raise WeightsError(f"{where}: expected key=value, got {kv!r:.40}")
            key = _integer(key_s, where, "param key", minimum=-(2**31))
            if key <= -23300:
                items = val.split(",")
                count = _integer(items[0], where, f"the value count of array {key_s}")
                if len(items) - 1 != count:
                    raise WeightsError(f"{where}: array {kv!r:.60} announces {count} values")
                params[-23300 - key] = tuple(_number(v, where) for v in items[1:])
            else:
                params[key] = _number(val, where)
        layers.append(NcnnLayer(typ, name, tuple(blobs[:n_in]), tuple(blobs[n_in:]), params, line=lineno))
    return layers


class _BinReader:
    def __init__(self, data: bytes, source: str) -> None:
        self.data, self.pos, self.source = data, 0, source

    def _take(self, nbytes: int, what: str) -> bytes:
        if nbytes < 0:  # callers check sizes first; never move backwards
            raise WeightsError(f"{self.source}: negative size {nbytes} while reading {what}")
        if self.pos + nbytes > len(self.data):
            raise WeightsError(f"{self.source}: file ends at byte {len(self.data)} while reading {what}")
        out = self.data[self.pos : self.pos + nbytes]
        self.pos += nbytes
        return out

    def raw_fp32(self, n: int, what: str) -> np.ndarray:
        return np.frombuffer(self._take(4 * n, what), "<f4").astype(np.float32)

    def tagged(self, n: int, what: str) -> np.ndarray:
        tag = int.from_bytes(self._take(4, what), "little")
        if tag == TAG_FP16:
            nbytes = (2 * n + 3) // 4 * 4
            return np.frombuffer(self._take(nbytes, what)[: 2 * n], "<f2").astype(np.float32)
        if tag in (0, TAG_FP32_SCALED):
            return self.raw_fp32(n, what)
        kind = "int8" if tag == TAG_INT8 else "table-quantised"
        raise WeightsError(
            f"{self.source}: {what} is stored as {kind} (tag 0x{tag:08X}); only float32 and float16 are supported"
        )


def _conv_weights(layer: NcnnLayer, rd: _BinReader, where: str) -> dict[str, np.ndarray]:
    o = _int_param(layer, 0, 0, where, 1)
    kw = _int_param(layer, 1, 0, where, 1)
    kh = _int_param(layer, 11, kw, where, 1)
    size = _int_param(layer, 6, 0, where, 1)
    if size % (o * kh * kw):
        raise WeightsError(
            f"{where}: Convolution {layer.name}: weight_data_size {size} does not divide into {o} x C x {kh} x {kw}")
    if _int_param(layer, 8, 0, where, 0):
        raise WeightsError(f"{where}: Convolution {layer.name} is int8-quantised (8=1); not supported")
    w = rd.tagged(size, f"Convolution {layer.name} weight ({where})").reshape(o, size // (o * kh * kw), kh, kw)
    out = {"weight": w}
    if _int_param(layer, 5, 0, where, 0):
        out["bias"] = rd.raw_fp32(o, f"Convolution {layer.name} bias ({where})")
    return out


def _inner_product_weights(layer: NcnnLayer, rd: _BinReader, where: str) -> dict[str, np.ndarray]:
    """``InnerProduct``: weight ``[num_output, num_input]`` as a tagged blob, then (``1=1``) the raw fp32 bias."""
    o = _int_param(layer, 0, 0, where, 1)
    size = _int_param(layer, 2, 0, where, 1)
    if size % o:
        raise WeightsError(f"{where}: InnerProduct {layer.name}: weight_data_size {size} does not divide by {o}")
    if _int_param(layer, 8, 0, where, 0):
        raise WeightsError(f"{where}: InnerProduct {layer.name} is int8-quantised (8=1); not supported")
    out = {"weight": rd.tagged(size, f"InnerProduct {layer.name} weight ({where})").reshape(o, size // o)}
    if _int_param(layer, 1, 0, where, 0):
        out["bias"] = rd.raw_fp32(o, f"InnerProduct {layer.name} bias ({where})")
    return out


def read_ncnn(param_path: str | os.PathLike, bin_path: str | os.PathLike) -> list[NcnnLayer]:
    """Read an ncnn model -> layers with their weights as float32 arrays (fp16 weights are widened exactly).

    Unknown layer types, non-float weight storage, a bad count or size, a short or over-long ``.bin`` ->
    ``WeightsError`` naming the file (and the ``.param`` line of the layer).
    """
    param_path, bin_path = Path(param_path), Path(bin_path)
    try:
        text = param_path.read_text()
        data = bin_path.read_bytes()
    except (OSError, UnicodeDecodeError) as e:
        raise WeightsError(f"cannot read ncnn model {param_path} / {bin_path} ({one_line(e)})") from None
    layers = parse_param(text, source=str(param_path))
    rd = _BinReader(data, str(bin_path))
    out = []
    for layer in layers:
        where = f"{param_path}:{layer.line}"
        if layer.type == "Convolution":
            weights = _conv_weights(layer, rd, where)
        elif layer.type == "PReLU":
            count = _int_param(layer, 0, 1, where, 1)
            weights = {"slope": rd.raw_fp32(count, f"PReLU {layer.name} slope ({where})")}
        elif layer.type == "Deconvolution":  # same storage as Convolution: [O, I, kh, kw] tagged, then the bias
            weights = _conv_weights(layer, rd, where)
        elif layer.type == "InnerProduct":
            weights = _inner_product_weights(layer, rd, where)
        elif layer.type in _WEIGHTLESS or (layer.type == "Scale" and layer.get(0, 0) == -233):
            # Scale 0=-233: the scale comes from a second input blob (waifu2x cunet's squeeze-excitation)
            weights = {}
        else:
            raise WeightsError(
                f"{where}: layer {layer.name} has type {layer.type}, whose weights this reader does not know "
                f"(supported: {sorted(_WEIGHTLESS | _WEIGHTED)})"
            )
        out.append(dataclasses.replace(layer, weights=weights))
    if rd.pos != len(data):
        raise WeightsError(
            f"{bin_path}: {len(data) - rd.pos} bytes left after the last layer; wrong .bin for this .param?")
    return out


# --------------------------------------------------------------------------------------------- resize


def _torch_cubic_weights(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` matrix of PyTorch/ncnn bicubic (``a = -0.75``, half-pixel, clamped taps, no antialias)."""
    a = -0.75
    scale = n_in / n_out
    mat = np.zeros((n_out, n_in), np.float64)
    for i in range(n_out):
        x = (i + 0.5) * scale - 0.5
        x0 = int(np.floor(x))
        t = x - x0
        ds = np.array([1 + t, t, 1 - t, 2 - t])
        w = np.where(
            ds <= 1, ((a + 2) * ds - (a + 3)) * ds * ds + 1, ((a * ds - 5 * a) * ds + 8 * a) * ds - 4 * a
        )
        for k, wk in zip(range(x0 - 1, x0 + 3), w):
            mat[i, min(max(k, 0), n_in - 1)] += wk
    return mat


def torch_bicubic_resize(x: Any, out_hw: tuple[int, int]) -> Any:
    """``[B,H,W,C]`` -> ``[B,H',W',C]`` as PyTorch ``F.interpolate(mode='bicubic', align_corners=False)`` and
    ncnn ``Interp`` type 3 (``a = -0.75``, edge-clamped, no antialiasing). JAX in -> JAX out (jittable)."""
    import jax.numpy as jnp

    _, h, w, _ = x.shape
    mh = jnp.asarray(_torch_cubic_weights(h, out_hw[0]), jnp.float32)
    mw = jnp.asarray(_torch_cubic_weights(w, out_hw[1]), jnp.float32)
    hi = "highest"
    x = jnp.einsum("oh,bhwc->bowc", mh, x, precision=hi)
    return jnp.einsum("pw,bowc->bopc", mw, x, precision=hi)


# --------------------------------------------------------------------------------------------- converters


@dataclasses.dataclass(frozen=True)
class NcnnConversion:
    """A recognised Real-ESRGAN ncnn graph as jaxgen: ``jaxgen.models.build(arch, **kwargs)`` with ``params``
    (flax tree of float32 numpy arrays); ``output_resize``: ``None`` or the factor of a final
    :func:`torch_bicubic_resize` (0.5 / 0.75 for the animevideov3 x2 / x3 files); ``scale`` the net scale of the
    whole graph (``kwargs['scale'] * output_resize``)."""

    arch: str
    kwargs: dict[str, Any]
    params: dict[str, Any]
    output_resize: float | None
    scale: int


def _conv_param(layer: NcnnLayer, source: str) -> dict[str, np.ndarray]:
    w = layer.weights["weight"]
    if w.shape[2:] != (3, 3):
        raise WeightsError(f"{source}: Convolution {layer.name}: expected a 3x3 kernel; got {w.shape[2:]}")
    p = layer.params
    pad = p.get(4, 0)
    pads = (pad, p.get(14, pad), p.get(15, pad), p.get(16, p.get(14, pad)))
    if (p.get(2, 1), p.get(12, 1), p.get(3, 1), p.get(13, 1), pads) != (1, 1, 1, 1, (1, 1, 1, 1)):
        raise WeightsError(f"{source}: Convolution {layer.name}: expected dilation 1, stride 1, padding 1; got params "
                           f"{p}")
    if "bias" not in layer.weights:
        raise WeightsError(f"{source}: Convolution {layer.name}: expected a bias")
    return {"kernel": np.ascontiguousarray(w.transpose(2, 3, 1, 0)), "bias": layer.weights["bias"]}


def _act(layer: NcnnLayer) -> str:
    kind = int(layer.get(9, 0))
    if kind == 0:
        return "none"
    if kind == 2 and tuple(layer.get(10, ())) and abs(float(layer.get(10, (0.0,))[0]) - 0.2) < 1e-6:
        return "lrelu0.2"
    return f"act{kind}{layer.get(10, ())}"


def _expect(cond: bool, source: str, what: str) -> None:
    if not cond:
        raise WeightsError(f"{source}: not a Real-ESRGAN graph jaxgen knows: {what}")


def _convert_rrdbnet(layers: list[NcnnLayer], source: str) -> NcnnConversion:
    convs = [ly for ly in layers if ly.type == "Convolution"]
    n_blocks, rest = divmod(len(convs) - 6, 15)
    _expect(rest == 0 and n_blocks >= 1, source, f"{len(convs)} convolutions is not 6 + 15 * num_block")
    feat = convs[0].weights["weight"].shape[0]
    grow = convs[1].weights["weight"].shape[0]
    in_ch = convs[0].weights["weight"].shape[1]
    params: dict[str, Any] = {"conv_first": _conv_param(convs[0], source)}
    _expect(_act(convs[0]) == "none", source, "conv_first has a fused activation")
    i = 1
    for b in range(n_blocks):
        block: dict[str, Any] = {}
        for r in range(1, 4):
            rdb = {}
            for k in range(1, 6):
                c = convs[i]
                i += 1
                c_in = feat + (k - 1) * grow
                shape = (feat if k == 5 else grow, c_in, 3, 3)
                _expect(c.weights["weight"].shape == shape, source,
                        f"{c.name} (block {b} rdb{r} conv{k}) weight {c.weights['weight'].shape}, expected {shape}")
                _expect(_act(c) == ("none" if k == 5 else "lrelu0.2"), source, f"{c.name} activation {_act(c)}")
                rdb[f"conv{k}"] = _conv_param(c, source)
            block[f"rdb{r}"] = rdb
        params[f"body_{b}"] = block
    tail = ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]
    acts = ["none", "lrelu0.2", "lrelu0.2", "lrelu0.2", "none"]
    for name, act, c in zip(tail, acts, convs[i:]):
        _expect(_act(c) == act, source, f"{c.name} ({name}) activation {_act(c)}, expected {act}")
        params[name] = _conv_param(c, source)
    out_ch = convs[-1].weights["weight"].shape[0]
    # the residual sums: 3 per RRDB (dense blocks) + 1 per RRDB, each 0.2 * branch + 1 * skip
    sums = [ly for ly in layers if ly.type == "Eltwise"]
    _expect(len(sums) == 4 * n_blocks, source, f"{len(sums)} Eltwise sums, expected {4 * n_blocks}")
    for ly in sums:
        coeffs = tuple(float(v) for v in ly.get(1, ()))
        _expect(int(ly.get(0, 1)) == 1 and np.allclose(coeffs, (0.2, 1.0)), source,
                f"{ly.name} is not 0.2 * branch + skip (op {ly.get(0, 1)}, coeffs {coeffs})")
    interps = [ly for ly in layers if ly.type == "Interp"]
    _expect(
        len(interps) == 2 and all(ly.get(0, 0) == 1 and ly.get(1, 0) == 2.0 == ly.get(2, 0) for ly in interps),
        source, "expected exactly two nearest x2 Interp layers",
    )
    kwargs = dict(scale=4, num_in_ch=in_ch, num_out_ch=out_ch, num_feat=feat, num_blocks=n_blocks, num_grow_ch=grow)
    return NcnnConversion("rrdbnet", kwargs, params, None, 4)


def _convert_srvgg(layers: list[NcnnLayer], source: str) -> NcnnConversion:
    convs = [ly for ly in layers if ly.type == "Convolution"]
    prelus = [ly for ly in layers if ly.type == "PReLU"]
    num_conv = len(convs) - 2
    _expect(num_conv >= 0 and len(prelus) == num_conv + 1, source,
            f"{len(convs)} convolutions with {len(prelus)} PReLUs (expected n + 2 and n + 1)")
    compute = [ly for ly in layers if ly.type in ("Convolution", "PReLU")]
    _expect([ly.type for ly in compute] == ["Convolution", "PReLU"] * (num_conv + 1) + ["Convolution"], source,
            "convolutions and PReLUs do not alternate")
    params: dict[str, Any] = {}
    for j, ly in enumerate(compute):
        if ly.type == "Convolution":
            _expect(_act(ly) == "none", source, f"{ly.name} has a fused activation")
            params[f"body_{j}"] = _conv_param(ly, source)
        else:
            params[f"body_{j}"] = {"weight": ly.weights["slope"]}
    feat, in_ch = convs[0].weights["weight"].shape[:2]
    shuffles = [ly for ly in layers if ly.type == "PixelShuffle"]
    _expect(len(shuffles) == 1 and int(shuffles[0].get(1, 0)) == 0, source, "expected one PyTorch-order PixelShuffle")
    r = int(shuffles[0].get(0, 1))
    out_ch, rem = divmod(convs[-1].weights["weight"].shape[0], r * r)
    _expect(rem == 0 and out_ch == in_ch, source, f"last conv has {convs[-1].weights['weight'].shape[0]} channels")
    interps = [ly for ly in layers if ly.type == "Interp"]
    _expect(bool(interps) and interps[0].get(0, 0) == 1 and interps[0].get(1, 0) == float(r) == interps[0].get(2, 0),
            source, f"expected a nearest x{r} Interp skip")
    _expect(len([ly for ly in layers if ly.type == "BinaryOp" and int(ly.get(0, 0)) == 0]) == 1, source,
            "expected one BinaryOp add of the skip")
    resize = None
    if len(interps) == 2:
        last = interps[1]
        _expect(last.get(0, 0) == 3 and last.get(1, 0) == last.get(2, -1) and int(last.get(6, 0)) == 0, source,
                f"final Interp {last.name} is not a bicubic resize by one factor")
        resize = float(last.get(1, 0))
        _expect(layers[-1] is last, source, "the bicubic Interp is not the last layer")
    _expect(len(interps) <= 2, source, f"{len(interps)} Interp layers")
    scale = r if resize is None else r * resize
    _expect(abs(scale - round(scale)) < 1e-6, source, f"net scale {scale} is not an integer")
    kwargs = dict(scale=r, num_in_ch=int(in_ch), num_out_ch=out_ch, num_feat=int(feat), num_conv=num_conv, act="prelu")
    return NcnnConversion("srvgg_compact", kwargs, params, resize, int(round(scale)))


def convert_realesrgan(layers: list[NcnnLayer], *, source: str = "<ncnn>") -> NcnnConversion:
    """Map a Real-ESRGAN ncnn graph (from :func:`read_ncnn`) to a jaxgen ``rrdbnet`` or ``srvgg_compact``.

    Checks the structure (conv shapes and order, fused activations, residual coefficients, resampling layers)
    and raises ``WeightsError`` (a ``ValueError``) naming ``source`` and the first mismatch for any other graph.
    """
    types = {ly.type for ly in layers}
    try:
        if "PReLU" in types:
            return _convert_srvgg(layers, source)
        if "Concat" in types and "Eltwise" in types:
            return _convert_rrdbnet(layers, source)
    except (TypeError, IndexError, KeyError) as e:  # a param of the wrong kind (an array where a number belongs)
        raise WeightsError(f"{source}: not a Real-ESRGAN graph jaxgen knows ({type(e).__name__}: {one_line(e)})"
                           ) from None
    raise WeightsError(f"{source}: neither an RRDBNet nor an SRVGGNetCompact ncnn graph (layer types {sorted(types)})")
