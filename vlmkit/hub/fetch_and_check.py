"""download_models.py's options and its three modes: --list, --check (offline) and downloading, each ending in a
table."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from vlmkit.hub.check import CheckResult, check_folder
from vlmkit.hub.download import DEFAULT_TIMEOUT, SOURCES, DownloadFailed, download
from vlmkit.io import InputError
from vlmkit.model_registry import DEFAULT_MODELS_DIR, REGISTRY, ModelEntry, find
from vlmkit.options import Options, opt
from vlmkit.ranges import Range


@dataclass
class WhatOptions(Options):
    TITLE: ClassVar[str | None] = "what"
    list: bool = opt(False, "list the default models and exit")
    model: Sequence[str] | None = opt(None, "models to download or check (see --list)", nargs="+", metavar="NAME")
    all: bool = opt(False, "every default model")
    check_only: bool = opt(False, "do not download: check the folders offline (all default models unless --model)",
                           name="--check")  # a field called `check` would hide Options.check
    load: bool = opt(False, "with --check: also build each model on the meta device")
    trust_remote_code: bool = opt(False, "with --load: run a checkpoint's own modelling code (InternVL) to build it")


@dataclass
class WhereOptions(Options):
    TITLE: ClassVar[str | None] = "where from, where to"
    source: str = opt("hf", "hf: Hugging Face; modelscope", choices=sorted(SOURCES))
    revision: str | None = opt(None, "branch, tag or commit (default: the hub's default branch)")
    repo_id: str | None = opt(None, "another hub id for the one --model (a mirror or fork)")
    local_dir: str = opt(DEFAULT_MODELS_DIR, "the models folder the scripts read")
    timeout: float = opt(DEFAULT_TIMEOUT, "connect and read timeout of every request to the hub", metavar="SECONDS",
                         range=Range(0, 3600, lo_open=True))


@dataclass
class DownloadOptions(Options):
    """download_models.py's flags: which models, and where from / to."""

    what: WhatOptions = field(default_factory=WhatOptions)
    where: WhereOptions = field(default_factory=WhereOptions)
    verbose: bool = opt(False, flags=("-v",))

    def check(self) -> None:
        if self.where.repo_id and (self.what.all or len(self.what.model or []) != 1):
            raise InputError("--repo_id names the hub id of one model: use it with exactly one --model")

log = logging.getLogger(__name__)


def table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table (readable in a terminal, pasteable into an issue)."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(header), "| " + " | ".join("-" * w for w in widths) + " |", *map(line, rows)]) + "\n"


def selected(what: WhatOptions) -> list[ModelEntry]:
    if what.all or not what.model:
        return list(REGISTRY)
    entries = []
    for name in what.model:
        entry = find(name)
        if entry not in entries:
            entries.append(entry)
    return entries


def list_models(models_dir: Path) -> str:
    rows = [[e.name, str(e.path(models_dir)), e.hf_id, e.ms_id, e.used_by] for e in REGISTRY]
    return table(["model", "local folder", "Hugging Face", "ModelScope", "used by"], rows)


def _size(result: CheckResult) -> str:
    return f"{result.weights_bytes / 1e9:.2f} GB" if result.weights_bytes >= 1e8 else (
        f"{result.weights_bytes / 1e6:.1f} MB" if result.weights_bytes else "-")


def check_models(entries: list[ModelEntry], models_dir: Path, *, load: bool,
                 trust_remote_code: bool) -> tuple[str, list[CheckResult]]:
    results = [check_folder(e.path(models_dir), e.kind, remote_code=e.remote_code, load=load,
                            trust_remote_code=trust_remote_code) for e in entries]
    mark = {True: "yes", False: "NO", None: "-"}
    rows = [[e.name, str(r.path), mark[r.present], mark[r.complete if r.present else None],
             mark[r.loadable], _size(r), "; ".join(r.problems) or "-"] for e, r in zip(entries, results, strict=True)]
    return table(["model", "folder", "present", "complete", "loadable", "weights", "problems"], rows), results


def run(options: DownloadOptions) -> int:
    what, where = options.what, options.where
    models_dir = Path(where.local_dir)
    if what.list:
        print(list_models(models_dir), end="")
        return 0
    entries = selected(what)
    if not what.check_only and not (what.all or what.model):
        raise InputError("name the models to download (--model NAME ... or --all), or use --list / --check")
    failures: list[str] = []
    if not what.check_only:
        for entry in entries:
            print(f"downloading {entry.name} from {SOURCES[where.source]} "
                  f"({where.repo_id or entry.repo_id(where.source)}) into {entry.path(models_dir)}", file=sys.stderr)
            try:
                download(entry, where.source, models_dir, revision=where.revision, repo_id=where.repo_id,
                         timeout=where.timeout)
            except DownloadFailed as failure:
                failures.append(str(failure))
                print(f"error: {failure}", file=sys.stderr)
    text, results = check_models(entries, models_dir, load=what.load, trust_remote_code=what.trust_remote_code)
    print(text, end="")
    bad = [e.name for e, r in zip(entries, results, strict=True) if not r.ok]
    if bad:
        hint = "--all" if len(bad) == len(REGISTRY) else "--model " + " ".join(bad)
        print(f"{len(bad)} of {len(entries)} model folders are missing or broken; "
              f"fetch them with: python download_models.py {hint}"
              f"{'' if str(models_dir) in ('models', './models') else f' --local_dir {models_dir}'}", file=sys.stderr)
    return 1 if bad or failures else 0
