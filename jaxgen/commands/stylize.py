"""``jaxgen stylize --method gatys|fast|adain CONTENT... [--style STYLE...] -o OUT``: neural style transfer.

  gatys  optimise each image (Gatys et al.; jcjohnson/neural-style defaults) with the Caffe VGG19:
         --style S1 [S2 ...] [--style-weights 0.7,0.3] --steps 1000 --optimizer lbfgs|adam --init random|image
         --style-scale 1.0 --content-weight 5 --style-weight 100 --tv-weight 1e-3 [--original-colors]
         [--multires 256,512 --steps 400,100]  (coarse-to-fine for large outputs)
  fast   a network shipped with jaxgen (--model NAME: candy-small), a trained fast_style run (--workdir W
         [--which best] | --checkpoint W/checkpoints/STEP) or an official pytorch/examples .pth (--weights
         FILE.pth); the style is in the network (no --style)
  adain  a trained adain run (--workdir/--checkpoint) or official weights (--decoder decoder.pth
         --encoder vgg_normalised.pth); --style S1 [S2 ...] [--style-weights ...] (interpolation)
         --alpha 1.0 [--preserve-color] [--mask MASK.png with two styles: foreground, background]

CONTENT and STYLE: image files or folders; CONTENT may instead be one video file (fast / adain; -o OUT.mp4:
frames streamed, audio and frame rate kept, resumable; --codec, --crf; jaxgen.video; --temporal-blend A: less
flicker, jaxgen.style.temporal, docs/video.md). --size: long side of the
output (gatys default 512; fast/adain keep the input size unless given); --style-size: long side of the style images (gatys: --style-scale x --size;
adain: 512, 0 = as they are). One content file and an -o with an image extension writes that file; otherwise
-o is a folder receiving <content>_<method>.png. Several contents: one that cannot be read or stylised gets one
error line and the others are done. Exit status 2 on bad input (one content), 1 when some contents failed or
ran out of memory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from jaxgen import image, inference, storage, video
from jaxgen.commands.common import run_guarded
from jaxgen.config import config_from_json
from jaxgen.image import IMAGE_EXTENSIONS, expand_image_inputs, read_rgb, resize_long_side, resize_to
from jaxgen.models import onednn_conv
from jaxgen.models.adain_net import AdaINEncoder
from jaxgen.models.adain_ops import adain_interpolate, masked_adain, mix_alpha
from jaxgen.style import GatysObjective, gatys_consts, stylize_gatys, stylize_multires
from jaxgen.style.colour import coral, original_colors
from jaxgen.style.temporal import TemporalBlend
from jaxgen.tasks import get_task, restore_generator
from jaxgen.tasks.adain import load_encoder
from jaxgen.weights import zoo
from jaxgen.weights.convert import load_pretrained

METHODS = ("gatys", "fast", "adain")
# The networks each method's forward runs (models.build names; conv_backend auto resolves per network and CPU).
METHOD_NETWORKS = {"gatys": ("vgg19",), "fast": ("transformer_net",), "adain": ("adain_vgg", "adain_decoder")}
TEMPORAL_BLEND = 0.0  # off: on a 1 px/frame pan every a >= 0.1 cost >= 45% more style loss (docs/video.md)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jaxgen stylize", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("contents", nargs="+", help="content images or folders")
    p.add_argument("--method", choices=METHODS, required=True)
    p.add_argument("--style", nargs="+", default=[], help="style images or folders (gatys, adain)")
    p.add_argument("--style-weights", default="", help="comma-separated blend/interpolation weights, one per style")
    p.add_argument("-o", "--output", required=True, help="output file (one content file) or folder")
    p.add_argument("--size", type=int, default=None, help="long side of the output in pixels")
    p.add_argument("--style-size", type=int, default=None, help="long side of the style images in pixels")
    g = p.add_argument_group("gatys")
    g.add_argument("--steps", default="1000", help="optimiser iterations (comma list with --multires)")
    g.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
    g.add_argument("--lr", type=float, default=10.0, help="Adam learning rate (Caffe pixel scale)")
    g.add_argument("--init", choices=("random", "image"), default="random")
    g.add_argument("--style-scale", type=float, default=1.0)
    g.add_argument("--content-weight", type=float, default=5.0)
    g.add_argument("--style-weight", type=float, default=100.0)
    g.add_argument("--tv-weight", type=float, default=1e-3)
    g.add_argument("--original-colors", action="store_true", help="keep the content's colours (luminance transfer)")
    g.add_argument("--multires", default="", help="coarse-to-fine long sides, e.g. 256,512 (the last is the output)")
    g.add_argument("--seed", type=int, default=0)
    m = p.add_argument_group("fast / adain checkpoints")
    m.add_argument("--workdir", help="a jaxgen training run (fast_style or adain)")
    m.add_argument("--which", choices=("latest", "best"), default="latest")
    m.add_argument("--checkpoint", help="one checkpoint: W/checkpoints/STEP")
    m.add_argument("--weights", help="fast: official pytorch/examples TransformerNet .pth")
    m.add_argument("--model", help=f"fast: a network shipped with jaxgen ({', '.join(zoo.fast_style_names())})")
    m.add_argument("--decoder", help="adain: official decoder .pth")
    m.add_argument("--encoder", help="adain with --decoder: official vgg_normalised .pth (default: the Caffe VGG19)")
    a = p.add_argument_group("adain")
    a.add_argument("--alpha", type=float, default=1.0, help="content-style trade-off in [0,1]")
    a.add_argument("--preserve-color", action="store_true", help="recolour the style to the content (CORAL)")
    a.add_argument("--mask", help="foreground mask (white = first style, black = second)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    onednn_conv.add_argument(p)
    video.add_arguments(p)
    p.add_argument("--temporal-blend", type=float, default=TEMPORAL_BLEND, metavar="A",
                   help=f"video: blend each frame with the previous output where the input matches after the camera "
                        f"motion, strength A in [0,1) (default {TEMPORAL_BLEND} = off; 0.3-0.5 steadies pans at some "
                        f"cost in style, see docs/video.md; jaxgen.style.temporal)")
    return p


def _weights(text: str, n: int) -> list[float] | None:
    if not text:
        return None
    try:
        w = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"--style-weights {text!r}: expected comma-separated numbers") from None
    if len(w) != n:
        raise ValueError(f"--style-weights has {len(w)} weights for {n} style images")
    return w


def _targets(contents: list[str], files: list[Path], output: Path, method: str) -> list[Path]:
    single = len(contents) == 1 and len(files) == 1 and not Path(contents[0]).is_dir()
    if single and output.suffix.lower() in IMAGE_EXTENSIONS:
        return [output]
    if output.exists() and not output.is_dir():
        raise ValueError(f"-o {output}: several outputs need a folder, but this is a file")
    return [output / f"{f.stem}_{method}.png" for f in files]


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 16:
        raise ValueError(f"{name} {value}: expected at least 16 pixels")


# ---------------------------------------------------------------------------------------------- methods


def _gatys(args: argparse.Namespace, styles: list[np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    consts, _ = gatys_consts()
    objective = GatysObjective(content_weight=args.content_weight, style_weight=args.style_weight,
                               tv_weight=args.tv_weight)
    try:
        steps = [int(s) for s in str(args.steps).split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--steps {args.steps!r}: expected an integer (or a comma list with --multires)") from None
    sizes = [int(s) for s in args.multires.split(",") if s.strip()] if args.multires else []
    if sizes and len(steps) not in (1, len(sizes)):
        raise ValueError(f"--multires has {len(sizes)} sizes but --steps gives {len(steps)} counts")
    if not sizes and len(steps) != 1:
        raise ValueError("--steps takes one integer (a list only with --multires)")
    size = args.size or (sizes[-1] if sizes else 512)
    if sizes and sizes[-1] != size:
        raise ValueError(f"--multires must end at the output size --size {size}; got {sizes}")
    style_scale = args.style_scale if not args.style_size else args.style_size / size
    kw: dict[str, Any] = dict(style_blend_weights=_weights(args.style_weights, len(styles)), objective=objective,
                              optimizer=args.optimizer, learning_rate=args.lr, init=args.init, style_scale=style_scale,
                              original_colors=args.original_colors, seed=args.seed, progress=not args.quiet)

    def run(content: np.ndarray) -> np.ndarray:
        if sizes:
            n = steps * len(sizes) if len(steps) == 1 else steps
            return stylize_multires(content, styles, consts, sizes=sizes, steps=n, **kw).image
        return stylize_gatys(resize_long_side(content, size), styles, consts, steps=steps[0], **kw).image

    return run


def _restore(args: argparse.Namespace, task_name: str, method: str) -> tuple[Any, Any, Any, int]:
    if args.checkpoint:
        ckpt = storage.as_path(args.checkpoint)
        if not ckpt.name.isdigit() or ckpt.parent.name != "checkpoints":
            raise ValueError(f"--checkpoint {ckpt}: expected WORKDIR/checkpoints/STEP")
        workdir, step = ckpt.parent.parent, int(ckpt.name)
    else:
        workdir, step = storage.as_path(args.workdir), None
    config_path = workdir / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{workdir} is not a jaxgen run (no config.json)")
    kind = config_from_json(config_path.read_text(), str(config_path)).task
    if kind != task_name:
        raise ValueError(f"wrong checkpoint kind: {workdir} is a {kind!r} run; --method {method} needs a {task_name!r} "
                         f"run (jaxgen train --config configs/{task_name}.py)")
    return restore_generator(workdir, step=step, which=args.which)


def _fast(args: argparse.Namespace) -> Callable[[np.ndarray], np.ndarray]:
    if args.model:
        given = [f for f, v in (("--workdir", args.workdir), ("--checkpoint", args.checkpoint),
                                ("--weights", args.weights)) if v]
        if given:
            raise ValueError(f"--model and {'/'.join(given)} both name a network: give one of --model, --workdir, "
                             "--checkpoint or --weights")
        module, params = zoo.load_fast_style(args.model)
    elif args.weights:
        if not Path(args.weights).is_file():
            raise ValueError(f"--weights {args.weights}: no such file")
        module, params = load_pretrained("transformer_net", args.weights)
    elif args.workdir or args.checkpoint:
        _, module, params, _ = _restore(args, "fast_style", "fast")
    else:
        raise ValueError("--method fast needs --model, --workdir, --checkpoint or --weights")
    apply = inference.make_apply(module, "transformer_net")

    def run(content: np.ndarray) -> np.ndarray:
        x = resize_long_side(content, args.size) if args.size else content
        h, w = x.shape[:2]
        ph, pw = (-h) % 4, (-w) % 4  # the network keeps sizes that are multiples of 4
        xp = np.pad(x, ((0, ph), (0, pw), (0, 0)), mode="reflect")
        y = np.asarray(apply(params, jnp.asarray(xp)[None]))[0, :h, :w]
        return np.clip(original_colors(y, x) if args.original_colors else y, 0.0, 1.0)

    return run


def _adain(args: argparse.Namespace, styles: list[np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    if args.decoder:
        if not Path(args.decoder).is_file():
            raise ValueError(f"--decoder {args.decoder}: no such file")
        decoder, dec_params = load_pretrained("adain_decoder", args.decoder)
        enc_params, _, input_conv = load_encoder(args.encoder or "caffe")
    elif args.workdir or args.checkpoint:
        config, module, dec_params, _ = _restore(args, "adain", "adain")
        task = get_task("adain")(config)
        decoder, enc_params, input_conv = task.decoder, task.consts()[0]["encoder"], task.input_conv
    else:
        raise ValueError("--method adain needs --workdir, --checkpoint or --decoder")
    if not 0.0 <= args.alpha <= 1.0:
        raise ValueError(f"--alpha {args.alpha}: expected a value in [0, 1]")
    weights = _weights(args.style_weights, len(styles)) or [1.0] * len(styles)
    if args.mask and len(styles) != 2:
        raise ValueError(f"--mask needs exactly two styles (foreground, background); got {len(styles)}")
    encoder = AdaINEncoder(taps=("relu4_1",), input_conv=input_conv)
    encode = jax.jit(lambda p, x: encoder.apply({"params": p}, x)["relu4_1"])
    decode = jax.jit(lambda p, t: decoder.apply({"params": p}, t))
    style_size = 512 if args.style_size is None else args.style_size
    styles = [resize_long_side(s, style_size) if style_size else s for s in styles]
    mask = read_rgb(args.mask).mean(axis=-1) if args.mask else None

    def run(content: np.ndarray) -> np.ndarray:
        x = resize_long_side(content, args.size) if args.size else content
        h, w = x.shape[:2]
        ss = [coral(s, x) for s in styles] if args.preserve_color else styles
        c = encode(enc_params, jnp.asarray(x)[None])
        feats = [encode(enc_params, jnp.asarray(s)[None]) for s in ss]
        if mask is not None:
            m = resize_to(np.repeat(mask[..., None], 3, -1), c.shape[1:3])[..., 0] > 0.5
            if m.all() or not m.any():
                raise ValueError(f"--mask {args.mask}: needs both foreground (white) and background (black) areas")
            t = masked_adain(c, feats[0], feats[1], jnp.asarray(m))
        else:
            t = adain_interpolate(c, feats, weights)
        y = np.asarray(decode(dec_params, mix_alpha(t, c, args.alpha)))[0]
        return np.clip(resize_to(y, (h, w)) if y.shape[:2] != (h, w) else y, 0.0, 1.0)

    return run


def stylize(args: argparse.Namespace) -> tuple[list[Path], int]:
    _positive("--size", args.size)
    if args.style_size not in (None, 0):
        _positive("--style-size", args.style_size)
    is_video = video.is_video(args.contents)
    onednn_conv.configure(args.conv_backend, networks=METHOD_NETWORKS[args.method])  # auto: per network and CPU
    if not 0.0 <= args.temporal_blend < 1.0:
        raise ValueError(f"--temporal-blend {args.temporal_blend}: expected a strength in [0, 1) (0 = off)")
    if is_video and args.method == "gatys":
        raise ValueError("video input needs --method fast or adain (gatys optimises every frame for minutes)")
    if args.model and args.method != "fast":
        raise ValueError(f"--model names a fast-style network: it needs --method fast, not {args.method}")
    contents = [] if is_video else expand_image_inputs(args.contents, "content")
    if args.method == "fast":
        if args.style:
            raise ValueError("--method fast takes no --style: the trained network is one style (see --workdir)")
        styles: list[np.ndarray] = []
    else:
        if not args.style:
            raise ValueError(f"--method {args.method} needs --style STYLE [STYLE ...] (image files or folders)")
        styles = [read_rgb(f) for f in expand_image_inputs(args.style, "style")]
    targets = [] if is_video else _targets(args.contents, contents, Path(args.output), args.method)
    run = {"gatys": lambda: _gatys(args, styles), "fast": lambda: _fast(args),
           "adain": lambda: _adain(args, styles)}[args.method]()
    if is_video:  # one video file: every frame through `run`, streamed and resumable (jaxgen.video)
        frame_fn = TemporalBlend(run, args.temporal_blend)  # a = 0: `run` unchanged
        out = video.transcode(args.contents[0], args.output, frame_fn, video.options_from_args(args),
                              label=repr(sorted(vars(args).items())), progress=not args.quiet)
        print(f"video stylised ({args.method}) -> {out}")
        return [out], 0
    written, failed = [], 0
    for src, dst in tqdm(list(zip(contents, targets)), desc="stylize", unit="img",
                         disable=True if args.quiet or len(contents) == 1 else None):
        try:
            written.append(image.write_image(dst, image.to_uint8(stylize_one(run, read_rgb, src))))
        except (ValueError, OSError) as e:
            message = str(e) if str(src) in str(e) else f"{src}: {e}"
            if len(contents) == 1:  # bad input: exit 2; out of memory, a full disk: exit 1
                raise (ValueError if isinstance(e, ValueError) else RunFailure)(message) from None
            failed += 1
            print(f"jaxgen: error: {' '.join(message.split())}", file=sys.stderr, flush=True)
    done = f"{len(written)} image(s) stylised ({args.method}) -> {args.output}"
    print(done + (f"; {failed} of {len(contents)} failed (see the errors above)" if failed else ""))
    return written, failed


class RunFailure(OSError):
    """A content image that failed for another reason than bad input (out of memory, a full disk): exit 1."""


def stylize_one(run: Callable[[np.ndarray], np.ndarray], read: Callable[[Path], np.ndarray], src: Path) -> np.ndarray:
    """``run(read(src))``; out of memory (XLA RESOURCE_EXHAUSTED or ``MemoryError``) -> :class:`RunFailure`
    saying what to lower."""
    content = read(src)
    try:
        return run(content)
    except (MemoryError, RuntimeError) as e:
        if not (isinstance(e, MemoryError) or "RESOURCE_EXHAUSTED" in str(e)):
            raise
        h, w = content.shape[:2]
        raise RunFailure(f"{src}: out of memory stylising {w}x{h} pixels; give a smaller --size (gatys: or "
                         "--multires with a smaller first size, --optimizer adam)") from None


def run(argv: list[str]) -> int:
    """Entry point of ``jaxgen stylize``: 0 on success, 2 on bad input, 1 when some of several contents (or a
    content that does not fit in memory) failed (``jaxgen: error: ...`` on stderr, one line each)."""
    args = _parser().parse_args(argv[1:])
    try:
        _, failed = run_guarded(lambda: stylize(args))
    except RunFailure as e:
        print(f"jaxgen: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run(sys.argv))
