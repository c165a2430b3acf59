"""A third task, defined here, proves the core carries more than two players and task-owned buffers: two
generators and two discriminators (a miniature CycleGAN on 1x1 colour maps) plus a ring buffer of past fakes
in ``state.buffers``, trained through the generic loop: checkpoints hold all four players and the buffer,
and an interrupted run resumes bitwise-exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from jaxgen.config import lock, optim_config
from jaxgen.tasks import TASKS, base_config
from jaxgen.train import train
from jaxgen.train.checkpoint import open_manager
from jaxgen.train.state import STREAM_NOISE, apply_gradients, init_key, new_player, new_state, step_key

POOL = 6
SIZE = 8
TRUE_MAP = np.array([[0.2, 0.7, 0.1], [0.6, 0.1, 0.3], [0.1, 0.3, 0.6]], np.float32)  # B = A @ TRUE_MAP


class ColourMap(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.Conv(3, (1, 1))(x)


class TinyCritic(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.Conv(1, (3, 3))(nn.relu(nn.Conv(4, (3, 3))(x)))


class UnpairedBatches:
    """Batch ``n`` = (A images, B = other A images mapped by TRUE_MAP), a pure function of (seed, n)."""

    def __init__(self, seed: int, batch: int, process_index: int, process_count: int) -> None:
        self.seed, self.n = seed, 0
        self.rows = slice(process_index * batch // process_count, (process_index + 1) * batch // process_count)
        self.batch = batch

    def __next__(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, self.n])
        self.n += 1
        a = rng.random((self.batch, SIZE, SIZE, 3), dtype=np.float32)
        b = rng.random((self.batch, SIZE, SIZE, 3), dtype=np.float32) @ TRUE_MAP
        return {"a": a[self.rows], "b": b[self.rows]}

    def get_state(self) -> dict[str, Any]:
        return {"next_batch": self.n}

    def set_state(self, state: dict[str, Any]) -> None:
        self.n = int(state["next_batch"])


class TinyCycleTask:
    EXPORT_PLAYER = "g_ab"
    best_metric = "err_ab"
    best_mode = "min"

    @staticmethod
    def default_config(c: ml_collections.ConfigDict) -> None:
        c.open_sections = ()
        c.optim = optim_config(lr=1e-2)
        c.cycle_weight = 10.0

    def __init__(self, config: ml_collections.ConfigDict) -> None:
        self.config = config
        self.tx = optax.adam(config.optim.lr)
        self.nets = {"g_ab": ColourMap(), "g_ba": ColourMap(), "d_a": TinyCritic(), "d_b": TinyCritic()}

    @property
    def players(self):
        return {name: (net, self.tx) for name, net in self.nets.items()}

    @staticmethod
    def architecture(config: ml_collections.ConfigDict) -> dict[str, Any]:
        return {name: {"name": "ColourMap" if name[0] == "g" else "TinyCritic"} for name in ("g_ab", "g_ba", "d_a", "d_b")}

    def init(self):
        x = jnp.zeros((1, SIZE, SIZE, 3))
        players = {n: new_player(net.init(init_key(self.config.seed, n), x)["params"], self.tx)
                   for n, net in self.nets.items()}
        buffers = {"pool_b": jnp.zeros((POOL, SIZE, SIZE, 3)), "count": jnp.zeros((), jnp.int32)}
        return new_state(self.config.seed, players, buffers)

    def consts(self):
        return {}, {}

    def step(self, state, batch, consts):
        p = {n: pl.params for n, pl in state.players.items()}
        g_ab, g_ba, d_a, d_b = (self.nets[n].apply for n in ("g_ab", "g_ba", "d_a", "d_b"))
        noise = 0.01 * jax.random.normal(step_key(state, STREAM_NOISE), batch["a"].shape)
        a, b = batch["a"] + noise, batch["b"]

        def g_loss(gp):
            fake_b, fake_a = g_ab({"params": gp["g_ab"]}, a), g_ba({"params": gp["g_ba"]}, b)
            adv = jnp.mean((d_b({"params": p["d_b"]}, fake_b) - 1) ** 2) + jnp.mean((d_a({"params": p["d_a"]}, fake_a) - 1) ** 2)
            cyc = jnp.mean(jnp.abs(g_ba({"params": gp["g_ba"]}, fake_b) - a)) + jnp.mean(jnp.abs(g_ab({"params": gp["g_ab"]}, fake_a) - b))
            return adv + self.config.cycle_weight * cyc, fake_b

        (gl, fake_b), gg = jax.value_and_grad(g_loss, has_aux=True)({"g_ab": p["g_ab"], "g_ba": p["g_ba"]})
        fake_b = jax.lax.stop_gradient(fake_b)
        idx = (state.buffers["count"] + jnp.arange(fake_b.shape[0])) % POOL
        pool = state.buffers["pool_b"].at[idx].set(fake_b)

        def d_loss(dp):
            real = jnp.mean((d_b({"params": dp}, b) - 1) ** 2)
            return 0.5 * (real + jnp.mean(d_b({"params": dp}, pool) ** 2))

        dl, dg = jax.value_and_grad(d_loss)(p["d_b"])
        players = dict(state.players)
        players["g_ab"] = apply_gradients(players["g_ab"], gg["g_ab"], self.tx)
        players["g_ba"] = apply_gradients(players["g_ba"], gg["g_ba"], self.tx)
        players["d_b"] = apply_gradients(players["d_b"], dg, self.tx)
        buffers = {"pool_b": pool, "count": state.buffers["count"] + fake_b.shape[0]}
        metrics = {"loss": gl, "d_loss": dl, "finite": jnp.isfinite(gl) & jnp.isfinite(dl)}
        return state.replace(step=state.step + 1, players=players, buffers=buffers), metrics

    def prepare(self, workdir: Path) -> None:
        pass

    def make_data(self, process_index: int, process_count: int):
        return UnpairedBatches(self.config.seed, self.config.batch_size, process_index, process_count)

    def evaluate(self, state):
        rng = np.random.default_rng(123)
        a = rng.random((4, SIZE, SIZE, 3), dtype=np.float32)
        out = np.asarray(self.nets["g_ab"].apply({"params": state.players["g_ab"].params}, a))
        grid = (np.clip(np.concatenate([a[0], out[0], a[0] @ TRUE_MAP], axis=1), 0, 1) * 255).astype(np.uint8)
        return {"err_ab": float(np.mean(np.abs(out - a @ TRUE_MAP)))}, {"a_fake_true": grid}

    def export_module(self):
        return self.nets["g_ab"]


@pytest.fixture(autouse=True)
def registered():
    TASKS["tiny_cycle"] = TinyCycleTask
    yield
    TASKS.pop("tiny_cycle", None)


def _config(total_steps: int) -> ml_collections.ConfigDict:
    c = base_config("tiny_cycle")
    c.batch_size, c.total_steps, c.log_every, c.eval_every, c.ckpt_every = 4, total_steps, 2, 0, 3
    c.progress_bar = False
    return lock(c)


def _restore_state(workdir: Path, step: int) -> dict[str, Any]:
    manager = open_manager(workdir / "checkpoints", read_only=True, best_metric="err_ab", best_mode="min")
    return manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]


def test_four_players_and_a_buffer_train_checkpoint_and_resume_exactly(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    summary = train(_config(8), straight, TinyCycleTask(_config(8)))
    train(_config(5), split, TinyCycleTask(_config(5)))
    resumed = train(_config(8), split, TinyCycleTask(_config(8)))
    assert resumed["start_step"] == 5 and summary["final_step"] == 8
    a, b = _restore_state(straight, 8), _restore_state(split, 8)
    assert set(a["players"]) == {"g_ab", "g_ba", "d_a", "d_b"}
    assert int(a["buffers"]["count"]) == 8 * 4
    # Ring buffer: slot j holds the fake of global index 31 - ((31 - j) % 6) ... i.e. it was written this run.
    assert np.abs(np.asarray(a["buffers"]["pool_b"])).sum() > 0
    flat_a = jax.tree_util.tree_flatten_with_path(a)[0]
    flat_b = dict(jax.tree_util.tree_flatten_with_path(b)[0])
    for path, leaf in flat_a:
        other = flat_b[path]
        assert np.array_equal(np.asarray(leaf), np.asarray(other)), jax.tree_util.keystr(path)
    # d_a never trains in this task: its params stay at their initial values, its optimizer state at zero.
    task = TinyCycleTask(_config(8))
    init = jax.jit(task.init)()  # one program, as train's (op by op, every init op compiles apart)
    d_a0 = init.players["d_a"].params
    for x, y in zip(jax.tree.leaves(d_a0), jax.tree.leaves(a["players"]["d_a"]["params"])):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    # Training helped: the A->B map is closer to the truth than at initialisation.
    assert summary["val"]["err_ab"] < task.evaluate(init)[0]["err_ab"]
    assert (straight / "images" / "a_fake_true_0000008.png").exists()


def test_best_checkpoint_follows_the_task_direction(tmp_path):
    """best_mode='min': the kept best step is the one with the lowest err_ab (Orbax best_fn/best_mode)."""
    config = _config(6)
    config.eval_every = 2
    train(config, tmp_path / "w", TinyCycleTask(config))
    manager = open_manager(tmp_path / "w" / "checkpoints", read_only=True, best_metric="err_ab", best_mode="min")
    import json

    errs = {}
    for line in (tmp_path / "w" / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "err_ab" in r:
            errs[r["step"]] = r["err_ab"]
    assert manager.best_step() == min(errs, key=errs.get)
