r"""Multi-view captions with InternVL: lmdeploy on GPUs (tensor parallel), or transformers for -hf checkpoints.

    python internvl.py --input_dir ./data/multiview_images --output_dir ./data/captions \
                       --model_path ./models/OpenGVLab/InternVL3_5-4B            # lmdeploy, all visible GPUs
    CUDA_VISIBLE_DEVICES=0,1 python internvl.py --tp 2 --backend pytorch ...    # choose GPUs and engine
    python internvl.py --model_path ./models/InternVL3_5-1B-HF --backend hf --device cpu

--backend auto picks `hf` for checkpoints in the transformers format (config.json model_type "internvl", the
OpenGVLab/*-hf repositories) and lmdeploy's turbomind engine otherwise (the original OpenGVLab format). lmdeploy is
GPU-only and installed from requirements-gpu.txt; it is imported only when used. Same inputs, outputs, report,
resume and sharding as qwen.py.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import ClassVar

from vlmkit.cli import run_main
from vlmkit.generation import captioning
from vlmkit.generation.engines import TP_DEFAULT_HELP, TP_RANGE, EngineOptions, VllmOptions
from vlmkit.generation.model_setup import ModelOptions, make_hf_captioner
from vlmkit.generation.runner import Captioner
from vlmkit.io import InputError
from vlmkit.models import require_model_dir
from vlmkit.options import build_parser as options_parser
from vlmkit.options import opt, parse_options
from vlmkit.ranges import POSITIVE

DEFAULT_MODEL_PATH = "./models/OpenGVLab/InternVL3_5-4B"
BACKENDS = ("auto", "turbomind", "pytorch", "hf", "openai", "vllm")


@dataclass
class InternVLVllmOptions(VllmOptions):
    """The vLLM group; its --tp is lmdeploy's too."""

    tp: int | None = opt(None, f"lmdeploy/vLLM tensor parallelism {TP_DEFAULT_HELP}", range=TP_RANGE)


@dataclass
class InternVLEngine(EngineOptions):
    """The backends of internvl.py: lmdeploy's two engines besides transformers, the API and vLLM."""

    TITLE: ClassVar[str | None] = "InternVL backend"
    backend: str = opt("auto", "turbomind/pytorch: lmdeploy engines (GPU); hf: transformers (-hf format, any "
                               "device); openai: an OpenAI-compatible API (--api_*); vllm: vLLM in this process (GPU)",
                       choices=BACKENDS)
    vllm: InternVLVllmOptions = opt(factory=InternVLVllmOptions)
    session_len: int = opt(8192, "lmdeploy context window (prompt + answer)", range=POSITIVE)
    cache_max_entry_count: float = opt(0.8, "lmdeploy: share of free GPU memory for the KV cache")
    max_patches: int = opt(1, "InternVL tiles per view (448 px, 256 tokens each); more = finer detail, longer "
                              "prompts", range=POSITIVE)


@dataclass
class InternVLOptions(captioning.CaptionOptions):
    model: ModelOptions = opt(factory=lambda: ModelOptions(model_path=DEFAULT_MODEL_PATH))
    engine: InternVLEngine = opt(factory=InternVLEngine)


def build_parser() -> argparse.ArgumentParser:
    return options_parser(InternVLOptions, __doc__)


def resolve_backend(options: InternVLOptions) -> str:
    if options.engine.backend != "auto":
        return options.engine.backend
    config_path = require_model_dir(options.model.model_path or "", "the InternVL model") / "config.json"
    try:
        model_type = json.loads(config_path.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError) as exc:
        raise InputError(f"{config_path}: cannot read ({exc})") from None
    return "hf" if model_type == "internvl" else "turbomind"


def make_captioner(options: InternVLOptions) -> Captioner:
    backend, engine = resolve_backend(options), options.engine
    if backend == "hf":
        return make_hf_captioner(options, call_kwargs={"crop_to_patches": engine.max_patches > 1,
                                                       "max_patches": engine.max_patches}, what="the InternVL model")
    if options.hf.adapter_path:
        raise InputError("--adapter_path works with --backend hf only; merge the adapter for lmdeploy")
    from vlmkit.generation.lmdeploy_backend import LmdeployCaptioner

    return LmdeployCaptioner(options.model.model_path or "", settings=options.model.decoding, engine=backend,
                             tp=engine.vllm.tp, session_len=engine.session_len,
                             cache_max_entry_count=engine.cache_max_entry_count,
                             max_batch_size=options.model.batch_size, max_patches=engine.max_patches)


def main(argv: list[str] | None = None) -> int:
    return captioning.run(parse_options(InternVLOptions, argv, description=__doc__), make_captioner)


if __name__ == "__main__":
    run_main(main)
