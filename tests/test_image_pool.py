"""The CycleGAN image pool against the official ``ImagePool.query`` rule: a pure-Python re-statement of it (second
implementation, driven by the same draws), statistics of the 50/50 rule, filling order, jit purity."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.tasks.image_pool import new_pool, query_pool


def _images(start: int, n: int, shape=(2, 2, 1)) -> jnp.ndarray:
    """Images whose every pixel is their id (start, start+1, ...), so returned images identify themselves."""
    return jnp.broadcast_to(jnp.arange(start, start + n, dtype=jnp.float32)[:, None, None, None], (n, *shape))


def _ids(images) -> list[int]:
    return [int(v) for v in np.asarray(images)[:, 0, 0, 0]]


def official_query(pool: list[int], pool_size: int, batch: list[int], draws: list[tuple[float, int]]) -> list[int]:
    """The official loop (util/image_pool.py) on ids, with the uniform and the slot of each image given."""
    out = []
    for image, (p, slot) in zip(batch, draws):
        if len(pool) < pool_size:
            pool.append(image)
            out.append(image)
        elif p > 0.5:
            out.append(pool[slot])
            pool[slot] = image
        else:
            out.append(image)
    return out


def _draws(key, n, size):
    """The (p, slot) our pool draws for each of ``n`` images (its documented key use)."""
    out = []
    for k in jax.random.split(key, n):
        k_p, k_slot = jax.random.split(k)
        out.append((float(jax.random.uniform(k_p)), int(jax.random.randint(k_slot, (), 0, size))))
    return out


def test_matches_the_official_rule_step_by_step():
    size, batch = 5, 3
    query = jax.jit(query_pool)
    pool = new_pool(size, (2, 2, 1))
    reference: list[int] = []
    next_id = 1
    for step in range(12):  # fills within the 2nd batch, then swaps; a batch straddles the full point
        key = jax.random.key(step)
        images = _images(next_id, batch)
        expected = official_query(reference, size, list(range(next_id, next_id + batch)), _draws(key, batch, size))
        pool, returned = query(pool, images, key)
        assert _ids(returned) == expected, step
        assert int(pool["count"]) == len(reference)
        assert _ids(pool["images"][: len(reference)]) == reference
        next_id += batch


def test_not_full_returns_new_images_and_stores_them_in_order():
    pool = new_pool(10, (2, 2, 1))
    pool, out = query_pool(pool, _images(1, 4), jax.random.key(0))
    assert _ids(out) == [1, 2, 3, 4] and int(pool["count"]) == 4
    assert _ids(pool["images"]) == [1, 2, 3, 4, 0, 0, 0, 0, 0, 0]


def test_full_pool_returns_new_image_half_the_time_and_history_uniformly():
    size, n = 4, 4000
    pool = {"images": _images(-size, size), "count": jnp.asarray(size, jnp.int32)}  # full, ids -4..-1
    _, out = jax.jit(query_pool)(pool, _images(1, n), jax.random.key(1))
    ids = np.array(_ids(out))
    positions = np.arange(1, n + 1)
    new = ids == positions
    # P(new) = 0.5; 4000 draws: 5 sigma = 0.04.
    assert abs(new.mean() - 0.5) < 0.04
    # A history answer is an image stored before (an original, or an earlier image of the stream).
    assert np.all(ids[~new] < positions[~new])
    # Uniform slots: an image stored at t is returned at the first later step that swaps (1/2) *its* slot (1/size),
    # so the ages of returned stream images are geometric with mean 2 * size = 8 (std ~7.5; ~2000 samples: SE
    # 0.17). Always slot 0 would give 2; ignoring the stored image's slot, other means.
    ages = (positions - ids)[(~new) & (ids > 0)]
    assert abs(ages.mean() - 2 * size) < 1.0
    # Each original comes back at most once (then its slot holds a stream image).
    originals = ids[ids < 0]
    assert len(originals) == len(set(originals.tolist())) == size


def test_history_is_replaced_by_the_new_image():
    pool = {"images": _images(-3, 3), "count": jnp.asarray(3, jnp.int32)}
    key = jax.random.key(5)
    draws = _draws(key, 1, 3)
    new_state, out = query_pool(pool, _images(1, 1), key)
    stored = _ids(new_state["images"])
    if draws[0][0] > 0.5:
        slot = draws[0][1]
        assert _ids(out) == [[-3, -2, -1][slot]] and stored[slot] == 1
    else:
        assert _ids(out) == [1] and stored == [-3, -2, -1]


def test_zero_size_pool_is_a_no_op_and_bad_sizes_are_errors():
    pool = new_pool(0, (2, 2, 1))
    same, out = query_pool(pool, _images(1, 3), jax.random.key(0))
    assert _ids(out) == [1, 2, 3] and same is pool
    with pytest.raises(ValueError, match="pool_size=-1"):
        new_pool(-1, (2, 2, 1))
    with pytest.raises(ValueError, match="image pool holds"):
        query_pool(new_pool(2, (2, 2, 1)), jnp.zeros((1, 3, 3, 1)), jax.random.key(0))


def test_pure_function_of_its_inputs():
    pool = {"images": _images(-6, 6), "count": jnp.asarray(6, jnp.int32)}
    a = jax.jit(query_pool)(pool, _images(1, 8), jax.random.key(3))
    b = query_pool(pool, _images(1, 8), jax.random.key(3))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert np.array_equal(np.asarray(x), np.asarray(y))
