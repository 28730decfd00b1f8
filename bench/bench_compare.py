#!/usr/bin/env python3
"""Throughput of compare.py on synthetic caption pairs (default 2,000), end to end, models loaded once per run.

    python bench/bench_compare.py                 # 2,000 pairs, 3 repeats, both metric sets
    python bench/bench_compare.py --pairs 500 --repeats 1
    python bench/bench_compare.py --sets bootstrap --repeats 2   # cost of --bootstrap 1000, 2,000 pairs x 3 models
    python bench/bench_compare.py --sets cache    # 5 models cached, a 6th added: warm vs cold, identical tables

Each run goes through `run_comparison` (what compare.py calls): read + validate the JSON files, match by id,
encode, score, build the reports/table/HTML and write them atomically. Model loading (MiniLM; Java + METEOR's
paraphrase tables) is timed separately; pairs/s is pairs / (run wall time - loading). The throughput sets
run with --no_cache (every run starts from fresh encoders and encodes everything); the `cache` set measures
the embedding cache: 5 models scored once (filling an empty cache), then 6 models (the 5 + a new one) with
the cache (warm) and without it (cold), and checks that both write identical tables. The synthetic captions
are vase descriptions in the style of the seed (~30 word-piece tokens each), all distinct, so every one of the
2 x N texts is really encoded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vlmkit.evaluation.metrics import ALL_GROUPS, OVERALL_KEY  # noqa: E402
from vlmkit.evaluation.pipeline import CompareOptions, run_comparison  # noqa: E402

SCHOOLS = ["Athenian", "Attic", "Corinthian", "Laconian", "Boeotian", "Apulian", "Campanian", "Lucanian",
           "Chalcidian", "East Greek", "Euboean", "Etruscan"]
TECHNIQUES = ["black-figure", "red-figure", "white-ground", "bilingual", "Six's technique"]
SHAPES = ["lekythos", "amphora", "neck amphora", "hydria", "calyx krater", "column krater", "volute krater",
          "bell krater", "kylix", "oinochoe", "skyphos", "pelike", "stamnos", "psykter", "lebes", "pyxis",
          "aryballos", "alabastron", "kantharos", "loutrophoros"]
SCENES = ["Herakles and the Nemean lion", "Herakles and the boar", "a warrior departing", "women at a fountain house",
          "Dionysos and satyrs", "an athlete with a strigil", "Achilles and Ajax playing dice",
          "the judgement of Paris", "Theseus and the Minotaur", "a symposium", "a chariot race",
          "Athena and Poseidon", "a hoplite duel", "maenads dancing", "Eos pursuing Kephalos", "Perseus and Medusa",
          "a wedding procession", "Hermes leading a goat", "a komos of youths", "Amazons in battle"]
SITES = ["Marathon, Attica", "Vulci, Etruria", "Agrigento, Sicily", "Chiusi, Etruria", "Corinth", "Cerveteri",
         "Nola, Campania", "Gela, Sicily", "Rhodes", "Tarquinia", "Athens, Kerameikos", "Capua", "Taranto"]


def _reference(rng: random.Random, school: str, tech: str, shape: str, start: int, scene: str, site: str) -> str:
    return f"{school} {tech} {shape}, c. {start}-{start - rng.randrange(5, 50, 5)} BCE, depicting {scene}; {site}."


def _close_answer(rng: random.Random, school: str, tech: str, shape: str, start: int, scene: str) -> str:
    """Like a fine-tuned model: the reference's structure, some fields wrong."""
    return (f"{school} {tech} {shape}, c. {start + rng.randrange(-30, 30, 5)} BCE, depicting "
            f"{rng.choice([scene, rng.choice(SCENES)])}; {rng.choice(SITES)}.")


def _loose_answer(rng: random.Random, tech: str, shape: str, start: int) -> str:
    """Like a base model: generic wording."""
    return (f"{tech.capitalize()} {rng.choice([shape, rng.choice(SHAPES)])} showing {rng.choice(SCENES)}, Greek, "
            f"{start // 100 + 1}th century BCE, {rng.choice(['well preserved', 'with restorations', 'from a tomb'])}.")


def synthetic_pairs(n: int, seed: int = 0, models: int = 1) -> tuple[list[dict], list[list[dict]]]:
    """n reference captions with VaseVQA-3D-style ids and `models` generated files; all texts distinct.

    Model 0 is the one of the single-model figures (same draws as before); models 1, 2, ... answer the same
    items with their own draws and a falling share of close answers, so their scores differ.
    """
    rng = random.Random(seed)
    seen: set[str] = set()

    def unique(make: Callable[[], str]) -> str:
        while True:
            text = make()
            if text not in seen:
                seen.add(text)
                return text

    truth, generated, fields = [], [], []
    for i in range(n):
        school, tech, shape = rng.choice(SCHOOLS), rng.choice(TECHNIQUES), rng.choice(SHAPES)
        scene, site = rng.choice(SCENES), rng.choice(SITES)
        start = rng.randrange(320, 660, 5)
        ref = unique(partial(_reference, rng, school, tech, shape, start, scene, site))
        if rng.random() < 0.5:
            gen = unique(partial(_close_answer, rng, school, tech, shape, start, scene))
        else:
            gen = unique(partial(_loose_answer, rng, tech, shape, start))
        uuid = f"{i:08x}-0000-4000-8000-{rng.getrandbits(48):012x}"
        image = f"{uuid}_{i + 1}_ac001001.jpg"
        truth.append({"images": [image], "caption": ref})
        generated.append({"images": [image], "caption": gen, "data_by": "bench-model"})
        fields.append((image, school, tech, shape, start, scene))
    files = [generated]
    for m in range(1, models):
        model_rng = random.Random(seed + 1000 * m)
        close_share = max(0.1, 0.5 - 0.15 * m)
        answers = []
        for image, school, tech, shape, start, scene in fields:
            if model_rng.random() < close_share:
                gen = unique(partial(_close_answer, model_rng, school, tech, shape, start, scene))
            else:
                gen = unique(partial(_loose_answer, model_rng, tech, shape, start))
            answers.append({"images": [image], "caption": gen, "data_by": f"bench-model-{m + 1}"})
        files.append(answers)
    for answers in files:
        rng.shuffle(answers)  # matching is by id, never by position
    return truth, files


def one_run(options: CompareOptions, pairs: int) -> dict:
    start = time.perf_counter()
    outcome = run_comparison(options)
    wall = time.perf_counter() - start
    work = wall - outcome.seconds_loading
    metrics = outcome.results[0].metrics
    return {"wall_s": wall, "load_s": outcome.seconds_loading, "work_s": work, "pairs_per_s": pairs / work,
            "stages_s": outcome.timings, "write_s": outcome.seconds_writing,
            "overall_score": metrics[OVERALL_KEY], "meteor": metrics.get("meteor")}


def bootstrap_cost(args: argparse.Namespace, groups: frozenset[str]) -> dict:
    """The cost of --bootstrap N on `--models` files in one call: interleaved runs with and without it.

    The bootstrap's own time (CIs of every model + the significance test, timed inside the evaluator) is the
    precise figure; the wall-time difference of the two runs is also reported but carries the machine's noise.
    """
    _, files = synthetic_pairs(args.pairs, models=args.models)
    paths = []
    for m, answers in enumerate(files):
        paths.append(args.out / f"image_bench-model-{m + 1}.json")
        paths[-1].write_text(json.dumps(answers))
    runs: dict[int, list[dict]] = {0: [], args.bootstrap: []}
    for _ in range(args.repeats):
        for resamples in runs:
            options = CompareOptions(generated=paths, ground_truth=args.out / "groundTruth.json",
                                     output_dir=args.out / f"results_bootstrap{resamples}", clip_model="none",
                                     batch_size=args.batch_size, device=args.device, groups=groups, bootstrap=resamples,
                                     cache=False)
            runs[resamples].append(one_run(options, args.pairs * args.models))
    without = min(r["work_s"] for r in runs[0])
    with_ = min(r["work_s"] for r in runs[args.bootstrap])
    stage = min(r["stages_s"]["bootstrap"] for r in runs[args.bootstrap])
    out = {"models": args.models, "pairs_per_model": args.pairs, "resamples": args.bootstrap,
           "work_s_without": without, "work_s_with": with_, "bootstrap_stage_s": stage,
           "bootstrap_stage_share_of_run_without": stage / without,
           "wall_difference_share": (with_ - without) / without, "runs": {str(k): v for k, v in runs.items()}}
    print(f"bootstrap {args.bootstrap} resamples, {args.models} models x {args.pairs} pairs: run without "
          f"{without:.1f} s, with {with_:.1f} s (best of {args.repeats}); the bootstrap itself {stage:.3f} s = "
          f"{stage / without:.2%} of the run without it (wall difference {(with_ - without) / without:+.1%})")
    return out


def _tables(folder: Path) -> dict[str, str]:
    """The comparison files of a run, without what changes from run to run (times, dates, the folder)."""
    out = {}
    for name in ("model_comparison_table.md", "model_comparison_table.csv", "batch_evaluation_summary.json"):
        text = (folder / name).read_text().replace(str(folder), "<out>")
        out[name] = re.sub(r'"(created_at|seconds_[a-z_]+)": [^,\n]+', r'"\1": "<volatile>"', text)
    return out


def cache_gain(args: argparse.Namespace, groups: frozenset[str]) -> dict:
    """Five models scored into an empty cache; then the five + a new sixth, warm (cache) and cold (--no_cache)."""
    _, files = synthetic_pairs(args.pairs, models=6)
    paths = []
    for m, answers in enumerate(files):
        paths.append(args.out / f"image_cache-model-{m + 1}.json")
        paths[-1].write_text(json.dumps([{**a, "data_by": f"cache-model-{m + 1}"} for a in answers]))
    cache_dir = args.out / "embedding_cache"
    shutil.rmtree(cache_dir, ignore_errors=True)

    def options(generated: list[Path], name: str, cache: bool) -> CompareOptions:
        return CompareOptions(generated=generated, ground_truth=args.out / "groundTruth.json",
                              output_dir=args.out / f"results_cache_{name}", clip_model="none",
                              batch_size=args.batch_size, device=args.device, groups=groups,
                              bootstrap=args.bootstrap, cache=cache, cache_dir=cache_dir)

    first = one_run(options(paths[:5], "first5", True), 5 * args.pairs)
    warm = one_run(options(paths, "warm6", True), 6 * args.pairs)
    cold = one_run(options(paths, "cold6", False), 6 * args.pairs)
    identical = _tables(args.out / "results_cache_warm6") == _tables(args.out / "results_cache_cold6")
    out = {"models_cached": 5, "models": 6, "pairs_per_model": args.pairs, "first5": first, "warm6": warm,
           "cold6": cold, "speedup_wall": cold["wall_s"] / warm["wall_s"],
           "speedup_excluding_model_loading": cold["work_s"] / warm["work_s"], "identical_tables": identical,
           "cache_mb": sum(p.stat().st_size for p in cache_dir.iterdir()) / 1e6}
    print(f"cache: 6 models x {args.pairs} pairs, 5 of them cached: warm {warm['wall_s']:.1f} s "
          f"(encoded {warm['stages_s'].get('sentence_encoded')} texts) vs cold {cold['wall_s']:.1f} s "
          f"(encoded {cold['stages_s'].get('sentence_encoded')}): {out['speedup_wall']:.1f}x wall, "
          f"{out['speedup_excluding_model_loading']:.1f}x excluding model loading; tables identical: {identical}; "
          f"first 5-model run {first['wall_s']:.1f} s; cache {out['cache_mb']:.1f} MB")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    parser.add_argument("--sets", default="no_coco,default,bootstrap",
                        help="comma list of: no_coco, default (throughput of one model), bootstrap (the cost of "
                             "--bootstrap on --models files, metric set --bootstrap_set), cache (warm vs cold with "
                             "5 models cached and a 6th added, metric set --bootstrap_set)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples (compare.py's default)")
    parser.add_argument("--models", type=int, default=3, help="models of the bootstrap set")
    parser.add_argument("--bootstrap_set", default="no_coco", choices=["no_coco", "default"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import torch

    args.out.mkdir(parents=True, exist_ok=True)
    truth, (generated,) = synthetic_pairs(args.pairs)
    (args.out / "groundTruth.json").write_text(json.dumps(truth))
    (args.out / "image_bench-model.json").write_text(json.dumps(generated))
    sets = {"no_coco": frozenset(ALL_GROUPS) - {"coco"}, "default": frozenset(ALL_GROUPS)}
    report = {"pairs": args.pairs, "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                               "processor": platform.processor() or platform.machine(),
                                               "python": platform.python_version(), "torch": torch.__version__,
                                               "loadavg_start": os.getloadavg()},
              "batch_size": args.batch_size, "runs": {}}
    for name in args.sets.split(","):
        if name == "bootstrap":
            report["bootstrap"] = bootstrap_cost(args, sets[args.bootstrap_set])
            continue
        if name == "cache":
            report["cache"] = cache_gain(args, sets[args.bootstrap_set])
            continue
        options = CompareOptions(generated=[args.out / "image_bench-model.json"],
                                 ground_truth=args.out / "groundTruth.json", output_dir=args.out / f"results_{name}",
                                 clip_model="none", batch_size=args.batch_size, device=args.device,
                                 groups=sets[name], bootstrap=args.bootstrap, cache=False)
        runs = [one_run(options, args.pairs) for _ in range(args.repeats)]
        rates = [r["pairs_per_s"] for r in runs]
        report["runs"][name] = {"runs": runs, "best_pairs_per_s": max(rates), "worst_pairs_per_s": min(rates),
                                "median_pairs_per_s": statistics.median(rates),
                                "load_s": [round(r["load_s"], 2) for r in runs]}
        stages = runs[rates.index(max(rates))]["stages_s"]
        best = runs[rates.index(max(rates))]
        enc_s = stages.get("sentence_encoding", 0.0)
        enc_rate = stages.get("sentence_texts", 0) / enc_s if enc_s else float("nan")
        rest = args.pairs / (best["work_s"] - enc_s)
        report["runs"][name]["pairs_per_s_excluding_sentence_encoding"] = rest
        print(f"{name:8s} {args.pairs} pairs: best {max(rates):7.1f} pairs/s, median {statistics.median(rates):7.1f},"
              f" worst {min(rates):7.1f} | load {min(r['load_s'] for r in runs):.1f}-"
              f"{max(r['load_s'] for r in runs):.1f} s | MiniLM {enc_rate:.0f} texts/s "
              f"({enc_s:.1f} s of {best['work_s']:.1f} s; everything else {rest:.0f} pairs/s)")
    report["loadavg_end"] = os.getloadavg()
    (args.out / "bench_compare.json").write_text(json.dumps(report, indent=2))
    print(f"load average (1, 5, 15 min) start {report['machine']['loadavg_start']}, end {report['loadavg_end']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
