"""Reading Data-Juicer YAML recipes.

A recipe is Data-Juicer's config file: a `process:` list of `{op_name: {params}}` (params may be empty or
null) plus top-level keys. The keys we use, with Data-Juicer 1.6.1's defaults:

    dataset_path, export_path          input file and kept-data output (relative to the working directory)
    np: 4                               worker processes (our CLI default is the number of cores instead)
    text_keys: text                     the text field of Data-Juicer JSONL input (a list: the first one is used)
    image_key: images                   the image-path list field of Data-Juicer JSONL input
    image_special_token: <__dj__image>  recorded; the supported filters do not look at it
    eoc_special_token: <|__dj__eoc|>    appended by the `dj` text view of conversation input
    keep_stats_in_res_ds: false         also write `__dj__stats__` into the kept data

Every other top-level key (project_name, work_dir, open_tracer, ...) steers Data-Juicer's engine; it is
listed in the summary as ignored. An operator we do not implement is an error listing the supported ones,
unless `--skip_unsupported_ops` is given: then it is skipped, logged and listed in the summary (for example
`image_captioning_mapper`, whose job `python -m dataprocess.augment` does).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataprocess.ops import OPERATORS, FilterOp
from vlmkit.io import InputError, quote, read_text
from vlmkit.safe_yaml import load_yaml

log = logging.getLogger(__name__)

DJ_IMAGE_TOKEN = "<__dj__image>"
DJ_EOC_TOKEN = "<|__dj__eoc|>"
USED_KEYS = frozenset({"process", "dataset_path", "export_path", "np", "text_keys", "image_key",
                       "image_special_token", "eoc_special_token", "keep_stats_in_res_ds"})


@dataclass
class Recipe:
    ops: list[FilterOp]
    path: Path | None = None
    text_key: str = "text"
    image_key: str = "images"
    image_special_token: str = DJ_IMAGE_TOKEN
    eoc_special_token: str = DJ_EOC_TOKEN
    dataset_path: str | None = None
    export_path: str | None = None
    np: int | None = None
    keep_stats_in_res_ds: bool = False
    skipped_ops: list[dict[str, Any]] = field(default_factory=list)
    ignored_keys: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def uses_images(self) -> bool:
        return any(op.uses_images for op in self.ops)

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.path) if self.path else None,
            "text_key": self.text_key, "image_key": self.image_key,
            "image_special_token": self.image_special_token, "eoc_special_token": self.eoc_special_token,
            "ops": [op.describe() for op in self.ops],
            "skipped_ops": self.skipped_ops, "ignored_keys": self.ignored_keys, "warnings": self.warnings,
        }


def _string(cfg: dict, key: str, default: str, where: str) -> str:
    value = cfg.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str) or not value:
        raise InputError(f"{where}: '{key}' must be a non-empty string, got {quote(value)}")
    return value


def build_recipe(cfg: Any, where: str, skip_unsupported: bool = False, path: Path | None = None) -> Recipe:
    """Validate a parsed recipe and build its operators (`where` names the file in errors)."""
    if not isinstance(cfg, dict):
        raise InputError(f"{where}: expected a YAML mapping with a 'process' list, got {type(cfg).__name__}")
    process = cfg.get("process")
    if not isinstance(process, list) or not process:
        raise InputError(f"{where}: 'process' must be a non-empty list of {{op_name: {{params}}}}")
    text_keys = cfg.get("text_keys", "text")
    if isinstance(text_keys, list):
        if not text_keys:
            raise InputError(f"{where}: 'text_keys' is an empty list")
        text_keys = text_keys[0]  # Data-Juicer uses the first key only
    text_key = _string({"text_keys": text_keys}, "text_keys", "text", where)
    recipe = Recipe(
        ops=[], path=path, text_key=text_key,
        image_key=_string(cfg, "image_key", "images", where),
        image_special_token=_string(cfg, "image_special_token", DJ_IMAGE_TOKEN, where),
        eoc_special_token=_string(cfg, "eoc_special_token", DJ_EOC_TOKEN, where),
        dataset_path=cfg.get("dataset_path"), export_path=cfg.get("export_path"),
        ignored_keys=sorted(k for k in cfg if k not in USED_KEYS),
    )
    for key in ("dataset_path", "export_path"):
        value = getattr(recipe, key)
        if value is not None and (not isinstance(value, str) or not value):
            raise InputError(f"{where}: '{key}' must be a path string, got {quote(value)}")
    np_value = cfg.get("np")
    if np_value is not None and (not isinstance(np_value, int) or isinstance(np_value, bool) or np_value < 1):
        raise InputError(f"{where}: 'np' must be a positive integer, got {quote(np_value)}")
    recipe.np = np_value
    keep_stats = cfg.get("keep_stats_in_res_ds", False)
    if not isinstance(keep_stats, bool):
        raise InputError(f"{where}: 'keep_stats_in_res_ds' must be true or false, got {quote(keep_stats)}")
    recipe.keep_stats_in_res_ds = keep_stats

    computed_by: dict[str, FilterOp] = {}
    for index, entry in enumerate(process):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise InputError(f"{where}: process item {index} must be a mapping with one operator name")
        (name, params), = entry.items()
        op_where = f"{where}: process item {index} ({str(name)[:80]})"
        if params is not None and not isinstance(params, dict):
            raise InputError(f"{op_where}: parameters must be a mapping, got {type(params).__name__}")
        cls = OPERATORS.get(name)
        if cls is None:
            if skip_unsupported:
                log.warning("%s: skipping unsupported operator %s", where, name)
                recipe.skipped_ops.append({"op": name, "index": index, "params": params or {}})
                continue
            raise InputError(f"{op_where}: unsupported operator '{name}'; supported: {', '.join(OPERATORS)} "
                             f"(pass --skip_unsupported_ops to skip the others)")
        op = cls(params, index, op_where)
        for key in op.stat_keys:
            if key in computed_by:
                first = computed_by[key]
                msg = (f"process item {index} ({name}) reuses '{key}' computed by process item {first.index} "
                       f"({first.name}, {first.params}); as in Data-Juicer, its own stat parameters have no effect")
                log.warning("%s: %s", where, msg)
                recipe.warnings.append(msg)
            else:
                computed_by[key] = op
        recipe.ops.append(op)
    if not recipe.ops:
        raise InputError(f"{where}: no supported operator left to run (supported: {', '.join(OPERATORS)})")
    for op in recipe.ops[:-1]:
        if getattr(op, "is_deduplicator", False):
            raise InputError(f"{op.where}: a deduplicator must be the recipe's last operator (it compares samples "
                             f"across the whole data set after the filters ran)")
    return recipe


def _where_in_recipe(trail: list) -> str:
    """`process item 0 (words_num_filter)` for an operator's parameters, else the key path (`np`, `a.b`)."""
    if len(trail) >= 3 and trail[0] == "process" and isinstance(trail[1], int):
        return f"process item {trail[1]} ({str(trail[2])[:80]})"
    return ".".join(str(t)[:40] for t in trail)


def load_recipe(path: str | os.PathLike, skip_unsupported: bool = False) -> Recipe:
    """Read a Data-Juicer YAML recipe; every problem is an `InputError` naming the file and the item."""
    path = Path(path)
    text = read_text(path, "recipe")

    def describe(trail: list) -> tuple[str, str]:
        return _where_in_recipe(trail), ("parameter" if len(trail) >= 3 and trail[0] == "process" else "key")

    cfg = load_yaml(text, path, "recipe", describe)
    return build_recipe(cfg, str(path), skip_unsupported, path)
