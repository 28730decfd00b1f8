"""Captions from any local image-text-to-text checkpoint (LLaVA from train.py, Qwen2.5-VL, InternVL-hf, BLIP-2, ...).

    python caption.py --model_path ./checkpoints/llava-qwen-merged --input_dir ./data/multiview_images
    python caption.py --model_path ./models/base --adapter_path ./checkpoints/lora --input_dir ./photos
    python caption.py --backend openai --api_base http://127.0.0.1:8000/v1 --api_model my-served-model

--input_dir holds multi-view object folders (one caption per object, all views in one prompt) or images directly
(one caption per image; the record's images is [file name]). The output is VaseVQA-3D's caption file
(image_<model>.json) that compare.sh scores. test.sh is the shell launcher for this script.
"""

from __future__ import annotations

import argparse

from vlmkit.cli import run_main
from vlmkit.generation import captioning
from vlmkit.options import build_parser as options_parser
from vlmkit.options import parse_options


def build_parser() -> argparse.ArgumentParser:
    return options_parser(captioning.CaptionOptions, __doc__)


def main(argv: list[str] | None = None) -> int:
    return captioning.run(parse_options(captioning.CaptionOptions, argv, description=__doc__))


if __name__ == "__main__":
    run_main(main)
