"""Refusing outputs that would overwrite an input (writing itself is vlmkit.io.write_all_or_nothing)."""

from __future__ import annotations

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
