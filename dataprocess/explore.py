"""Explore a caption data set: text and image statistics as JSON + Markdown + PNG plots.

    python -m dataprocess.explore --input data/train.jsonl --output_dir results/explore

Reads the same inputs as `dataprocess.filter` (Data-Juicer JSONL, training JSONL, LLaVA JSON, caption JSON with
optional multi-view folders) and looks at the same text the filter's operators see. Definitions:

- words: Data-Juicer's words (split on space/newline/tab, special characters stripped from both ends), so
  `word_count` is exactly words_num_filter's `num_words` and the numbers can be used to choose its bounds;
  mean and std are over samples (population std); histogram bins are [from, to).
- lexical diversity: distinct lower-cased words / all words, over the whole data set (BLIP-2 LoRA notes: 0.0714).
- short / long: fewer than `--short_words` / more than `--long_words` words.
- text duplicates: samples whose text equals an earlier sample's text exactly.
- image duplicates: paths used by more than one sample, and distinct files with identical bytes (SHA-256).
- image sizes and formats come from the file headers (EXIF orientation applied, as in the filter); a missing
  or unreadable image is counted and listed, never skipped silently.

Outputs (written together or not at all): explore.json, explore.md, text_length_analysis.png,
word_frequency_analysis.png, image_analysis.png.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from dataprocess.dataset import Dataset, Input
from dataprocess.dj_text import refine_words, split_words
from dataprocess.images import file_sha256
from dataprocess.options import InputOptions, cores
from dataprocess.outputs import exclusive_outputs
from dataprocess.recipe import DJ_EOC_TOKEN, load_recipe
from vlmkit.cli import run_main, setup_logging
from vlmkit.executor import ExecutorOptions, map_refs
from vlmkit.images import (
    ImageInfo,
    max_image_pixels,
    max_image_pixels_option,
    read_image_header,
    set_max_image_pixels,
)
from vlmkit.io import write_all_or_nothing
from vlmkit.options import Options, opt, parse_options
from vlmkit.outputs import check_output_dir
from vlmkit.ranges import NON_NEGATIVE, POSITIVE
from vlmkit.streams import EmbeddedImage

log = logging.getLogger("dataprocess.explore")
OUTPUT_NAMES = ("explore.json", "explore.md", "text_length_analysis.png", "word_frequency_analysis.png",
                "image_analysis.png")


def _r(x: float) -> float:
    return round(float(x), 6)


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's linear interpolation (np.percentile's `_lerp`, symmetric in a and b)."""
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def describe_counts(counts: Counter) -> dict[str, Any]:
    """count, mean, std (population), min, percentiles (numpy's linear method), max of the values that `counts`
    holds with their multiplicities: the numbers `describe` gives for the expanded list, without the list."""
    n = sum(counts.values())
    if n == 0:
        return {"count": 0, "unavailable": "no values"}
    values = sorted(counts)
    mean = float(sum(v * c for v, c in counts.items())) / n if all(isinstance(v, int) for v in values) \
        else sum(float(v) * c for v, c in counts.items()) / n
    std = math.sqrt(sum(c * (float(v) - mean) ** 2 for v, c in counts.items()) / n)
    cumulative = np.cumsum([counts[v] for v in values])

    def at(k: int) -> float:  # the k-th smallest value (0-based)
        return float(values[int(np.searchsorted(cumulative, k, side="right"))])

    def percentile(q: float) -> float:
        h = q / 100 * (n - 1)
        lo = math.floor(h)
        return _lerp(at(lo), at(min(lo + 1, n - 1)), h - lo)

    return {"count": n, "mean": _r(mean), "std": _r(std), "min": _r(values[0]), "p5": _r(percentile(5)),
            "p25": _r(percentile(25)), "median": _r(percentile(50)), "p75": _r(percentile(75)),
            "p95": _r(percentile(95)), "max": _r(values[-1])}


def describe(values: list[int] | list[float]) -> dict[str, Any]:
    """count, mean, std (population), min, percentiles, max."""
    return describe_counts(Counter(values))


def int_histogram(values: list[int] | Counter, bins: int) -> list[dict[str, int]]:
    """Histogram with integer-aligned bins [from, to) covering 0..max (`values` may be a value -> count Counter)."""
    counts_of = values if isinstance(values, Counter) else Counter(values)
    if not counts_of:
        return []
    top = max(counts_of) + 1
    width = max(1, math.ceil(top / bins))
    counts: Counter[int] = Counter()
    for v, c in counts_of.items():
        counts[v // width] += c
    return [{"from": b * width, "to": (b + 1) * width, "count": counts.get(b, 0)}
            for b in range(math.ceil(top / width))]


def text_statistics(texts: Iterable[str], short_words: int, long_words: int, bins: int, top: int) -> dict[str, Any]:
    """One pass over the texts, holding counts only: words and characters per sample as value -> count, the
    vocabulary, and one 16-byte digest per distinct text (the text itself only once it occurs twice)."""
    word_counts: Counter[int] = Counter()
    char_counts: Counter[int] = Counter()
    vocab: Counter[str] = Counter()
    seen: Counter[bytes] = Counter()
    dup_text: dict[bytes, str] = {}
    n = 0
    for text in texts:
        n += 1
        words = split_words(text)
        word_counts[len(refine_words(words))] += 1
        char_counts[len(text)] += 1
        vocab.update(refine_words(words, lower_case=True))
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        seen[digest] += 1
        if seen[digest] == 2:
            dup_text[digest] = text
    total_words = sum(vocab.values())
    dup_groups = {dup_text[d]: seen[d] for d in dup_text}
    short = sum(c for w, c in word_counts.items() if w < short_words)
    long_ = sum(c for w, c in word_counts.items() if w > long_words)
    return {
        "samples": n,
        "word_count": {**describe_counts(word_counts), "histogram": int_histogram(word_counts, bins)},
        "text_length_chars": {**describe_counts(char_counts), "histogram": int_histogram(char_counts, bins)},
        "total_words": total_words,
        "vocabulary_size": len(vocab),
        "lexical_diversity": (_r(len(vocab) / total_words) if total_words
                              else {"unavailable": "the data set has no words"}),
        "short": {"threshold_words": short_words, "definition": f"fewer than {short_words} words",
                  "samples": short, "ratio": _r(short / n)},
        "long": {"threshold_words": long_words, "definition": f"more than {long_words} words",
                 "samples": long_, "ratio": _r(long_ / n)},
        "duplicates": {
            "duplicate_samples": sum(c - 1 for c in dup_groups.values()),
            "duplicate_groups": len(dup_groups),
            "samples_in_duplicate_groups": sum(dup_groups.values()),
            "ratio": _r(sum(c - 1 for c in dup_groups.values()) / n),
            "examples": [{"text": t[:200], "count": c}
                         for t, c in sorted(dup_groups.items(), key=lambda kv: (-kv[1], kv[0]))[:10]],
        },
        "empty_texts": char_counts.get(0, 0),
        "top_words": [{"word": w, "count": c} for w, c in vocab.most_common(top)],
    }


def _inspect_image(job: tuple[str | EmbeddedImage, bool]) -> tuple[str, ImageInfo | tuple[str, str], str | None]:
    path, want_hash = job
    if isinstance(path, EmbeddedImage):  # bytes inside a Parquet / HF / WebDataset record
        info = read_image_header(path.label, path.data)
        if not isinstance(info, ImageInfo):
            return path.label, (info.kind, info.detail), None
        return path.label, info, hashlib.sha256(path.data).hexdigest() if want_hash else None
    info = read_image_header(path)
    if not isinstance(info, ImageInfo):
        return path, (info.kind, info.detail), None
    digest = None
    if want_hash:
        try:
            digest = file_sha256(path)
        except OSError as exc:
            return path, ("unreadable", f"cannot read bytes: {exc}"), None
    return path, info, digest


def _inspect_chunk(job: tuple[list[str], bool]) -> list[tuple[str, Any, str | None]]:
    paths, want_hash = job
    return [_inspect_image((p, want_hash)) for p in paths]


def inspect_images(paths: list[str], want_hash: bool, np_: int,
                   executor: ExecutorOptions | None = None) -> list[tuple[str, Any, str | None]]:
    """Header (and content hash) of each path, in order: in this process for a few paths, else in chunks over `np_`
    local processes or Ray tasks (`executor`), each worker applying this run's --max_image_pixels."""
    from tqdm import tqdm

    executor = executor or ExecutorOptions()
    if not executor.is_ray and (np_ <= 1 or len(paths) < 200):
        return [_inspect_image((p, want_hash)) for p in tqdm(paths, desc="images", unit="image", disable=None)]
    size = max(16, len(paths) // (max(np_, executor.num_workers or 1) * 8))
    chunks = [(paths[i:i + size], want_hash) for i in range(0, len(paths), size)]
    with tqdm(total=len(paths), desc="images", unit="image", disable=None) as bar:
        parts = map_refs(_inspect_chunk, chunks, executor, np=np_, on_result=lambda part: bar.update(len(part)),
                         initializer=partial(set_max_image_pixels, max_image_pixels()))
    return [r for part in parts for r in part]


def image_statistics(image_lists: Callable[[], Iterable[tuple]], want_hash: bool, small_side: int, bins: int,
                     np_: int, executor: ExecutorOptions | None = None) -> dict[str, Any]:
    """`image_lists()` yields each sample's images (it is called twice: to collect and inspect them, then to count
    the samples with a bad one). Paths are inspected once each; embedded images as they stream by."""
    refs: Counter[str] = Counter()
    early = []  # embedded images, inspected at once (their bytes are not kept)
    without = 0
    for images in image_lists():
        without += not images
        for p in images:
            refs[str(p)] += 1
            if isinstance(p, EmbeddedImage) and refs[str(p)] == 1:
                early.append(_inspect_image((p, want_hash)))
    if not refs:
        return {"unavailable": "no sample refers to an image", "samples_without_images": without}
    done = {r[0] for r in early}
    results = sorted(early + inspect_images([p for p in sorted(refs) if p not in done], want_hash, np_, executor),
                     key=lambda r: r[0])
    ok = [(p, info, h) for p, info, h in results if isinstance(info, ImageInfo)]
    bad = [(p, info) for p, info, _ in results if not isinstance(info, ImageInfo)]
    bad_paths = {p for p, _ in bad}
    widths = [info.width for _, info, _ in ok]
    heights = [info.height for _, info, _ in ok]
    by_hash: dict[str, list[str]] = {}
    for p, _, h in ok:
        if h is not None:
            by_hash.setdefault(h, []).append(p)
    content_dups = sorted((sorted(ps) for ps in by_hash.values() if len(ps) > 1), key=lambda ps: (-len(ps), ps[0]))
    shared = {p: c for p, c in refs.items() if c > 1}
    none_readable = {"unavailable": "no readable image"}
    return {
        "references": sum(refs.values()),
        "distinct_paths": len(refs),
        "readable": len(ok),
        "missing": sum(1 for _, (kind, _) in bad if kind == "missing"),
        "unreadable": sum(1 for _, (kind, _) in bad if kind != "missing"),  # every other kind (see by_kind)
        "by_kind": dict(Counter(kind for _, (kind, _) in bad).most_common()),
        "problems": [{"path": p, "kind": kind, "detail": detail} for p, (kind, detail) in bad[:100]],
        "samples_with_bad_images": sum(1 for images in image_lists() if any(str(p) in bad_paths for p in images)),
        "samples_without_images": without,
        "width": {**describe(widths), "histogram": int_histogram(widths, bins)} if ok else none_readable,
        "height": {**describe(heights), "histogram": int_histogram(heights, bins)} if ok else none_readable,
        "small_side": {"threshold_px": small_side, "definition": f"width or height below {small_side} px",
                       "images": sum(1 for w, h in zip(widths, heights, strict=True) if min(w, h) < small_side),
                       "ratio": (_r(sum(1 for w, h in zip(widths, heights, strict=True) if min(w, h) < small_side)
                                    / len(ok)) if ok else None)},
        "formats": dict(Counter(info.format or "unknown" for _, info, _ in ok).most_common()),
        "modes": dict(Counter(info.mode for _, info, _ in ok).most_common()),
        "shared_paths": {"paths_used_by_several_samples": len(shared),
                         "extra_references": sum(c - 1 for c in shared.values())},
        "content_duplicates": ({"groups": len(content_dups),
                                "redundant_files": sum(len(g) - 1 for g in content_dups),
                                "examples": content_dups[:10]}
                               if want_hash else {"unavailable": "image hashing disabled (--no_image_hash)"}),
        "_sizes": list(zip(widths, heights, strict=True)),
    }


def _plot_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def make_plots(text: dict[str, Any], images: dict[str, Any]) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, bytes] = {}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, label in ((axes[0], "word_count", "words per sample"),
                           (axes[1], "text_length_chars", "characters per sample")):
        hist = text[key]["histogram"]
        ax.bar([h["from"] for h in hist], [h["count"] for h in hist],
               width=[h["to"] - h["from"] for h in hist], align="edge", edgecolor="black", linewidth=0.3)
        ax.set_xlabel(label)
        ax.set_ylabel("samples")
        ax.set_title(f"{label}: mean {text[key]['mean']:.2f}, std {text[key]['std']:.2f}")
    out["text_length_analysis.png"] = _plot_png(fig)

    fig, ax = plt.subplots(figsize=(8, max(3, 0.28 * len(text["top_words"]) + 1)))
    words = text["top_words"][::-1]
    ax.barh([w["word"] for w in words], [w["count"] for w in words])
    ax.set_xlabel("occurrences")
    diversity = text["lexical_diversity"]
    ax.set_title(f"most frequent words (lexical diversity "
                 f"{diversity if isinstance(diversity, float) else 'unavailable'})")
    out["word_frequency_analysis.png"] = _plot_png(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    sizes = images.get("_sizes") or []
    if sizes:
        axes[0].scatter([w for w, _ in sizes], [h for _, h in sizes], s=6, alpha=0.5)
        axes[0].set_xlabel("width (px)")
        axes[0].set_ylabel("height (px)")
        axes[0].set_title(f"image sizes ({len(sizes)} readable)")
        formats = images["formats"]
        axes[1].bar(list(formats), list(formats.values()))
        axes[1].set_title(f"formats; {images['missing']} missing, {images['unreadable']} unreadable")
    else:
        for ax in axes:
            ax.text(0.5, 0.5, images.get("unavailable", "no readable image"), ha="center", va="center")
            ax.set_axis_off()
    out["image_analysis.png"] = _plot_png(fig)
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, dict) and "unavailable" in value:
        return f"unavailable ({value['unavailable']})"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def markdown(report: dict[str, Any]) -> str:
    t, im = report["text"], report["images"]
    wc, tl = t["word_count"], t["text_length_chars"]
    lines = [f"# Data set exploration: {report['input']}", "",
             f"{t['samples']} samples, format `{report['format']}`"
             + (f", text view `{report['text_view']}`" if report["text_view"] else "") + ".", "",
             "## Text", "", "| statistic | value |", "| --- | --- |",
             f"| words per sample (mean ± std) | {wc['mean']:.2f} ± {wc['std']:.2f} |",
             f"| words per sample (min / median / max) | {wc['min']:g} / {wc['median']:g} / {wc['max']:g} |",
             f"| characters per sample (mean ± std) | {tl['mean']:.2f} ± {tl['std']:.2f} |",
             f"| characters per sample (min / median / max) | {tl['min']:g} / {tl['median']:g} / {tl['max']:g} |",
             f"| total words / vocabulary | {t['total_words']} / {t['vocabulary_size']} |",
             f"| lexical diversity (distinct / all words) | {_fmt(t['lexical_diversity'])} |",
             f"| short texts ({t['short']['definition']}) | {t['short']['samples']} ({t['short']['ratio']:.2%}) |",
             f"| long texts ({t['long']['definition']}) | {t['long']['samples']} ({t['long']['ratio']:.2%}) |",
             f"| exact duplicate texts | {t['duplicates']['duplicate_samples']} samples in "
             f"{t['duplicates']['duplicate_groups']} groups ({t['duplicates']['ratio']:.2%}) |",
             f"| empty texts | {t['empty_texts']} |", ""]
    if t["top_words"]:
        lines += ["Most frequent words: " + ", ".join(f"{w['word']} ({w['count']})" for w in t["top_words"]), ""]
    lines += ["## Images", ""]
    if "unavailable" in im:
        lines += [f"Unavailable: {im['unavailable']}.", ""]
    else:
        lines += ["| statistic | value |", "| --- | --- |",
                  f"| references / distinct paths | {im['references']} / {im['distinct_paths']} |",
                  f"| readable / missing / unreadable | {im['readable']} / {im['missing']} / {im['unreadable']} |",
                  f"| samples with a bad image | {im['samples_with_bad_images']} |",
                  f"| samples without images | {im['samples_without_images']} |"]
        if "mean" in im["width"]:
            lines += [f"| width (mean ± std, min–max) | {im['width']['mean']:.1f} ± {im['width']['std']:.1f}, "
                      f"{im['width']['min']:g}–{im['width']['max']:g} |",
                      f"| height (mean ± std, min–max) | {im['height']['mean']:.1f} ± {im['height']['std']:.1f}, "
                      f"{im['height']['min']:g}–{im['height']['max']:g} |",
                      f"| {im['small_side']['definition']} | {im['small_side']['images']} "
                      f"({im['small_side']['ratio']:.2%}) |"]
        lines += [f"| formats | {', '.join(f'{k}: {v}' for k, v in im['formats'].items()) or '-'} |",
                  f"| paths used by several samples | {im['shared_paths']['paths_used_by_several_samples']} |"]
        cd = im["content_duplicates"]
        lines += ["| identical files under different paths | "
                  + (_fmt(cd) if "unavailable" in cd else f"{cd['redundant_files']} redundant in {cd['groups']} groups")
                  + " |", ""]
        if im["problems"]:
            lines += ["Bad images (first 100):", ""] + [f"- `{p['path']}`: {p['kind']} ({p['detail']})"
                                                        for p in im["problems"]] + [""]
    lines += ["## Plots", "", "![text lengths](text_length_analysis.png)", "",
              "![word frequency](word_frequency_analysis.png)", "", "![images](image_analysis.png)", ""]
    return "\n".join(lines)


def explore(data: Dataset | Input, *, short_words: int = 5, long_words: int = 50, bins: int = 30, top: int = 20,
            image_hash: bool = True, small_side: int = 224, np_: int = 1, chunk_size: int = 1000,
            executor: ExecutorOptions | None = None) -> dict[str, Any]:
    """The full report (JSON-able; private `_` keys hold raw values for the plots). An `Input` is streamed chunk by
    chunk (read twice: texts and images, then the samples with a bad image); a `Dataset` is already in memory."""
    if isinstance(data, Input):
        refs = data.plan(chunk_size)

        def items():
            for ref in refs:
                yield from data.items(ref)

        path, fmt = data.path, data.format
        view = data.text_view if fmt in ("training", "llava") else None
    else:
        def items():
            return iter(data.items)

        path, fmt, view = data.path, data.format, data.text_view
    text = text_statistics((item.text for item in items()), short_words, long_words, bins, top)
    images = image_statistics(lambda: (item.images for item in items()), image_hash, small_side, bins, np_, executor)
    return {"input": str(path), "format": fmt, "text_view": view, "text": text, "images": images}


def public(report: Any) -> Any:
    if isinstance(report, dict):
        return {k: public(v) for k, v in report.items() if not k.startswith("_")}
    return report


@dataclass
class ExploreOptions(Options):
    """`python -m dataprocess.explore`'s settings."""

    input: str = opt(None, "data file (Data-Juicer JSONL, training JSONL, LLaVA JSON, caption JSON)", required=True)
    output_dir: str = opt(None, "folder for explore.json, explore.md and the plots", required=True)
    reader: InputOptions = field(default_factory=InputOptions)
    recipe: str | None = opt(None, "take text_keys / image_key / eoc_special_token from this Data-Juicer recipe")
    text_key: str | None = opt(None, "text field of Data-Juicer JSONL (default: text, or the recipe's)")
    image_key: str | None = opt(None, "image list field of Data-Juicer JSONL (default: images, or the recipe's)")
    short_words: int = opt(5, "texts with fewer words are short", range=NON_NEGATIVE)
    long_words: int = opt(50, "texts with more words are long", range=NON_NEGATIVE)
    small_side: int = opt(224, "images with a side below this are small")
    bins: int = opt(30, "histogram bins", range=POSITIVE)
    top: int = opt(20, "most frequent words to list", range=POSITIVE)
    no_image_hash: bool = opt(False, "skip content hashing (no byte reads)")
    np: int = opt(factory=cores, help="processes for reading images", range=POSITIVE)
    max_image_pixels: int = max_image_pixels_option()
    executor: ExecutorOptions = field(default_factory=ExecutorOptions)
    verbose: bool = opt(False, flags=("-v",))


def main(argv: list[str] | None = None) -> int:
    return run(parse_options(ExploreOptions, argv, exclude=("gpus_per_worker",), prog="python -m dataprocess.explore",
                             description="Statistics of a caption data set as JSON + Markdown + PNG plots."))


def run(o: ExploreOptions) -> int:
    """Write `o.input`'s report (explore.json, explore.md, the plots) into `o.output_dir`."""
    setup_logging(o.verbose)
    text_key, image_key, eoc = "text", "images", DJ_EOC_TOKEN
    if o.recipe:
        recipe = load_recipe(o.recipe, skip_unsupported=True)
        text_key, image_key, eoc = recipe.text_key, recipe.image_key, recipe.eoc_special_token
    set_max_image_pixels(o.max_image_pixels)
    out_dir = check_output_dir(o.output_dir, "--output_dir")
    outputs = [out_dir / name for name in OUTPUT_NAMES]
    with exclusive_outputs(outputs, [Path(o.input)], flag="--output_dir", what="exploration report",
                           lock=out_dir):
        source = o.reader.open(o.input, text_key=o.text_key or text_key, image_key=o.image_key or image_key,
                               eoc_token=eoc)
        report = explore(source, short_words=o.short_words, long_words=o.long_words, bins=o.bins, top=o.top,
                         image_hash=not o.no_image_hash, small_side=o.small_side, np_=o.np, executor=o.executor)
        return _write_report(report, out_dir)


def _write_report(report: dict[str, Any], out_dir: Path) -> int:
    files: dict[Path, str | bytes] = {out_dir / "explore.json": json.dumps(public(report), ensure_ascii=False,
                                                                          indent=2) + "\n",
                                      out_dir / "explore.md": markdown(public(report))}
    files.update({out_dir / name: data for name, data in make_plots(report["text"], report["images"]).items()})
    write_all_or_nothing(files)
    t, im = report["text"], report["images"]
    log.info("%d samples: %.2f ± %.2f words, lexical diversity %s, %d duplicate texts; images: %s -> %s",
             t["samples"], t["word_count"]["mean"], t["word_count"]["std"], _fmt(t["lexical_diversity"]),
             t["duplicates"]["duplicate_samples"],
             im.get("unavailable") or f"{im['readable']} readable, {im['missing']} missing, "
                                      f"{im['unreadable']} unreadable", out_dir)
    return 0


if __name__ == "__main__":
    run_main(main)
