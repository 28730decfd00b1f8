"""One config system for both trainers: `HfArgumentParser` over dataclasses, plus `--config FILE.yaml|json`.

The dataclasses carry every setting once: `metadata={"help": ..., "range": Range(...)}` (or `vlmkit.options.opt()`
fields: their `range`, `parse`, `flags` and `choices` are understood too). HF's parser passes a field's metadata to
argparse as it is, which refuses keys it does not know (a range), so `ConfigParser` hands argparse only what it
understands and prints the range in the help.

A config file's keys are the flags' names without `--`; it sets the starting values, the command line wins
(`train.py --config configs/train/qwen2_5_vl_lora.yaml --max_steps 2`). The YAML is read by `vlmkit.safe_yaml` (no
aliases, no key given twice); an unknown key, a value of the wrong type or outside its choices is one line naming
the file and the key, before anything is loaded. `read_config_mapping` is the reader both trainers share
(retrieval's `train CONFIG --config_override k=v` applies the same rules to its positional file).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import difflib
import json
import math
import os
import types
from collections.abc import Iterable, Sequence
from typing import Any

from transformers import HfArgumentParser

from vlmkit.io import InputError, quote, read_text

# vlmkit.options.opt() metadata that argparse does not take (translated or dropped here)
_OWN_KEYS = ("range", "parse", "flags", "positional", "negate", "cli", "required")


def read_config_mapping(path: str | os.PathLike, what: str = "config") -> dict[str, Any]:
    """A YAML or JSON file holding one mapping of key: value (`.json`: JSON; anything else: safe YAML)."""
    from vlmkit.safe_yaml import load_yaml

    text = read_text(path, f"{what} file")
    if str(path).lower().endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    else:
        data = load_yaml(text, path, what)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: a config is a YAML mapping of key: value (or a JSON object)")
    return {str(key): value for key, value in data.items()}


def unknown_key(key: str, where: str, known: Iterable[str], listing: str | None = None) -> InputError:
    """`<where>: unknown key 'lerning_rate' (did you mean 'learning_rate'?); <listing>` (default: every key)."""
    known = list(known)
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return InputError(f"{where}: unknown key {key!r}{hint}; {listing or 'valid keys: ' + ', '.join(known)}")


class ConfigParser(HfArgumentParser):
    """HfArgumentParser with `--config FILE` and `vlmkit.options` metadata; `required`: flags that must be given
    (on the command line or in the file)."""

    def __init__(self, dataclass_types: Sequence[type], *, required: Sequence[str] = (), **kwargs: Any) -> None:
        from vlmkit.cli import HelpFormatter

        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs.setdefault("allow_abbrev", False)  # `--lr` must not silently mean `--lr_scheduler_type`
        super().__init__(list(dataclass_types), **kwargs)
        self.add_argument("--config", metavar="FILE", help="YAML or JSON file of settings (keys: these flags' "
                                                           "names without --); flags given here override it")
        for action in self._actions:
            if action.dest in required:
                action.required = True

    @staticmethod
    def _parse_dataclass_field(parser: argparse.ArgumentParser, field: dataclasses.Field) -> None:
        meta = dict(field.metadata)
        if not meta.get("cli", True):
            return
        own = {key: meta.pop(key) for key in _OWN_KEYS if key in meta}
        meta = {key: value for key, value in meta.items() if value is not None}
        help_text = meta.get("help") or ""
        if own.get("range") is not None:
            help_text = f"{help_text} [{own['range'].describe()}]".strip()
        meta["help"] = help_text.replace("%", "%%") if own else help_text
        if own.get("flags"):
            meta["aliases"] = list(own["flags"])
        clean = copy.copy(field)
        clean.metadata = types.MappingProxyType(meta)
        if own.get("parse") is not None:
            clean.type = own["parse"]  # HfArgumentParser passes a non-class type to argparse as `type=`
        HfArgumentParser._parse_dataclass_field(parser, clean)

    def parse(self, argv: Sequence[str] | None) -> tuple[Any, ...]:
        """The dataclasses from `--config` (if given) and the command line; usage errors exit 2 as argparse does."""
        pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        pre.add_argument("--config")
        known, _ = pre.parse_known_args(argv)
        if known.config:
            self.apply_config(read_config_mapping(known.config), known.config)
        values = vars(self.parse_args(argv))
        values.pop("config", None)
        out = []
        for dtype in self.dataclass_types:
            names = {f.name for f in dataclasses.fields(dtype) if f.init}
            out.append(dtype(**{k: v for k, v in values.items() if k in names}))
        return tuple(out)

    def apply_config(self, config: dict[str, Any], path: str | os.PathLike) -> None:
        """The file's values become the flags' defaults (so the command line wins); checked key by key."""
        actions: dict[str, list[argparse.Action]] = {}
        for action in self._actions:
            if action.dest not in (argparse.SUPPRESS, "help", "config") and action.option_strings:
                actions.setdefault(action.dest, []).append(action)
        for key, value in config.items():
            if key not in actions:
                raise unknown_key(key, str(path), actions, f"the keys are {self.prog}'s flags without -- "
                                                          f"(python {self.prog} --help)")
            value = coerce(actions[key][0], value, f"{path}: {key}")
            for action in actions[key]:
                action.default = value
                action.required = False


def coerce(action: argparse.Action, value: Any, where: str) -> Any:
    """A config file's value as the flag's type: what the flag's text would have become (YAML reads `2e-4` as a
    string and `no` as false; both are taken as the flag would take them)."""
    from transformers.hf_argparser import string_to_bool

    kind = action.type
    if value is None:
        return None
    if isinstance(action, argparse._StoreConstAction) or kind is string_to_bool:
        if isinstance(value, bool):
            return value
        try:
            return string_to_bool(str(value))
        except argparse.ArgumentTypeError:
            raise InputError(f"{where}: expected true or false, got {quote(value, 60)}") from None
    if action.nargs in ("+", "*") and isinstance(value, list):
        return [coerce_one(kind, v, where, action.choices) for v in value]
    if isinstance(value, list) and kind not in (int, float) and all(isinstance(v, (str, int, float)) for v in value):
        value = ",".join(str(v) for v in value)  # `views: [front, back]` as `--views front,back`
    if isinstance(value, (dict, list)) and kind not in (None, str):
        raise InputError(f"{where}: expected one value, got {quote(value, 60)}")
    return coerce_one(kind, value, where, action.choices)


def coerce_one(kind: Any, value: Any, where: str, choices: Sequence[Any] | None = None) -> Any:
    if isinstance(value, bool) and kind in (int, float):
        raise InputError(f"{where}: expected a number, got {value}")
    if isinstance(value, bool):
        value = "yes" if value else "no"  # YAML 1.1 reads `eval_strategy: no` as false
    if kind in (int, float) and isinstance(value, (int, float)):
        result: Any = kind(value)
        if kind is int and result != value:
            raise InputError(f"{where}: expected an integer, got {value}")
    elif kind is None or kind is str:
        result = value if isinstance(value, (str, dict, list)) else str(value)
    else:
        try:
            result = kind(str(value))
        except InputError as exc:  # a parser of its own (`--views`): its message, placed in the file
            raise InputError(f"{where}: {exc}") from None
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            name = getattr(kind, "__name__", "value")
            raise InputError(f"{where}: expected {'a number' if kind in (int, float) else name}, got "
                             f"{quote(value, 60)}") from None
    if isinstance(result, float) and not math.isfinite(result):
        raise InputError(f"{where}: must be a finite number, got {result}")
    if choices is not None and result not in choices:
        raise InputError(f"{where}: {quote(result, 60)}: choose one of {', '.join(map(str, choices))}")
    return result
