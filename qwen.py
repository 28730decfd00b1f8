r"""Multi-view captions with Qwen2.5-VL (transformers), in the format compare.sh reads.

    python qwen.py --input_dir ./data/multiview_images --output_dir ./data/captions \
                   --model_path ./models/Qwen2.5-VL-3B-Instruct
    python qwen.py --single_model ./data/multiview_images/<UUID>_1_ac001001_textured_4k.glb_shaded

All available views of an object go into one user message (front, back, left, right, top, bottom by default), followed
by the caption prompt; objects are captioned in true batches (--batch_size). Output: <output_dir>/image_<model>.json
and <model>_caption_generation_report.json. --backend openai sends the same requests to an OpenAI-compatible API
(--api_base, --api_model, --concurrency), --backend vllm runs vLLM in this process (GPU). Multi-GPU: one process
per GPU with --num_shards/--shard_index, then --merge (see README).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import ClassVar

from vlmkit.cli import run_main
from vlmkit.generation import captioning
from vlmkit.generation.model_setup import ModelOptions, make_hf_captioner
from vlmkit.generation.runner import Captioner
from vlmkit.io import InputError
from vlmkit.options import Options, opt, parse_options
from vlmkit.options import build_parser as options_parser

DEFAULT_MODEL_PATH = "./models/Qwen2.5-VL-3B-Instruct"
# Qwen2.5-VL sees an image as 28x28-pixel tokens. 56*56 is Qwen's own lower bound; the upper bound of 512 tokens per
# view keeps six views of a large render near 3k visual tokens (Qwen's processor default allows 16k per image).
MIN_PIXELS = 56 * 56
MAX_PIXELS = 512 * 28 * 28


@dataclass
class QwenResolution(Options):
    TITLE: ClassVar[str | None] = "Qwen2.5-VL image resolution"
    min_pixels: int = opt(MIN_PIXELS, "lower bound on pixels per view")
    max_pixels: int = opt(MAX_PIXELS, "upper bound on pixels per view")

    def check(self) -> None:
        if self.min_pixels < 1 or self.max_pixels < self.min_pixels:
            raise InputError(f"--min_pixels {self.min_pixels} / --max_pixels {self.max_pixels}: need 1 <= min <= max")


@dataclass
class QwenOptions(captioning.CaptionOptions):
    model: ModelOptions = opt(factory=lambda: ModelOptions(model_path=DEFAULT_MODEL_PATH))
    resolution: QwenResolution = opt(factory=QwenResolution)


def build_parser() -> argparse.ArgumentParser:
    return options_parser(QwenOptions, __doc__)


def make_captioner(options: QwenOptions) -> Captioner:
    from qwen_vl_utils import fetch_image

    low, high = options.resolution.min_pixels, options.resolution.max_pixels

    def resize(image):
        # Qwen's reference preprocessing (the model card's process_vision_info): round each view to whole 28-px
        # tokens within [min_pixels, max_pixels] with PIL. The processor gets the same bounds, so it keeps the size.
        return fetch_image({"image": image, "min_pixels": low, "max_pixels": high})

    return make_hf_captioner(options, processor_kwargs={"size": {"shortest_edge": low, "longest_edge": high}},
                             image_transform=resize, what="the Qwen2.5-VL model")


def main(argv: list[str] | None = None) -> int:
    return captioning.run(parse_options(QwenOptions, argv, description=__doc__), make_captioner)


if __name__ == "__main__":
    run_main(main)
