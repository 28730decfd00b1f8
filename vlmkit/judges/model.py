"""A local judge model through transformers: greedy answers, and next-token probabilities of the digit tokens.

Any image-text-to-text checkpoint (AutoModelForImageTextToText + AutoProcessor, as `generation/hf_backend.py` loads
captioners) or a text-only causal LM (AutoModelForCausalLM + AutoTokenizer: CLAIR, attribute extraction and the
pairwise judge need no image; FLEUR then is null with the reason). Prompts are one user turn rendered by the
checkpoint's chat template, batches padded on the left.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from vlmkit.generation.hf_backend import LOAD_ERRORS, _load_error, add_special_tokens_for, require_base_model_dir
from vlmkit.io import InputError
from vlmkit.models import resolve_device, resolve_dtype

log = logging.getLogger(__name__)

DIGITS = tuple(str(d) for d in range(10))


class JudgeModel:
    def __init__(self, path: str | os.PathLike, *, device: str = "auto", max_new_tokens: int = 128):
        import torch
        from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

        self.path = require_base_model_dir(path, "the judge model")
        self.device = resolve_device(device)
        self.dtype = resolve_dtype("auto", self.device)
        self.max_new_tokens = max_new_tokens
        self._torch = torch
        self.vision = True
        try:
            model = AutoModelForImageTextToText.from_pretrained(str(self.path), dtype=self.dtype)
            self.processor = AutoProcessor.from_pretrained(str(self.path))
            self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        except ValueError:  # not an image-text-to-text architecture: a text-only judge
            self.vision = False
            try:
                model = AutoModelForCausalLM.from_pretrained(str(self.path), dtype=self.dtype)
                self.processor = self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
            except LOAD_ERRORS as exc:
                raise _load_error(self.path, "the judge model", exc) from None
        except LOAD_ERRORS as exc:
            raise _load_error(self.path, "the judge model", exc) from None
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.template_owner = self.processor if getattr(self.processor, "chat_template", None) else self.tokenizer
        if not getattr(self.template_owner, "chat_template", None):
            raise InputError(f"{self.path}: the judge model has no chat template")
        self.model = model.to(self.device).eval()
        log.info("loaded judge %s (%s, %s)", self.path, type(self.model).__name__, self.device)

    def digit_ids(self) -> list[int] | None:
        """The token ids of 0..9 when each digit is one token of its own, else None."""
        ids = [self.tokenizer.encode(d, add_special_tokens=False) for d in DIGITS]
        if any(len(i) != 1 for i in ids) or len({i[0] for i in ids}) != 10:
            return None
        return [i[0] for i in ids]

    def _render(self, prompt: str, n_images: int) -> str:
        if self.vision:
            content: Any = [*({"type": "image"} for _ in range(n_images)), {"type": "text", "text": prompt}]
        else:
            content = prompt
        return self.template_owner.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                                       add_generation_prompt=True)

    def _inputs(self, prompts: list[str], images: list[list[Any]] | None, suffix: list[str] | None = None):
        texts = [self._render(p, len(images[i]) if images else 0) + (suffix[i] if suffix else "")
                 for i, p in enumerate(prompts)]
        kwargs: dict[str, Any] = {"padding": True, "return_tensors": "pt",
                                  "add_special_tokens": add_special_tokens_for(self.tokenizer, texts)}
        if images and any(images):
            if not self.vision:
                raise ValueError("a text-only judge cannot see images")
            inputs = self.processor(text=texts, images=images, **kwargs)
        elif self.vision and self.processor is not self.tokenizer:
            inputs = self.processor(text=texts, **kwargs)
        else:
            inputs = self.tokenizer(texts, **kwargs)
        return inputs.to(self.device)

    def generate(self, prompts: list[str], images: list[list[Any]] | None = None) -> list[str]:
        """Greedy answers (deterministic), decoded after each prompt."""
        inputs = self._inputs(prompts, images)
        with self._torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1,
                                      temperature=None, top_p=None, top_k=None,
                                      pad_token_id=self.tokenizer.pad_token_id)
        new = out[:, inputs["input_ids"].shape[1]:]
        return [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]

    def digit_probabilities(self, prompts: list[str], images: list[list[Any]] | None,
                            prefixes: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(n, 10) next-token probabilities of the digits after each rendered prompt + prefix, renormalised over
        the ten digits, and (n,) the share of the full distribution the digits held."""
        ids = self.digit_ids()
        assert ids is not None
        inputs = self._inputs(prompts, images, prefixes)
        with self._torch.inference_mode():
            logits = self.model(**inputs).logits[:, -1, :].float()
        probs = self._torch.softmax(logits, dim=-1)[:, ids].cpu().numpy().astype(np.float64)
        mass = probs.sum(axis=1)
        return probs / mass[:, None], mass

    def describe(self) -> dict[str, Any]:
        return {"backend": "transformers", "model_path": str(self.path), "model_class": type(self.model).__name__,
                "vision": self.vision, "device": str(self.device), "dtype": str(self.dtype).removeprefix("torch.")}


def judge_is_vision(path: str | os.PathLike) -> bool:
    """Whether a judge folder is an image-text-to-text model, from its config alone (no weights loaded)."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(str(Path(path)))
    except LOAD_ERRORS as exc:
        raise _load_error(Path(path), "the judge's config", exc) from None
    return config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
