"""TINY random models (a few hundred thousand parameters) for demos, benchmarks and tests.

Each builder writes a standard Hugging Face folder (config, safetensors, tokenizer/processor, chat template) from a
config, with a tokenizer trained locally on a small fixed corpus, so that demos and tests go through the same
`from_pretrained` code paths as users with real checkpoints, and nothing is ever downloaded. The weights are random:
the models load, train and generate, but say nothing meaningful.

    python -m demo.tiny OUT_DIR --models siglip,qwen3_lm     # or --list

Builders: `BUILDERS` below (name -> function(out_dir) -> path). `clip_words` / `siglip_words` are dual encoders
with word-level tokenizers for retrieval (`demo.tiny.word_clip`, which also draws a synthetic shapes data set).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def _lazy(module: str, func: str, **kwargs) -> Callable[[Path], Path]:
    """Import the builder only when it is used: each one pulls in transformers model classes."""

    def build(out_dir: Path) -> Path:
        import importlib

        return getattr(importlib.import_module(f"demo.tiny.{module}"), func)(out_dir, **kwargs)

    build.__doc__ = f"demo.tiny.{module}.{func}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    return build


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "clip": _lazy("clip", "build_tiny_clip"),
    "siglip": _lazy("siglip", "build_tiny_siglip"),
    "qwen2_lm": _lazy("qwen_lm", "build_tiny_qwen_lm", family="qwen2"),
    "qwen3_lm": _lazy("qwen_lm", "build_tiny_qwen_lm", family="qwen3"),
    "llama_lm": _lazy("chat_lms", "build_tiny_chat_lm", family="llama"),
    "gemma_lm": _lazy("chat_lms", "build_tiny_chat_lm", family="gemma"),
    "phi3_lm": _lazy("chat_lms", "build_tiny_chat_lm", family="phi3"),
    "qwen2_5_vl": _lazy("qwen2_5_vl", "build_tiny_qwen2_5_vl"),
    "internvl": _lazy("internvl", "build_tiny_internvl"),
    "llava": _lazy("llava", "build_tiny_llava"),
    "blip2": _lazy("blip2", "build_tiny_blip2"),
    "clip_words": _lazy("word_clip", "build_tiny_clip_words"),
    "siglip_words": _lazy("word_clip", "build_tiny_siglip_words"),
}

# What each tiny model stands in for: the script and setting that takes it (`python -m demo.tiny --list`; the
# README's tour uses them as its "no weights yet" path).
USED_BY: dict[str, str] = {
    "clip": "compare.py --clip_model / compare.sh CLIP_MODEL (CLIP text and image metrics)",
    "siglip": "train.sh VISION_MODEL (the vision tower of a LLaVA-style model)",
    "qwen2_lm": "train.sh LM_MODEL (the language model of a LLaVA-style model; Qwen2 chat format)",
    "qwen3_lm": "train.sh LM_MODEL (the language model of a LLaVA-style model; Qwen3 chat format; --tiny's)",
    "llama_lm": "train.sh LM_MODEL (Llama chat format)",
    "gemma_lm": "train.sh LM_MODEL (Gemma chat format)",
    "phi3_lm": "train.sh LM_MODEL (Phi-3 chat format)",
    "qwen2_5_vl": "qwen.py --model_path; eval_vqa.sh MODEL_PATH; train.sh ARCH=qwen2_5_vl BASE_VLM; "
                  "dataprocess.augment --model_path",
    "internvl": "internvl.py --model_path",
    "llava": "test.sh MODEL_PATH / caption.py --model_path; eval_vqa.sh MODEL_PATH; train.sh BASE_VLM",
    "blip2": "caption.py --model_path (a BLIP-2 class captioner); dataprocess.augment --model_path",
    "clip_words": "retrieval.py train/eval model_name_or_path (what sh retrieval.sh --tiny trains)",
    "siglip_words": "retrieval.py train model_name_or_path with loss_type sigmoid",
}
