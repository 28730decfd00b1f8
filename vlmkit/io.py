"""Reading user files with one-line errors, and writing results atomically.

Every result file is written to a temporary file in the same folder and renamed into place, so a
crash or a bad input never leaves a half-written or overwritten output behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class InputError(Exception):
    """A problem with the user's input; the message is one line naming the file and the item."""


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """Read a UTF-8 text file; a missing or unreadable file is an `InputError` naming it."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
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


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed object) for each non-blank line of a JSON Lines file."""
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read file ({exc})") from None
    with handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: line {lineno}: malformed JSON: {exc.msg}") from None


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


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """Write JSON (UTF-8, non-ASCII kept readable) atomically."""
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=indent) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> None:
    with atomic_open(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_all_or_nothing(files: dict[str | os.PathLike, str | bytes]) -> None:
    """Write several files (text or bytes) so that either all of them are updated or none is.

    Each file first goes to a temporary sibling; only when every temporary file is complete are they
    renamed into place (renames on one file system do not fail for lack of space).
    """
    staged: list[tuple[str, Path]] = []
    try:
        for target, content in files.items():
            target = Path(target)
            fd, tmp = _staging_file(target)
            staged.append((tmp, target))
            data = content.encode("utf-8") if isinstance(content, str) else content
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        for tmp, target in staged:
            os.replace(tmp, target)
        staged = []
    finally:
        for tmp, _ in staged:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
