r"""Multi-view captions with InternVL: lmdeploy on GPUs (tensor parallel), or transformers for -hf checkpoints.

    python internvl.py --input_dir ./data/multiview_images --output_dir ./data/captions \
                       --model_path ./models/OpenGVLab/InternVL3_5-4B            # lmdeploy, all visible GPUs
    CUDA_VISIBLE_DEVICES=0,1 python internvl.py --tp 2 --backend pytorch ...    # choose GPUs and engine
    python internvl.py --model_path ./models/InternVL3_5-1B-HF --backend hf --device cpu

--backend auto picks `hf` for checkpoints in the transformers format (config.json model_type "internvl", the
OpenGVLab/*-hf repositories) and lmdeploy's turbomind engine otherwise (the original OpenGVLab format). lmdeploy is
GPU-only and installed from requirements-gpu.txt; it is imported only when used. Same inputs, outputs, report,
resume and sharding as qwen.py.
"""

from __future__ import annotations

import argparse
import json

from vlmkit.cli import HelpFormatter, run_main
from vlmkit.generation import cli as gen
from vlmkit.generation import engines
from vlmkit.io import InputError
from vlmkit.models import require_model_dir

DEFAULT_MODEL_PATH = "./models/OpenGVLab/InternVL3_5-4B"
BACKENDS = ("auto", "turbomind", "pytorch", "hf", "openai", "vllm")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    gen.add_common_args(parser, default_model_path=DEFAULT_MODEL_PATH)
    engine = parser.add_argument_group("InternVL backend")
    engine.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="turbomind/pytorch: lmdeploy engines (GPU); hf: transformers (-hf format, any device); "
                             "openai: an OpenAI-compatible API (--api_*); vllm: vLLM in this process (GPU)")
    engine.add_argument("--tp", type=int, default=None,
                        help="lmdeploy/vLLM tensor parallelism (default: every visible GPU, see CUDA_VISIBLE_DEVICES)")
    engine.add_argument("--session_len", type=int, default=8192, help="lmdeploy context window (prompt + answer)")
    engine.add_argument("--cache_max_entry_count", type=float, default=0.8,
                        help="lmdeploy: share of free GPU memory for the KV cache")
    engine.add_argument("--max_patches", type=int, default=1,
                        help="InternVL tiles per view (448 px, 256 tokens each); more = finer detail, longer prompts")
    gen.add_hf_args(parser)
    engines.add_engine_args(parser, backend=False, tp=False)
    return parser


def resolve_backend(args: argparse.Namespace) -> str:
    if args.backend != "auto":
        return args.backend
    config_path = require_model_dir(args.model_path, "the InternVL model") / "config.json"
    try:
        model_type = json.loads(config_path.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError) as exc:
        raise InputError(f"{config_path}: cannot read ({exc})") from None
    return "hf" if model_type == "internvl" else "turbomind"


def make_captioner(args: argparse.Namespace):
    backend = resolve_backend(args)
    settings = gen.generation_settings(args)
    if backend == "hf":
        return gen.make_hf_captioner(
            args, call_kwargs={"crop_to_patches": args.max_patches > 1, "max_patches": args.max_patches},
            what="the InternVL model",
        )
    if args.adapter_path:
        raise InputError("--adapter_path works with --backend hf only; merge the adapter for lmdeploy")
    from vlmkit.generation.lmdeploy_backend import LmdeployCaptioner

    return LmdeployCaptioner(args.model_path, settings=settings, engine=backend, tp=args.tp,
                             session_len=args.session_len, cache_max_entry_count=args.cache_max_entry_count,
                             max_batch_size=args.batch_size, max_patches=args.max_patches)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.max_patches < 1:
        raise InputError(f"--max_patches {args.max_patches}: must be at least 1")
    return gen.run(args, make_captioner)


if __name__ == "__main__":
    run_main(main)
