r"""Benchmark a VLM (base, base + LoRA adapter, or merged) on TextVQA, MMBench or any VQA set, with the scoring of
lmms-eval (TextVQA/VQA accuracy) and VLMEvalKit (MMBench circular evaluation, no LLM judge).

    python eval_vqa.py --task textvqa --annotations ./data/textvqa/TextVQA_0.5.1_val.json \
        --image_dir ./data/textvqa/train_images --model_path ./models/Qwen2.5-VL-3B-Instruct \
        [--adapter_path ./outputs/qwen2_5_vl-finetune] --output_dir results/textvqa/ft
    python eval_vqa.py --task mmbench --tsv ./data/mmbench/mmbench_dev_en.tsv --model_path ... --output_dir ...
    python eval_vqa.py --task vqa --questions my_questions.jsonl --model_path ... --output_dir ...

One process per GPU: add --num_chunks K --chunk_idx i (eval_vqa.sh does the loop), then
    python eval_vqa.py --merge --output_dir results/textvqa/ft
Score an existing answer file ({"question_id": ..., "answer": ...} lines):
    python eval_vqa.py --task textvqa --score_only --predictions answers.jsonl --annotations ... --output_dir D

Output: <output_dir>/results.json (accuracy 0-1, n, 95% bootstrap CI, per question type / category, signature),
predictions_scored.jsonl (per-question scores), answers.jsonl. Compare runs with compare_vqa.py. Exit status: 0 done,
1 some questions failed (listed in results.json; --resume retries them), 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse

from vlmkit.cli import run_main
from vlmkit.options import build_parser as options_parser
from vlmkit.options import parse_options
from vlmkit.vqa import evaluate


def build_parser() -> argparse.ArgumentParser:
    return options_parser(evaluate.VqaOptions, __doc__)


def main(argv: list[str] | None = None) -> int:
    return evaluate.run(parse_options(evaluate.VqaOptions, argv, description=__doc__))


if __name__ == "__main__":
    run_main(main)
