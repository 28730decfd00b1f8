"""The one transformers backend: any image-text-to-text checkpoint, true batched generation.

`AutoModelForImageTextToText` + `AutoProcessor` load Qwen2.5-VL, InternVL (-hf format), LLaVA (including the
checkpoints train.py composes), BLIP-2 and the other VLMs transformers knows, from a local folder. Each request is one
user turn with one `{"type": "image"}` item per view followed by the prompt, rendered by the processor's own chat
template; a batch is padded on the LEFT so every row's answer starts at the same position, and decoded after the
prompt. A processor without a chat template (BLIP-2 class captioners) gets the plain prompt and one image.

An optional PEFT adapter (`--adapter_path`) is applied to the base model and merged into it at load time: the same
weights a merged checkpoint (merge_lora_weights.py) holds, and full speed at inference.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from vlmkit.generation.runner import CaptionRequest
from vlmkit.generation.sampling import GenerationSettings
from vlmkit.io import InputError
from vlmkit.models import (
    check_adapter_files,
    check_model_files,
    require_model_dir,
    resolve_device,
    resolve_dtype,
)
from vlmkit.options import Options, opt

log = logging.getLogger(__name__)

PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")


@dataclass
class HFOptions(Options):
    """The transformers backend's flags (every generating command): the adapter and where and how the model runs."""

    TITLE: ClassVar[str | None] = "transformers backend"
    adapter_path: str | None = opt(None, "optional PEFT/LoRA adapter folder, applied to --model_path")
    device: str = opt("auto", "auto, cpu, cuda, cuda:1, ...")
    dtype: str = opt("auto", "auto (bf16 on GPU, fp32 on CPU), bfloat16, float16, float32")
    device_map: str | None = opt(None, "e.g. auto: spread one large model over the visible GPUs")
    attn_implementation: str | None = opt(None, "e.g. sdpa, flash_attention_2")

    def captioner_kwargs(self) -> dict[str, Any]:
        """`HFCaptioner`'s keyword arguments for these flags."""
        return {"adapter_path": self.adapter_path, "device": self.device, "dtype": self.dtype,
                "device_map": self.device_map, "attn_implementation": self.attn_implementation}


def add_special_tokens_for(tokenizer, texts: list[str]) -> bool:
    """`add_special_tokens` for texts a chat template rendered: the one rule training and inference share.

    A template that writes the BOS token itself (Llama 3, Gemma) must not get a second one from the tokenizer; one
    that does not (Phi-3, LLaVA-1.5 style) gets the tokenizer's own special tokens, as in pre-training. Tokenizers
    without a BOS token (Qwen) are unaffected either way.
    """
    bos = getattr(tokenizer, "bos_token", None) if tokenizer is not None else None
    return not (bos and any(t.startswith(bos) for t in texts))


def chat_prompt(template_owner, n_images: int, prompt: str) -> str:
    """One user turn, one `{"type": "image"}` item per view then the prompt, rendered for generation."""
    content: list[dict[str, str]] = [{"type": "image"} for _ in range(n_images)]
    content.append({"type": "text", "text": prompt})
    messages = [{"role": "user", "content": content}]
    return template_owner.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def require_adapter_dir(path: str | os.PathLike) -> Path:
    """A PEFT adapter folder whose config parses and whose weights are complete (see `check_adapter_files`)."""
    p = Path(path).expanduser()
    if not (p / "adapter_config.json").is_file():
        raise InputError(f"{p}: not a PEFT adapter folder (no adapter_config.json); pass the LoRA output of train.py")
    check_adapter_files(p)
    return p


def require_base_model_dir(path: str | os.PathLike, what: str) -> Path:
    """Like `require_model_dir` + `check_model_files`, with a helpful message when the user passed an adapter as
    the model."""
    p = Path(path).expanduser()
    if (p / "adapter_config.json").is_file() and not (p / "config.json").is_file():
        base = check_adapter_files(p).get("base_model_name_or_path")
        raise InputError(f"{p}: is a LoRA adapter, not a model; pass its base model with --model_path "
                         f"(trained on {base}) and this folder with --adapter_path")
    require_model_dir(p, what)
    return check_model_files(p, what)


def _load_error(path: Path, what: str, exc: BaseException) -> InputError:
    """A checkpoint that passed the cheap checks but still fails to load (a tokenizer file that does not parse,
    weights of another architecture, ...): one line naming the folder instead of a traceback."""
    lines = str(exc).strip().splitlines()
    return InputError(f"{path}: cannot load {what} ({type(exc).__name__}: {lines[0][:200] if lines else ''})")


# What transformers/peft/tokenizers raise for a folder they cannot load has no common base class (OSError, KeyError,
# ValueError, safetensors' and tokenizers' own plain `Exception`s, ...): every one is a problem of that folder.
LOAD_ERRORS = (Exception,)


class HFCaptioner:
    """Caption requests with a local transformers checkpoint."""

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        settings: GenerationSettings,
        adapter_path: str | os.PathLike | None = None,
        device: str = "auto",
        dtype: str = "auto",
        device_map: str | None = None,
        attn_implementation: str | None = None,
        processor_kwargs: dict[str, Any] | None = None,
        call_kwargs: dict[str, Any] | None = None,
        image_transform: Callable[[Any], Any] | None = None,
        what: str = "the captioning model",
    ):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor, set_seed

        self.model_path = require_base_model_dir(model_path, what)
        self.adapter_path = require_adapter_dir(adapter_path) if adapter_path else None
        self.settings = settings
        self.call_kwargs = dict(call_kwargs or {})
        self.image_transform = image_transform
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        set_seed(settings.seed)

        processor_dir = self.model_path
        if self.adapter_path and any((self.adapter_path / f).is_file() for f in PROCESSOR_FILES):
            processor_dir = self.adapter_path  # training saved its processor (e.g. with added tokens) next to it
        try:
            self.processor = AutoProcessor.from_pretrained(str(processor_dir), **(processor_kwargs or {}))
        except LOAD_ERRORS as exc:
            raise _load_error(processor_dir, "its processor/tokenizer", exc) from None
        tokenizer = getattr(self.processor, "tokenizer", None)
        if tokenizer is not None:
            tokenizer.padding_side = "left"
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
        # Processors usually carry the chat template; checkpoints saved with it on the tokenizer only work too.
        self.template_owner = self.processor if getattr(self.processor, "chat_template", None) else tokenizer
        self.chat_template = getattr(self.template_owner, "chat_template", None)

        load_kwargs: dict[str, Any] = {"dtype": self.dtype}
        if attn_implementation:
            load_kwargs["attn_implementation"] = attn_implementation
        if device_map:
            load_kwargs["device_map"] = device_map
        try:
            model = AutoModelForImageTextToText.from_pretrained(str(self.model_path), **load_kwargs)
        except ValueError as exc:  # an architecture transformers cannot map to image-text-to-text
            raise InputError(f"{self.model_path}: not an image-text-to-text checkpoint transformers can load "
                             f"({(str(exc).splitlines() or [''])[0][:200]})") from None
        except LOAD_ERRORS as exc:
            raise _load_error(self.model_path, what, exc) from None
        if self.adapter_path:
            from peft import PeftModel

            try:
                model = PeftModel.from_pretrained(model, str(self.adapter_path)).merge_and_unload()
            except LOAD_ERRORS as exc:
                raise _load_error(self.adapter_path, "the adapter on this base model", exc) from None
            log.info("applied and merged the adapter %s", self.adapter_path)
        if not device_map:
            model = model.to(self.device)
        self.model = model.eval()
        self.encoder_decoder = bool(getattr(self.model.config, "is_encoder_decoder", False))
        self._torch = torch
        # The runner prepares the next batch in a worker thread while this one decodes; a fast tokenizer's padding
        # settings are mutable state ("Already borrowed" when touched from two threads at once), so guard its use.
        self._tokenizer_lock = threading.Lock()
        log.info("loaded %s (%s, %s, %s)", self.model_path, type(self.model).__name__, self.model.device, self.dtype)

    def _prompt_text(self, request: CaptionRequest) -> str:
        if not self.chat_template:
            return request.prompt
        return chat_prompt(self.template_owner, len(request.images), request.prompt)

    def prepare(self, requests: list[CaptionRequest]):
        """Model inputs for a batch (CPU tensors): chat template, image resizing, tokenising with left padding."""
        if not self.chat_template and any(len(r.images) != 1 for r in requests):
            raise ValueError("this model has no chat template, so it takes exactly one image per prompt")
        texts = [self._prompt_text(r) for r in requests]
        images = [[self.image_transform(im) if self.image_transform else im for im in r.images] for r in requests]
        call_kwargs = dict(self.call_kwargs)
        if not self.chat_template:
            images = [imgs[0] for imgs in images]
        else:
            call_kwargs.setdefault("add_special_tokens",
                                   add_special_tokens_for(getattr(self.processor, "tokenizer", None), texts))
        with self._tokenizer_lock:
            return self.processor(text=texts, images=images, padding=True, return_tensors="pt", **call_kwargs)

    def generate(self, inputs) -> list[str]:
        """Greedy/sampled answers for prepared inputs, decoded after each row's prompt."""
        inputs = inputs.to(self.model.device, dtype=self.dtype)
        with self._torch.inference_mode():
            output = self.model.generate(**inputs, **self.settings.hf_kwargs())
        new_tokens = output if self.encoder_decoder else output[:, inputs["input_ids"].shape[1]:]
        with self._tokenizer_lock:
            texts = self.processor.batch_decode(new_tokens, skip_special_tokens=True)
        return [t.strip() for t in texts]

    def caption(self, requests: list[CaptionRequest]) -> list[str]:
        return self.generate(self.prepare(requests))

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "transformers",
            "model_path": str(self.model_path),
            "adapter_path": str(self.adapter_path) if self.adapter_path else None,
            "model_class": type(self.model).__name__,
            "device": str(self.model.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "chat_template": bool(self.chat_template),
            "processor_call_kwargs": self.call_kwargs,
            "generation": self.settings.to_json(),
        }
