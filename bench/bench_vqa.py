"""Benchmark: how long eval_vqa.py --score_only takes on full-size TextVQA and MMBench sets (no model involved).

    python bench/bench_vqa.py            # 5,000 TextVQA-val-sized questions, ~4,370 MMBench-dev-sized rows

Generates synthetic files of the real sizes in a temp folder — TextVQA: 5,000 questions x 10 human answers drawn
from a vocabulary of brands, numbers, colours and phrases with punctuation; MMBench: 1,164 questions with their
circular copies (about 4,370 rows, 3-4 options, a 2 KB base64 PNG per original row) — and times the whole command
(read + validate, normalise, score, 1,000-resample bootstrap, write the three result files), best of --repeats;
separately the EvalAI normalisation alone (answers/s). Results: stdout, bench/out/vqa.json.
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import eval_vqa  # noqa: E402
from vlmkit.vqa.textvqa_scoring import normalize_answer  # noqa: E402

WORDS = ["Nike", "coca-cola", "The Two Dogs.", "yes", "no", "3", "three", "10:30", "red", "STOP", "dont", "1,000",
         "u.s.a.", "a cat", "samsung galaxy", "$5.00", "(1)", "e-mail", "Hello World!", "none"]


def textvqa_files(root: Path, n: int, rng: random.Random) -> tuple[Path, Path]:
    data = [{"question_id": i, "question": rng.choice(["what brand is this?", "how many people?", "what is written?"]),
             "image_id": f"img{i}", "answers": [rng.choice(WORDS) for _ in range(10)]} for i in range(n)]
    ann = root / "TextVQA_0.5.1_val.json"
    ann.write_text(json.dumps({"data": data}))
    pred = root / "textvqa_answers.jsonl"
    pred.write_text("".join(json.dumps({"question_id": i, "answer": rng.choice(WORDS)}) + "\n" for i in range(n)))
    return ann, pred


def mmbench_files(root: Path, groups: int, rng: random.Random) -> tuple[Path, Path, int]:
    from PIL import Image

    buffer = io.BytesIO()
    Image.effect_noise((32, 32), 40).convert("RGB").save(buffer, format="PNG")
    image = base64.b64encode(buffer.getvalue()).decode("ascii")
    tsv, rows, answers = root / "mmbench_dev_en.tsv", 0, []
    with tsv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category",
                         "image"])
        for g in range(groups):
            options = [f"option {g}-{k}" for k in range(rng.choice([3, 4, 4, 4]))]
            truth = rng.randrange(len(options))
            for k in range(len(options)):
                index = g + k * 1_000_000
                letter = "ABCD"[(truth - k) % len(options)]
                opts = options[k:] + options[:k]
                writer.writerow([index, f"question {g}?", "", *opts, *[""] * (4 - len(opts)), letter,
                                 f"cat{g % 20}", f"l2-{g % 6}", image if k == 0 else str(g)])
                answers.append({"question_id": index, "answer": letter if rng.random() < 0.8 else "A"})
                rows += 1
    pred = root / "mmbench_answers.jsonl"
    pred.write_text("".join(json.dumps(a) + "\n" for a in answers))
    return tsv, pred, rows


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--textvqa_questions", type=int, default=5000)
    parser.add_argument("--mmbench_groups", type=int, default=1164)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rng = random.Random(0)
    out: dict = {"machine": platform.processor() or platform.machine(), "python": platform.python_version()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ann, pred = textvqa_files(root, args.textvqa_questions, rng)
        texts = [a for _ in range(5) for a in WORDS * 500]
        seconds = best_of(args.repeats, lambda: [normalize_answer(t) for t in texts])
        out["normalise_answers_per_s"] = round(len(texts) / seconds)
        out["textvqa_score_only_s"] = round(best_of(args.repeats, lambda: eval_vqa.main([
            "--task", "textvqa", "--score_only", "--predictions", str(pred), "--annotations", str(ann),
            "--output_dir", str(root / "tv"), "--overwrite"])), 3)
        tsv, mpred, rows = mmbench_files(root, args.mmbench_groups, rng)
        out["mmbench_rows"] = rows
        out["mmbench_score_only_s"] = round(best_of(args.repeats, lambda: eval_vqa.main([
            "--task", "mmbench", "--score_only", "--predictions", str(mpred), "--tsv", str(tsv),
            "--output_dir", str(root / "mmb"), "--overwrite"])), 3)
    out["textvqa_questions"] = args.textvqa_questions
    print(json.dumps(out, indent=2))
    (REPO / "bench" / "out").mkdir(exist_ok=True)
    (REPO / "bench" / "out" / "vqa.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
