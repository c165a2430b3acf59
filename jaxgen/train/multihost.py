"""Checks that keep a multi-process run (``config.distributed=True``) from hanging; see ``docs/multihost.md``.

- :func:`check_shared_workdir`: every process must see the workdir process 0 writes (Orbax's checkpoints are
  one folder written by all processes; on per-host disks the first save waits forever). Process 0 writes a
  marker holding a random token, broadcasts the token, and every process looks for it (``JAXGEN_SHARED_WAIT_S``
  seconds, default 10, for network filesystems' caches); any process that does not see it -> ``ValueError`` on
  every process.
- :func:`agree_on_step`: the step each process would restore (its own ``latest_step()``), all-gathered; they
  must be equal.
- :class:`StopWatchdog`: after SIGTERM / Ctrl-C, a process still running ``JAXGEN_STOP_TIMEOUT_S`` seconds
  later (default 120) is blocked in C++ -- a collective waiting for a process that died or was stopped -- where
  Python's signal handlers never run; it prints one line and exits 1 (its last finished checkpoint is kept).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import threading
import time
from typing import Any, Callable

import jax
import numpy as np
from etils import epath

MARKER = ".jaxgen_shared_check"
STOP_TIMEOUT_ENV = "JAXGEN_STOP_TIMEOUT_S"
DEFAULT_STOP_TIMEOUT_S = 120.0
SHARED_WAIT_ENV = "JAXGEN_SHARED_WAIT_S"
DEFAULT_SHARED_WAIT_S = 10.0


def _allgather(values: np.ndarray) -> np.ndarray:
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(values)).reshape(jax.process_count(), -1)


def _broadcast(values: np.ndarray) -> np.ndarray:
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.broadcast_one_to_all(values))


def check_shared_workdir(workdir: Any, *, wait_s: float | None = None,
                         allgather: Callable[[np.ndarray], np.ndarray] | None = None,
                         broadcast: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
    """Raises ``ValueError`` (on every process) unless every process sees the file process 0 writes in
    ``workdir`` (a local path or any URL etils.epath opens: ``gs://...``) within ``wait_s`` seconds (default
    ``JAXGEN_SHARED_WAIT_S``, else 10). A no-op with one process."""
    if jax.process_count() == 1:
        return
    wait_s = shared_wait_s() if wait_s is None else wait_s
    allgather, broadcast = allgather or _allgather, broadcast or _broadcast
    folder = epath.Path(str(workdir))
    marker = folder / MARKER
    token = np.frombuffer(os.urandom(16), np.int32).copy()
    if jax.process_index() == 0:
        folder.mkdir(parents=True, exist_ok=True)
        marker.write_text(" ".join(map(str, token)))
    token = broadcast(token)  # after process 0's write
    expected = " ".join(map(str, np.asarray(token).reshape(-1)))
    deadline = time.monotonic() + wait_s
    seen = False
    while True:
        try:
            seen = marker.read_text().strip() == expected
        except (OSError, FileNotFoundError):
            seen = False
        if seen or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    flags = allgather(np.asarray([int(seen)], np.int32))
    blind = [i for i, ok in enumerate(np.asarray(flags).reshape(-1)) if not ok]
    if jax.process_index() == 0:
        try:
            marker.unlink()
        except (OSError, FileNotFoundError):
            pass
    if blind:
        raise ValueError(
            f"--workdir {workdir} is not shared: process(es) {blind} of {jax.process_count()} do not see the file "
            f"process 0 wrote there ({MARKER}). Every process of a multi-host run writes one checkpoint folder: "
            "give them all the same shared storage (NFS, gs://bucket/run); see docs/multihost.md")


def agree_on_step(step: int | None, *, allgather: Callable[[np.ndarray], np.ndarray] | None = None) -> int | None:
    """``step`` (a process's ``latest_step()``, None = no checkpoint) when every process found the same; else
    ``ValueError`` naming each process's step. A no-op with one process."""
    if jax.process_count() == 1 and allgather is None:
        return step
    gathered = (allgather or _allgather)(np.asarray([-1 if step is None else int(step)], np.int32))
    steps = [int(s) for s in np.asarray(gathered).reshape(-1)]
    if len(set(steps)) > 1:
        shown = ", ".join(f"process {i}: {'none' if s < 0 else s}" for i, s in enumerate(steps))
        raise ValueError(f"the processes see different latest checkpoints ({shown}): the workdir is not the same "
                         "storage for all of them, or a checkpoint is still being copied; see docs/multihost.md")
    return step


def _env_seconds(name: str, default: float) -> float:
    """Seconds from the environment variable ``name``; ``default`` when unset or not a number."""
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def shared_wait_s() -> float:
    return _env_seconds(SHARED_WAIT_ENV, DEFAULT_SHARED_WAIT_S)


def stop_timeout_s() -> float:
    return _env_seconds(STOP_TIMEOUT_ENV, DEFAULT_STOP_TIMEOUT_S)


class StopWatchdog:
    """While active (main thread, ``enabled``): a SIGTERM/SIGINT not followed by the end of the block within
    ``timeout_s`` prints one ``jaxgen: error:`` line and ``os._exit(1)``. The signal is seen through
    ``signal.set_wakeup_fd``, which C writes even while the main thread is blocked in XLA; the Python handlers
    (the loop's checkpoint-and-stop) still run as usual when the main thread can run them."""

    STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, timeout_s: float | None = None, *, enabled: bool = True) -> None:
        self.timeout_s = stop_timeout_s() if timeout_s is None else float(timeout_s)
        self.enabled = enabled and self.timeout_s > 0
        self._done = threading.Event()
        self._previous_fd = -1
        self._sockets: tuple[socket.socket, socket.socket] | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "StopWatchdog":
        if not self.enabled or threading.current_thread() is not threading.main_thread():
            return self
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        self._sockets = (reader, writer)
        self._thread = threading.Thread(target=self._watch, name="jaxgen-stop-watchdog", daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        reader = self._sockets[0]
        received = None
        while received is None:
            if self._done.is_set():
                return
            ready, _, _ = select.select([reader], [], [], 0.5)
            if ready:
                try:
                    data = reader.recv(64)
                except OSError:
                    return
                received = next((signal.Signals(b).name for b in data if b in self.STOP_SIGNALS), None)
        if self._done.wait(self.timeout_s):
            return
        os.write(2, (f"jaxgen: error: {received} received {self.timeout_s:.0f} s ago and process "
                     f"{jax.process_index()} is still blocked (a collective waiting for a process that died or was "
                     "stopped, or storage that does not answer): exiting without a checkpoint; the last finished "
                     f"checkpoint is kept ({STOP_TIMEOUT_ENV} sets this wait; see docs/multihost.md)\n").encode())
        os._exit(1)

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        if self._sockets is not None:
            signal.set_wakeup_fd(self._previous_fd)
            if self._thread is not None:
                self._thread.join(timeout=2)
            for s in self._sockets:
                s.close()
            self._sockets = None
