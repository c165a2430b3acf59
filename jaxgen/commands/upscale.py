"""``jaxgen upscale IN [IN ...] -o OUT`` with one model source:

  --model NAME                       a pretrained zoo model (realesrgan-x4plus, realesr-animevideov3-x2, ...)
                                     (`jaxgen upscale --list` prints them all: scale, architecture, licence)
  --workdir W [--which latest|best]  a jaxgen training run's checkpoint
  --checkpoint W/checkpoints/STEP    one checkpoint step of a run
  --weights FILE.pth --arch NAME [--scale N] [--arch-kwargs k=v,...]   a PyTorch state dict

IN: image files and/or folders (their .png/.jpg/.jpeg/.bmp/.tif/.tiff/.webp files). With one input file, OUT is
the output file when it has an image extension; otherwise OUT is a folder receiving ``<stem>_x<scale>.<ext>``.
Or IN is one video file (.mp4, .mkv, .mov, ...) and OUT the output video: frames streamed, audio and frame rate
kept, resumable after an interruption; --codec, --crf, --preset (jaxgen.video).
Images come back as they came in (RGBA keeps alpha, 16-bit PNG stays 16-bit, gray stays gray, ICC kept, EXIF
orientation applied). ``--tile`` bounds device memory for any image size; an image that runs out of memory whole
is upscaled again in tiles (half its side, halved until it fits). Several inputs: a file that cannot be read or
upscaled gets one error line and the others are done. Exit status 2 on bad input (one input), 1 when some
inputs failed.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import jax.numpy as jnp
from tqdm import tqdm

from jaxgen import image, inference, storage, video
from jaxgen.config import parse_literal
from jaxgen.image import IMAGE_EXTENSIONS, expand_image_inputs
from jaxgen.inference import ALPHA_UPSAMPLERS
from jaxgen.models import onednn_conv
from jaxgen.progress import Heartbeat
from jaxgen.tasks import restore_generator
from jaxgen.weights import WeightsError, zoo, zoo_sr_vulkan
from jaxgen.weights.convert import load_pretrained

MAX_MESSAGE = 600  # error messages are cut to one readable line
DEFAULT_WEIGHTS_SCALE = 4
SCALES = (1, 2, 3, 4, 8)  # tried to name the scale of --weights that do not load at --scale


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jaxgen upscale", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("inputs", nargs="+", help="input images or folders")
    p.add_argument("-o", "--output", required=True, help="output file (one input file) or folder")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="pretrained model name (see jaxgen.weights.zoo)")
    src.add_argument("--workdir", help="jaxgen run folder with checkpoints")
    src.add_argument("--checkpoint", help="one checkpoint: W/checkpoints/STEP")
    src.add_argument("--weights", help="PyTorch state dict (.pth) of --arch")
    p.add_argument("--which", choices=["latest", "best"], default="latest", help="with --workdir")
    p.add_argument("--arch", help="with --weights: jaxgen model name (rrdbnet, srvgg_compact, ...)")
    p.add_argument("--scale", type=int, default=None,
                   help="with --weights: the network's scale (default 4); with another source it must be the "
                        "model's own scale (--outscale for any other output size)")
    p.add_argument("--arch-kwargs", default="", help="with --weights: extra model kwargs, e.g. num_conv=32,act=prelu")
    p.add_argument("--outscale", type=float, default=None, help="final scale (any float; Lanczos after the model)")
    prec = p.add_mutually_exclusive_group()
    prec.add_argument("--fp32", dest="bf16", action="store_false", help="float32 compute (default)")
    prec.add_argument("--bf16", dest="bf16", action="store_true",
                      help="bfloat16 compute (with --conv-backend onednn: the convolutions only, as torch.autocast)")
    p.set_defaults(bf16=False)  # argparse would take the first action's default (--fp32's store_false: True)
    p.add_argument("--ensemble", action="store_true", help="x8 self-ensemble (flips/rotations, averaged)")
    p.add_argument("--pre-pad", type=int, default=0, help="reflect padding of the input in pixels (default 0)")
    p.add_argument("--tile", type=int, default=0,
                   help="LR tile size (0 = whole image). Sides shorter than the tile are reflect-padded to it, so one "
                        "compiled network serves every image size (--no-fixed-tiles: exact small sides, a compile "
                        "per size)")
    p.add_argument("--no-fixed-tiles", dest="fixed_tiles", action="store_false",
                   help="with --tile: do not pad sides shorter than the tile")
    p.add_argument("--tile-overlap", type=int, default=10, help="LR pixels of context around each tile (default 10)")
    p.add_argument("--alpha-upsampler", choices=ALPHA_UPSAMPLERS, default="realesrgan")
    p.add_argument("--ext", default="png", help="output extension in folder mode: png (default), jpg, ... or auto")
    onednn_conv.add_argument(p)  # auto: oneDNN f32 where it measured faster (benchmarks/RESULTS.md)
    video.add_arguments(p)
    return p


def _parse_kwargs(text: str) -> dict[str, Any]:
    """``"a=1,b=x,c=0.5,d=true"`` -> ``{'a': 1, 'b': 'x', 'c': 0.5, 'd': True}`` (Python literals, else strings)."""
    out: dict[str, Any] = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--arch-kwargs: expected key=value items; got {item!r}")
        out[key] = parse_literal(val)
    return out


def _load_model(args: argparse.Namespace) -> Any:
    """-> ``(SRModel, description)`` from whichever model source was given."""
    # with oneDNN, --bf16 multiplies the convolutions in bf16 and keeps the modules float32 (onednn_conv.configure)
    dtype = jnp.bfloat16 if args.bf16 and args.conv_backend != "onednn" else None
    if args.model:
        entry = zoo.ZOO.get(args.model) or zoo_sr_vulkan.ENTRIES.get(args.model)
        if entry is not None:  # an unknown name: zoo.load says which names exist
            check_scale(args.scale, entry.scale, args.model)
        return zoo.load(args.model, compute_dtype=dtype), args.model
    if args.workdir or args.checkpoint:
        if args.checkpoint:
            ckpt = storage.as_path(args.checkpoint)
            if not ckpt.name.isdigit() or ckpt.parent.name != "checkpoints":
                raise ValueError(f"--checkpoint {ckpt}: expected WORKDIR/checkpoints/STEP")
            config, module, params, step = restore_generator(ckpt.parent.parent, step=int(ckpt.name))
        else:
            config, module, params, step = restore_generator(args.workdir, which=args.which)
        check_scale(args.scale, int(config.scale), f"the checkpoint of step {step}")
        model = inference.model_from_module(module, params, int(config.scale), name=f"step {step}", compute_dtype=dtype)
        return model, f"the checkpoint of step {step}"
    if not args.arch:
        raise ValueError("--weights needs --arch NAME (e.g. rrdbnet, srvgg_compact)")

    kwargs = _parse_kwargs(args.arch_kwargs)
    path = Path(args.weights)
    if not path.is_file():
        raise ValueError(f"--weights {path}: no such file")
    scale = DEFAULT_WEIGHTS_SCALE if args.scale is None else args.scale
    try:
        module, params = load_pretrained(args.arch, str(path), scale=scale, **kwargs)
    except TypeError as e:  # an unknown model kwarg
        raise ValueError(f"--arch {args.arch} --arch-kwargs {args.arch_kwargs!r}: {e}") from e
    except WeightsError:  # the file itself cannot be read: no other scale reads it (weights_scale would re-read it 4x)
        raise
    except ValueError:
        actual = weights_scale(args.arch, str(path), scale, kwargs)
        if actual is None:
            raise
        raise ValueError(f"--weights {path}: these weights are x{actual}, not x{scale}; use --scale {actual} "
                         f"(and --outscale {scale} for a x{scale} result)") from None
    return inference.model_from_module(module, params, scale, name=args.arch, compute_dtype=dtype), args.arch


def check_scale(given: int | None, actual: int, what: str) -> None:
    """``--scale`` given with a model source whose scale is fixed must be that scale."""
    if given is not None and given != actual:
        raise ValueError(f"--scale {given}: {what} is a x{actual} model; drop --scale, or use --outscale {given} "
                         f"to resize its output to x{given}")


def weights_scale(arch: str, path: str, tried: int, kwargs: dict[str, Any]) -> int | None:
    """The scale that ``path`` loads with for ``arch`` (it did not with ``tried``), or None."""
    for scale in SCALES:
        if scale == tried:
            continue
        try:
            load_pretrained(arch, path, scale=scale, **kwargs)
        except (ValueError, TypeError):
            continue
        return scale
    return None


def _targets(inputs: list[str], files: list[Path], output: Path, tag: str, ext: str) -> list[Path]:
    single_file = len(inputs) == 1 and not Path(inputs[0]).is_dir() and output.suffix.lower() in IMAGE_EXTENSIONS
    if single_file:
        return [output]
    if output.exists() and not output.is_dir():
        raise ValueError(f"-o {output}: several outputs need a folder, but this is a file")
    ext = ext.lower().lstrip(".")
    if ext != "auto" and f".{ext}" not in IMAGE_EXTENSIONS:
        raise ValueError(f"--ext {ext!r}: expected auto or one of {', '.join(e[1:] for e in IMAGE_EXTENSIONS)}")
    targets = [output / f"{f.stem}_{tag}{f.suffix.lower() if ext == 'auto' else '.' + ext}" for f in files]
    dupes = {t for t in targets if targets.count(t) > 1}
    if dupes:
        raise ValueError(f"two inputs would write the same output {sorted(dupes)[0]}")
    return targets


def upscale(args: argparse.Namespace) -> tuple[list[Path], int]:
    """Upscales every input; returns ``(written, failed)``. With several inputs a file that cannot be read or
    upscaled gets one ``jaxgen: error:`` line and the others go on; with one input its error is raised."""
    is_video = video.is_video(args.inputs)
    files = [] if is_video else expand_image_inputs(args.inputs)
    dtype = jnp.bfloat16 if args.bf16 else None
    # "auto" -> what _load_model reads; the network where it is known before loading (a zoo name, --arch): some
    # CPU kinds take oneDNN for some networks only (xla_setup.ONEDNN_TRAIN_CPU_NETWORKS)
    network = zoo.arch(args.model) if args.model else args.arch
    args.conv_backend = onednn_conv.resolve(args.conv_backend, dtype, networks=(network,) if network else ())
    onednn_conv.configure(args.conv_backend, dtype)
    model, what = _load_model(args)
    up = inference.Upscaler(
        model, tile=args.tile, tile_overlap=args.tile_overlap, pre_pad=args.pre_pad, ensemble=args.ensemble,
        alpha_upsampler=args.alpha_upsampler, outscale=args.outscale,
        fixed_tile_shape=args.fixed_tiles,
    )
    scale = args.outscale if args.outscale is not None else model.scale
    if is_video:  # one video file: every frame through the same Upscaler, streamed and resumable (jaxgen.video)
        out = video.transcode(args.inputs[0], args.output, lambda f: up.upscale(image.ImageData(f)).array,
                              video.options_from_args(args), label=repr(sorted(vars(args).items())))
        print(f"video x{scale:g} with {what} -> {out}")
        return [out], 0
    targets = _targets(args.inputs, files, Path(args.output), f"x{scale:g}", args.ext)
    folder_mode = targets[0] != Path(args.output)
    written, failed = [], 0
    beat = Heartbeat("upscale", len(files), unit="image")
    for i, (src, dst) in enumerate(tqdm(list(zip(files, targets)), desc="upscale", unit="img", disable=None)):
        beat.update(i)
        try:
            data = image.read_image_full(src)
            if folder_mode and data.alpha is not None and dst.suffix.lower() in (".jpg", ".jpeg", ".bmp"):
                dst = dst.with_suffix(".png")  # as Real-ESRGAN: images with alpha are saved as PNG
            written.append(image.write_image_full(dst, upscale_fitting(up, data, src)))
        except (ValueError, OSError) as e:
            message = str(e) if str(src) in str(e) else f"{src}: {e}"
            if len(files) == 1:  # bad input: exit 2; out of memory, a full disk: exit 1
                raise (ValueError if isinstance(e, ValueError) else RunFailure)(message) from None
            failed += 1
            print(f"jaxgen: error: {one_line(message)}", file=sys.stderr, flush=True)
    done = f"{len(written)} image(s) x{scale:g} with {what} -> {args.output}"
    print(done + (f"; {failed} of {len(files)} failed (see the errors above)" if failed else ""))
    return written, failed


def is_out_of_memory(error: BaseException) -> bool:
    """A host ``MemoryError`` or XLA's RESOURCE_EXHAUSTED (device or host allocation failed)."""
    return isinstance(error, MemoryError) or (isinstance(error, RuntimeError) and "RESOURCE_EXHAUSTED" in str(error))


def upscale_fitting(up: Any, data: Any, src: Path) -> Any:
    """``up.upscale(data)``; out of memory untiled -> again with tiles of half the image side, halved while it
    does not fit (a note on stderr says which ``--tile`` worked). Out of memory with tiles -> ``MemoryError``
    naming what to try."""
    try:
        return up.upscale(data)
    except (MemoryError, RuntimeError) as e:
        if not is_out_of_memory(e):
            raise
        if up.tile:
            raise RunFailure(f"{src}: out of memory with --tile {up.tile}; use a smaller --tile (or --bf16)") from None
    tile = max(data.array.shape[:2]) // 2
    while tile > 2 * up.tile_overlap and tile >= 16:
        tiled = copy.copy(up)
        tiled.tile = tile
        try:
            out = tiled.upscale(data)
        except (MemoryError, RuntimeError) as e:
            if not is_out_of_memory(e):
                raise
            tile //= 2
            continue
        print(f"jaxgen: note: {src} did not fit in memory whole; upscaled with --tile {tile} "
              f"(give --tile {tile} to skip the first try)", file=sys.stderr, flush=True)
        return out
    raise RunFailure(f"{src}: out of memory, even in tiles of {max(tile, 2 * up.tile_overlap + 1)} pixels; try "
                      "--bf16, a smaller --tile-overlap, or a machine with more memory")


class RunFailure(OSError):
    """A file that failed for another reason than bad input: out of memory even in tiles, a full disk (exit 1)."""


def one_line(message: str) -> str:
    message = " ".join(message.split())
    if len(message) > MAX_MESSAGE:
        message = f"{message[:MAX_MESSAGE]} ... ({len(message) - MAX_MESSAGE} more characters)"
    return message


def run(argv: list[str]) -> int:
    """Entry point of ``jaxgen upscale``: 0 on success, 2 on bad input, 1 when some of several inputs (or an
    input that does not fit in memory) failed (``jaxgen: error: ...`` on stderr, one line each)."""
    if "--list" in argv[1:]:  # `jaxgen upscale --list`: the zoo's table; needs no other argument
        print(zoo.format_table())
        return 0
    args = _parser().parse_args(argv[1:])
    try:
        _, failed = upscale(args)
    except RunFailure as e:
        print(f"jaxgen: error: {one_line(str(e))}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"jaxgen: error: {one_line(str(e))}", file=sys.stderr)
        return 2
    return 1 if failed else 0
