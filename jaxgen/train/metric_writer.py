"""Run logging: TensorBoard scalars/images (tensorboardX, no TensorFlow) and ``W/metrics.jsonl``.

Only process 0 writes; other processes get a writer that does nothing.

A remote workdir (``gs://...``, :mod:`jaxgen.storage`): object stores cannot append, so both files are written
in a local staging folder (``metrics.jsonl`` starts as a copy of the workdir's, for a resumed run) and uploaded
whole -- each one request, replacing the previous upload -- at most every ``sync_every_s`` seconds (30), and on
``flush``/``close`` (the loop closes the writer however the run ends). A process killed with SIGKILL loses at most
the last ``sync_every_s`` seconds of logs; its checkpoints are not affected.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from jaxgen import storage


class MetricWriter:
    """Writes ``{name: scalar}`` per step to ``W/metrics.jsonl`` and TensorBoard (``W/tensorboard``)."""

    def __init__(self, workdir: Any, *, enabled: bool = True, sync_every_s: float = 30.0) -> None:
        self.enabled = enabled
        self._tb = None
        self._jsonl = None
        self._remote = None  # remote workdir: uploads from the local staging folder
        self._staging: Path | None = None
        self._uploaded: dict[Path, int] = {}  # staged file -> size at its last upload
        self._sync_every_s = sync_every_s
        self._last_sync = time.monotonic()
        if enabled:
            from tensorboardX import SummaryWriter

            workdir = storage.as_path(workdir)
            if storage.is_remote(workdir):
                self._remote = workdir
                self._staging = Path(tempfile.mkdtemp(prefix="jaxgen-metrics-"))
                jsonl = workdir / "metrics.jsonl"
                if jsonl.exists():  # a resumed run appends to it
                    (self._staging / "metrics.jsonl").write_bytes(jsonl.read_bytes())
                workdir = self._staging
            workdir.mkdir(parents=True, exist_ok=True)
            self._tb = SummaryWriter(str(workdir / "tensorboard"))
            self._jsonl = open(workdir / "metrics.jsonl", "a", encoding="utf-8")

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in scalars.items()}
        for name, value in clean.items():
            self._tb.add_scalar(name, value, step)
        record = {"step": int(step), "time": time.time()}
        record.update({k: (v if math.isfinite(v) else str(v)) for k, v in clean.items()})
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        if self._remote is not None and time.monotonic() - self._last_sync >= self._sync_every_s:
            self.flush()

    def write_image(self, step: int, name: str, image: np.ndarray) -> None:
        """``image``: ``[H,W,3]`` uint8 or float in [0,1]."""
        if self.enabled:
            self._tb.add_image(name, np.asarray(image), step, dataformats="HWC")

    def flush(self) -> None:
        if self.enabled:
            self._tb.flush()
            self._upload()

    def _upload(self) -> None:
        """Remote workdir: every staged file that grew since its last upload, uploaded whole."""
        if self._remote is None:
            return
        for path in sorted(p for p in self._staging.rglob("*") if p.is_file()):
            size = path.stat().st_size
            if self._uploaded.get(path) != size:  # grew (or is new) since its last upload
                (self._remote / path.relative_to(self._staging).as_posix()).write_bytes(path.read_bytes())
                self._uploaded[path] = size
        self._last_sync = time.monotonic()

    def close(self) -> None:
        if self.enabled:
            self._tb.close()
            self._jsonl.close()
            self.enabled = False
            if self._remote is not None:
                try:
                    self._upload()
                finally:
                    shutil.rmtree(self._staging, ignore_errors=True)
