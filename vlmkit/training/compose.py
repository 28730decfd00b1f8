"""Compose a LLaVA-style VLM from a pretrained vision model and a pretrained causal LM.

We build transformers' own `LlavaForConditionalGeneration` (vision tower → 2-layer GELU MLP projector → LM)
instead of hand-writing the architecture, so the result is a standard checkpoint: `AutoModelForImageTextToText`
and `AutoProcessor` load it, `generate()` works, and peft/DeepSpeed treat it like any HF model.

The model skeleton is created on the meta device and the already-loaded vision tower and LM are put into it,
so composing a 7B LM costs one load of its weights and no random initialisation of them. Only the projector
is new (PyTorch's default `nn.Linear` initialisation, seeded).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from vlmkit.io import InputError, atomic_write_json, read_json
from vlmkit.models import require_model_dir
from vlmkit.training.chat import IMAGE_TOKEN, end_of_turn_ids, lm_chat_template

log = logging.getLogger(__name__)

COMPOSE_INFO = "vlmkit_compose.json"


def _vision_config(vision_dir: Path):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(vision_dir)
    # A full CLIP/SigLIP folder (dual encoder) has a vision_config; a vision-only folder is the vision config.
    return getattr(config, "vision_config", None) or config


def load_vision_tower(vision_dir: Path):
    """The vision encoder alone (e.g. `CLIPVisionModel`), from a full CLIP/SigLIP folder or a vision-only one.

    This is the class LLaVA instantiates for `config.vision_config`, so its weights drop into the LLaVA model
    unchanged; a dual encoder's text tower is simply not loaded.
    """
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    vision_config = _vision_config(vision_dir)
    try:
        cls = MODEL_MAPPING[type(vision_config)]
    except KeyError:
        raise InputError(f"{vision_dir}: {type(vision_config).__name__} is not a known vision model") from None
    level = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the dual encoder's text weights are "unexpected" here, on purpose
    try:
        return cls.from_pretrained(vision_dir, dtype="auto")
    finally:
        transformers.logging.set_verbosity(level)


def count_extra_vision_tokens(vision_tower, vision_config) -> int:
    """How many tokens the tower emits besides one per patch (CLIP: 1 CLS token; SigLIP: 0).

    Measured with one forward pass instead of a per-model table, so any ViT-style tower works; a tower built on
    the meta device (no weights) gives the shapes for free.
    """
    import torch

    size = vision_config.image_size
    size = size if isinstance(size, (list, tuple)) else (size, size)
    patch = vision_config.patch_size
    patch = patch if isinstance(patch, (list, tuple)) else (patch, patch)
    param = next(vision_tower.parameters())
    with torch.no_grad():
        pixels = torch.zeros(1, vision_config.num_channels, size[0], size[1], dtype=param.dtype, device=param.device)
        hidden = vision_tower(pixels, output_hidden_states=True).hidden_states[-1]
    return hidden.shape[1] - (size[0] // patch[0]) * (size[1] // patch[1])


def build_llava_processor(vision_dir: str | os.PathLike, lm_dir: str | os.PathLike):
    """The composed model's processor, built from the two folders' configs and tokenizer alone (no weights).

    Returns (processor, details). The LM's tokenizer gets the `<image>` token, a pad token (its EOS when it has
    none) and the LM's own chat template made image-aware (`vlmkit.training.chat`). The number of tokens the vision
    tower adds besides its patches is measured on a weightless (meta-device) copy, so the preflight can tokenise
    every sample before any model is loaded, with exactly the processor `compose_llava` saves.
    """
    import torch
    from transformers import AutoImageProcessor, AutoTokenizer, LlavaProcessor
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    vision_dir = require_model_dir(vision_dir, "vision model (CLIP/SigLIP)", "--vision_model")
    lm_dir = require_model_dir(lm_dir, "language model", "--lm_model")
    vision_config = _vision_config(vision_dir)
    try:
        cls = MODEL_MAPPING[type(vision_config)]
    except KeyError:
        raise InputError(f"{vision_dir}: {type(vision_config).__name__} is not a known vision model") from None
    with torch.device("meta"):
        extra_tokens = count_extra_vision_tokens(cls(vision_config), vision_config)
    strategy = "default" if extra_tokens == 1 else "full"  # "default" drops CLIP's CLS token, as LLaVA does

    tokenizer = AutoTokenizer.from_pretrained(lm_dir)
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_tokens([IMAGE_TOKEN], special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # batched generation; training pads itself
    template, source = lm_chat_template(tokenizer)
    tokenizer.chat_template = template
    processor = LlavaProcessor(
        image_processor=AutoImageProcessor.from_pretrained(vision_dir),
        tokenizer=tokenizer,
        patch_size=vision_config.patch_size,
        vision_feature_select_strategy=strategy,
        num_additional_image_tokens=extra_tokens,
        image_token=IMAGE_TOKEN,
        chat_template=template,
    )
    size = vision_config.image_size
    num_patches = (size // vision_config.patch_size) ** 2 if isinstance(size, int) else None
    details = {"vision_config": vision_config, "strategy": strategy, "extra_tokens": extra_tokens,
               "image_seq_length": (num_patches or 0) + (extra_tokens if strategy == "full" else 0),
               "chat_template_source": source}
    return processor, details


def llava_config(vision_config, text_config, image_token_index: int, image_seq_length: int, strategy: str,
                 vision_feature_layer: int = -2):
    """The composed model's `LlavaConfig` (also used by `vlmkit.model_configs` for the real-size presets)."""
    from transformers import LlavaConfig

    return LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_index=image_token_index,
        image_seq_length=image_seq_length,
        vision_feature_layer=vision_feature_layer,
        vision_feature_select_strategy=strategy,
        projector_hidden_act="gelu",
        tie_word_embeddings=bool(getattr(text_config, "tie_word_embeddings", False)),
    )


def compose_llava(vision_dir: str | os.PathLike, lm_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                  vision_feature_layer: int = -2, seed: int = 0) -> Path:
    """Build the LLaVA checkpoint in `out_dir` (written to a temp folder and renamed: never half-written).

    All weights are cast to the LM's dtype. The processor is `build_llava_processor`'s (the LM's own chat
    template, image-aware); the embedding matrix grows only if the vocabulary has no spare row for `<image>`
    (Qwen's has). The generation config stops at the template's end-of-turn token and at EOS.
    """
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, LlavaForConditionalGeneration
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    processor, details = build_llava_processor(vision_dir, lm_dir)
    vision_dir, lm_dir, out_dir = Path(vision_dir), Path(lm_dir), Path(out_dir)
    tokenizer = processor.tokenizer
    vision_config, strategy = details["vision_config"], details["strategy"]
    vision_tower = load_vision_tower(vision_dir).eval()
    lm = AutoModelForCausalLM.from_pretrained(lm_dir, dtype="auto").eval()
    if not hasattr(lm, "model") or not hasattr(lm, "lm_head"):
        raise InputError(f"{lm_dir}: {type(lm).__name__} has no .model/.lm_head; expected a decoder-only LM "
                         "such as Qwen2.5, Qwen3, Llama, Gemma or Phi-3")
    dtype = lm.dtype
    vision_tower.to(dtype)
    if len(tokenizer) > lm.get_input_embeddings().weight.shape[0]:
        lm.resize_token_embeddings(len(tokenizer))

    config = llava_config(vision_config, lm.config, tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
                          details["image_seq_length"], strategy, vision_feature_layer)
    config.dtype = dtype
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    model.model.vision_tower = vision_tower
    model.model.language_model = lm.model
    model.lm_head = lm.lm_head
    torch.manual_seed(seed)
    model.model.multi_modal_projector = LlavaMultiModalProjector(config).to(dtype)
    model.tie_weights()
    still_meta = [name for name, p in model.named_parameters() if p.device.type == "meta"]
    if still_meta:  # a newer transformers added a module we do not fill: fail rather than save garbage
        raise RuntimeError(f"composed LLaVA model has uninitialised parameters: {still_meta[:5]}")

    generation = GenerationConfig.from_model_config(lm.config)
    if (lm_dir / "generation_config.json").is_file():
        generation = GenerationConfig.from_pretrained(lm_dir)
    generation.eos_token_id = end_of_turn_ids(tokenizer, processor.chat_template)
    generation.pad_token_id = tokenizer.pad_token_id
    model.generation_config = generation

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        atomic_write_json(tmp / COMPOSE_INFO, {
            "vision_model": str(vision_dir.resolve()),
            "lm_model": str(lm_dir.resolve()),
            "vision_feature_layer": vision_feature_layer,
            "vision_feature_select_strategy": strategy,
            "image_token": IMAGE_TOKEN,
            "chat_template": details["chat_template_source"],
            "projector_seed": seed,
            "dtype": str(dtype).replace("torch.", ""),
        })
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("composed LLaVA (%s + %s, %s, features %s/%s, chat template: %s) -> %s", vision_dir.name, lm_dir.name,
             str(dtype).replace("torch.", ""), vision_feature_layer, strategy, details["chat_template_source"],
             out_dir)
    return out_dir


def compose_info(base_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The sources a composed base was built from (None for a checkpoint we did not compose)."""
    path = Path(base_dir) / COMPOSE_INFO
    return read_json(path) if path.is_file() else None


def ensure_composed_base(vision_dir: str, lm_dir: str, base_dir: Path, **kwargs: Any) -> Path:
    """Compose into `base_dir` unless it already holds a base composed from the same two folders (resume)."""
    info = compose_info(base_dir)
    if info is not None:
        same = (info.get("vision_model") == str(Path(vision_dir).resolve())
                and info.get("lm_model") == str(Path(lm_dir).resolve()))
        if not same:
            raise InputError(f"{base_dir}: holds a base composed from {info.get('vision_model')} + "
                             f"{info.get('lm_model')}, not from the folders given; use another --output_dir")
        log.info("reusing the composed base in %s", base_dir)
        return base_dir
    return compose_llava(vision_dir, lm_dir, base_dir, **kwargs)
