"""Output preflight and exclusive output locks: checked before anything expensive, shared by every CLI.

`check_output_dir` / `check_output_file` run before model loading, training or scoring: a folder that is a file, a
folder that cannot be created or written, an `--output` that is a folder -> one-line `InputError` (exit 2), instead of
a traceback after all the work. Writability is probed by creating (and removing) a file, because `os.access` says
yes to root even on a read-only file system.

`OutputLock` makes a run the only writer of an output: `<output>.lock` holds the owner's pid, host, start time and
command line, and is locked with `fcntl.flock`. The kernel drops the lock when the owner dies (kill -9 included), so
a leftover lock file whose owner is gone is stale and simply taken over (with the dead owner's temporary
`.<name>.*.tmp` file, if it was killed mid-write); a live owner makes the second run refuse with one line naming it.
Shards write their own files, hence their own locks, and stay parallel. flock is advisory and local: on a network
file system shared by several hosts it may not exclude a run on another host.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vlmkit.io import InputError, remove_stale_temps

LOCK_SUFFIX = ".lock"


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    return probe


def _probe_writable(folder: Path, what: str) -> None:
    try:
        fd, name = tempfile.mkstemp(prefix=".vlmkit-write-probe-", dir=folder)
    except OSError as exc:
        raise InputError(f"{folder}: {what} is not writable ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(name)


def check_output_dir(path: str | os.PathLike, flag: str = "--output_dir") -> Path:
    """`path` is a folder that exists, or can be made, and is writable; else a one-line `InputError`."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise InputError(f"{p}: {flag} is a file, not a folder")
    base = _nearest_existing(p)
    if not base.is_dir():
        raise InputError(f"{p}: {flag} cannot be created: {base} is a file, not a folder")
    _probe_writable(base, f"{flag} (checked at {base})" if base != p else flag)
    return p


def check_output_file(path: str | os.PathLike, flag: str = "--output") -> Path:
    """`path` can be written as a file: not a folder, and its folder exists or can be made and is writable."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise InputError(f"{p}: {flag} is a folder, not a file")
    check_output_dir(p.parent if str(p.parent) else Path("."), f"the folder of {flag}")
    return p


def _owner_description(lock_path: Path) -> str:
    try:
        info = json.loads(lock_path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another run"
    command = " ".join(info.get("argv", []))
    return (f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}"
            + (f": {command[:160]}" if command else ""))


class OutputLock:
    """Exclusive lock on an output file or folder for the lifetime of a run (a context manager).

        with OutputLock(out_path):
            ...   # only this process writes out_path
    """

    def __init__(self, target: str | os.PathLike, what: str = "output"):
        self.target = Path(target)
        self.path = self.target.with_name(self.target.name + LOCK_SUFFIX)
        self.what = what
        self._fd: int | None = None
        self._made: list[Path] = []  # folders acquire() created for the lock file, removed again if left empty

    def acquire(self) -> OutputLock:
        import fcntl

        missing = self.path.parent
        while not missing.exists() and missing.parent != missing:
            self._made.append(missing)
            missing = missing.parent
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self._made = []  # the owner's folders, not ours
                raise InputError(f"{self.target}: {self.what} is being written by {_owner_description(self.path)}; "
                                 f"wait for it to finish or choose another output") from None
            # The owner before us may have removed the file between our open and our flock: then we locked an
            # orphan inode and must retry on the file that is there now.
            try:
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        info: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname(),
                                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": sys.argv}
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(info) + "\n").encode("utf-8"))
        os.fsync(fd)
        self._fd = fd
        remove_stale_temps(self.target)  # a killed earlier writer's half-written temporary file
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self._fd)  # closing drops the flock
        self._fd = None
        for folder in self._made:  # innermost first; a folder the run wrote into is not empty and stays
            try:
                folder.rmdir()
            except OSError:
                break
        self._made = []

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
