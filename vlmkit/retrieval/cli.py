"""The subcommands of retrieval.py (the entry script only parses arguments).

Each one checks everything it can from files alone -- config keys, model folders (CLIP/SigLIP), outputs, every
image -- before it loads a model, and turns what it finds into one-line `InputError`s (exit 2).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from vlmkit.images import ImageProblem, apply_max_image_pixels, open_rgb
from vlmkit.io import InputError, atomic_write_json
from vlmkit.models import resolve_device
from vlmkit.outputs import OutputLock, check_output_file
from vlmkit.ranges import POSITIVE, Range, check_flags, refuse_resume_with_overwrite

# Every numeric flag of every subcommand, declared once (checked by `check_flags` before any work).
FLAG_RANGES: dict[str, Range] = {
    "batch_size": POSITIVE, "bootstrap": Range(0, note="0: no confidence intervals"), "seed": Range(0, 2**32 - 1),
    "part_size": POSITIVE, "nlist": Range(1, optional=True), "nprobe": POSITIVE, "ef_search": POSITIVE,
    "k": POSITIVE, "port": Range(1, 65535), "max_top_k": Range(1, 10_000), "default_top_k": POSITIVE,
    "max_request_bytes": POSITIVE, "max_upload_bytes": POSITIVE, "max_concurrency": POSITIVE,
    "max_image_pixels": Range(0, note="0 = no limit"),
    "cache_max_gb": Range(0, lo_open=True, note="the embedding cache's bound"),
}

log = logging.getLogger("retrieval")
NOISY_LOGGERS = ("faiss.loader", "sentence_transformers", "httpx")


def quiet_libraries(verbose: bool) -> None:
    """Library INFO chatter (FAISS's CPU-feature probing, sentence-transformers' loading notes) and the per-load
    progress bars of transformers ("Loading weights") only with -v; training and embedding bars stay."""
    if not verbose:
        import os

        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)


def cmd_train(args: argparse.Namespace) -> int:
    from vlmkit.retrieval.config import describe_keys, load_config

    if args.list_keys:
        print(describe_keys())
        return 0
    if not args.config:
        raise InputError("CONFIG: missing (python retrieval.py train CONFIG.yaml [--config_override key=value ...])")
    overrides = list(args.config_override or [])
    if args.skip_bad_samples:
        overrides.append("skip_bad_samples=true")
    config = load_config(args.config, overrides)
    apply_max_image_pixels(args)
    from vlmkit.retrieval.prepare import prepare

    prep = prepare(config, args.resume_from_checkpoint, args.overwrite_output_dir)  # before torch is imported
    from vlmkit.distributed import close_process_group
    from vlmkit.retrieval.train import run

    code = run(config, args.resume_from_checkpoint, args.overwrite_output_dir, prep)
    close_process_group()
    return code


def check_flag_ranges(args: argparse.Namespace) -> None:
    """`FLAG_RANGES` and the flag combinations that contradict each other, before any file is read."""
    check_flags(args, FLAG_RANGES)
    refuse_resume_with_overwrite(args)


def open_model_cache(args: argparse.Namespace):
    """The persistent embedding cache of eval / index (--cache_dir, --no_cache, --cache_max_gb, as compare.py)."""
    from vlmkit.embedding_cache import open_cache

    return open_cache(args.cache_dir, args.cache_max_gb, not args.no_cache)


def cmd_eval(args: argparse.Namespace) -> int:
    from vlmkit.retrieval.data import EvalSet, load_checked
    from vlmkit.retrieval.model import inspect_model

    apply_max_image_pixels(args)
    output = check_output_file(args.output, "--output")
    info = inspect_model(args.model, "--model")
    zero_info = inspect_model(args.zero_shot, "--zero_shot") if args.zero_shot else None
    pairs, skipped = load_checked(args.data, args.image_root, args.skip_bad_samples)
    data = EvalSet.from_pairs(pairs)
    if len(data.images) < 2:
        raise InputError(f"{args.data}: the pool holds {len(data.images)} image: retrieval over a pool of one is "
                         "trivially perfect (every metric 1.0); evaluate on at least 2 distinct images")
    import numpy as np

    from vlmkit.retrieval.evaluate import evaluate_model, format_table, report
    from vlmkit.retrieval.model import ModelCache, load_encoder

    device = resolve_device(args.device)
    dtype = np.float16 if args.embedding_dtype == "float16" else np.float32
    with OutputLock(output, "evaluation output"):
        store = open_model_cache(args)
        tuned = evaluate_model(load_encoder(info.path, device, info=info), data, args.batch_size, dtype,
                               cache=ModelCache.for_model(store, info))
        zero = None
        if zero_info is not None:
            zero = evaluate_model(load_encoder(zero_info.path, device, "--zero_shot", zero_info), data,
                                  args.batch_size, dtype, cache=ModelCache.for_model(store, zero_info))
        if store is not None:
            store.close()
        result = report(tuned, data, args.bootstrap, args.seed, zero)
        result["model"] = str(info.path.resolve())
        if zero_info is not None:
            result["zero_shot"]["model"] = str(zero_info.path.resolve())
        result["data"] = str(Path(args.data).resolve())
        result["skipped"] = [s.to_json() for s in skipped]
        result["pool"]["skipped_pairs"] = len(skipped)
        atomic_write_json(output, result)
    print(format_table(result))
    log.info("wrote %s%s", output, f" ({len(skipped)} pairs with bad images skipped)" if skipped else "")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from vlmkit.retrieval.index import (
        INDEX_TYPES,
        build_index,
        check_images,
        check_index_settings,
        check_output,
        list_images,
    )
    from vlmkit.retrieval.model import ModelCache, inspect_model, load_encoder

    apply_max_image_pixels(args)
    out = Path(args.output)
    check_output(out, args.resume, args.overwrite)
    info = inspect_model(args.model, "--model")
    if args.index_type not in INDEX_TYPES and "," not in args.index_type and not args.index_type[:1].isupper():
        raise InputError(f"--index_type {args.index_type}: choose {', '.join(INDEX_TYPES)} or a FAISS factory "
                         "string such as IVF1024,PQ64")
    paths, skipped = check_images(list_images(args.images, args.image_root), args.skip_bad_samples)
    if skipped:
        log.warning("skipping %d bad images (listed in index.json), e.g. %s", len(skipped), skipped[0].describe())
    if info.dim:  # the index settings against the collection, before a single image is embedded
        check_index_settings(args.index_type, len(paths), info.dim, args.nlist, args.nprobe)
    with OutputLock(out, "index"):
        model = load_encoder(info.path, resolve_device(args.device), info=info)
        store = open_model_cache(args)
        try:
            meta = build_index(model, info, paths, out, index_type=args.index_type, batch_size=args.batch_size,
                               part_size=args.part_size, skipped=skipped, nlist=args.nlist, nprobe=args.nprobe,
                               ef_search=args.ef_search, resume=args.resume, source=str(args.images),
                               cache=ModelCache.for_model(store, info))
        finally:
            if store is not None:
                store.close()
    print(f"indexed {meta['count']} images ({meta['factory']}, {meta['dim']}-d, {len(skipped)} skipped) -> {out}")
    return 0


def _query_image(path: str):
    try:
        return open_rgb(path)
    except ImageProblem as exc:
        raise InputError(f"--image {path}: {exc.reason}") from None


def cmd_search(args: argparse.Namespace) -> int:
    from vlmkit.retrieval.index import read_index_meta
    from vlmkit.retrieval.search import Searcher, check_text, format_results

    apply_max_image_pixels(args)
    if (args.query is None) == (args.image is None):
        raise InputError("pass either --query TEXT or --image FILE")
    if args.query is not None and not args.query.strip():
        raise InputError("--query: empty query")
    if args.query is not None:
        check_text(args.query, "--query")
    read_index_meta(args.index)
    image = _query_image(args.image) if args.image else None
    searcher = Searcher(args.index, resolve_device(args.device), args.model)
    results = searcher.search_text(args.query, args.k) if image is None else searcher.search_image(image, args.k)
    if args.json:
        print(json.dumps({"query": args.query or args.image, "results": results}, ensure_ascii=False, indent=2))
    else:
        print(format_results(results))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from vlmkit.retrieval.index import read_index_meta
    from vlmkit.retrieval.search import Searcher
    from vlmkit.retrieval.service import bind, serve

    apply_max_image_pixels(args)
    if args.default_top_k > args.max_top_k:
        raise InputError(f"--default_top_k {args.default_top_k}: must be <= --max_top_k {args.max_top_k} (the "
                         "top_k of a request that names none)")
    read_index_meta(args.index)
    sock = bind(args.host, args.port)  # a port in use: one line now, not after the model has loaded
    try:
        searcher = Searcher(args.index, resolve_device(args.device), args.model)
        log.info("serving %d images on http://%s:%d (docs: /docs)", searcher.size, args.host, args.port)
        serve(searcher, args.host, args.port, args.max_top_k, sock=sock, default_top_k=args.default_top_k,
              max_text_bytes=args.max_request_bytes, max_upload_bytes=args.max_upload_bytes,
              max_concurrency=args.max_concurrency)
    finally:
        sock.close()
    return 0
