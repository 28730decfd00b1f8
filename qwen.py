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

from vlmkit.cli import HelpFormatter, run_main
from vlmkit.generation import cli as gen
from vlmkit.generation import engines
from vlmkit.io import InputError

DEFAULT_MODEL_PATH = "./models/Qwen2.5-VL-3B-Instruct"
# Qwen2.5-VL sees an image as 28x28-pixel tokens. 56*56 is Qwen's own lower bound; the upper bound of 512 tokens per
# view keeps six views of a large render near 3k visual tokens (Qwen's processor default allows 16k per image).
MIN_PIXELS = 56 * 56
MAX_PIXELS = 512 * 28 * 28


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    gen.add_common_args(parser, default_model_path=DEFAULT_MODEL_PATH)
    gen.add_hf_args(parser)
    engines.add_engine_args(parser)
    qwen = parser.add_argument_group("Qwen2.5-VL image resolution")
    qwen.add_argument("--min_pixels", type=int, default=MIN_PIXELS, help="lower bound on pixels per view")
    qwen.add_argument("--max_pixels", type=int, default=MAX_PIXELS, help="upper bound on pixels per view")
    return parser


def make_captioner(args: argparse.Namespace):
    from qwen_vl_utils import fetch_image

    def resize(image):
        # Qwen's reference preprocessing (the model card's process_vision_info): round each view to whole 28-px
        # tokens within [min_pixels, max_pixels] with PIL. The processor gets the same bounds, so it keeps the size.
        return fetch_image({"image": image, "min_pixels": args.min_pixels, "max_pixels": args.max_pixels})

    return gen.make_hf_captioner(
        args,
        processor_kwargs={"size": {"shortest_edge": args.min_pixels, "longest_edge": args.max_pixels}},
        image_transform=resize,
        what="the Qwen2.5-VL model",
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.min_pixels < 1 or args.max_pixels < args.min_pixels:
        raise InputError(f"--min_pixels {args.min_pixels} / --max_pixels {args.max_pixels}: need 1 <= min <= max")
    return gen.run(args, make_captioner)


if __name__ == "__main__":
    run_main(main)
