"""The subcommands of retrieval.py: each one's options (one field per flag, its range declared once in the field)
and its body; the entry script only parses the command line and calls `run(options)`.

Each body checks everything it can from files alone -- config keys, model folders (CLIP/SigLIP), outputs, every
image -- before it loads a model, and turns what it finds into one-line `InputError`s (exit 2).
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from vlmkit.embedding_cache import CacheOptions
from vlmkit.images import ImageProblem, max_image_pixels_option, open_rgb, set_max_image_pixels
from vlmkit.io import InputError, atomic_write_json
from vlmkit.models import resolve_device
from vlmkit.options import Options, opt
from vlmkit.outputs import OutputLock, check_output_file
from vlmkit.ranges import POSITIVE, Range

log = logging.getLogger("retrieval")
NOISY_LOGGERS = ("faiss.loader", "sentence_transformers", "httpx")


@dataclass
class CommonOptions(Options):
    """--device, --max_image_pixels and -v: the last flags of eval, index, search and serve."""

    device: str = opt("auto", "auto (cuda if available), cpu, cuda, cuda:1, ...")
    max_image_pixels: int = max_image_pixels_option()
    verbose: bool = opt(False, flags=("-v",))


@dataclass
class PairsOptions(Options):
    """Where a JSONL's image paths are found, and what a bad image does (eval, index)."""

    image_root: str | None = opt(None, "folder the image paths are relative to (default: the JSONL's folder)")
    skip_bad_samples: bool = opt(False, "skip (count and list) items with a missing/corrupt image instead of stopping")


@dataclass
class TrainOptions(Options):
    """Fine-tune with the YAML config's settings (defaults < YAML < --config_override)."""

    config: str | None = opt(None, "YAML config (configs/retrieval/clip_text_to_image.yaml)", positional=True,
                             nargs="?")
    config_override: list[str] | None = opt(None, "override config keys (repeatable; later ones win)", nargs="+",
                                            action="extend", metavar="KEY=VALUE")
    resume_from_checkpoint: str | None = opt(None, "'last' or a checkpoints/checkpoint-N folder")
    overwrite_output_dir: bool = opt(False, "start afresh over a previous run")
    skip_bad_samples: bool = opt(False, "same as --config_override skip_bad_samples=true")
    list_keys: bool = opt(False, "print every config key with its default and exit")
    max_image_pixels: int = max_image_pixels_option()
    verbose: bool = opt(False, flags=("-v",))
    local_rank: int = opt(-1, argparse.SUPPRESS, flags=("--local-rank",))  # set by launchers; the rank is env's


@dataclass
class EvalOptions(Options):
    """Evaluate text->image and image->text retrieval on a pairs JSONL."""

    model: str = opt(None, "CLIP/SigLIP folder: merged/, a training output_dir, or a base", required=True)
    data: str = opt(None, "pairs JSONL ({\"query\", \"positive\"} per line)", required=True)
    pairs: PairsOptions = field(default_factory=PairsOptions)
    zero_shot: str | None = opt(None, "also evaluate this (base) model: side-by-side table", metavar="BASE_DIR")
    output: str = opt(None, "JSON file for the metrics", required=True)
    batch_size: int = opt(64, range=POSITIVE)
    embedding_dtype: str = opt("float32", "storage of the embedding matrices (float16 halves memory; scores are "
                                          "float32)", choices=["float32", "float16"])
    bootstrap: int = opt(1000, "bootstrap resamples for 95% CIs (0: none)",
                         range=Range(0, note="0: no confidence intervals"))
    seed: int = opt(0, "bootstrap seed", range=Range(0, 2**32 - 1))
    cache: CacheOptions = field(default_factory=CacheOptions)
    common: CommonOptions = field(default_factory=CommonOptions)


@dataclass
class IndexOptions(Options):
    """Embed a folder of images (or the images of a JSONL) into a FAISS index."""

    model: str = opt(None, "CLIP/SigLIP folder (e.g. a training run's merged/)", required=True)
    images: str = opt(None, "folder of images (recursive) or a JSONL listing them", required=True)
    pairs: PairsOptions = field(default_factory=PairsOptions)
    output: str = opt(None, "index folder to write", required=True)
    index_type: str = opt("flat", "flat (exact), ivf, hnsw, or a FAISS factory string")
    nlist: int | None = opt(None, "ivf: number of cells (default: about 4 sqrt(N))", range=Range(1, optional=True))
    nprobe: int = opt(16, "ivf: cells searched per query", range=POSITIVE)
    ef_search: int = opt(64, "hnsw: efSearch", range=POSITIVE)
    batch_size: int = opt(64, range=POSITIVE)
    part_size: int = opt(4096, "images per saved part (the unit of --resume)", range=POSITIVE)
    resume: bool = opt(False, "continue an interrupted run from its saved parts")
    overwrite: bool = opt(False, "replace an existing index")
    cache: CacheOptions = field(default_factory=CacheOptions)
    common: CommonOptions = field(default_factory=CommonOptions)

    def check(self) -> None:
        if self.resume and self.overwrite:
            raise InputError("--resume and --overwrite exclude each other: --resume continues the existing output, "
                             "--overwrite replaces it")


@dataclass
class SearchOptions(Options):
    """Print the best-matching images (rank, cosine score, path)."""

    index: str = opt(None, "index folder (retrieval.py index)", required=True)
    query: str | None = opt(None, "text query")
    image: str | None = opt(None, "image query (a file)")
    k: int = opt(10, "number of results", range=POSITIVE)
    json: bool = opt(False, "print JSON instead of a table")
    model: str | None = opt(None, "the index's model folder, if it moved (default: from index.json)")
    common: CommonOptions = field(default_factory=CommonOptions)

    def check(self) -> None:
        if (self.query is None) == (self.image is None):
            raise InputError("pass either --query TEXT or --image FILE")
        if self.query is not None and not self.query.strip():
            raise InputError("--query: empty query")


@dataclass
class ServeOptions(Options):
    """POST /search/text, POST /search/image, GET /health (docs at /docs)."""

    index: str = opt(None, "index folder (retrieval.py index)", required=True)
    host: str = opt("127.0.0.1", "address to listen on (0.0.0.0: every interface)")
    port: int = opt(8000, range=Range(1, 65535))
    max_top_k: int = opt(100, "largest top_k a request may ask for", range=Range(1, 10_000))
    default_top_k: int = opt(10, "top_k of a request that names none", range=POSITIVE)
    max_request_bytes: int = opt(64 * 1024, "largest /search/text body (413 above)", range=POSITIVE)
    max_upload_bytes: int = opt(20 * 1024 * 1024, "largest /search/image upload", range=POSITIVE)
    max_concurrency: int = opt(8, "connections served at once; more get 503 (uvicorn's limit_concurrency)",
                               range=POSITIVE)
    model: str | None = opt(None, "the index's model folder, if it moved (default: from index.json)")
    common: CommonOptions = field(default_factory=CommonOptions)

    def check(self) -> None:
        if self.default_top_k > self.max_top_k:
            raise InputError(f"--default_top_k {self.default_top_k}: must be <= --max_top_k {self.max_top_k} (the "
                             "top_k of a request that names none)")


RetrievalOptions = TrainOptions | EvalOptions | IndexOptions | SearchOptions | ServeOptions

# name -> (options, one-line help); retrieval.py's subcommands in the order its --help lists them
COMMANDS: dict[str, tuple[type, str]] = {
    "train": (TrainOptions, "fine-tune CLIP/SigLIP on (text, image) pairs"),
    "eval": (EvalOptions, "Recall@K / MRR / NDCG@10 in both directions"),
    "index": (IndexOptions, "embed images into a FAISS index"),
    "search": (SearchOptions, "query an index by text or image"),
    "serve": (ServeOptions, "HTTP search service (FastAPI + uvicorn)"),
}


def verbose(options: RetrievalOptions) -> bool:
    return options.verbose if isinstance(options, TrainOptions) else options.common.verbose


def run(options: RetrievalOptions) -> int:
    """Run the subcommand `options` belongs to."""
    quiet_libraries(verbose(options))
    body = {TrainOptions: cmd_train, EvalOptions: cmd_eval, IndexOptions: cmd_index, SearchOptions: cmd_search,
            ServeOptions: cmd_serve}[type(options)]
    return body(options)  # type: ignore[operator]


def quiet_libraries(verbose: bool) -> None:
    """Library INFO chatter (FAISS's CPU-feature probing, sentence-transformers' loading notes) and the per-load
    progress bars of transformers ("Loading weights") only with -v; training and embedding bars stay."""
    if not verbose:
        import os

        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)


def cmd_train(options: TrainOptions) -> int:
    from vlmkit.retrieval.config import describe_keys, load_config

    if options.list_keys:
        print(describe_keys())
        return 0
    if not options.config:
        raise InputError("CONFIG: missing (python retrieval.py train CONFIG.yaml [--config_override key=value ...])")
    overrides = list(options.config_override or [])
    if options.skip_bad_samples:
        overrides.append("skip_bad_samples=true")
    config = load_config(options.config, overrides)
    set_max_image_pixels(options.max_image_pixels)
    from vlmkit.retrieval.prepare import prepare

    prep = prepare(config, options.resume_from_checkpoint, options.overwrite_output_dir)  # before torch is imported
    from vlmkit.distributed import close_process_group
    from vlmkit.retrieval.train import run as train

    code = train(config, options.resume_from_checkpoint, options.overwrite_output_dir, prep)
    close_process_group()
    return code


def cmd_eval(options: EvalOptions) -> int:
    from vlmkit.retrieval.data import EvalSet, load_checked
    from vlmkit.retrieval.model import inspect_model

    set_max_image_pixels(options.common.max_image_pixels)
    output = check_output_file(options.output, "--output")
    info = inspect_model(options.model, "--model")
    zero_info = inspect_model(options.zero_shot, "--zero_shot") if options.zero_shot else None
    pairs, skipped = load_checked(options.data, options.pairs.image_root, options.pairs.skip_bad_samples)
    data = EvalSet.from_pairs(pairs)
    if len(data.images) < 2:
        raise InputError(f"{options.data}: the pool holds {len(data.images)} image: retrieval over a pool of one is "
                         "trivially perfect (every metric 1.0); evaluate on at least 2 distinct images")
    import numpy as np

    from vlmkit.retrieval.evaluate import evaluate_model, format_table, report
    from vlmkit.retrieval.model import ModelCache, load_encoder

    device = resolve_device(options.common.device)
    dtype = np.float16 if options.embedding_dtype == "float16" else np.float32
    with OutputLock(output, "evaluation output"):
        store = options.cache.open()
        tuned = evaluate_model(load_encoder(info.path, device, info=info), data, options.batch_size, dtype,
                               cache=ModelCache.for_model(store, info))
        zero = None
        if zero_info is not None:
            zero = evaluate_model(load_encoder(zero_info.path, device, "--zero_shot", zero_info), data,
                                  options.batch_size, dtype, cache=ModelCache.for_model(store, zero_info))
        if store is not None:
            store.close()
        result = report(tuned, data, options.bootstrap, options.seed, zero)
        result["model"] = str(info.path.resolve())
        if zero_info is not None:
            result["zero_shot"]["model"] = str(zero_info.path.resolve())
        result["data"] = str(Path(options.data).resolve())
        result["skipped"] = [s.to_json() for s in skipped]
        result["pool"]["skipped_pairs"] = len(skipped)
        atomic_write_json(output, result)
    print(format_table(result))
    log.info("wrote %s%s", output, f" ({len(skipped)} pairs with bad images skipped)" if skipped else "")
    return 0


def cmd_index(options: IndexOptions) -> int:
    from vlmkit.retrieval.index import (
        INDEX_TYPES,
        build_index,
        check_images,
        check_index_settings,
        check_output,
        list_images,
    )
    from vlmkit.retrieval.model import ModelCache, inspect_model, load_encoder

    set_max_image_pixels(options.common.max_image_pixels)
    out = Path(options.output)
    check_output(out, options.resume, options.overwrite)
    info = inspect_model(options.model, "--model")
    if options.index_type not in INDEX_TYPES and "," not in options.index_type and not options.index_type[:1].isupper():
        raise InputError(f"--index_type {options.index_type}: choose {', '.join(INDEX_TYPES)} or a FAISS factory "
                         "string such as IVF1024,PQ64")
    paths, skipped = check_images(list_images(options.images, options.pairs.image_root), options.pairs.skip_bad_samples)
    if skipped:
        log.warning("skipping %d bad images (listed in index.json), e.g. %s", len(skipped), skipped[0].describe())
    if info.dim:  # the index settings against the collection, before a single image is embedded
        check_index_settings(options.index_type, len(paths), info.dim, options.nlist, options.nprobe)
    with OutputLock(out, "index"):
        model = load_encoder(info.path, resolve_device(options.common.device), info=info)
        store = options.cache.open()
        try:
            meta = build_index(model, info, paths, out, index_type=options.index_type,
                               batch_size=options.batch_size, part_size=options.part_size, skipped=skipped,
                               nlist=options.nlist, nprobe=options.nprobe, ef_search=options.ef_search,
                               resume=options.resume, source=str(options.images),
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


def cmd_search(options: SearchOptions) -> int:
    from vlmkit.retrieval.index import read_index_meta
    from vlmkit.retrieval.search import Searcher, check_text, format_results

    set_max_image_pixels(options.common.max_image_pixels)
    if options.query is not None:
        check_text(options.query, "--query")
    read_index_meta(options.index)
    image = _query_image(options.image) if options.image else None
    searcher = Searcher(options.index, resolve_device(options.common.device), options.model)
    if image is None:
        results = searcher.search_text(options.query, options.k)
    else:
        results = searcher.search_image(image, options.k)
    if options.json:
        print(json.dumps({"query": options.query or options.image, "results": results}, ensure_ascii=False,
                         indent=2))
    else:
        print(format_results(results))
    return 0


def cmd_serve(options: ServeOptions) -> int:
    from vlmkit.retrieval.index import read_index_meta
    from vlmkit.retrieval.search import Searcher
    from vlmkit.retrieval.service import bind, serve

    set_max_image_pixels(options.common.max_image_pixels)
    read_index_meta(options.index)
    sock = bind(options.host, options.port)  # a port in use: one line now, not after the model has loaded
    try:
        searcher = Searcher(options.index, resolve_device(options.common.device), options.model)
        log.info("serving %d images on http://%s:%d (docs: /docs)", searcher.size, options.host, options.port)
        serve(searcher, options.host, options.port, options.max_top_k, sock=sock,
              default_top_k=options.default_top_k, max_text_bytes=options.max_request_bytes,
              max_upload_bytes=options.max_upload_bytes, max_concurrency=options.max_concurrency)
    finally:
        sock.close()
    return 0
