"""Typed options at the package boundary: one dataclass field per setting, with its help, range and flag.

Every entry script parses its command line into an options dataclass and calls its package's `run(options) -> int`;
nothing below the entry script sees the parser's namespace. A setting is declared once, as a field made by `opt()`:

    @dataclass
    class ModelOptions(Options):
        batch_size: int = opt(8, "items per generate call", range=POSITIVE)

`add_options(parser, ModelOptions)` adds `--batch_size` (nested dataclass fields become argument groups, titled by
their class's TITLE), `options_from(ModelOptions, values)` builds the dataclass tree from the parsed values, and
`parse_options(CaptionOptions, argv, description=...)` does both. Ranges and the class's own `check()` run once, at
construction (`Options.__post_init__`), so a test or a notebook building options in Python gets the same one-line
`InputError` as the command line (`--batch_size -3: must be >= 1`).

Why not HfArgumentParser for these commands (the trainers use it, over TrainingArguments): it has no positional
arguments, subcommands, store_true flags or per-field value parsers (`--views front,back` into a tuple), and passes
unknown metadata (a range) on to argparse, which refuses it. This module is the thin layer those commands need,
over argparse itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from vlmkit.ranges import Range, check_flag

T = TypeVar("T")
_MISSING = dataclasses.MISSING


def opt(default: Any = _MISSING, help: str = "", *, range: Range | None = None, choices: Sequence[Any] | None = None,
        parse: Callable[[str], Any] | None = None, flags: Sequence[str] = (), metavar: str | None = None,
        positional: bool = False, nargs: str | int | None = None, required: bool = False,
        negate: str | None = None, factory: Callable[[], Any] | None = None, cli: bool = True,
        action: str | None = None, name: str | None = None) -> Any:
    """A dataclass field that is also a command-line setting.

    default / factory: the value when the flag is not given (`required=True`: the flag must be given);
    range: checked at construction, the error names the flag; choices: argparse's choices;
    parse: turns the flag's text into the value (default: the field's type, `int`, `float`, `str`, `Path`);
    flags: extra spellings (`("-v",)`); positional: an argument without `--`; nargs: argparse's nargs;
    negate: for a bool that defaults to True, the flag that turns it off (`"--no_cache"`); a bool defaulting to False
    is a store_true flag; cli=False: a field the command line does not set (filled in by the entry script);
    action: argparse's action for a valued flag (`"extend"`: a repeated `--config_override a=1 --config_override b=2`
    collects both); name: the flag's spelling when the field cannot be called so (`--check`: `check` is a method of
    `Options`).
    """
    meta = {"help": help, "range": range, "choices": choices, "parse": parse, "flags": tuple(flags),
            "metavar": metavar, "positional": positional, "nargs": nargs, "required": required, "negate": negate,
            "cli": cli, "action": action, "name": name}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    if default is _MISSING:
        default = None
    return dataclasses.field(default=default, metadata=meta)


class Options:
    """Base of every options dataclass: declared ranges, then `check()` (cross-field rules), at construction."""

    TITLE: ClassVar[str | None] = None  # the --help group title when nested in another options class

    def __post_init__(self) -> None:
        check_ranges(self)
        self.check()

    def check(self) -> None:
        """Rules between fields (`--resume` excludes `--overwrite`); raise `InputError`."""

    def flag(self, name: str) -> str:
        """How the user spells field `name` on the command line (`--batch_size`, or the positional's name)."""
        f = {f.name: f for f in dataclasses.fields(self)}[name]  # type: ignore[arg-type]
        return _spelling(f)


def _spelling(f: dataclasses.Field) -> str:
    if f.metadata.get("name"):
        return f.metadata["name"]
    if f.metadata.get("positional"):
        return f.name
    return ("-" if len(f.name) == 1 else "--") + f.name


def check_ranges(options: Any) -> None:
    """Every declared range of `options` (not its nested options: they checked themselves when built)."""
    for f in dataclasses.fields(options):
        rng = f.metadata.get("range")
        if rng is not None:
            check_flag(getattr(options, f.name), _spelling(f), rng)


def _hints(cls: type) -> dict[str, Any]:
    # Without globalns, get_type_hints resolves each base class's annotations in that base's own module.
    return typing.get_type_hints(cls)


def _unoptional(tp: Any) -> Any:
    """`int | None` -> int; other types unchanged."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _is_options(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not _MISSING:
        return f.default
    if f.default_factory is not _MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *,
                defaults: Mapping[str, Any] | None = None, exclude: Sequence[str] = (),
                root: argparse.ArgumentParser | None = None) -> None:
    """Add one argument per field of `cls` (nested options classes: an argument group each, fields flattened).

    defaults: per-command defaults by field name (qwen.py's --model_path); exclude: fields this command does not
    offer (their class default is used). A nested field whose flag an earlier field already declared is that same
    setting: `options_from` gives both fields the one value."""
    root = root or (parser if isinstance(parser, argparse.ArgumentParser) else None)
    defaults = defaults or {}
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        tp = hints[f.name]
        if _is_options(tp):
            group_parent = root or parser
            title = tp.TITLE if hasattr(tp, "TITLE") else None
            group = group_parent.add_argument_group(title) if title else parser
            add_options(group, tp, defaults={**_changed_defaults(f, tp), **defaults}, exclude=exclude, root=root)
            continue
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        if _spelling(f) in parser._option_string_actions:
            continue  # declared earlier in this command (render.py's --num_workers is also ExecutorOptions'): one flag
        default = defaults.get(f.name, _default(f))
        required = bool(meta.get("required")) and f.name not in defaults
        kwargs: dict[str, Any] = {"help": _help(meta)}
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        base = _unoptional(tp)
        if base is bool and not meta.get("positional"):
            if meta.get("negate"):
                parser.add_argument(meta["negate"], dest=f.name, action="store_false", default=default,
                                    help=kwargs["help"])
            else:
                parser.add_argument(*_names(f), dest=f.name, action="store_true", default=default,
                                    help=kwargs["help"])
            continue
        kwargs["type"] = meta.get("parse") or _parser_for(base)
        if meta.get("choices") is not None:
            kwargs["choices"] = meta["choices"]
        if meta.get("nargs") is not None:
            kwargs["nargs"] = meta["nargs"]
        if meta.get("action"):
            kwargs["action"] = meta["action"]
        if meta.get("positional"):
            if default is not None or meta.get("nargs") in ("?", "*"):
                kwargs.setdefault("nargs", "?")
                kwargs["default"] = default
            parser.add_argument(f.name, **kwargs)
        else:
            parser.add_argument(*_names(f), dest=f.name, default=default, required=required, **kwargs)


def _changed_defaults(f: dataclasses.Field, cls: type) -> dict[str, Any]:
    """Where nested field `f`'s default instance differs from `cls`'s own field defaults: {field name: value}, flat.

    A command changes a shared group's default by giving the nested field a default instance, declared once in
    Python and used by its command line too: `model: ModelOptions = opt(factory=lambda: ModelOptions(batch_size=1))`
    makes `--batch_size` default to 1 for that command only."""
    if f.default_factory is cls or (f.default is _MISSING and f.default_factory is _MISSING):  # type: ignore[misc]
        return {}  # the class's own defaults (and no instance built: its check() may need flags)
    instance = _default(f)
    return _differences(instance, cls) if isinstance(instance, cls) else {}


def _differences(instance: Any, cls: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    hints = _hints(cls)
    for g in dataclasses.fields(cls):
        if not g.init:
            continue
        value = getattr(instance, g.name)
        if _is_options(hints[g.name]):
            out.update(_differences(value, hints[g.name]))
        elif value != _default(g):
            out[g.name] = value
    return out


def _names(f: dataclasses.Field) -> list[str]:
    return [*f.metadata.get("flags", ()), _spelling(f)]  # `-v, --verbose`: short spellings first, as argparse shows


def _help(meta: Mapping[str, Any]) -> str:
    text = meta.get("help") or ""
    if callable(text):  # a help computed when the parser is built (compare's list of registered metric groups)
        text = text()
    rng = meta.get("range")
    if rng is not None:
        text = f"{text} [{rng.describe()}]" if text else f"[{rng.describe()}]"
    return text.replace("%", "%%")


def _parser_for(tp: Any) -> Callable[[str], Any] | None:
    if tp in (int, float, str):
        return tp
    if tp is Path:
        return Path
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return str
    return None  # argparse keeps the text


def options_from(cls: type[T], values: Mapping[str, Any], **overrides: Any) -> T:
    """Build `cls` (and its nested options) from parsed values keyed by field name; missing names keep the class
    default; `overrides` win over `values`."""
    values = {**values, **overrides}
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init:
            continue
        tp = hints[f.name]
        if _is_options(tp):
            kwargs[f.name] = (values[f.name] if isinstance(values.get(f.name), tp)
                              else options_from(tp, {**_changed_defaults(f, tp), **values}))
        elif f.name in values:
            kwargs[f.name] = values[f.name]
    return cls(**kwargs)


def build_parser(cls: type, description: str | None, *, defaults: Mapping[str, Any] | None = None,
                 exclude: Sequence[str] = (), prog: str | None = None) -> argparse.ArgumentParser:
    from vlmkit.cli import HelpFormatter

    # allow_abbrev=False: `--mode` must not silently mean `--model_path` when a command excludes --mode
    parser = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter, prog=prog,
                                     allow_abbrev=False)
    add_options(parser, cls, defaults=defaults, exclude=exclude)
    return parser


def parse_options(cls: type[T], argv: Sequence[str] | None, *, description: str | None,
                  defaults: Mapping[str, Any] | None = None, exclude: Sequence[str] = (),
                  prog: str | None = None) -> T:
    """The command line `argv` (None: sys.argv[1:]) as a `cls`; --help and usage errors exit as argparse does."""
    parser = build_parser(cls, description, defaults=defaults, exclude=exclude, prog=prog)
    return options_from(cls, vars(parser.parse_args(argv)))


def build_subcommand_parser(commands: Mapping[str, tuple[type, str]], *, description: str | None,
                            prog: str | None = None, metavar: str = "COMMAND") -> argparse.ArgumentParser:
    """`prog NAME ...` with one subparser per command (its options class's docstring is its --help description);
    the chosen name lands in `_command`."""
    from vlmkit.cli import HelpFormatter

    parser = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter, prog=prog)
    sub = parser.add_subparsers(dest="_command", required=True, metavar=metavar)
    for name, (cls, help_text) in commands.items():
        doc = (cls.__doc__ or "").strip() or None
        add_options(sub.add_parser(name, help=help_text, description=doc, formatter_class=HelpFormatter), cls)
    return parser


def parse_subcommand(commands: Mapping[str, tuple[type, str]], argv: Sequence[str] | None, *,
                     description: str | None, prog: str | None = None,
                     metavar: str = "COMMAND") -> tuple[str, Any]:
    """`prog NAME ...`: the subcommand's name and its options; commands: name -> (options class, help)."""
    parser = build_subcommand_parser(commands, description=description, prog=prog, metavar=metavar)
    values = vars(parser.parse_args(argv))
    name = values.pop("_command")
    return name, options_from(commands[name][0], values)


def as_settings(options: Any) -> dict[str, Any]:
    """Flat {field: value} of an options tree (nested classes flattened, Paths as text): what a report records as
    the run's settings."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out.update(as_settings(value))
        elif isinstance(value, Path):
            out[f.name] = str(value)
        else:
            out[f.name] = value
    return dict(sorted(out.items()))
