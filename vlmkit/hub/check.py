"""Is a model folder there, complete and loadable? Answered offline, before a long run.

- present: the folder exists.
- complete: its config and its weights as `vlmkit.models.model_file_problems` checks them for every loader (every
  weight format; every shard a `*.index.json` lists, each present, non-empty and — for safetensors — covering the
  whole of its own header's byte ranges, so a truncated download is caught), its tokenizer and image-processor
  files as the kind of model needs them, and for sentence-transformers the modules listed in modules.json.
- loadable: config.json parses and transformers' `AutoConfig` accepts it; with `load=True` the model is also built
  on the meta device (architecture and config agree; no weights are read, no memory used).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from vlmkit.models import FileProblem, model_file_problems

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model",
                   "sentencepiece.bpe.model")
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
NEEDS = {  # kind -> (tokenizer, image processor)
    "vlm": (True, True), "clip": (True, True), "vision": (False, True), "lm": (True, False),
    "sentence": (True, False),
}


@dataclass
class CheckResult:
    path: Path
    present: bool = False
    complete: bool = False
    loadable: bool | None = None  # None: not checked (not complete)
    problems: list[str] = field(default_factory=list)
    weights_bytes: int = 0

    @property
    def ok(self) -> bool:
        return self.present and self.complete and bool(self.loadable)

    @property
    def status(self) -> str:
        if not self.present:
            return "missing"
        if not self.complete:
            return "incomplete"
        return "ok" if self.loadable else "not loadable"


def _sentence_modules(folder: Path, result: CheckResult) -> None:
    modules = folder / "modules.json"
    if not modules.is_file():
        result.problems.append("modules.json missing (not a sentence-transformers folder)")
        return
    try:
        entries = json.loads(modules.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        result.problems.append("modules.json unreadable")
        return
    for module in entries if isinstance(entries, list) else []:
        sub = module.get("path") if isinstance(module, dict) else None
        if sub and not (folder / sub).is_dir():
            result.problems.append(f"module folder {sub}/ missing")


def _capped(problems: list[FileProblem], most: int = 5) -> list[FileProblem]:
    """At most `most` missing shards in a table cell; the rest as a count."""
    missing = [p for p in problems if p.missing_shard]
    if len(missing) <= most:
        return problems
    cut = set(map(id, missing[most:]))
    kept = [p for p in problems if id(p) not in cut]
    return kept + [FileProblem("", f"... {len(missing) - most} more shards")]


def check_folder(path: str | os.PathLike, kind: str, *, remote_code: bool = False, load: bool = False,
                 trust_remote_code: bool = False) -> CheckResult:
    folder = Path(path).expanduser()
    result = CheckResult(folder, present=folder.is_dir())
    if not result.present:
        result.problems.append("folder not found")
        return result
    files = model_file_problems(folder, config_required=True)  # config.json and the weights, every format
    result.problems.extend(p.short for p in _capped(files.problems))
    result.weights_bytes = files.weights_bytes
    tokenizer, processor = NEEDS[kind]
    if tokenizer and not any((folder / f).is_file() for f in TOKENIZER_FILES):
        result.problems.append("no tokenizer files (tokenizer.json, tokenizer.model, vocab.*)")
    for name in ("tokenizer.json", "tokenizer_config.json"):  # JSON that every tokenizer load parses first
        if tokenizer and (folder / name).is_file():
            try:
                json.loads((folder / name).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                result.problems.append(f"{name} does not parse ({type(exc).__name__})")
    if processor and not any((folder / f).is_file() for f in PROCESSOR_FILES):
        result.problems.append("no image processor config (preprocessor_config.json / processor_config.json)")
    if kind == "sentence":
        _sentence_modules(folder, result)
    config_path = folder / "config.json"
    if remote_code and config_path.is_file():
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config = None  # already a problem of model_file_problems
        if isinstance(config, dict):
            code = {v.split(".")[0] + ".py" for v in (config.get("auto_map") or {}).values() if isinstance(v, str)}
            result.problems.extend(f"{name} missing (the model's own code)" for name in sorted(code)
                                   if not (folder / name).is_file())
    result.complete = not result.problems
    if not result.complete:
        return result
    result.loadable = _loadable(folder, kind, remote_code, load, trust_remote_code, result)
    return result


def _loadable(folder: Path, kind: str, remote_code: bool, load: bool, trust_remote_code: bool,
              result: CheckResult) -> bool:
    if remote_code and not trust_remote_code:
        if load:
            result.problems.append("not instantiated: needs the model's own code (add --trust_remote_code)")
        return True  # config parsed and the code files are there; running them is the user's call
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=trust_remote_code)
    except Exception as exc:
        result.problems.append(f"transformers cannot read the config ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:160] if str(exc) else ''})")
        return False
    if not load:
        return True
    if NEEDS[kind][0]:
        try:
            from transformers import AutoTokenizer

            AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=trust_remote_code)
        except Exception as exc:
            result.problems.append(f"transformers cannot load the tokenizer ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0][:160] if str(exc) else ''})")
            return False
    try:
        import torch
        import transformers

        auto = {"vlm": "AutoModelForImageTextToText", "lm": "AutoModelForCausalLM"}.get(kind, "AutoModel")
        with torch.device("meta"):
            getattr(transformers, auto).from_config(config, trust_remote_code=trust_remote_code)
    except Exception as exc:
        result.problems.append(f"cannot build the model on the meta device ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:160] if str(exc) else ''})")
        return False
    return True
