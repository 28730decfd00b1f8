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

Images: every image is opened (reduced JPEG decode) before training starts, so a missing or corrupt file
stops the run at once with a one-line error naming the file and the sample, or, with `skip_bad=True`, the
sample is skipped, counted and listed in a report; it is never dropped silently.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmkit.images import ImageProblem, image_problem, open_rgb
from vlmkit.io import InputError, read_json
from vlmkit.samples import DEFAULT_CAPTION_PROMPT, TrainingSample, load_training_data, multiview_caption_samples

log = logging.getLogger(__name__)

IGNORE_INDEX = -100


# --------------------------------------------------------------------------------------------------- loading
def load_samples(path: str | os.PathLike, image_folder: str | None = None, prompt: str | None = None,
                 views: tuple[str, ...] | None = None) -> tuple[list[TrainingSample], Path]:
    """Read any supported training file; returns samples and the folder their image paths are relative to.

    Besides the formats of `vlmkit.samples.load_training_data` (training JSONL, captions.json, LLaVA JSON), a
    caption file in the evaluation format (`[{"images": [...], "caption"}]`, e.g. groundTruth.json) is read
    with `image_folder` holding one multi-view object folder per record (joined by item id): each record
    becomes one sample with all its views, in `views` order, followed by `prompt` (default: the multi-view caption
    prompt of vlmkit.prompt, the one qwen.py and test.sh ask with; for caption-only files: DEFAULT_CAPTION_PROMPT).
    """
    path = Path(path)
    if path.suffix == ".json":
        data = read_json(path)
        first = data[0] if isinstance(data, list) and data else None
        if isinstance(first, dict) and "images" in first and "caption" in first and "conversations" not in first:
            return load_multiview_captions(path, image_folder, prompt, views)
    return load_training_data(path, image_folder, prompt or DEFAULT_CAPTION_PROMPT)


def load_multiview_captions(path: Path, image_folder: str | None, prompt: str | None,
                            views: tuple[str, ...] | None = None) -> tuple[list[TrainingSample], Path]:
    """A seed-format caption file joined with its object folders; an object lacking views trains with the rest."""
    if not image_folder:
        raise InputError(f"{path}: a caption file with 'images' needs --image_folder (the multi-view object folders)")
    joined = multiview_caption_samples(path, image_folder, views, prompt, source=path.name)
    if joined.skipped:
        where, _, reason = joined.skipped[0]
        raise InputError(f"{where}: {reason}")
    if joined.missing_views:
        incomplete = [f"{sid} (no {','.join(v)})" for sid, (_, v) in joined.missing_views.items()]
        log.warning("%d objects lack some requested views and train with the views they have: %s", len(incomplete),
                    "; ".join(incomplete[:5]) + (" ..." if len(incomplete) > 5 else ""))
    return joined.samples, Path(image_folder)


# ------------------------------------------------------------------------------------------------ images
def open_image(path: Path, sample_id: str):
    """Open one training image as RGB (`vlmkit.images` policy); a bad image is an `InputError` naming the sample."""
    try:
        return open_rgb(path)
    except ImageProblem as problem:
        raise InputError(f"sample {sample_id}: image {path}: {problem.reason}") from None


@dataclass
class SkippedSample:
    """A sample left out of training because one of its images is bad (listed in skipped_samples.json)."""

    sample_id: str
    image: str
    reason: str

    def line(self) -> str:
        return f"sample {self.sample_id}: image {self.image}: {self.reason}"


def preflight_images(samples: list[TrainingSample], root: Path, data_path: str | os.PathLike,
                     skip_bad: bool = False) -> tuple[list[TrainingSample], list[SkippedSample]]:
    """Check every image before any model is loaded.

    Without `skip_bad` the first problem raises `InputError` (one line: data file, sample, image, reason, and
    how many more problems there are). With it, the affected samples are removed and returned as problems for
    the caller to count and report.
    """
    from tqdm import tqdm

    problems: list[SkippedSample] = []
    keep: list[TrainingSample] = []
    n_images = sum(len(s.images) for s in samples)
    with tqdm(total=n_images, desc="checking images", unit="img", disable=n_images < 500) as bar:
        for sample in samples:
            bad = None
            for path in sample.resolved_images(root):
                problem = image_problem(path)
                bar.update(1)
                if problem and bad is None:
                    bad = SkippedSample(sample.id, str(path), problem.reason)
            if bad:
                problems.append(bad)
            else:
                keep.append(sample)
    if problems and not skip_bad:
        more = f" ({len(problems) - 1} more samples with bad images; --skip_bad_samples skips and lists them)" \
            if len(problems) > 1 else " (--skip_bad_samples skips such samples and lists them)"
        raise InputError(f"{data_path}: {problems[0].line()}{more}")
    if not keep:
        raise InputError(f"{data_path}: no sample left to train on ({len(problems)} skipped for bad images)")
    return keep, problems


# ------------------------------------------------------------------------------------------------- encoding
def answer_spans(processor, messages: list[dict[str, Any]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of each assistant answer (with its end token)."""
    full = processor.apply_chat_template(messages, tokenize=False)
    spans = []
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = processor.apply_chat_template(messages[:k], tokenize=False, add_generation_prompt=True) if k else ""
        through = processor.apply_chat_template(messages[: k + 1], tokenize=False)
        if not (through.startswith(prefix) and full.startswith(through)):
            raise InputError("the chat template renders a conversation differently from its prefixes; "
                             "cannot tell prompt from answer (use a template without per-turn rewriting)")
        answer = through[len(prefix):].rstrip()  # answer + end-of-turn token, without the trailing newline
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
    """Processor outputs for one sample (batch dimension 1) plus `labels`."""
    import torch

    messages = sample.to_chat_messages()
    text, spans = answer_spans(processor, messages)
    inputs = processor(text=[text], images=images or None, return_tensors="pt", add_special_tokens=False)
    plain = processor.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    image_id = image_token_id(processor)
    expanded = inputs["input_ids"][0].tolist()
    try:
        labels = supervise_spans(expanded, plain["input_ids"], plain["offset_mapping"], spans, image_id)
    except ValueError as exc:
        raise RuntimeError(f"sample {sample.id}: cannot place the labels: {exc}") from None
    inputs["labels"] = torch.tensor([labels])
    length = len(expanded)
    if max_length and length > max_length:
        if image_id in expanded[max_length:]:
            raise InputError(f"sample {sample.id}: {length} tokens, and --max_length {max_length} would cut its "
                             "image tokens; raise --max_length or use fewer/smaller images")
        if all(x == IGNORE_INDEX for x in labels[:max_length]):
            raise InputError(f"sample {sample.id}: {length} tokens; --max_length {max_length} cuts every answer "
                             "token; raise --max_length")
        log.warning("sample %s: %d tokens truncated to --max_length %d", sample.id, length, max_length)
        for key, value in list(inputs.items()):
            if hasattr(value, "shape") and value.dim() == 2 and value.shape[1] == length:
                inputs[key] = value[:, :max_length]
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
