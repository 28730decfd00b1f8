"""Output preflight for the dataprocess tools: refuse an output that would overwrite an input, check that every
output can be written, hold the output lock and finish a killed run's commit, all before any work is done.

Writing itself is `vlmkit.io.write_all_or_nothing`: the files of one run are published as one unit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vlmkit.io import InputError, recover_commits
from vlmkit.outputs import OutputLock, check_output_file


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


@contextmanager
def exclusive_outputs(outputs: list[Path], inputs: list[Path], *, flag: str, what: str,
                      lock: str | os.PathLike | None = None) -> Iterator[None]:
    """Preflight every output (`check_outputs` + `check_output_file`), then hold `OutputLock(lock or outputs[0])`
    for the block; stray staging folders of a killed earlier run next to the outputs are rolled back or forward
    first, so the folder holds one complete set before this run starts."""
    check_outputs(outputs, inputs)
    for out in outputs:
        check_output_file(out, flag)
    with OutputLock(lock if lock is not None else outputs[0], what):
        for parent in sorted({out.absolute().parent for out in outputs}):
            recover_commits(parent)
        yield
