"""Reading user files with one-line errors, and writing results atomically.

Every result file is written to a temporary file in the same folder and renamed into place, so a
crash or a bad input never leaves a half-written or overwritten output behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from glob import escape as glob_escape
from pathlib import Path
from typing import Any


class InputError(Exception):
    """A problem with the user's input; the message is one line naming the file and the item."""


QUOTE_LIMIT = 200


def quote(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """`repr(value)` for an error message, at most `limit` characters: a message stays one readable line whatever
    the input holds (reprlib also bounds the work for huge or deeply nested values)."""
    import reprlib

    short = reprlib.Repr()
    short.maxstring = short.maxother = limit
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 8
    short.maxlevel = 3
    text = short.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# "utf-8-sig" reads plain UTF-8 and drops a leading byte-order mark (Windows editors write one; json.loads rejects it).
TEXT_ENCODING = "utf-8-sig"


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """Read a UTF-8 text file (a leading BOM is dropped); a missing or unreadable file is an `InputError` naming it."""
    path = Path(path)
    settle_commits(path)
    try:
        return path.read_text(encoding=TEXT_ENCODING)
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read {what} ({exc})") from None


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file, turning every failure into an `InputError` that names the file."""
    path = Path(path)
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise InputError(f"{path}: JSON nested too deeply to read") from None


def read_config_json(path: str | os.PathLike, what: str = "config") -> Any:
    """A JSON settings file a user wrote (a DeepSpeed config): as `read_json`, and the rules of the YAML configs
    (`vlmkit.safe_yaml`): a key given twice in one object is refused (json keeps the last one silently), and so are
    NaN and Infinity, which Python's json accepts although JSON has no such numbers."""
    path = Path(path)
    text = read_text(path, what)

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise InputError(f"{path}: key {quote(key, 60)} given twice in one object")
            seen[key] = value
        return seen

    def no_constant(name: str) -> Any:
        raise InputError(f"{path}: {name} is not a JSON number (write a finite value)")

    try:
        return json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constant)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise InputError(f"{path}: JSON nested too deeply to read") from None


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed object) for each non-blank line of a JSON Lines file (a leading BOM is dropped).

    Lines are decoded one by one (not through a text stream, which decodes in blocks) so that a line that is not
    UTF-8 is reported with its own number.
    """
    path = Path(path)
    settle_commits(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read file ({exc})") from None
    with handle:
        for lineno, raw in enumerate(handle, start=1):
            try:
                line = raw.decode(TEXT_ENCODING if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{path}: line {lineno}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: line {lineno}: malformed JSON: {exc.msg}") from None
            except RecursionError:
                raise InputError(f"{path}: line {lineno}: JSON nested too deeply to read") from None


def read_jsonl(path: str | os.PathLike) -> list[Any]:
    """Read a whole JSON Lines file (see `iter_jsonl`)."""
    return [obj for _, obj in iter_jsonl(path)]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _staging_file(target: Path) -> tuple[int, str]:
    """A temporary sibling of `target` with the usual permissions (mkstemp alone leaves 0600)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.chmod(tmp, 0o666 & ~_umask())
    return fd, tmp


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary siblings (`.<name>.*.tmp`) that a writer of `path` killed mid-write left behind.

    Call it only while holding the output's lock (`vlmkit.outputs.OutputLock` does for its target): then no live
    writer of `path` exists, so every such file is a dead run's."""
    path = Path(path)
    removed = []
    for stale in path.parent.glob(f".{glob_escape(path.name)}.*.tmp") if path.parent.is_dir() else []:
        try:
            stale.unlink()
            removed.append(stale)
        except (FileNotFoundError, IsADirectoryError):
            pass
    return removed


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"):
    """Open a temporary file next to `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    fd, tmp = _staging_file(path)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """Write JSON (UTF-8, non-ASCII kept readable) atomically."""
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=indent) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> None:
    with atomic_open(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


COMMIT_PREFIX = ".vlmkit-commit-"
MANIFEST = "MANIFEST.json"


def _commit_step(step: str) -> None:
    """Called between the steps of `write_all_or_nothing`; tests replace it to kill the writer at each step."""


def _lock_dir(folder: Path) -> int | None:
    """flock a staging folder; None when another live process holds it (its commit is in progress)."""
    import fcntl

    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _finish_commit(staging: Path) -> str:
    """Roll a dead writer's staging folder forward (manifest present) or back (absent); returns which."""
    manifest = staging / MANIFEST
    outcome = "rolled back"
    if manifest.is_file():
        entries = json.loads(manifest.read_text(encoding="utf-8"))["files"]
        for staged_name, target in entries:
            staged = staging / staged_name
            if staged.exists():
                os.replace(staged, staging.parent / target)
        outcome = "rolled forward"
    for leftover in staging.iterdir():
        if leftover.name != MANIFEST:
            leftover.unlink()
    if manifest.exists():
        manifest.unlink()  # last: a kill during clean-up still finds the manifest and rolls forward again
    staging.rmdir()
    return outcome


def recover_commits(folder: str | os.PathLike, wait_live: float = 0.0) -> list[tuple[Path, str]]:
    """Complete or undo the multi-file commits that a killed run left in `folder`; returns what was done.

    Every writer calls this before it writes, and every reader goes through it (`settle_commits`, called by
    `read_text`, `read_json` and `iter_jsonl`), so after a kill -9 at any step a reader sees either the previous
    complete set or the new complete set. A live writer's commit is left alone; with `wait_live` > 0 a reader waits
    up to that long for a live commit that is past its manifest (publishing: its renames take microseconds).
    """
    import time

    folder = Path(folder)
    done: list[tuple[Path, str]] = []
    if not folder.is_dir():
        return done
    for staging in sorted(folder.glob(COMMIT_PREFIX + "*")):
        try:
            if not staging.is_dir():
                continue
            fd = _lock_dir(staging)
            deadline = time.monotonic() + wait_live
            while fd is None and (staging / MANIFEST).exists() and time.monotonic() < deadline:
                time.sleep(0.01)
                fd = _lock_dir(staging)
        except FileNotFoundError:
            continue  # its writer finished meanwhile
        if fd is None:
            continue  # a live writer is committing this one
        try:
            if staging.is_dir():
                done.append((staging, _finish_commit(staging)))
        finally:
            os.close(fd)
    return done


class StagedCommit:
    """Files that belong together, written (streamed) into a staging folder and published as one unit.

    `write_all_or_nothing` is this with every file given up front; a streaming writer asks `path(target)` for the
    staged file of each target, writes it however it likes (line by line, a Parquet writer, a tar writer), calls
    `staged(target)` when it is complete, and `commit()` publishes them all. The journal is the one described in
    `write_all_or_nothing`: before the manifest nothing is published (the next writer deletes the folder), after it
    everything is (the next writer rolls it forward). `before_publish` (if given) runs right after the manifest is
    written, before any rename: a caller deletes its now obsolete work files there.
    """

    def __init__(self, targets: list[str | os.PathLike]):
        self.targets = [Path(t).absolute() for t in targets]
        parents = {t.parent for t in self.targets}
        for parent in sorted(parents):
            parent.mkdir(parents=True, exist_ok=True)
            recover_commits(parent)
        self.root = Path(os.path.commonpath([str(p) for p in parents]))
        self.folder = Path(tempfile.mkdtemp(prefix=COMMIT_PREFIX, dir=self.root))
        self._fd = _lock_dir(self.folder)
        self._names = {t: f"{i:04d}-{t.name}" for i, t in enumerate(self.targets)}
        self.done = False

    def path(self, target: str | os.PathLike) -> Path:
        return self.folder / self._names[Path(target).absolute()]

    def staged(self, target: str | os.PathLike) -> None:
        """The staged file of `target` is complete: fsync it and give it the usual permissions."""
        staged = self.path(target)
        with open(staged, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(staged, 0o666 & ~_umask())
        _commit_step(f"staged {Path(target).name}")

    def commit(self, before_publish: Callable[[], None] | None = None) -> None:
        entries = [[self._names[t], os.path.relpath(t, self.root)] for t in self.targets]
        with atomic_open(self.folder / MANIFEST) as handle:
            json.dump({"files": entries}, handle)
        if before_publish is not None:
            before_publish()
        _commit_step("manifest")
        for staged_name, target in entries:
            os.replace(self.folder / staged_name, self.root / target)
            _commit_step(f"published {Path(target).name}")
        (self.folder / MANIFEST).unlink()
        self.folder.rmdir()
        self.done = True

    def close(self) -> None:
        """Called in every case: an uncommitted staging folder is removed (the old set stays as it was)."""
        if not self.done and not (self.folder / MANIFEST).exists() and self.folder.exists():
            shutil.rmtree(self.folder, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StagedCommit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def settle_commits(path: str | os.PathLike, wait_live: float = 5.0) -> None:
    """Before a file is read: roll forward or back a dead writer's multi-file commit in its folder (or the folder
    above, where a set spanning subfolders is staged), so no reader of the toolkit ever sees a torn set. Costs one
    directory listing; a folder the reader cannot write is read as it is."""
    folder = Path(path).absolute().parent
    for candidate in (folder, folder.parent):
        try:
            pending = any(entry.name.startswith(COMMIT_PREFIX) for entry in os.scandir(candidate))
        except OSError:
            continue
        if pending:
            try:
                recover_commits(candidate, wait_live)
            except OSError:
                pass


def write_all_or_nothing(files: dict[str | os.PathLike, str | bytes]) -> None:
    """Write several files (text or bytes) as one unit: after a crash or kill -9 at any point, a reader sees the
    previous complete set or the new complete set, never a mix.

    How (a small write-ahead journal, since one rename cannot publish files that share a folder with others): every
    file is written and fsynced into a staging folder `.vlmkit-commit-<random>` beside the targets; then a manifest
    is written (the commit point); then the files are renamed into place and the staging folder removed. A run that
    dies before the manifest leaves only the staging folder, which the next writer (or `recover_commits`) deletes;
    one that dies after it is rolled forward by the next writer. The staging folder is flock-ed while in use, so a
    concurrent writer never touches a live commit.
    """
    if not files:
        return
    with StagedCommit(list(files)) as commit:
        for target, content in files.items():
            data = content.encode("utf-8") if isinstance(content, str) else content
            with open(commit.path(target), "wb") as handle:
                handle.write(data)
            commit.staged(target)
        commit.commit()
