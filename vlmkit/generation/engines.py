"""`--backend openai` (an OpenAI-compatible API) and `--backend vllm` (in-process vLLM) for every captioning command.

qwen.py, internvl.py, caption.py, eval_vqa.py and dataprocess.augment nest `EngineOptions` (the --backend flag and
the flag groups of both engines) in their options and get their captioner from `make_engine_captioner`; `--backend
hf` (and internvl.py's lmdeploy engines) keep their own factories. The runner's chunk for these engines is larger
than `--batch_size`: for the API it is what keeps `--concurrency` requests in flight (the next chunk is queued while
one finishes), for vLLM it is what gives continuous batching enough work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from vlmkit.generation.openai_backend import ApiOptions, decoding_fields
from vlmkit.generation.sampling import GenerationSettings
from vlmkit.io import InputError
from vlmkit.options import Options, opt
from vlmkit.ranges import POSITIVE, Range

ENGINES = ("openai", "vllm")
BACKENDS = ("hf", *ENGINES)
DEFAULT_VLLM_CHUNK = 256
TP_RANGE = Range(1, optional=True)  # --tp: GPUs per model (unset: every visible GPU)
TP_DEFAULT_HELP = "(default: every visible GPU, see CUDA_VISIBLE_DEVICES)"


def import_engine(module: str, missing: str):
    """A GPU engine installed in its own environment (requirements-gpu.txt), imported only when chosen: without it,
    one `error:` line (`missing`, then the ImportError) instead of a traceback."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise InputError(f"{missing} ({exc})") from None


@dataclass
class VllmOptions(Options):
    """`--backend vllm`'s flags."""

    TITLE: ClassVar[str | None] = "vLLM backend (--backend vllm, GPU)"
    tp: int | None = opt(None, f"tensor parallelism {TP_DEFAULT_HELP}", range=TP_RANGE)
    gpu_memory_utilization: float = opt(0.9, "vLLM: share of GPU memory it takes", range=Range(0, 1, lo_open=True))
    max_model_len: int | None = opt(None, "vLLM context window (default: the model's)",
                                    range=Range(1, optional=True))
    engine_chunk: int = opt(DEFAULT_VLLM_CHUNK, "vLLM: items handed to the engine per call (continuous batching "
                                                "schedules them)", range=POSITIVE)


@dataclass
class EngineOptions(Options):
    """`--backend hf|openai|vllm` and the flag groups of the two engines. A command with more backends (internvl.py's
    lmdeploy engines) subclasses it with its own `backend` field."""

    backend: str = opt("hf", "hf: transformers in this process; openai: an OpenAI-compatible API (--api_*); vllm: "
                             "vLLM in this process (GPU)", choices=BACKENDS)
    api: ApiOptions = opt(factory=ApiOptions)
    vllm: VllmOptions = opt(factory=VllmOptions)

    @property
    def is_engine(self) -> bool:
        """openai or vllm: captioned by `make_engine_captioner`, not by the command's own factory."""
        return self.backend in ENGINES

    def chunk(self, batch_size: int) -> int:
        """Items per runner batch: --batch_size, raised to keep an engine busy (see the module docstring)."""
        if self.backend == "openai":
            return max(batch_size, 2 * self.api.concurrency)
        if self.backend == "vllm":
            return max(batch_size, self.vllm.engine_chunk)
        return batch_size


def check_engine(engine: EngineOptions, settings: GenerationSettings, adapter_path: str | None) -> None:
    """What the chosen engine needs that a range cannot say, before any image is read or any engine starts (the
    numbers were checked when the options were built)."""
    if engine.backend == "openai":
        engine.api.check_endpoint()
        decoding_fields(settings)
        if adapter_path:
            raise InputError("--adapter_path: an API model cannot take a local adapter; serve the merged model "
                             "(merge_lora_weights.py) and point --api_base at it")
    elif engine.backend == "vllm" and adapter_path:
        raise InputError("--adapter_path: merge the adapter first (merge_lora_weights.py checks the result loads "
                         "in vLLM) and pass the merged folder as --model_path")


def engine_model_name(engine: EngineOptions) -> str | None:
    """The API model's last path segment (`Qwen/Qwen2.5-VL-3B-Instruct` -> `Qwen2.5-VL-3B-Instruct`) for output
    names and data_by; None for local backends (their folder name is used)."""
    if engine.backend != "openai" or not engine.api.api_model:
        return None
    return engine.api.api_model.rstrip("/").rsplit("/", 1)[-1]


def api_identity(engine: EngineOptions) -> dict[str, Any]:
    """What the run's signature records for an API model (host and model name; never the key)."""
    engine.api.check_endpoint()
    return {"backend": "openai", "endpoint_host": engine.api.host, "api_model": engine.api.api_model}


def make_engine_captioner(engine: EngineOptions, model_path: str | None, settings: GenerationSettings, *,
                          max_views: int = 6):
    """The captioner for `--backend openai|vllm`."""
    if engine.backend == "openai":
        from vlmkit.generation.openai_backend import OpenAICaptioner

        return OpenAICaptioner(engine.api, settings=settings)
    if engine.backend == "vllm":
        from vlmkit.generation.vllm_backend import VLLMCaptioner

        if not model_path:
            raise InputError("--backend vllm needs --model_path (a local model folder)")
        vllm = engine.vllm
        return VLLMCaptioner(Path(model_path), settings=settings, tp=vllm.tp, max_images=max_views,
                             gpu_memory_utilization=vllm.gpu_memory_utilization, max_model_len=vllm.max_model_len)
    raise ValueError(f"not an engine backend: {engine.backend}")
