"""InternVL (original OpenGVLab format) on GPUs through lmdeploy, with tensor parallelism.

lmdeploy is GPU-only and pins its own torch/peft versions, so it lives in requirements-gpu.txt (install it in its own
environment) and is imported only when this backend is chosen. Each request is one OpenAI-style user message: the
prompt, then one `image_url` per view (a local file path, which lmdeploy opens itself) with `max_dynamic_patch`
bounding InternVL's tiling; with no `<IMAGE_TOKEN>` in the text lmdeploy puts the images before it, as the transformers
backend does. A batch of requests goes to the pipeline in one call; lmdeploy schedules it (continuous batching).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from vlmkit.generation.runner import CaptionRequest
from vlmkit.generation.sampling import GenerationSettings
from vlmkit.io import InputError
from vlmkit.models import require_model_dir

log = logging.getLogger(__name__)

ENGINES = ("turbomind", "pytorch")
MISSING = ("lmdeploy is not installed. It is GPU-only: install it in its own environment with "
           "`pip install -r requirements-gpu.txt`, or run an InternVL -hf checkpoint with --backend hf")


def import_lmdeploy():
    from vlmkit.generation.engines import import_engine

    return import_engine("lmdeploy", MISSING)


def visible_gpu_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


class LmdeployCaptioner:
    """Caption requests with `lmdeploy.pipeline`; `tp=None` uses every visible GPU (CUDA_VISIBLE_DEVICES)."""

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        settings: GenerationSettings,
        engine: str = "turbomind",
        tp: int | None = None,
        session_len: int = 8192,
        cache_max_entry_count: float = 0.8,
        max_batch_size: int = 8,
        max_patches: int = 1,
    ):
        if engine not in ENGINES:
            raise InputError(f"--backend {engine}: lmdeploy engines are {', '.join(ENGINES)}")
        # lmdeploy would treat a missing folder as a hub repo id and try to download it: check it here.
        model_path = require_model_dir(model_path, "the InternVL model")
        lmdeploy = import_lmdeploy()
        if tp is None:
            tp = visible_gpu_count()
            if tp == 0:
                raise InputError("lmdeploy needs a GPU and none is visible; set CUDA_VISIBLE_DEVICES, or use "
                                 "--backend hf with an InternVL -hf checkpoint to run on CPU")
        if tp < 1:
            raise InputError(f"--tp {tp}: must be at least 1")
        self.model_path = model_path
        self.settings = settings
        self.engine = engine
        self.tp = tp
        self.max_patches = max_patches
        config_class = lmdeploy.TurbomindEngineConfig if engine == "turbomind" else lmdeploy.PytorchEngineConfig
        self.engine_config = config_class(tp=tp, session_len=session_len, cache_max_entry_count=cache_max_entry_count,
                                          max_batch_size=max_batch_size)
        self.gen_config = lmdeploy.GenerationConfig(
            max_new_tokens=settings.max_new_tokens,
            do_sample=settings.do_sample,
            temperature=settings.temperature if settings.do_sample else 1.0,
            top_p=settings.top_p if settings.do_sample else 1.0,
            top_k=settings.top_k if settings.do_sample else 1,
            repetition_penalty=settings.repetition_penalty,
            random_seed=settings.seed,
        )
        log.info("starting lmdeploy %s engine on %d GPU(s) for %s", engine, tp, self.model_path)
        self.pipe = lmdeploy.pipeline(str(self.model_path), backend_config=self.engine_config)

    def messages(self, request: CaptionRequest) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = [{"type": "text", "text": request.prompt}]
        for path in request.paths:
            content.append({"type": "image_url",
                            "image_url": {"url": str(Path(path).resolve()), "max_dynamic_patch": self.max_patches}})
        return [{"role": "user", "content": content}]

    def caption(self, requests: list[CaptionRequest]) -> list[str]:
        responses = self.pipe([self.messages(r) for r in requests], gen_config=self.gen_config)
        if not isinstance(responses, list):
            responses = [responses]
        return [r.text.strip() for r in responses]

    def describe(self) -> dict[str, Any]:
        return {
            "backend": f"lmdeploy-{self.engine}",
            "model_path": str(self.model_path),
            "tp": self.tp,
            "engine_config": {k: getattr(self.engine_config, k, None)
                              for k in ("tp", "session_len", "cache_max_entry_count", "max_batch_size")},
            "max_dynamic_patch": self.max_patches,
            "generation": self.settings.to_json(),
        }
