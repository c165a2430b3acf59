"""One run per workdir: an advisory lock file ``W/.jaxgen.lock`` held while a trainer or a sweep runs.

The lock is an ``fcntl.flock`` on the file (the kernel drops it when the process ends, however it ends), and
the file records who holds it (``pid``, ``host``, command, start time) so a refusal can say who. Where the
filesystem cannot ``flock`` (some network or FUSE mounts) the record alone decides: a record of a live process
on this host, or of another host, refuses; a record of a process of this host that no longer exists is stale
and is taken over.

A remote workdir (``gs://...``, :mod:`jaxgen.storage`) has no file locks: the lock is the object
``W/.jaxgen.lock`` itself, created only if absent (GCS ``ifGenerationMatch=0``, S3 ``If-None-Match``: fsspec's
``mode="create"``), then read back to check that the record is this process's (for a backend that ignores the
precondition). While held, a heartbeat thread rewrites its ``heartbeat`` time every ``stale/5`` seconds. A record
is stale -- taken over -- when its process is gone (same host), or when its heartbeat is older than
``JAXGEN_REMOTE_LOCK_STALE_S`` seconds (default 300: a run killed with SIGKILL blocks its workdir that long, or
until the object is deleted). Weaker than ``flock``: two runs taking over the same stale record at the same
moment can both start (the read-back after 0.5 s catches most of it), and a holder whose heartbeat stalls past
the stale time (a frozen host, no network) loses the lock without knowing.

    with WorkdirLock(workdir, "jaxgen train"):
        ...  # a second `jaxgen train` on the same workdir gets WorkdirBusyError (a ValueError: exit 2)
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import fsspec

from jaxgen import storage

LOCK_NAME = ".jaxgen.lock"
REMOTE_STALE_ENV = "JAXGEN_REMOTE_LOCK_STALE_S"
DEFAULT_REMOTE_STALE_S = 300.0
REMOTE_SETTLE_S = 0.5  # wait before reading a new remote lock back (a concurrent writer's record shows by then)

log = logging.getLogger(__name__)


class WorkdirBusyError(ValueError):
    """Another process holds the workdir (one ``jaxgen: error:`` line, exit 2)."""


def remote_stale_s() -> float:
    """Seconds without a heartbeat after which a remote lock record is stale (``JAXGEN_REMOTE_LOCK_STALE_S``)."""
    try:
        value = float(os.environ.get(REMOTE_STALE_ENV, DEFAULT_REMOTE_STALE_S))
    except ValueError:
        return DEFAULT_REMOTE_STALE_S
    return value if value > 0 else DEFAULT_REMOTE_STALE_S


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def describe(record: dict[str, Any]) -> str:
    since = record.get("time")
    when = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else ""
    return f"`{record.get('command', 'jaxgen')}` (pid {record.get('pid', '?')} on host {record.get('host', '?')}{when})"


class WorkdirLock:
    """Context manager holding ``directory/.jaxgen.lock`` (created with the folder); ``enabled=False``: a no-op
    (the non-main processes of a multi-process run, whose process 0 holds the lock)."""

    def __init__(self, directory: Any, command: str, *, enabled: bool = True) -> None:
        self.directory = directory
        self.command = command
        self.enabled = enabled
        self.remote = storage.is_remote(directory)
        self._file = None
        self.path = storage.as_path(directory) / LOCK_NAME if self.enabled else None
        self._token: str | None = None  # remote: this holder's id in the lock object
        self._since = 0.0
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def acquire(self) -> "WorkdirLock":
        if not self.enabled or self._file is not None or self._token is not None:  # not locked here, or held
            return self
        if self.remote:
            return self._acquire_remote()
        directory = Path(self.directory)
        if directory.exists() and not directory.is_dir():
            raise ValueError(f"--workdir {directory} is a file, not a folder")
        directory.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+b", buffering=0)  # unbuffered: a full disk fails the write, never the close
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise WorkdirBusyError(
                f"{directory} is in use by {describe(read_record(self.path))}; wait for it to end, stop it, "
                "or use another --workdir") from None
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                handle.close()
                raise
            self._check_record_only(handle)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command, "time": time.time()}
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(record).encode())
        except OSError:  # a full disk: the lock holds without its record (the run itself will report the disk)
            pass
        self._file = handle
        return self

    def _check_record_only(self, handle: Any) -> None:
        """No flock on this filesystem: the recorded holder decides (a dead process of this host is stale)."""
        record = read_record(self.path)
        pid, host = record.get("pid"), record.get("host")
        if not isinstance(pid, int) or pid == os.getpid():
            return
        if host == socket.gethostname() and not pid_alive(pid):
            return  # stale: its process is gone
        handle.close()
        raise WorkdirBusyError(
            f"{Path(self.directory)} is in use by {describe(record)} (this filesystem has no file locks; if that "
            f"run is gone, delete {self.path}); or use another --workdir")

    # ------------------------------------------------------------------------------------- remote workdirs

    def _record(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command, "time": self._since,
                "heartbeat": time.time(), "token": self._token}

    def _read_remote(self, fs: Any, key: str) -> dict[str, Any] | None:
        """The lock object's record; None when there is no lock object."""
        try:
            data = fs.cat_file(key)
        except FileNotFoundError:
            return None
        try:
            record = json.loads(data or b"{}")
        except ValueError:
            return {}
        return record if isinstance(record, dict) else {}

    def _stale(self, record: dict[str, Any], stale_s: float) -> bool:
        pid, host = record.get("pid"), record.get("host")
        if not isinstance(pid, int):
            return True  # empty or unreadable: nobody holds it
        if host == socket.gethostname() and not pid_alive(pid):
            return True  # its process is gone
        beat = record.get("heartbeat", record.get("time"))
        return not isinstance(beat, (int, float)) or time.time() - beat > stale_s

    def _busy(self, record: dict[str, Any] | None, stale_s: float) -> WorkdirBusyError:
        return WorkdirBusyError(
            f"{self.directory} is in use by {describe(record or {})}; wait for it to end, stop it, or use another "
            f"--workdir (a remote workdir's lock is the object {self.path}, refreshed while its run lives; if that "
            f"run is gone, delete it or wait {stale_s:.0f} s)")

    def _acquire_remote(self) -> "WorkdirLock":
        stale_s = remote_stale_s()
        fs, key = fsspec.core.url_to_fs(str(self.path))
        self._token, self._since = uuid.uuid4().hex, time.time()
        try:
            for _ in range(3):
                holder = self._read_remote(fs, key)
                if holder is not None:
                    if not self._stale(holder, stale_s):
                        raise self._busy(holder, stale_s)
                    try:
                        fs.rm_file(key)  # stale: its run is gone
                    except FileNotFoundError:
                        pass
                try:
                    fs.pipe_file(key, json.dumps(self._record()).encode(), mode="create")  # only if absent
                except FileExistsError:
                    continue  # created meanwhile by another run: look at it again
                time.sleep(REMOTE_SETTLE_S)
                holder = self._read_remote(fs, key)
                if holder is None or holder.get("token") != self._token:  # a backend without preconditions
                    raise self._busy(holder, stale_s)
                break
            else:
                raise self._busy(self._read_remote(fs, key), stale_s)
        except WorkdirBusyError:
            self._token = None
            raise
        except Exception as e:  # a missing bucket, no credentials or no permission: one line, not a traceback
            self._token = None
            message = " ".join(str(e).split()) or type(e).__name__
            raise ValueError(f"--workdir {self.directory}: cannot write its lock object {self.path} "
                             f"({type(e).__name__}: {message[:300]}); check that the bucket exists and that this "
                             "user can write to it") from None
        self._stop.clear()
        self._heartbeat = threading.Thread(target=self._beat, args=(fs, key, stale_s / 5), daemon=True,
                                           name="jaxgen-workdir-lock")
        self._heartbeat.start()
        return self

    def _beat(self, fs: Any, key: str, every_s: float) -> None:
        """Rewrites the lock object's heartbeat while held; stops if another run took it over."""
        record = self._record()
        while not self._stop.wait(every_s):
            try:
                holder = self._read_remote(fs, key)
                if holder is None or holder.get("token") != self._token:
                    log.warning("the lock %s was taken over by %s", self.path, describe(holder or {}))
                    return
                record["heartbeat"] = time.time()
                fs.pipe_file(key, json.dumps(record).encode())
            except Exception as e:  # noqa: BLE001 -- a network hiccup: try again at the next beat
                log.warning("could not refresh the lock %s: %s", self.path, e)

    def _release_remote(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=30)
            self._heartbeat = None
        try:
            fs, key = fsspec.core.url_to_fs(str(self.path))
            holder = self._read_remote(fs, key)
            if holder is not None and holder.get("token") == self._token:
                fs.rm_file(key)
        except Exception as e:  # noqa: BLE001 -- the record goes stale by itself
            log.warning("could not delete the lock %s: %s", self.path, e)
        self._token = None

    def release(self) -> None:
        if self._token is not None:
            self._release_remote()
            return
        if self._file is None:
            return
        try:
            self._file.seek(0)
            self._file.truncate()  # an empty record: nobody holds it
            fcntl.flock(self._file, fcntl.LOCK_UN)
        except OSError:
            pass  # the kernel drops the lock when the file is closed anyway
        try:
            self._file.close()
        except OSError:
            pass
        self._file = None

    def __enter__(self) -> "WorkdirLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
