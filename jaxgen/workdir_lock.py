"""One run per workdir: an advisory lock file ``W/.jaxgen.lock`` held while a trainer or a sweep runs.

The lock is an ``fcntl.flock`` on the file (the kernel drops it when the process ends, however it ends), and
the file records who holds it (``pid``, ``host``, command, start time) so a refusal can say who. Where the
filesystem cannot ``flock`` (some network or FUSE mounts) the record alone decides: a record of a live process
on this host, or of another host, refuses; a record of a process of this host that no longer exists is stale
and is taken over. A workdir that is not a local path (``gs://...``) is not locked (no shared lock exists there;
say so in the docs and give each run its own workdir).

    with WorkdirLock(workdir, "jaxgen train"):
        ...  # a second `jaxgen train` on the same workdir gets WorkdirBusyError (a ValueError: exit 2)
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

LOCK_NAME = ".jaxgen.lock"


class WorkdirBusyError(ValueError):
    """Another process holds the workdir (one ``jaxgen: error:`` line, exit 2)."""


def is_local(path: Any) -> bool:
    """``False`` for URL-like paths (``gs://b/x``, ``s3://...``) that only etils/Orbax can open."""
    return "://" not in str(path)


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
        self.enabled = enabled and is_local(directory)
        self._file = None
        self.path = Path(directory) / LOCK_NAME if self.enabled else None

    def acquire(self) -> "WorkdirLock":
        if not self.enabled or self._file is not None:  # not locked here, or already held
            return self
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

    def release(self) -> None:
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
