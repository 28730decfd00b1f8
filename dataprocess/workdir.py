"""The resumable work folder of a chunked run: one result file set per chunk, a plan that names the run.

`<output>.work/` (hidden, beside the output) holds `plan.json` (what the run is: input signature, settings, chunk
count) and, per finished chunk k, its part files plus `chunk-<k>.json` (its summary), written last and atomically:
a chunk is done exactly when its summary exists, so a killed worker or driver never leaves a half chunk that counts.
A rerun with `--resume` and the same plan skips the done chunks; any other run starts the folder afresh. The folder
is removed at the commit point of the final outputs (see `vlmkit.io.StagedCommit`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def work_dir_for(output: Path) -> Path:
    return output.absolute().with_name(f".{output.name}.work")


class WorkDir:
    def __init__(self, folder: Path):
        self.folder = folder

    def part(self, index: int, name: str) -> Path:
        return self.folder / f"chunk-{index:06d}.{name}"

    def summary_path(self, index: int) -> Path:
        return self.folder / f"chunk-{index:06d}.json"

    def finish(self, index: int, summary: dict[str, Any]) -> None:
        tmp = self.summary_path(index).with_suffix(".json.tmp")
        tmp.write_text(json.dumps(summary, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.summary_path(index))

    def done(self, index: int) -> dict[str, Any] | None:
        try:
            return json.loads(self.summary_path(index).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def open(self, plan: dict[str, Any], resume: bool) -> set[int]:
        """Start (or, with `resume` and an identical plan, continue) the folder; returns the done chunk indices."""
        plan_path = self.folder / "plan.json"
        if resume and plan_path.is_file():
            try:
                old = json.loads(plan_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                old = None
            if old == json.loads(json.dumps(plan)):
                done = {int(p.name[6:12]) for p in self.folder.glob("chunk-*.json")
                        if p.name[6:12].isdigit() and p.name.endswith(".json")}
                log.info("resuming: %d of %d chunks already done", len(done), plan["chunks"])
                return done
            log.warning("%s: the unfinished run was another input or other settings; starting afresh", self.folder)
        elif resume:
            log.info("nothing to resume in %s; starting afresh", self.folder)
        self.remove()
        self.folder.mkdir(parents=True)
        tmp = plan_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(plan, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, plan_path)
        return set()

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
