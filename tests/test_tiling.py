"""Tiled inference equals untiled inference for a conv net whose receptive field fits in the overlap."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.inference.tiling import tile_windows, upscale_tiled

SCALE = 2
RADIUS = 3  # three 3x3 'SAME' convs


def _make_net(seed: int = 0, c: int = 3, feat: int = 8):
    """A tiny SR net: three 3x3 zero-padded convs (receptive-field radius 3 LR pixels) + pixel shuffle x2."""
    rng = np.random.default_rng(seed)
    shapes = [(3, 3, c, feat), (3, 3, feat, feat), (3, 3, feat, c * SCALE**2)]
    ws = [jnp.asarray(rng.standard_normal(s) / np.sqrt(9 * s[2]), jnp.float32) for s in shapes]
    bs = [jnp.asarray(0.1 * rng.standard_normal(s[-1]), jnp.float32) for s in shapes]

    @jax.jit
    def net(x):
        for i, (w, b) in enumerate(zip(ws, bs)):
            x = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                             precision=jax.lax.Precision.HIGHEST) + b
            if i < 2:
                x = jax.nn.relu(x) + 0.1 * x  # leaky: no dead units hiding seams
        n, h, w_, _ = x.shape
        x = x.reshape(n, h, w_, SCALE, SCALE, c).transpose(0, 1, 3, 2, 4, 5)
        return x.reshape(n, h * SCALE, w_ * SCALE, c)

    calls: list[tuple[int, ...]] = []

    def sr_fn(x: np.ndarray) -> np.ndarray:
        assert isinstance(x, np.ndarray) and x.dtype == np.float32
        calls.append(x.shape)
        return np.asarray(net(x))

    return sr_fn, calls


def _image(h: int, w: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def net():
    return _make_net()


def test_tiled_equals_untiled_with_enough_overlap(net):
    sr_fn, calls = net
    lr = _image(50, 37)
    full = sr_fn(lr[None])[0]
    for overlap in (RADIUS, 4):  # exactly the radius is enough
        calls.clear()
        tiled = upscale_tiled(sr_fn, lr, SCALE, tile=16, overlap=overlap)
        assert tiled.shape == (100, 74, 3) and tiled.dtype == np.float32
        np.testing.assert_allclose(tiled, full, rtol=0, atol=1e-5)
        # Every window has the tile shape, so a jitted sr_fn compiles once.
        assert set(calls) == {(1, 16, 16, 3)}
    # Tile 16, overlap 4: windows step by 8 and keep their centre; the last one is shifted inward.
    assert tile_windows(50, 16, 4) == [(0, 0, 12), (8, 12, 20), (16, 20, 28), (24, 28, 36), (32, 36, 44), (34, 44, 50)]
    assert tile_windows(37, 16, 4) == [(0, 0, 12), (8, 12, 20), (16, 20, 28), (21, 28, 37)]
    assert len(calls) == 6 * 4


def test_too_little_overlap_shows_seams(net):
    sr_fn, _ = net
    lr = _image(50, 37, seed=2)
    full = sr_fn(lr[None])[0]
    for overlap in (0, RADIUS - 1):
        diff = np.abs(upscale_tiled(sr_fn, lr, SCALE, tile=16, overlap=overlap) - full).max(-1)
        assert diff.max() > 1e-3, overlap
    # With overlap 0, errors only sit within RADIUS LR pixels of a seam between kept parts.
    diff = np.abs(upscale_tiled(sr_fn, lr, SCALE, tile=16, overlap=0) - full).max(-1)
    seams = [b for _, a, b in tile_windows(50, 16, 0)[:-1]]
    near = np.zeros(100, bool)
    for b in seams:
        near[max(0, (b - RADIUS) * SCALE) : (b + RADIUS) * SCALE] = True
    col_seams = [b for _, a, b in tile_windows(37, 16, 0)[:-1]]
    near_c = np.zeros(74, bool)
    for b in col_seams:
        near_c[max(0, (b - RADIUS) * SCALE) : (b + RADIUS) * SCALE] = True
    assert diff[~near[:, None] & ~near_c[None, :]].max() < 1e-5
    assert diff[near[:, None] | near_c[None, :]].max() > 1e-3


def test_image_smaller_than_tile(net):
    sr_fn, calls = net
    for h, w in ((10, 7), (50, 7), (7, 40)):
        lr = _image(h, w, seed=h + w)
        calls.clear()
        tiled = upscale_tiled(sr_fn, lr, SCALE, tile=16, overlap=4)
        full = sr_fn(lr[None])[0]
        np.testing.assert_allclose(tiled, full, rtol=0, atol=1e-5)
        assert set(calls[:-1]) == {(1, min(16, h), min(16, w), 3)}  # never padded past the image


@pytest.mark.parametrize("tile", [0, -1, None])
def test_no_tiling(net, tile):
    sr_fn, calls = net
    lr = _image(20, 18)
    calls.clear()
    out = upscale_tiled(sr_fn, lr, SCALE, tile=tile, overlap=4)
    assert calls == [(1, 20, 18, 3)]
    np.testing.assert_array_equal(out, sr_fn(lr[None])[0])


@pytest.mark.parametrize("size,tile,overlap", [(50, 16, 4), (37, 16, 4), (17, 16, 7), (100, 5, 2), (16, 16, 3),
                                               (33, 9, 0), (1, 4, 1)])
def test_window_plan_partitions_with_context(size, tile, overlap):
    plan = tile_windows(size, tile, overlap)
    length = min(tile, size)
    assert plan[0][1] == 0 and plan[-1][2] == size
    for (s, a, b), nxt in zip(plan, plan[1:] + [None]):
        assert 0 <= s and s + length <= size  # inside the image, same length
        assert a < b and (nxt is None or nxt[1] == b)  # kept parts partition [0, size)
        assert a - s >= overlap or s == 0  # left context
        assert s + length - b >= overlap or s + length == size  # right context


def test_every_output_pixel_comes_from_one_window():
    """An sr_fn that tags each window's output with its call index: kept parts tile the output exactly."""
    lr = _image(23, 30)
    seen = []

    def tagging_fn(x):
        seen.append(x.shape)
        return np.full((1, x.shape[1] * 3, x.shape[2] * 3, 1), len(seen), np.float32)

    out = upscale_tiled(tagging_fn, lr, 3, tile=10, overlap=2)
    rows, cols = tile_windows(23, 10, 2), tile_windows(30, 10, 2)
    assert len(seen) == len(rows) * len(cols)
    for i, (_, a, b) in enumerate(rows):
        for j, (_, c, d) in enumerate(cols):
            np.testing.assert_array_equal(out[a * 3 : b * 3, c * 3 : d * 3, 0], i * len(cols) + j + 1)


def test_argument_errors(net):
    sr_fn, _ = net
    lr = _image(20, 20)
    with pytest.raises(ValueError, match="overlap < tile / 2.*tile=8, overlap=4"):
        upscale_tiled(sr_fn, lr, SCALE, tile=8, overlap=4)
    with pytest.raises(ValueError, match="overlap=-1"):
        upscale_tiled(sr_fn, lr, SCALE, tile=8, overlap=-1)
    with pytest.raises(ValueError, match=r"\[H,W,C\].*\(1, 20, 20, 3\)"):
        upscale_tiled(sr_fn, lr[None], SCALE, tile=8, overlap=2)
    with pytest.raises(ValueError, match="float"):
        upscale_tiled(sr_fn, (lr * 255).astype(np.uint8), SCALE, tile=8, overlap=2)
    with pytest.raises(ValueError, match=r"returned shape \(1, 16, 16, 3\).*scale 3"):
        upscale_tiled(sr_fn, lr, 3, tile=8, overlap=2)
    with pytest.raises(ValueError, match="tile must be an int"):
        upscale_tiled(sr_fn, lr, SCALE, tile=8.5, overlap=2)
    with pytest.raises(ValueError, match="scale must be >= 1"):
        upscale_tiled(sr_fn, lr, 0, tile=8, overlap=2)


def test_fixed_shape_pads_small_sides_to_the_tile(net):
    """``fixed_shape``: every call sees one ``[1, tile, tile, C]`` shape (one compile for every image size); the
    kept output is the padded run's top-left corner, and a pointwise network (no receptive field beyond the pixel)
    gives exactly the unpadded result."""
    sr_fn, calls = net
    for h, w in ((10, 7), (50, 7), (7, 40), (37, 23)):
        lr = _image(h, w, seed=h * w)
        calls.clear()
        out = upscale_tiled(sr_fn, lr, SCALE, tile=16, overlap=4, fixed_shape=True)
        assert set(calls) == {(1, 16, 16, 3)}
        assert out.shape == (h * SCALE, w * SCALE, 3)
        padded = np.pad(lr, ((0, max(0, 16 - h)), (0, max(0, 16 - w)), (0, 0)), mode="reflect")
        expected = upscale_tiled(sr_fn, padded, SCALE, tile=16, overlap=4)[: h * SCALE, : w * SCALE]
        np.testing.assert_array_equal(out, expected)

    def pointwise(x):
        return np.repeat(np.repeat(np.asarray(x) * 2.0, SCALE, axis=1), SCALE, axis=2)

    lr = _image(9, 30, seed=3)
    np.testing.assert_array_equal(upscale_tiled(pointwise, lr, SCALE, tile=16, overlap=4, fixed_shape=True),
                                  pointwise(lr[None])[0])


@pytest.mark.parametrize("batch,fixed", [(2, False), (4, False), (5, True)])
def test_batched_windows_equal_one_window_at_a_time(net, batch, fixed):
    """``batch``: every call gets ``batch`` windows (the last group filled up with copies, so one shape), there are
    ceil(windows / batch) calls, and each window's kept part lands where the one-at-a-time run puts it (a window
    order or filler mix-up moves pixels: the images differ by O(1))."""
    sr_fn, calls = net
    lr = _image(30, 44, seed=7)  # 3 x 5 windows of 16 with overlap 4
    calls.clear()
    one = upscale_tiled(sr_fn, lr, SCALE, tile=16, overlap=4, fixed_shape=fixed)
    n = len(calls)
    assert n == len(tile_windows(30, 16, 4)) * len(tile_windows(44, 16, 4)) == 15
    calls.clear()
    batched = upscale_tiled(sr_fn, lr, SCALE, tile=16, overlap=4, fixed_shape=fixed, batch=batch)
    assert calls == [(batch, 16, 16, 3)] * -(-n // batch)
    np.testing.assert_allclose(batched, one, rtol=0, atol=1e-6)
    small = _image(9, 11, seed=8)  # one window, padded to the tile with fixed_shape
    calls.clear()
    out = upscale_tiled(sr_fn, small, SCALE, tile=16, overlap=4, fixed_shape=fixed, batch=batch)
    assert calls == [(batch, 16, 16, 3) if fixed else (batch, 9, 11, 3)]
    np.testing.assert_allclose(out, upscale_tiled(sr_fn, small, SCALE, tile=16, overlap=4, fixed_shape=fixed),
                               rtol=0, atol=1e-6)


def test_batch_must_be_positive(net):
    with pytest.raises(ValueError, match="batch must be >= 1; got 0"):
        upscale_tiled(net[0], _image(20, 20), SCALE, tile=8, overlap=2, batch=0)
