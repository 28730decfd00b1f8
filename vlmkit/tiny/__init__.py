"""TINY random models (a few hundred thousand parameters) for demos, benchmarks and tests.

Each builder writes a standard Hugging Face folder (config, safetensors, tokenizer/processor, chat template) from a
config, with a tokenizer trained locally on a small fixed corpus, so that demos and tests go through the same
`from_pretrained` code paths as users with real checkpoints, and nothing is ever downloaded. The weights are random:
the models load, train and generate, but say nothing meaningful.

    python -m vlmkit.tiny OUT_DIR --models siglip,qwen3_lm     # or --list

Builders: `BUILDERS` below (name -> function(out_dir) -> path). `clip_words` / `siglip_words` are dual encoders
with word-level tokenizers for retrieval (`vlmkit.tiny.retrieval`, which also draws a synthetic shapes data set).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def _lazy(module: str, func: str, **kwargs) -> Callable[[Path], Path]:
    """Import the builder only when it is used: each one pulls in transformers model classes."""

    def build(out_dir: Path) -> Path:
        import importlib

        return getattr(importlib.import_module(f"vlmkit.tiny.{module}"), func)(out_dir, **kwargs)

    build.__doc__ = f"vlmkit.tiny.{module}.{func}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
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
    "clip_words": _lazy("retrieval", "build_tiny_clip_words"),
    "siglip_words": _lazy("retrieval", "build_tiny_siglip_words"),
}
