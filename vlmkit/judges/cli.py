"""compare.py's judge options (kept here so the entry script stays short)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vlmkit.evaluation.metrics.judges import JUDGE_METRICS
from vlmkit.io import InputError
from vlmkit.judges.attributes import DEFAULT_SCHEMA
from vlmkit.judges.stage import JudgeOptions


def add_judge_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("judge metrics (off by default; see docs/judges.md)")
    group.add_argument("--judge_model", type=Path, default=None,
                       help="local judge model folder (a VLM for fleur; any chat LLM/VLM for clair, attribute_f1 "
                            "and --judge_pairs), run with transformers, greedy; enables the judge metrics")
    group.add_argument("--judge_metrics", default=",".join(JUDGE_METRICS),
                       help="comma list of judge metrics to compute")
    group.add_argument("--judge_schema", type=Path, default=DEFAULT_SCHEMA,
                       help="attribute_f1's slot schema (YAML/JSON; replace it for your domain)")
    group.add_argument("--judge_pairs", action="store_true",
                       help="also ask the judge which of two models' captions is better, in both shown orders, "
                            "and write the verdicts to judge_votes.jsonl (votes format, for rate.py)")
    group.add_argument("--judge_cache", type=Path, default=None,
                       help="sqlite file caching every judge answer (default: <output folder>/.judge_cache/"
                            "answers.sqlite); a re-run judges only what is new")
    group.add_argument("--judge_batch_size", type=int, default=8, help="prompts per judge batch")
    group.add_argument("--judge_max_new_tokens", type=int, default=128, help="longest judge answer (greedy)")


def judge_options(args: argparse.Namespace) -> JudgeOptions | None:
    if args.judge_model is None:
        for flag in ("judge_pairs",):
            if getattr(args, flag):
                raise InputError(f"--{flag} needs --judge_model")
        return None
    metrics = tuple(m.strip() for m in args.judge_metrics.split(",") if m.strip())
    unknown = [m for m in metrics if m not in JUDGE_METRICS]
    if unknown or not metrics:
        raise InputError(f"--judge_metrics: unknown {', '.join(unknown) or '(empty)'}; choose from "
                         f"{', '.join(JUDGE_METRICS)}")
    for flag in ("judge_batch_size", "judge_max_new_tokens"):
        if getattr(args, flag) < 1:
            raise InputError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    return JudgeOptions(model=args.judge_model, metrics=metrics, schema=args.judge_schema, cache=args.judge_cache,
                        pairs=args.judge_pairs, batch_size=args.judge_batch_size,
                        max_new_tokens=args.judge_max_new_tokens, device=args.device)
