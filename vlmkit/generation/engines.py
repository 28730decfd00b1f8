"""`--backend openai` (an OpenAI-compatible API) and `--backend vllm` (in-process vLLM) for every captioning CLI.

qwen.py, internvl.py, caption.py, eval_vqa.py and dataprocess.augment add these flags with `add_engine_args` and
get their captioner from `make_engine_captioner`; `--backend hf` (and internvl.py's lmdeploy engines) keep their own
factories. The runner's chunk for these engines is larger than `--batch_size`: for the API it is what keeps
`--concurrency` requests in flight (the next chunk is queued while one finishes), for vLLM it is what gives
continuous batching enough work.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vlmkit.generation.sampling import GenerationSettings
from vlmkit.io import InputError

ENGINES = ("openai", "vllm")
DEFAULT_VLLM_CHUNK = 256


def import_engine(module: str, missing: str):
    """A GPU engine installed in its own environment (requirements-gpu.txt), imported only when chosen: without it,
    one `error:` line (`missing`, then the ImportError) instead of a traceback."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise InputError(f"{missing} ({exc})") from None


def add_engine_args(parser: argparse.ArgumentParser, *, backend: bool = True, tp: bool = True) -> None:
    """`--backend hf|openai|vllm` and the flag groups of the two engines (`backend=False`, `tp=False` where the
    script has its own --backend / --tp)."""
    if backend:
        parser.add_argument("--backend", default="hf", choices=("hf", *ENGINES),
                            help="hf: transformers in this process; openai: an OpenAI-compatible API (--api_*); "
                                 "vllm: vLLM in this process (GPU)")
    api = parser.add_argument_group("API backend (--backend openai)")
    api.add_argument("--api_base", default=None, help="endpoint, e.g. http://127.0.0.1:8000/v1 (vLLM's server) or "
                                                      "https://api.openai.com/v1")
    api.add_argument("--api_model", default=None, help="model name as the server knows it, e.g. gpt-4o or the "
                                                       "served model of `vllm serve`")
    api.add_argument("--api_key_env", default=None, metavar="VAR",
                     help="NAME of the environment variable holding the key (default OPENAI_API_KEY, which may be "
                          "unset for a local server); the key is never a flag, never logged or written")
    api.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    api.add_argument("--timeout", type=float, default=120.0, help="seconds per request before it is retried")
    api.add_argument("--max_retries", type=int, default=3,
                     help="retries per item on 429, 5xx, timeouts and dropped connections (back-off with jitter, "
                          "Retry-After honoured); other 4xx fail the item at once")
    vllm = parser.add_argument_group("vLLM backend (--backend vllm, GPU)")
    if tp:
        vllm.add_argument("--tp", type=int, default=None,
                          help="tensor parallelism (default: every visible GPU, see CUDA_VISIBLE_DEVICES)")
    vllm.add_argument("--gpu_memory_utilization", type=float, default=0.9, help="vLLM: share of GPU memory it takes")
    vllm.add_argument("--max_model_len", type=int, default=None, help="vLLM context window (default: the model's)")
    vllm.add_argument("--engine_chunk", type=int, default=DEFAULT_VLLM_CHUNK,
                      help="vLLM: items handed to the engine per call (continuous batching schedules them)")


def backend_of(args: argparse.Namespace) -> str:
    return getattr(args, "backend", "hf")


def api_options(args: argparse.Namespace):
    from vlmkit.generation.openai_backend import DEFAULT_KEY_ENV, ApiOptions

    return ApiOptions(api_base=args.api_base, api_model=args.api_model,
                      api_key_env=args.api_key_env or DEFAULT_KEY_ENV, concurrency=args.concurrency,
                      timeout=args.timeout, max_retries=args.max_retries)


def check_engine_args(args: argparse.Namespace, settings: GenerationSettings) -> None:
    """Cheap checks of the engine flags, before any image is read or any engine starts."""
    backend = backend_of(args)
    if backend == "openai":
        from vlmkit.generation.openai_backend import decoding_fields

        api_options(args)
        decoding_fields(settings)
        if getattr(args, "adapter_path", None):
            raise InputError("--adapter_path: an API model cannot take a local adapter; serve the merged model "
                             "(merge_lora_weights.py) and point --api_base at it")
    elif backend == "vllm":
        if getattr(args, "adapter_path", None):
            raise InputError("--adapter_path: merge the adapter first (merge_lora_weights.py checks the result loads "
                             "in vLLM) and pass the merged folder as --model_path")
        if args.engine_chunk < 1:
            raise InputError(f"--engine_chunk {args.engine_chunk}: must be at least 1")
        if getattr(args, "tp", None) is not None and args.tp < 1:
            raise InputError(f"--tp {args.tp}: must be at least 1")
        if not 0 < args.gpu_memory_utilization <= 1:
            raise InputError(f"--gpu_memory_utilization {args.gpu_memory_utilization}: must be in (0, 1]")


def engine_chunk(args: argparse.Namespace) -> int:
    """Items per runner batch: --batch_size, raised to keep an engine busy (see the module docstring)."""
    backend = backend_of(args)
    if backend == "openai":
        return max(args.batch_size, 2 * args.concurrency)
    if backend == "vllm":
        return max(args.batch_size, args.engine_chunk)
    return args.batch_size


def engine_model_name(args: argparse.Namespace) -> str | None:
    """The API model's last path segment (`Qwen/Qwen2.5-VL-3B-Instruct` -> `Qwen2.5-VL-3B-Instruct`) for output
    names and data_by; None for local backends (their folder name is used)."""
    if backend_of(args) != "openai" or not args.api_model:
        return None
    return args.api_model.rstrip("/").rsplit("/", 1)[-1]


def engine_identity(args: argparse.Namespace) -> dict[str, Any]:
    """What the run's signature records for an API model (host and model name; never the key)."""
    options = api_options(args)
    return {"backend": "openai", "endpoint_host": options.host, "api_model": options.api_model}


def make_engine_captioner(args: argparse.Namespace, settings: GenerationSettings, *, max_views: int = 6):
    """The captioner for `--backend openai|vllm`."""
    backend = backend_of(args)
    if backend == "openai":
        from vlmkit.generation.openai_backend import OpenAICaptioner

        return OpenAICaptioner(api_options(args), settings=settings, key_env_explicit=args.api_key_env is not None)
    if backend == "vllm":
        from vlmkit.generation.vllm_backend import VLLMCaptioner

        return VLLMCaptioner(Path(args.model_path), settings=settings, tp=getattr(args, "tp", None),
                             max_images=max_views, gpu_memory_utilization=args.gpu_memory_utilization,
                             max_model_len=args.max_model_len)
    raise ValueError(f"not an engine backend: {backend}")
