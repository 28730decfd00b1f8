"""compare.py's judge flags: one options group it nests (or adds to its parser), turned into `JudgeOptions`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from vlmkit.evaluation.metrics.judges import JUDGE_METRICS
from vlmkit.io import InputError
from vlmkit.judges.attributes import DEFAULT_SCHEMA
from vlmkit.judges.stage import JudgeOptions
from vlmkit.options import Options, opt
from vlmkit.ranges import POSITIVE


@dataclass
class JudgeFlags(Options):
    """The judge metrics' settings; off unless --judge_model is given."""

    TITLE: ClassVar[str | None] = "judge metrics (off by default; see docs/judges.md)"
    judge_model: Path | None = opt(None, "local judge model folder (a VLM for fleur; any chat LLM/VLM for clair, "
                                         "attribute_f1 and --judge_pairs), run with transformers, greedy; enables the "
                                         "judge metrics")
    judge_metrics: str = opt(",".join(JUDGE_METRICS), "comma list of judge metrics to compute")
    judge_schema: Path = opt(DEFAULT_SCHEMA, "attribute_f1's slot schema (YAML/JSON; replace it for your domain)")
    judge_pairs: bool = opt(False, "also ask the judge which of two models' captions is better, in both shown "
                                   "orders, and write the verdicts to judge_votes.jsonl (votes format, for rate.py)")
    judge_cache: Path | None = opt(None, "sqlite file caching every judge answer (default: <output folder>/"
                                         ".judge_cache/answers.sqlite); a re-run judges only what is new")
    judge_batch_size: int = opt(8, "prompts per judge batch", range=POSITIVE)
    judge_max_new_tokens: int = opt(128, "longest judge answer (greedy)", range=POSITIVE)

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(m.strip() for m in self.judge_metrics.split(",") if m.strip())

    def check(self) -> None:
        if self.judge_model is None:
            if self.judge_pairs:
                raise InputError("--judge_pairs needs --judge_model")
            return
        unknown = [m for m in self.metrics if m not in JUDGE_METRICS]
        if unknown or not self.metrics:
            raise InputError(f"--judge_metrics: unknown {', '.join(unknown) or '(empty)'}; choose from "
                             f"{', '.join(JUDGE_METRICS)}")


def judge_options(flags: JudgeFlags, device: str) -> JudgeOptions | None:
    """The judge stage's options (None: no judge model, no judge metrics); `device` is compare.py's --device."""
    if flags.judge_model is None:
        return None
    return JudgeOptions(model=flags.judge_model, metrics=flags.metrics, schema=flags.judge_schema,
                        cache=flags.judge_cache, pairs=flags.judge_pairs, batch_size=flags.judge_batch_size,
                        max_new_tokens=flags.judge_max_new_tokens, device=device)
