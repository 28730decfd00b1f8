"""Writing a step's output files all together or not at all, and refusing to overwrite an input."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from vlmkit.io import InputError


def check_outputs(outputs: list[Path], inputs: list[Path]) -> None:
    """An output that is also an input would be overwritten: refuse before any work is done."""
    resolved_inputs = {p.resolve() for p in inputs}
    seen: set[Path] = set()
    for out in outputs:
        r = out.resolve()
        if r in resolved_inputs:
            raise InputError(f"{out}: output path is also an input; choose another output path")
        if r in seen:
            raise InputError(f"{out}: the same output path is used twice")
        seen.add(r)
        if r.is_dir():
            raise InputError(f"{out}: output path is a folder")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_outputs(files: dict[Path, str | bytes]) -> None:
    """Stage every file next to its target, then rename them all into place, so either all outputs are updated or
    none is. Like vlmkit.io.write_all_or_nothing, but for bytes too (PNG plots) and with the usual permissions
    (0666 minus the umask; mkstemp alone leaves 0600)."""
    mode = 0o666 & ~_umask()
    staged: list[tuple[str, Path]] = []
    try:
        for target, content in files.items():
            target = Path(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            staged.append((tmp, target))
            data = content.encode("utf-8") if isinstance(content, str) else content
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, mode)
        for tmp, target in staged:
            os.replace(tmp, target)
        staged = []
    finally:
        for tmp, _ in staged:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
