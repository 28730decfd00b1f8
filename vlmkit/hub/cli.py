"""download_models.py's three modes: --list, --check (offline) and downloading, each ending in a table."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from vlmkit.hub.check import CheckResult, check_folder
from vlmkit.hub.download import SOURCES, DownloadFailed, download
from vlmkit.hub.registry import REGISTRY, ModelEntry, find
from vlmkit.io import InputError

log = logging.getLogger(__name__)


def table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table (readable in a terminal, pasteable into an issue)."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(header), "| " + " | ".join("-" * w for w in widths) + " |", *map(line, rows)]) + "\n"


def selected(args: argparse.Namespace) -> list[ModelEntry]:
    if args.all or not args.model:
        return list(REGISTRY)
    entries = []
    for name in args.model:
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


def run(args: argparse.Namespace) -> int:
    from vlmkit.ranges import Range, check_flags

    check_flags(args, {"timeout": Range(0, 3600, lo_open=True)})
    models_dir = Path(args.local_dir)
    if args.list:
        print(list_models(models_dir), end="")
        return 0
    if args.repo_id and (args.all or len(args.model or []) != 1):
        raise InputError("--repo_id names the hub id of one model: use it with exactly one --model")
    entries = selected(args)
    if not args.check and not (args.all or args.model):
        raise InputError("name the models to download (--model NAME ... or --all), or use --list / --check")
    failures: list[str] = []
    if not args.check:
        for entry in entries:
            print(f"downloading {entry.name} from {SOURCES[args.source]} "
                  f"({args.repo_id or entry.repo_id(args.source)}) into {entry.path(models_dir)}", file=sys.stderr)
            try:
                download(entry, args.source, models_dir, revision=args.revision, repo_id=args.repo_id,
                         timeout=args.timeout)
            except DownloadFailed as failure:
                failures.append(str(failure))
                print(f"error: {failure}", file=sys.stderr)
    text, results = check_models(entries, models_dir, load=args.load, trust_remote_code=args.trust_remote_code)
    print(text, end="")
    bad = [e.name for e, r in zip(entries, results, strict=True) if not r.ok]
    if bad:
        hint = "--all" if len(bad) == len(REGISTRY) else "--model " + " ".join(bad)
        print(f"{len(bad)} of {len(entries)} model folders are missing or broken; "
              f"fetch them with: python download_models.py {hint}"
              f"{'' if str(models_dir) in ('models', './models') else f' --local_dir {models_dir}'}", file=sys.stderr)
    return 1 if bad or failures else 0
