"""Training samples → model inputs, with only the assistant answers supervised.

Labels: every token is -100 (ignored by the loss) except the tokens of each assistant answer and the token
that ends it (`<|im_end|>` / EOS), so the model learns to answer and to stop, never to reproduce the prompt,
the chat markup or the image tokens. Multi-turn samples supervise every assistant turn.

Where the answers are is decided by the chat template itself (no per-model markers): the text rendered up to
a turn with `add_generation_prompt=True` is the prompt, the rest of that turn is the answer. Tokenising once
with the processor (which expands each image token into one token per image feature) and once with the plain
tokenizer (character offsets, image tokens unexpanded) and walking both side by side maps the answer
characters onto the expanded token positions. Hand-written because neither transformers nor TRL does this
for processors whose chat templates have no `{% generation %}` markers (Qwen2.5-VL's does not).

Tokens: the conversation is rendered by the processor's chat template and tokenised with the rule inference uses
(`add_special_tokens_for`: the tokenizer's BOS unless the template wrote it), so a fine-tuned model sees at
inference exactly the prompt ids it was trained on. Every sample is encoded once before training by
`vlmkit.training.preflight`, which rejects (or drops and lists) bad images and over-long samples up front.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from vlmkit.images import ImageProblem, open_rgb
from vlmkit.io import InputError
from vlmkit.samples import TrainingSample
from vlmkit.training_data import read_training_data

log = logging.getLogger(__name__)

IGNORE_INDEX = -100


# --------------------------------------------------------------------------------------------------- loading
def load_samples(path: str | os.PathLike, image_folder: str | None = None, prompt: str | None = None,
                 views: tuple[str, ...] | None = None) -> tuple[list[TrainingSample], Path]:
    """Read any supported training file (`vlmkit.training_data`: training JSONL/Parquet/WebDataset/HF, LLaVA JSON,
    captions.json, a groundTruth.json-style caption file joined with the multi-view object folders in
    `image_folder`, Data-Juicer records); returns samples and the folder their image paths are relative to."""
    return read_training_data(path, image_folder, prompt, views)


# ------------------------------------------------------------------------------------------------ images
def open_image(path: Path, sample_id: str):
    """Open one training image as RGB (`vlmkit.images` policy); a bad image is an `InputError` naming the sample."""
    try:
        return open_rgb(path)
    except ImageProblem as problem:
        raise InputError(f"sample {sample_id}: image {path}: {problem.reason}") from None


# ------------------------------------------------------------------------------------------------- encoding
def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


def answer_spans(processor, messages: list[dict[str, Any]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of each assistant answer (with its end token).

    A turn's answer is what rendering through that turn adds to the rendered prompt before it, cut where the
    whole conversation continues differently (Phi-3's template writes EOS only after the last turn).
    """
    full = processor.apply_chat_template(messages, tokenize=False)
    spans = []
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = processor.apply_chat_template(messages[:k], tokenize=False, add_generation_prompt=True) if k else ""
        through = processor.apply_chat_template(messages[: k + 1], tokenize=False)
        end = _common_prefix(through, full)
        if not (through.startswith(prefix) and full.startswith(prefix)) or end <= len(prefix):
            raise InputError("the chat template renders a conversation differently from its prefixes; "
                             "cannot tell prompt from answer (use a template without per-turn rewriting)")
        answer = through[len(prefix):end].rstrip()  # answer + end-of-turn token, without the trailing newline
        spans.append((len(prefix), len(prefix) + len(answer)))
    return full, spans


def image_token_id(processor) -> int:
    tid = getattr(processor, "image_token_id", None)
    if tid is None:
        tid = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
    return int(tid)


def supervise_spans(expanded: list[int], text_ids: list[int], offsets: list[tuple[int, int]],
                    spans: list[tuple[int, int]], image_id: int) -> list[int]:
    """Labels for the processor's (image-expanded) ids: a token is supervised when its text starts in a span.

    `text_ids`/`offsets` come from tokenising the same text without expansion; each image token there matches
    the run of image tokens the processor put in its place (adjacent placeholders share one run).
    """
    labels = [IGNORE_INDEX] * len(expanded)
    j = 0
    for i, tok in enumerate(text_ids):
        if tok == image_id:
            if j >= len(expanded) or expanded[j] != image_id:
                raise ValueError(f"token {i}: image token not found at position {j} of the processor's ids")
            if i + 1 < len(text_ids) and text_ids[i + 1] == image_id:
                continue
            while j < len(expanded) and expanded[j] == image_id:
                j += 1
            continue
        if j >= len(expanded) or expanded[j] != tok:
            raise ValueError(f"token {i}: the processor's ids differ from the tokenizer's beyond image expansion")
        start = offsets[i][0]
        if any(a <= start < b for a, b in spans):
            labels[j] = tok
        j += 1
    if j != len(expanded):
        raise ValueError("the processor's ids are longer than the tokenizer's plus image expansion")
    return labels


def encode_sample(processor, sample: TrainingSample, images: list, max_length: int | None = None) -> dict[str, Any]:
    """Processor outputs for one sample (batch dimension 1) plus `labels`.

    A sample longer than `max_length` is an `InputError` naming it (the preflight drops or rejects those first:
    a cut sample would train on an answer without its end, or on half an image).
    """
    import torch
    from jinja2 import TemplateError

    from vlmkit.generation.hf_backend import add_special_tokens_for

    messages = sample.to_chat_messages()
    try:
        text, spans = answer_spans(processor, messages)
    except TemplateError as exc:
        raise InputError(f"sample {sample.id}: the chat template refuses this conversation: {exc}") from None
    except InputError as exc:
        raise InputError(f"sample {sample.id}: {exc}") from None
    special = add_special_tokens_for(processor.tokenizer, [text])
    inputs = processor(text=[text], images=images or None, return_tensors="pt", add_special_tokens=special)
    plain = processor.tokenizer(text, add_special_tokens=special, return_offsets_mapping=True)
    image_id = image_token_id(processor)
    expanded = inputs["input_ids"][0].tolist()
    try:
        labels = supervise_spans(expanded, plain["input_ids"], plain["offset_mapping"], spans, image_id)
    except ValueError as exc:
        raise InputError(f"sample {sample.id}: cannot place the labels: {exc}") from None
    inputs["labels"] = torch.tensor([labels])
    if max_length and len(expanded) > max_length:
        raise InputError(f"sample {sample.id}: {len(expanded)} tokens > --max_length {max_length}")
    return dict(inputs)


class SupervisedDataset:
    """A map-style dataset: sample i → encoded tensors (images loaded and processed on access)."""

    def __init__(self, samples: list[TrainingSample], root: Path, processor, max_length: int | None = None):
        self.samples = samples
        self.root = Path(root)
        self.processor = processor
        self.max_length = max_length

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        images = [open_image(p, sample.id) for p in sample.resolved_images(self.root)]
        return encode_sample(self.processor, sample, images, self.max_length)


class VLMCollator:
    """Pads the per-token tensors on the right; concatenates image tensors (pixels, grids) along dim 0.

    Both LLaVA (`pixel_values` [images, C, H, W]) and Qwen2.5-VL (`pixel_values` [patches, D] +
    `image_grid_thw` [images, 3]) take all images of a batch stacked in order, matched to image tokens in order.
    """

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        longest = max(f["input_ids"].shape[1] for f in features)
        batch: dict[str, Any] = {}
        keys = {k for f in features for k in f}
        for key in sorted(keys):
            having = [f for f in features if key in f]
            per_token = len(having) == len(features) and all(
                f[key].dim() == 2 and f[key].shape[1] == f["input_ids"].shape[1] for f in having)
            if per_token:
                pad = {"input_ids": self.pad_token_id, "labels": IGNORE_INDEX}.get(key, 0)
                batch[key] = torch.cat([torch.nn.functional.pad(f[key], (0, longest - f[key].shape[1]), value=pad)
                                        for f in having])
            else:
                batch[key] = torch.cat([f[key] for f in having])
        return batch
