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

from vlmkit.cli import HelpFormatter, run_main, setup_logging
from vlmkit.embedding_cache import add_cache_args
from vlmkit.images import add_max_image_pixels_arg


def _common(p: argparse.ArgumentParser, device: bool = True) -> None:
    if device:
        p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    add_max_image_pixels_arg(p)
    p.add_argument("-v", "--verbose", action="store_true")


def _data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image_root", help="folder the image paths are relative to (default: the JSONL's folder)")
    p.add_argument("--skip_bad_samples", action="store_true",
                   help="skip (count and list) items with a missing/corrupt image instead of stopping")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="retrieval.py", description=__doc__, formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="{train,eval,index,search,serve}")

    t = sub.add_parser("train", formatter_class=HelpFormatter, help="fine-tune CLIP/SigLIP on (text, image) pairs",
                       description="Fine-tune with the YAML config's settings (defaults < YAML < --config_override).")
    t.add_argument("config", nargs="?", help="YAML config (configs/retrieval/clip_text_to_image.yaml)")
    t.add_argument("--config_override", nargs="+", action="extend", metavar="KEY=VALUE",
                   help="override config keys (repeatable; later ones win)")
    t.add_argument("--resume_from_checkpoint", help="'last' or a checkpoints/checkpoint-N folder")
    t.add_argument("--overwrite_output_dir", action="store_true", help="start afresh over a previous run")
    t.add_argument("--skip_bad_samples", action="store_true", help="same as --config_override skip_bad_samples=true")
    t.add_argument("--list_keys", action="store_true", help="print every config key with its default and exit")
    add_max_image_pixels_arg(t)
    t.add_argument("-v", "--verbose", action="store_true")
    t.add_argument("--local_rank", "--local-rank", type=int, default=-1, help=argparse.SUPPRESS)  # set by launchers

    e = sub.add_parser("eval", formatter_class=HelpFormatter, help="Recall@K / MRR / NDCG@10 in both directions",
                       description="Evaluate text->image and image->text retrieval on a pairs JSONL.")
    e.add_argument("--model", required=True, help="CLIP/SigLIP folder: merged/, a training output_dir, or a base")
    e.add_argument("--data", required=True, help="pairs JSONL ({\"query\", \"positive\"} per line)")
    _data(e)
    e.add_argument("--zero_shot", metavar="BASE_DIR", help="also evaluate this (base) model: side-by-side table")
    e.add_argument("--output", required=True, help="JSON file for the metrics")
    e.add_argument("--batch_size", type=int, default=64)
    e.add_argument("--embedding_dtype", choices=["float32", "float16"], default="float32",
                   help="storage of the embedding matrices (float16 halves memory; scores are float32)")
    e.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for 95%% CIs (0: none)")
    e.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    add_cache_args(e)
    _common(e)

    i = sub.add_parser("index", formatter_class=HelpFormatter, help="embed images into a FAISS index",
                       description="Embed a folder of images (or the images of a JSONL) into a FAISS index.")
    i.add_argument("--model", required=True, help="CLIP/SigLIP folder (e.g. a training run's merged/)")
    i.add_argument("--images", required=True, help="folder of images (recursive) or a JSONL listing them")
    _data(i)
    i.add_argument("--output", required=True, help="index folder to write")
    i.add_argument("--index_type", default="flat", help="flat (exact), ivf, hnsw, or a FAISS factory string")
    i.add_argument("--nlist", type=int, help="ivf: number of cells (default: about 4 sqrt(N))")
    i.add_argument("--nprobe", type=int, default=16, help="ivf: cells searched per query")
    i.add_argument("--ef_search", type=int, default=64, help="hnsw: efSearch")
    i.add_argument("--batch_size", type=int, default=64)
    i.add_argument("--part_size", type=int, default=4096, help="images per saved part (the unit of --resume)")
    i.add_argument("--resume", action="store_true", help="continue an interrupted run from its saved parts")
    i.add_argument("--overwrite", action="store_true", help="replace an existing index")
    add_cache_args(i)
    _common(i)

    s = sub.add_parser("search", formatter_class=HelpFormatter, help="query an index by text or image",
                       description="Print the best-matching images (rank, cosine score, path).")
    s.add_argument("--index", required=True, help="index folder (retrieval.py index)")
    s.add_argument("--query", help="text query")
    s.add_argument("--image", help="image query (a file)")
    s.add_argument("-k", type=int, default=10, help="number of results")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.add_argument("--model", help="the index's model folder, if it moved (default: from index.json)")
    _common(s)

    v = sub.add_parser("serve", formatter_class=HelpFormatter, help="HTTP search service (FastAPI + uvicorn)",
                       description="POST /search/text, POST /search/image, GET /health (docs at /docs).")
    v.add_argument("--index", required=True, help="index folder (retrieval.py index)")
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    v.add_argument("--port", type=int, default=8000)
    v.add_argument("--max_top_k", type=int, default=100, help="largest top_k a request may ask for")
    v.add_argument("--default_top_k", type=int, default=10, help="top_k of a request that names none")
    v.add_argument("--max_request_bytes", type=int, default=64 * 1024, help="largest /search/text body (413 above)")
    v.add_argument("--max_upload_bytes", type=int, default=20 * 1024 * 1024, help="largest /search/image upload")
    v.add_argument("--max_concurrency", type=int, default=8,
                   help="connections served at once; more get 503 (uvicorn's limit_concurrency)")
    v.add_argument("--model", help="the index's model folder, if it moved (default: from index.json)")
    _common(v)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    from vlmkit.retrieval import cli

    cli.quiet_libraries(args.verbose)
    cli.check_flag_ranges(args)
    commands = {"train": cli.cmd_train, "eval": cli.cmd_eval, "index": cli.cmd_index, "search": cli.cmd_search,
                "serve": cli.cmd_serve}
    return commands[args.command](args)


if __name__ == "__main__":
    run_main(main)
