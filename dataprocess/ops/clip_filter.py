"""Data-Juicer 1.6.1's image_text_similarity_filter, with a CLIP model from a local folder.

Mirrors `data_juicer/ops/filter/image_text_similarity_filter.py`: the text is split on the eoc token
(`<|__dj__eoc|>`); a chunk with no image token (`<__dj__image>`) or no characters is skipped; otherwise its text with
the special tokens removed (each removed, then the text stripped, as `remove_special_tokens` does) is scored
against the next `count` images of the sample (each optionally mirrored / flipped) by CLIP:
`logits_per_text / 100` (the cosine similarity, CLIP's logit scale being 100), reduced over the chunk's images with
`reduce_mode` (avg, max, min). Stat `image_text_similarity`: one value per scored chunk; kept when min_score <=
value <= max_score for any (or all) chunks; a sample without images or without scored chunks is kept. The text is
truncated at the model's `max_position_embeddings` and images are loaded as Data-Juicer does (RGB, EXIF orientation
applied). `hf_clip` must be a local folder: weights are never downloaded. The model is loaded once per process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dataprocess.ops.base import FilterOp, ImageProblem, Sample, check_bool, check_number
from dataprocess.ops.dedup import _load_rgb
from vlmkit.io import InputError, quote

DJ_IMAGE_TOKEN = "<__dj__image>"
DJ_EOC_TOKEN = "<|__dj__eoc|>"
_SPECIAL = (DJ_IMAGE_TOKEN, "<__dj__audio>", "<__dj__video>", DJ_EOC_TOKEN)  # get_special_tokens() order
_MODELS: dict[str, Any] = {}


def remove_special_tokens(text: str) -> str:
    for token in _SPECIAL:
        text = text.replace(token, "").strip()
    return text


def _model(path: str):
    if path not in _MODELS:
        import torch
        from transformers import CLIPModel, CLIPProcessor

        device = "cuda" if torch.cuda.is_available() else "cpu"
        _MODELS[path] = (CLIPModel.from_pretrained(path).to(device).eval(), CLIPProcessor.from_pretrained(path))
    return _MODELS[path]


class ImageTextSimilarityFilter(FilterOp):
    name = "image_text_similarity_filter"
    stat_keys = ("image_text_similarity",)
    defaults = {"hf_clip": None, "trust_remote_code": False, "min_score": 0.1, "max_score": 1.0,
                "horizontal_flip": False, "vertical_flip": False, "any_or_all": "any", "reduce_mode": "avg"}
    uses_images = True

    def setup(self, params):
        clip = params["hf_clip"]
        if not isinstance(clip, str) or not (Path(clip) / "config.json").is_file():
            raise InputError(f"{self.where}: hf_clip must be a local CLIP model folder (weights are never "
                             f"downloaded), got {quote(clip)}")
        self.hf_clip = clip
        self.min_score = check_number(params["min_score"], "min_score", self.where)
        self.max_score = check_number(params["max_score"], "max_score", self.where)
        for key in ("horizontal_flip", "vertical_flip", "trust_remote_code"):
            setattr(self, key, check_bool(params[key], key, self.where))
        if params["reduce_mode"] not in ("avg", "max", "min"):
            raise InputError(f"{self.where}: reduce_mode must be avg, max or min, got {quote(params['reduce_mode'])}")
        if params["any_or_all"] not in ("any", "all"):
            raise InputError(f"{self.where}: any_or_all must be 'any' or 'all', got {quote(params['any_or_all'])}")
        self.reduce_mode, self.any = params["reduce_mode"], params["any_or_all"] == "any"

    def chunk_scores(self, text: str, images: list) -> list[float]:
        import torch
        from PIL import ImageOps

        model, processor = _model(self.hf_clip)
        out, offset = [], 0
        for chunk in text.split(DJ_EOC_TOKEN):
            count = chunk.count(DJ_IMAGE_TOKEN)
            if count and chunk:
                pictures = []
                for image in images[offset:offset + count]:
                    image = ImageOps.mirror(image) if self.horizontal_flip else image
                    pictures.append(ImageOps.flip(image) if self.vertical_flip else image)
                inputs = processor(text=remove_special_tokens(chunk), images=pictures, return_tensors="pt",
                                   truncation=True, max_length=model.config.text_config.max_position_embeddings,
                                   padding=True).to(model.device)
                with torch.no_grad():
                    logits = model(**inputs).logits_per_text / 100.0
                value = {"avg": logits.mean, "max": logits.max, "min": logits.min}[self.reduce_mode]()
                out.append(float(value))
            offset += count
        return out

    def compute(self, sample: Sample, stats: dict[str, Any], image_cache: dict) -> None:
        if "image_text_similarity" in stats:
            return
        if not sample.images:
            stats["image_text_similarity"] = []
            return
        images = [_load_rgb(p) for p in sample.images]  # raises ImageProblem for a bad image
        stats["image_text_similarity"] = self.chunk_scores(sample.text, images)

    def keep(self, stats):
        oks = [self.in_range(v, self.min_score, self.max_score) for v in stats["image_text_similarity"]]
        if not oks:
            return True
        return any(oks) if self.any else all(oks)

    def reason(self, stats):
        which = "no chunk" if self.any else "not every chunk"
        values = ", ".join(f"{v:.4f}" for v in stats["image_text_similarity"])
        return f"{which} of [{values}] has image_text_similarity {self.kept_range(self.min_score, self.max_score)}"


__all__ = ["ImageProblem", "ImageTextSimilarityFilter"]
