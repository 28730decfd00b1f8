"""Text-image retrieval with CLIP/SigLIP: fine-tune (LoRA + InfoNCE), evaluate, index with FAISS, search, serve.

    python retrieval.py train configs/retrieval/clip_text_to_image.yaml --config_override batch_size=64 epochs=5
    python retrieval.py eval --model outputs/clip_t2i/merged --data data/val.jsonl --image_root data \\
        --zero_shot models/openai/clip-vit-base-patch32 --output results/retrieval_eval.json
    python retrieval.py index --model outputs/clip_t2i/merged --images data/images --output indexes/vases
    python retrieval.py search --index indexes/vases --query "red-figure hydria" -k 10
    python retrieval.py serve --index indexes/vases --host 127.0.0.1 --port 8000
    sh retrieval.sh                      # train on several GPUs (torchrun); sh retrieval.sh --tiny: a CPU demo

Data: JSONL lines {"query": text, "positive": image path[, "negatives": [paths]]}, paths relative to --image_root
(default: the JSONL's folder); `python -m dataprocess.convert ... --retrieval_output pairs.jsonl` writes them.
Manual: docs/retrieval.md.
"""

from __future__ import annotations

import argparse

from vlmkit.cli import run_main, setup_logging
from vlmkit.options import build_subcommand_parser, parse_subcommand

# The subcommands' options live with their bodies (vlmkit/retrieval/subcommands.py); importing them is cheap (no torch).
from vlmkit.retrieval.subcommands import COMMANDS, run, verbose

METAVAR = "{" + ",".join(COMMANDS) + "}"


def build_parser() -> argparse.ArgumentParser:
    """The parser `main` uses (for tests that read its defaults)."""
    return build_subcommand_parser(COMMANDS, description=__doc__, prog="retrieval.py", metavar=METAVAR)


def main(argv: list[str] | None = None) -> int:
    _, options = parse_subcommand(COMMANDS, argv, description=__doc__, prog="retrieval.py", metavar=METAVAR)
    setup_logging(verbose(options))
    return run(options)


if __name__ == "__main__":
    run_main(main)
