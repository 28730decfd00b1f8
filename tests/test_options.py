"""vlmkit.options: one declaration per setting (help, range, flag), parsed into typed options, checked once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vlmkit.io import InputError
from vlmkit.options import Options, as_settings, build_parser, opt, options_from, parse_options, parse_subcommand
from vlmkit.ranges import POSITIVE, Range


@dataclass
class Model(Options):
    TITLE = "model"
    batch_size: int = opt(8, "items per call", range=POSITIVE)
    temperature: float = opt(0.0, "0 = greedy", range=Range(0))
    model_path: str | None = opt(None, "folder")


@dataclass
class Command(Options):
    input: Path = opt(Path("in"), "input folder", positional=True)
    views: tuple[str, ...] = opt(("front", "back"), "views", parse=lambda s: tuple(s.split(",")))
    resume: bool = opt(False, "continue")
    overwrite: bool = opt(False, "replace")
    cache: bool = opt(True, "use the cache", negate="--no_cache")
    verbose: bool = opt(False, "more logging", flags=("-v",))
    mode: str = opt("a", "mode", choices=("a", "b"))
    model: Model = field(default_factory=Model)

    def check(self) -> None:
        if self.resume and self.overwrite:
            raise InputError("--resume and --overwrite exclude each other")


def test_parse_builds_the_typed_tree_with_defaults() -> None:
    o = parse_options(Command, [], description=None)
    assert o == Command()
    assert o.model.batch_size == 8 and o.cache is True and o.input == Path("in")


def test_every_kind_of_flag() -> None:
    o = parse_options(Command, ["data", "--views", "top,left", "--resume", "--no_cache", "-v", "--mode", "b",
                                "--batch_size", "3", "--temperature", "0.5", "--model_path", "m"], description=None)
    assert o == Command(input=Path("data"), views=("top", "left"), resume=True, cache=False, verbose=True, mode="b",
                        model=Model(batch_size=3, temperature=0.5, model_path="m"))


def test_per_command_defaults_and_exclusions() -> None:
    o = parse_options(Command, [], description=None, defaults={"model_path": "./models/x"}, exclude=("mode",))
    assert o.model.model_path == "./models/x" and o.mode == "a"
    with pytest.raises(SystemExit):
        parse_options(Command, ["--mode", "b"], description=None, exclude=("mode",))


def test_ranges_and_rules_checked_at_construction_with_the_flag_name() -> None:
    with pytest.raises(InputError, match=r"^--batch_size 0: must be >= 1$"):
        parse_options(Command, ["--batch_size", "0"], description=None)
    with pytest.raises(InputError, match=r"^--temperature nan: must be a finite number >= 0, got nan$"):
        Model(temperature=float("nan"))
    with pytest.raises(InputError, match="exclude each other"):
        options_from(Command, {"resume": True, "overwrite": True})


def test_help_shows_groups_ranges_and_defaults() -> None:
    text = build_parser(Command, "demo").format_help()
    assert "model:" in text and "--batch_size BATCH_SIZE" in text
    assert "items per call [>= 1] (default: 8)" in " ".join(text.split())
    assert "--no_cache" in text and "-v, --verbose" in text


def test_subcommands_and_settings() -> None:
    name, o = parse_subcommand({"run": (Command, "run it"), "other": (Model, "x")}, ["other", "--batch_size", "2"],
                               description=None)
    assert name == "other" and o == Model(batch_size=2)
    assert as_settings(Command())["batch_size"] == 8 and as_settings(Command())["input"] == "in"


@dataclass
class Spelled(Options):
    check_only: bool = opt(False, "a flag whose field cannot be called `check`", name="--check")
    override: list[str] | None = opt(None, "repeatable", nargs="+", action="extend")


def test_flag_spelling_and_action() -> None:
    o = parse_options(Spelled, ["--check", "--override", "a=1", "b=2", "--override", "c=3"], description=None)
    assert o == Spelled(check_only=True, override=["a=1", "b=2", "c=3"])
    assert o.flag("check_only") == "--check"
