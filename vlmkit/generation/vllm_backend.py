"""Captions with vLLM in this process (`--backend vllm`, GPU machines): continuous batching, tensor parallelism.

vLLM is GPU-only and pins its own torch/transformers, so it lives in requirements-gpu.txt (its own environment) and
is imported only here, when this backend is chosen; without it the run stops with one `error:` line. The model folder
is checked for a layout vLLM loads without custom code (`export_check`) before the engine starts, since a failed
engine start costs minutes. `vllm.LLM` gets `limit_mm_per_prompt={"image": <views>}` and `tensor_parallel_size=--tp`;
each item is the same OpenAI-style message the API backend sends (views as base64 `image_url` parts in order, then
the prompt), rendered by vLLM with the model's own chat template. The runner hands `--engine_chunk` items per call so
the scheduler has work; `LLM.chat` returns one output per conversation in submission order (vLLM sorts them by the
request ids it assigned in that order), and each output is mapped back to its item by that position.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vlmkit.generation.lmdeploy_backend import visible_gpu_count
from vlmkit.generation.openai_backend import Caption, build_messages
from vlmkit.generation.runner import CaptionRequest
from vlmkit.generation.sampling import GenerationSettings
from vlmkit.io import InputError, read_json
from vlmkit.models import require_model_dir

log = logging.getLogger(__name__)

MISSING = ("vllm is not installed: it is GPU-only, install it in its own environment with "
           "`pip install -r requirements-gpu.txt`, or use --backend hf, or --backend openai against `vllm serve`")


def import_vllm():
    from vlmkit.generation.engines import import_engine

    return import_engine("vllm", MISSING)


def sampling_kwargs(settings: GenerationSettings, min_new_tokens: int = 0) -> dict[str, Any]:
    """`vllm.SamplingParams` fields for the decoding flags (temperature 0 is vLLM's greedy decoding too)."""
    if settings.num_beams != 1:
        raise InputError(f"--num_beams {settings.num_beams}: the vLLM backend decodes greedily or by sampling; "
                         f"use --num_beams 1")
    return {"max_tokens": settings.max_new_tokens, "min_tokens": min_new_tokens,
            "temperature": settings.temperature, "top_p": settings.top_p if settings.do_sample else 1.0,
            "top_k": settings.top_k if settings.do_sample else -1,
            "repetition_penalty": settings.repetition_penalty, "seed": settings.seed}


class VLLMCaptioner:
    """Caption requests with `vllm.LLM`; `tp=None` uses every visible GPU."""

    def __init__(self, model_path: str | Path, *, settings: GenerationSettings, tp: int | None = None,
                 max_images: int = 6, gpu_memory_utilization: float = 0.9, max_model_len: int | None = None,
                 min_new_tokens: int = 0, extra_sampling: dict[str, Any] | None = None):
        from vlmkit.generation.export_check import check_engine_layout

        self.model_path = require_model_dir(model_path, "the model")
        check_engine_layout(self.model_path)
        self.sampling = {**sampling_kwargs(settings, min_new_tokens), **(extra_sampling or {})}
        vllm = import_vllm()
        if tp is None:
            tp = visible_gpu_count()
            if tp == 0:
                raise InputError("vLLM needs a GPU and none is visible; set CUDA_VISIBLE_DEVICES, or use --backend hf")
        self.settings = settings
        self.tp = tp
        self.engine_kwargs: dict[str, Any] = {
            "model": str(self.model_path), "tensor_parallel_size": tp, "limit_mm_per_prompt": {"image": max_images},
            "gpu_memory_utilization": gpu_memory_utilization, "seed": settings.seed}
        if read_json(self.model_path / "config.json").get("auto_map"):  # vLLM-native class, config code in folder
            self.engine_kwargs["trust_remote_code"] = True
        if max_model_len is not None:
            self.engine_kwargs["max_model_len"] = max_model_len
        self.version = getattr(vllm, "__version__", None)
        log.info("starting vLLM %s on %d GPU(s) for %s", self.version, tp, self.model_path)
        self.llm = vllm.LLM(**self.engine_kwargs)
        self.params = vllm.SamplingParams(**self.sampling)

    def prepare(self, requests: list[CaptionRequest]) -> list[list[dict[str, Any]]]:
        """The conversations of a chunk (base64 encoding runs in the runner's prefetch thread)."""
        return [build_messages(r) for r in requests]

    def generate(self, conversations: list[list[dict[str, Any]]]) -> list[str]:
        outputs = self.llm.chat(conversations, sampling_params=self.params, use_tqdm=False)
        if len(outputs) != len(conversations):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(conversations)} conversations")
        captions = []
        for output in outputs:
            best = output.outputs[0]
            captions.append(Caption.of(best.text.strip(), getattr(best, "finish_reason", None)))
        return captions

    def caption(self, requests: list[CaptionRequest]) -> list[str]:
        return self.generate(self.prepare(requests))

    def describe(self) -> dict[str, Any]:
        return {"backend": "vllm", "vllm": self.version, "model_path": str(self.model_path), "tp": self.tp,
                "engine": {k: v for k, v in self.engine_kwargs.items() if k != "model"},
                "sampling": self.sampling, "generation": self.settings.to_json()}
