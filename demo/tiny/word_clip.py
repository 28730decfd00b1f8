"""Tiny random CLIP / SigLIP dual encoders with WORD-LEVEL tokenizers, and a synthetic shapes data set, for
retrieval demos, benchmarks and tests.

Why word level: with the character-level tokenizer of `demo.tiny.clip` a 2-layer text tower must first learn
to compose words from letters, and a few dozen contrastive steps barely move retrieval. With one token per word
("red", "circle", "amphora") the same tower learns the colour/shape vocabulary of a caption visibly in a few dozen
steps, so a test can assert that fine-tuning beats zero-shot.

- `build_tiny_clip_words`: `CLIPModel` + `CLIPProcessor` whose `CLIPTokenizer` is CLIP's BPE with merges trained
  (locally, `tokenizers`) on `WORDS`, so every listed word is one token; other words fall back to characters.
- `build_tiny_siglip_words`: `SiglipModel` (text + vision) + `SiglipProcessor` with a word-level fast tokenizer
  (lower-cased, `</s>` appended, padded to 64 tokens like the released SigLIP text towers, which pool the LAST
  position and so need `padding="max_length"`).
- `make_shape_pairs`: N coloured-shape images (`shape_<k>.png`) with their descriptions as retrieval JSONL
  (`{"query", "positive"}`), image-disjoint train/val files.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

IMAGE_SIZE = 32
SIGLIP_TEXT_LENGTH = 64

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "green": (30, 170, 40), "blue": (30, 60, 220), "yellow": (235, 215, 30),
    "purple": (140, 40, 170), "orange": (245, 140, 20), "white": (245, 245, 245), "black": (15, 15, 15),
}
SHAPES = ("circle", "square", "triangle", "cross", "bar", "ring", "diamond", "dot")
BACKGROUNDS = {"grey": (128, 128, 128), "brown": (120, 80, 40)}
VASE_WORDS = ("vase amphora hydria krater kylix lekythos oinochoe pelike olpe skyphos red-figure black-figure "
              "athenian corinthian attic painted depicting warrior horse frieze handle neck foot body lip")
WORDS = tuple(dict.fromkeys(
    list(COLOURS) + list(SHAPES) + list(BACKGROUNDS)
    + "a an the of on in with and at left right top bottom centre small large big photo picture image".split()
    + VASE_WORDS.replace("-", " ").split()
))


def _trained_merges(words: tuple[str, ...]) -> list[tuple[str, str]]:
    """BPE merges (CLIP style, `</w>` word end) learned on the word list: each word becomes one token."""
    raw = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=10_000, min_frequency=1, end_of_word_suffix="</w>",
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    raw.train_from_iterator(list(words), trainer=trainer)
    merges = json.loads(raw.to_str())["model"]["merges"]
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]


def build_clip_word_tokenizer():
    """CLIP's tokenizer class (byte alphabet with and without `</w>`, CLIP's specials, 77-token context) plus
    merges that make every word of `WORDS` a single token."""
    from demo.tiny.clip import build_clip_tokenizer

    return build_clip_tokenizer(_trained_merges(WORDS))


def build_tiny_clip_words(out_dir: str | Path, seed: int = 0) -> Path:
    """A CLIP with 2-layer, 32-wide towers and 16-d projections (about 120k parameters), word-level tokenizer."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    out_dir = Path(out_dir)
    tokenizer = build_clip_word_tokenizer()
    config = CLIPConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 77,
                     "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                     "pad_token_id": tokenizer.pad_token_id},
        vision_config={"image_size": IMAGE_SIZE, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
                       "num_hidden_layers": 2, "num_attention_heads": 2},
        projection_dim=16,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    image_processor = CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                                         crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    model.save_pretrained(str(out_dir))
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(str(out_dir))
    return out_dir


def build_siglip_word_tokenizer():
    """A word-level fast tokenizer in SigLIP's shape: lower-cased, `</s>` (id 1) appended, `<pad>` id 0."""
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<unk>"]
    vocab = {tok: i for i, tok in enumerate(specials + list(WORDS) + list(".,;:-!?'\"()"))}
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    raw.normalizer = normalizers.Lowercase()
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   model_max_length=SIGLIP_TEXT_LENGTH)


def build_tiny_siglip_words(out_dir: str | Path, seed: int = 0) -> Path:
    """A SigLIP dual encoder (2-layer, 32-wide towers), word-level tokenizer, 32-pixel images."""
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor

    out_dir = Path(out_dir)
    tokenizer = build_siglip_word_tokenizer()
    config = SiglipConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 2, "num_attention_heads": 2,
                     "max_position_embeddings": SIGLIP_TEXT_LENGTH, "pad_token_id": tokenizer.pad_token_id,
                     "eos_token_id": tokenizer.eos_token_id, "bos_token_id": None},
        vision_config={"image_size": IMAGE_SIZE, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
                       "num_hidden_layers": 2, "num_attention_heads": 2},
    )
    torch.manual_seed(seed)
    model = SiglipModel(config).eval()
    image_processor = SiglipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    model.save_pretrained(str(out_dir))
    SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(str(out_dir))
    return out_dir


def draw_shape(shape: str, colour: tuple[int, int, int], background: tuple[int, int, int], size: int = 64,
               offset: tuple[int, int] = (0, 0)):
    """One RGB image: a filled shape on a plain background (PIL drawing, no randomness)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), background)
    d = ImageDraw.Draw(img)
    c = size // 2
    cx, cy = c + offset[0], c + offset[1]
    r = size // 3
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif shape == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif shape == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    elif shape == "cross":
        w = r // 3
        d.rectangle([cx - r, cy - w, cx + r, cy + w], fill=colour)
        d.rectangle([cx - w, cy - r, cx + w, cy + r], fill=colour)
    elif shape == "bar":
        d.rectangle([cx - r, cy - r // 4, cx + r, cy + r // 4], fill=colour)
    elif shape == "ring":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=colour, width=max(2, r // 3))
    elif shape == "diamond":
        d.polygon([(cx, cy - r), (cx - r, cy), (cx, cy + r), (cx + r, cy)], fill=colour)
    elif shape == "dot":
        q = r // 2
        d.ellipse([cx - q, cy - q, cx + q, cy + q], fill=colour)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return img


def make_shape_pairs(out_dir: str | Path, n: int = 64, val_every: int = 4, captions_per_image: int = 1) -> Path:
    """Write N shape images and their descriptions: `images/shape_<k>.png`, `train.jsonl`, `val.jsonl`.

    Image k shows shape k % 8 in colour (k // 8) % 8 on background (k // 64) % 2; every `val_every`-th image (and
    all of its captions) goes to val, so the split is image-disjoint. With `captions_per_image` > 1 each image
    gets paraphrases ("a red circle", "the red circle on a grey background", ...).
    """
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    colours, backgrounds = list(COLOURS), list(BACKGROUNDS)
    train, val = [], []
    for k in range(n):
        shape = SHAPES[k % len(SHAPES)]
        colour = colours[(k // len(SHAPES)) % len(colours)]
        background = backgrounds[(k // (len(SHAPES) * len(colours))) % len(backgrounds)]
        name = f"images/shape_{k:03d}.png"
        draw_shape(shape, COLOURS[colour], BACKGROUNDS[background]).save(out_dir / name)
        templates = [f"a {colour} {shape}", f"the {colour} {shape} on a {background} background",
                     f"a picture of a {colour} {shape}", f"{colour} {shape} in the centre"]
        rows = [{"query": templates[j % len(templates)], "positive": name} for j in range(captions_per_image)]
        (val if k % val_every == val_every - 1 else train).extend(rows)
    for name, rows in (("train.jsonl", train), ("val.jsonl", val)):
        (out_dir / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return out_dir


if __name__ == "__main__":  # python -m demo.tiny.word_clip OUT_DIR [N]: the shapes data set (retrieval.sh --tiny)
    import sys

    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python -m demo.tiny.word_clip OUT_DIR [N_IMAGES]")
    print(make_shape_pairs(sys.argv[1], int(sys.argv[2]) if len(sys.argv) == 3 else 64))
