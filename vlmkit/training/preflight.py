"""Preflight: every sample opened, tokenised and measured before any model is loaded.

A bad image, a conversation the chat template refuses, or a sample longer than `--max_length` (its answer would lose
its end, or its image tokens would be cut) used to surface mid-run, after checkpoints were written, and inside
DataLoader workers as a long traceback. Here every sample goes through the exact training encoding
(`vlmkit.training.data.encode_sample`, images opened with the `vlmkit.images` policy) once, up front:

- in parallel (a process pool for large data sets, each worker holding a copy of the processor) with a progress bar;
- cached by a hash of the samples, the image files' sizes and modification times, the processor (tokenizer, chat
  template, image processor) and the pixel limit, under `<output_dir>/preflight/`, so a resumed run, the ranks of a
  multi-GPU run after `train.sh`'s preflight pass, or a second run on the same data skip the work;
- then judged: each problem is one line naming the data file and sample (exit 2), or, with `--skip_bad_samples`, the
  sample is dropped, counted and listed (`skipped_samples.json`). The length distribution is logged, written to
  `preflight.json` and drawn (`length_histogram.png`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vlmkit.images import ImageProblem, max_image_pixels, open_rgb, set_max_image_pixels
from vlmkit.io import InputError, atomic_write_json, read_json
from vlmkit.samples import TrainingSample

log = logging.getLogger(__name__)

CACHE_VERSION = 1
POOL_THRESHOLD = 200  # below this many samples a process pool costs more (worker start-up) than it saves
DEFAULT_MAX_LENGTH = 4096  # when the language model's config states no context length


@dataclass
class SampleCheck:
    """What encoding one sample found: its length in tokens (image tokens included), or its problem."""

    length: int | None = None
    image_tokens: int = 0
    image_end: int = 0  # position after the last image token (0: no image)
    problem: str | None = None
    image: str | None = None  # the bad image, when the problem is one


@dataclass
class SkippedSample:
    """A sample left out of training (listed in skipped_samples.json)."""

    sample_id: str
    reason: str
    image: str | None = None

    def line(self) -> str:
        where = f"image {self.image}: " if self.image else ""
        return f"sample {self.sample_id}: {where}{self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.sample_id, "image": self.image, "reason": self.reason}


@dataclass
class PreflightResult:
    kept: list[TrainingSample]
    skipped: list[SkippedSample]
    lengths: list[int]  # tokens of each kept sample, in order
    image_tokens: list[int]
    max_length: int
    max_length_source: str
    cached: bool = False
    data: str = ""
    workers: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        def stats(values: list[int]) -> dict[str, Any]:
            if not values:
                return {}
            ordered = sorted(values)
            return {"min": ordered[0], "median": statistics.median(ordered),
                    "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], "max": ordered[-1],
                    "mean": round(statistics.fmean(ordered), 1)}

        return {"data": self.data, "samples": len(self.kept) + len(self.skipped), "kept": len(self.kept),
                "skipped": len(self.skipped), "max_length": self.max_length,
                "max_length_source": self.max_length_source, "tokens": stats(self.lengths),
                "image_tokens": stats(self.image_tokens), "cached": self.cached,
                "skipped_samples": [s.to_json() for s in self.skipped]}

    def describe(self) -> str:
        s = self.summary()["tokens"]
        if not s:
            return "no samples"
        return (f"{len(self.kept)} samples, tokens per sample min {s['min']} / median {s['median']:g} / p95 "
                f"{s['p95']} / max {s['max']} (--max_length {self.max_length}: {self.max_length_source})")


# ------------------------------------------------------------------------------------------------ measuring
def measure(processor, sample: TrainingSample, root: Path) -> SampleCheck:
    """Open the sample's images and encode it as training will."""
    from vlmkit.training.data import encode_sample, image_token_id

    images = []
    for path in sample.resolved_images(root):
        try:
            images.append(open_rgb(path))
        except ImageProblem as problem:
            return SampleCheck(problem=problem.reason, image=str(path))
    try:
        encoded = encode_sample(processor, sample, images)
    except InputError as exc:
        return SampleCheck(problem=str(exc).removeprefix(f"sample {sample.id}: "))
    ids = encoded["input_ids"][0].tolist()
    image_id = image_token_id(processor)
    positions = [i for i, t in enumerate(ids) if t == image_id]
    return SampleCheck(length=len(ids), image_tokens=len(positions), image_end=positions[-1] + 1 if positions else 0)


_worker: dict[str, Any] = {}


def _init_worker(processor_bytes: bytes, pixel_limit: int | None) -> None:
    import torch

    torch.set_num_threads(1)
    set_max_image_pixels(pixel_limit)  # the parent's --max_image_pixels: one policy in every process
    _worker["processor"] = pickle.loads(processor_bytes)


def _measure_chunk(chunk: list[TrainingSample], root: str) -> list[SampleCheck]:
    return [measure(_worker["processor"], s, Path(root)) for s in chunk]


def measure_all(samples: list[TrainingSample], root: Path, processor, *, workers: int = 1,
                desc: str = "preflight") -> list[SampleCheck]:
    """`measure` every sample, in a spawned process pool when there are many (results in sample order)."""
    from tqdm import tqdm

    n = len(samples)
    with tqdm(total=n, desc=desc, unit="sample", disable=n < 100) as bar:
        if workers <= 1 or n < POOL_THRESHOLD:
            checks = []
            for sample in samples:
                checks.append(measure(processor, sample, root))
                bar.update(1)
            return checks
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        size = max(1, min(64, n // (workers * 4)))
        chunks = {i: samples[i:i + size] for i in range(0, n, size)}
        results: dict[int, list[SampleCheck]] = {}
        # spawn, not fork: the parent may hold OpenMP/tokenizer threads, which a forked child can deadlock on.
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_init_worker,
                                 initargs=(pickle.dumps(processor), max_image_pixels())) as pool:
            futures = {pool.submit(_measure_chunk, chunk, str(root)): start for start, chunk in chunks.items()}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update(len(results[futures[future]]))
        return [check for start in sorted(results) for check in results[start]]


# ---------------------------------------------------------------------------------------------------- cache
def processor_fingerprint(processor) -> str:
    """What decides the encoding: tokenizer (vocabulary, merges, added tokens, post-processor), templates,
    image processor and the processor's own settings (image token counts)."""
    tokenizer = getattr(processor, "tokenizer", processor)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    parts = [type(processor).__name__, str(getattr(processor, "chat_template", "")),
             str(getattr(tokenizer, "chat_template", "")),
             backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)]
    for attr in ("image_processor", "video_processor"):
        sub = getattr(processor, attr, None)
        if sub is not None:
            parts.append(sub.to_json_string())
    for attr in ("patch_size", "num_additional_image_tokens", "vision_feature_select_strategy", "image_token",
                 "image_seq_length"):
        parts.append(f"{attr}={getattr(processor, attr, None)}")
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


def data_key(samples: list[TrainingSample], root: Path, processor) -> str:
    h = hashlib.sha256(f"vlmkit-preflight/{CACHE_VERSION}\0{max_image_pixels()}\0".encode())
    h.update(processor_fingerprint(processor).encode())
    for sample in samples:
        h.update(json.dumps([sample.id, sample.images, sample.conversations], ensure_ascii=False).encode("utf-8"))
        for path in sample.resolved_images(root):
            try:
                st = path.stat()
                h.update(f"\0{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode())
            except OSError:
                h.update(f"\0{path}\0missing".encode())
    return h.hexdigest()


def _read_cache(path: Path, key: str, n: int) -> list[SampleCheck] | None:
    if not path.is_file():
        return None
    try:
        cached = read_json(path)
    except InputError:
        return None
    if not isinstance(cached, dict) or cached.get("key") != key or len(cached.get("checks", [])) != n:
        return None
    return [SampleCheck(*row) for row in cached["checks"]]


def _write_cache(cache_dir: Path, name: str, key: str, checks: list[SampleCheck]) -> None:
    path = cache_dir / f"{name}-{key[:16]}.json"
    try:
        atomic_write_json(path, {"version": CACHE_VERSION, "key": key,
                                 "checks": [list(asdict(c).values()) for c in checks]}, indent=None)
        for old in cache_dir.glob(f"{name}-*.json"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError as exc:  # a cache that cannot be written costs time next run, nothing else
        log.warning("preflight cache not written (%s)", exc)


# --------------------------------------------------------------------------------------------------- verdict
def lm_context_length(config) -> int | None:
    """The language model's context (max_position_embeddings) from a VLM or LM config."""
    text = getattr(config, "text_config", None) or config
    value = getattr(text, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


def _length_problem(check: SampleCheck, max_length: int) -> str | None:
    if check.length is None or check.length <= max_length:
        return None
    cut = check.image_end > max_length
    return f"{check.length} tokens > --max_length {max_length}" + (" (its image tokens would be cut)" if cut else "")


def preflight(samples: list[TrainingSample], root: Path, processor, *, data_path: str, max_length: int,
              max_length_source: str, skip_bad: bool = False, cache_dir: Path | None = None, workers: int = 1,
              name: str = "train") -> PreflightResult:
    """Measure (or read from the cache) every sample, then reject or drop the bad ones.

    Without `skip_bad` the first kind of problem found is one `InputError` line: a bad image or template refusal
    (the first sample, and how many more), else the samples over `max_length` (the first few ids with their
    lengths). With it, those samples are dropped and returned in `skipped`.
    """
    key = data_key(samples, root, processor)
    checks = None
    cache_path = cache_dir / f"{name}-{key[:16]}.json" if cache_dir else None
    if cache_path is not None:
        checks = _read_cache(cache_path, key, len(samples))
    cached = checks is not None
    if checks is None:
        checks = measure_all(samples, root, processor, workers=workers, desc=f"preflight ({name} data)")
    pairs = list(zip(samples, checks, strict=True))
    broken = [(i, SkippedSample(s.id, c.problem, c.image)) for i, (s, c) in enumerate(pairs) if c.problem]
    long = [(i, s, c, _length_problem(c, max_length)) for i, (s, c) in enumerate(pairs)]
    long = [(i, s, c, why) for i, s, c, why in long if why]
    if broken and not skip_bad:
        more = (f" ({len(broken) - 1} more samples with problems; --skip_bad_samples skips and lists them)"
                if len(broken) > 1 else " (--skip_bad_samples skips such samples and lists them)")
        raise InputError(f"{data_path}: {broken[0][1].line()}{more}")
    if long and not skip_bad:
        shown = ", ".join(f"{s.id} ({c.length} tokens{', image tokens cut' if c.image_end > max_length else ''})"
                          for _, s, c, _ in long[:5])
        raise InputError(f"{data_path}: {len(long)} of {len(samples)} samples longer than --max_length {max_length} "
                         f"({max_length_source}): {shown}{' ...' if len(long) > 5 else ''}; raise --max_length, "
                         "or --skip_bad_samples drops and lists them")
    dropped = {i for i, _ in broken} | {i for i, _, _, _ in long}
    skipped = [b for _, b in broken] + [SkippedSample(s.id, why) for _, s, _, why in long]
    kept = [(s, c) for i, (s, c) in enumerate(pairs) if i not in dropped]
    if not kept:
        raise InputError(f"{data_path}: no sample left to train on ({len(skipped)} skipped: {skipped[0].line()})")
    if cache_dir is not None and not cached:
        _write_cache(cache_dir, name, key, checks)  # only now: a run refused for bad input leaves its output as it was
    return PreflightResult(kept=[s for s, _ in kept], skipped=skipped, lengths=[c.length for _, c in kept],
                           image_tokens=[c.image_tokens for _, c in kept], max_length=max_length,
                           max_length_source=max_length_source, cached=cached, data=str(data_path),
                           workers=workers)


def default_workers() -> int:
    """Worker processes for the preflight: the CPUs of this node shared by its ranks, at most 8."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, min(8, (os.cpu_count() or 1) // max(1, local)))
