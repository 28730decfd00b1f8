"""Which model generates, from a command's options: the model group, the checks before any work, the model's name,
and the captioner for the chosen backend.

Every generating command (qwen.py, internvl.py, caption.py, eval_vqa.py, dataprocess.augment) nests the same three
groups in its options: `ModelOptions` (model folder, batch size, decoding), `HFOptions` (the transformers backend)
and `EngineOptions` (--backend and the API / vLLM engines). The functions here take any options object holding the
three (`ModelSetup`), so one declaration of each flag serves every command.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from vlmkit.executor import ExecutorOptions
from vlmkit.generation.engines import EngineOptions, check_engine, engine_model_name, make_engine_captioner
from vlmkit.generation.hf_backend import HFOptions, require_adapter_dir, require_base_model_dir
from vlmkit.generation.runner import Captioner
from vlmkit.generation.sampling import GenerationSettings
from vlmkit.io import InputError
from vlmkit.options import Options, opt
from vlmkit.ranges import POSITIVE

NEED_MODEL = "--model_path is required (a local model folder), or use --backend openai with --api_base"


@dataclass
class ModelOptions(Options):
    """--model_path, --batch_size and the decoding flags (`GenerationSettings`, listed in this group). A command
    with other defaults gives its `model` field a default instance (`ModelOptions(model_path=...)`)."""

    TITLE: ClassVar[str | None] = "model and decoding"
    model_path: str | None = opt(None, "local model folder (weights are never downloaded); not with --backend openai")
    batch_size: int = opt(8, "items per generate call (--backend openai/vllm: items per write, raised to keep the "
                             "engine busy)", range=POSITIVE)
    decoding: GenerationSettings = opt(factory=GenerationSettings)


class ModelSetup(Protocol):
    """An options object with the three model groups (CaptionOptions, VqaOptions, ...)."""

    @property
    def model(self) -> ModelOptions: ...

    @property
    def hf(self) -> HFOptions: ...

    @property
    def engine(self) -> EngineOptions: ...


def check_model(setup: ModelSetup) -> None:
    """The engine's needs, the model folder and the adapter folder, checked in milliseconds before any work."""
    check_engine(setup.engine, setup.model.decoding, setup.hf.adapter_path)
    if setup.engine.backend == "openai":
        return  # no local model
    if not setup.model.model_path:
        raise InputError(NEED_MODEL)
    require_base_model_dir(setup.model.model_path, "model folder")
    if setup.hf.adapter_path:
        require_adapter_dir(setup.hf.adapter_path)


def model_name(setup: ModelSetup) -> str:
    """The model's folder name (the adapter's when one is given; the API model's name): default output name and
    data_by."""
    remote = engine_model_name(setup.engine)
    if remote:
        return remote
    if setup.engine.backend == "openai":
        setup.engine.api.check_endpoint()  # no usable --api_model: its own one-line error
    if not (setup.hf.adapter_path or setup.model.model_path):
        raise InputError(NEED_MODEL)
    path = Path(setup.hf.adapter_path or setup.model.model_path or "").expanduser()
    return path.name or path.resolve().name


def make_hf_captioner(setup: ModelSetup, **kwargs: Any) -> Captioner:
    """The transformers backend from the options; kwargs go to HFCaptioner (processor_kwargs, image_transform, ...)."""
    from vlmkit.generation.hf_backend import HFCaptioner

    return HFCaptioner(setup.model.model_path or "", settings=setup.model.decoding, **setup.hf.captioner_kwargs(),
                       **kwargs)


def captioner_factory(setup: ModelSetup, local: Callable[[], Captioner], *,
                      max_views: int) -> Callable[[], Captioner]:
    """The command's own factory, or the engine's for `--backend openai|vllm`; `max_views`: images per prompt at
    most (vLLM's limit_mm_per_prompt)."""
    if not setup.engine.is_engine:
        return local
    return functools.partial(make_engine_captioner, setup.engine, setup.model.model_path, setup.model.decoding,
                             max_views=max_views)


def ray_engine(executor: ExecutorOptions) -> Callable[..., Any] | None:
    """`--executor ray`: the actor-pool loop of `vlmkit.generation.ray_executor` (Ray imported only then)."""
    if not executor.is_ray:
        return None
    from vlmkit.generation.ray_executor import caption_on_ray

    return functools.partial(caption_on_ray, opts=executor)
