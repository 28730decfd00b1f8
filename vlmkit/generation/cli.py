"""Transitional: the argparse helpers dataprocess/augment.py still calls (it builds its parser by hand).

Every other generating command nests `ModelOptions`, `HFOptions`, `EngineOptions` and `ExecutorOptions` in its
options (see `vlmkit.generation.captioning`) and never hands a Namespace to the package. Delete this module once
dataprocess.augment does the same; each helper here only turns the Namespace into those options and delegates.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vlmkit.executor import executor_options
from vlmkit.generation import model_setup
from vlmkit.generation.engines import EngineOptions
from vlmkit.generation.hf_backend import HFOptions
from vlmkit.generation.model_setup import ModelOptions
from vlmkit.generation.runner import Captioner
from vlmkit.generation.sampling import GenerationSettings
from vlmkit.options import add_options, options_from


@dataclass
class _Setup:
    model: ModelOptions = field(default_factory=ModelOptions)
    hf: HFOptions = field(default_factory=HFOptions)
    engine: EngineOptions = field(default_factory=EngineOptions)


def _setup(args: argparse.Namespace) -> _Setup:
    return options_from(_Setup, vars(args))


def add_model_args(parser: argparse.ArgumentParser, *, default_model_path: str | None,
                   default_max_new_tokens: int = 256) -> None:
    """Transitional: ModelOptions' flags (in their group) on a hand-built parser."""
    group = parser.add_argument_group(ModelOptions.TITLE)
    add_options(group, ModelOptions, root=parser,
                defaults={"model_path": default_model_path, "max_new_tokens": default_max_new_tokens})


def optional_model_path(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """Transitional: --model_path is optional already (`--backend openai` needs none); sets its help text."""
    for action in parser._actions:
        if action.dest == "model_path" and help:
            action.help = help


def add_hf_args(parser: argparse.ArgumentParser) -> None:
    """Transitional: HFOptions' flags on a hand-built parser."""
    add_options(parser.add_argument_group(HFOptions.TITLE), HFOptions, root=parser)


def generation_settings(args: argparse.Namespace) -> GenerationSettings:
    return _setup(args).model.decoding


def check_model_args(args: argparse.Namespace) -> None:
    model_setup.check_model(_setup(args))


def model_name(args: argparse.Namespace) -> str:
    return model_setup.model_name(_setup(args))


def make_hf_captioner(args: argparse.Namespace, **kwargs: Any) -> Captioner:
    return model_setup.make_hf_captioner(_setup(args), **kwargs)


def captioner_factory(args: argparse.Namespace, local: Callable[[argparse.Namespace], Captioner], *,
                      max_views: int | None = None) -> Callable[[argparse.Namespace], Captioner]:
    setup = _setup(args)
    if not setup.engine.is_engine:
        return local
    views = max_views or len(getattr(args, "views", None) or ()) or 6
    engine_factory = model_setup.captioner_factory(setup, lambda: local(args), max_views=views)
    return lambda _args: engine_factory()


def ray_engine(args: argparse.Namespace) -> Callable[..., Any] | None:
    return model_setup.ray_engine(executor_options(args))
