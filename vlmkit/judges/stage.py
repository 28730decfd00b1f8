"""compare.py's judge stage: clair, fleur and attribute_f1 for every model, and pairwise judge votes.

It runs after the other metrics (`pipeline.run_comparison`) and adds its numbers to each model's result: value,
per-item values, the statistic its bootstrap CI and significance are drawn from, the reason when null, and a
signature `judge:<folder>@<fingerprint>|prompt:<hash>|dec:greedy-max<N>|...`. Every answer goes through the
`JudgeCache` first; the judge model is loaded only when some answer is missing, so a re-run over the same captions
never loads it.

Kept apart from the evaluator on purpose (a separate stage joining the report) so it can become a module of the
metric registry being written for vlmkit/evaluation without changes to the judging itself.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from vlmkit.evaluation.matching import MatchedPairs
from vlmkit.evaluation.metrics.judges import JUDGE_METRICS
from vlmkit.evaluation.signatures import model_fingerprint
from vlmkit.io import InputError
from vlmkit.judges import prompts
from vlmkit.judges.attributes import (
    DEFAULT_SCHEMA,
    Schema,
    item_columns,
    item_f1,
    load_schema,
    match_slots,
    summarise,
)
from vlmkit.judges.cache import JudgeCache, cache_key
from vlmkit.judges.statistics import F1Statistic, MaskedMeanStatistic
from vlmkit.votes import make_vote, now_iso

log = logging.getLogger(__name__)

EXAMPLES = 5
PAIRWISE_VOTES_FILE = "judge_votes.jsonl"


@dataclass(frozen=True)
class JudgeOptions:
    model: Path
    metrics: tuple[str, ...] = JUDGE_METRICS
    schema: Path = DEFAULT_SCHEMA
    cache: Path | None = None  # default: <output folder>/.judge_cache/answers.sqlite
    pairs: bool = False
    batch_size: int = 8
    max_new_tokens: int = 128
    device: str = "auto"


@dataclass
class JudgeScores:
    """What the judge stage computed for one model (merged into its ModelResult)."""

    metrics: dict[str, float | None] = field(default_factory=dict)
    per_sample: dict[str, np.ndarray] = field(default_factory=dict)
    statistics: dict[str, Any] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # -> "judges" in compare_<model>.json


def _listing(ids: Sequence[str], problems: Sequence[str], answers: Sequence[str]) -> dict[str, Any]:
    return {"count": len(ids), "ids": list(ids),
            "examples": [{"id": i, "problem": p, "answer": a[:300]} for i, p, a in
                         list(zip(ids, problems, answers, strict=True))[:EXAMPLES]]}


class JudgeStage:
    def __init__(self, options: JudgeOptions, cache_path: Path, objects: dict | None = None,
                 load_model: Callable[[], Any] | None = None):
        self.options = options
        for metric in options.metrics:
            if metric not in JUDGE_METRICS:
                raise InputError(f"--judge_metrics: unknown judge metric {metric!r} (choose from "
                                 f"{', '.join(JUDGE_METRICS)})")
        from vlmkit.generation.hf_backend import require_base_model_dir

        self.path = require_base_model_dir(options.model, "the judge model")
        self.schema: Schema | None = load_schema(options.schema) if "attribute_f1" in options.metrics else None
        self.fingerprint = model_fingerprint(self.path)
        self.name = self.path.name
        self.judge_id = f"{self.name}@{self.fingerprint}"
        self.decoding = f"greedy-max{options.max_new_tokens}"
        self.cache = JudgeCache(cache_path)
        self.objects = objects
        self._load = load_model or self._load_transformers
        self._model = None
        self.loaded = False
        self.pair_votes: list[dict] = []
        self.pair_problems: dict[str, Any] = {}

    # ---- the model, only when an answer is missing --------------------------------------------------------------
    def _load_transformers(self):
        from vlmkit.judges.model import JudgeModel

        return JudgeModel(self.path, device=self.options.device, max_new_tokens=self.options.max_new_tokens)

    @property
    def model(self):
        if self._model is None:
            log.info("loading the judge %s (some answers are not cached yet)", self.path)
            self._model = self._load()
            self.loaded = True
        return self._model

    def _vision_and_digits(self) -> str | None:
        """Why FLEUR cannot run with this judge, from its config and tokenizer only (no weights), or None."""
        from transformers import AutoTokenizer

        from vlmkit.judges.model import DIGITS, judge_is_vision

        if self.objects is None:
            return "needs the rendered views: pass --images_dir"
        if not judge_is_vision(self.path):
            return "needs a vision-language judge (this judge is text-only)"
        tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        if any(len(tokenizer.encode(d, add_special_tokens=False)) != 1 for d in DIGITS):
            return "the judge's tokenizer has no single token for each digit 0-9"
        return None

    # ---- cached asking ------------------------------------------------------------------------------------------
    def _ask(self, kind: str, template: str, requests: list[tuple[tuple[str, ...], str]],
             run: Callable[[list[str], list[int]], list[Any]], what: str) -> list[Any]:
        """Answers for (key inputs, prompt) requests: cached ones from the cache, the rest from ``run`` in batches
        (each batch committed to the cache at once)."""
        keys = [cache_key(kind, self.judge_id, template, self.decoding, inputs) for inputs, _ in requests]
        found = self.cache.get_many(keys)
        first_of: dict[str, int] = {}  # a repeated request (same inputs) is asked once
        for i, key in enumerate(keys):
            if key not in found:
                first_of.setdefault(key, i)
        pending = list(first_of.values())
        size = self.options.batch_size
        bar = tqdm(total=len(pending), desc=f"judge {what}", unit="answer", leave=False,
                   disable=not sys.stderr.isatty() or not pending)
        for start in range(0, len(pending), size):
            batch = pending[start:start + size]
            answers = run([requests[i][1] for i in batch], batch)
            stored = [(keys[i], a) for i, a in zip(batch, answers, strict=True)]
            self.cache.put_many(stored)
            found.update(stored)
            bar.update(len(batch))
        bar.close()
        return [found[k] for k in keys]

    def _generate(self, prompts_: list[str], _batch: list[int]) -> list[str]:
        return self.model.generate(prompts_)

    # ---- metrics ------------------------------------------------------------------------------------------------
    def _signature(self, prompt: str, extra: dict[str, Any]) -> dict[str, Any]:
        """The metric's own signature fields (the registry adds proto, ci and the versions)."""
        return {"judge": self.judge_id, "prompt": prompt, "dec": self.decoding, **extra}

    def clair(self, matched: MatchedPairs, out: JudgeScores) -> None:
        template = prompts.prompt_hash("clair")
        requests = [((c, r), prompts.CLAIR.format(candidate=c, reference=r))
                    for c, r in zip(matched.generated, matched.references, strict=True)]
        answers = self._ask("clair", template, requests, self._generate, "clair")
        values, bad, why, raw, reasons = [], [], [], [], []
        for item, answer in zip(matched.ids, answers, strict=True):
            score, reason, problem = prompts.parse_clair(answer)
            values.append(math.nan if score is None else score)
            reasons.append(reason)
            if problem:
                bad.append(item)
                why.append(problem)
                raw.append(answer)
        self._masked("clair", np.array(values), out, f"{len(bad)} of {len(values)} judge answers were not JSON "
                     "with a 0-100 score (listed under judges.clair.unparseable)")
        out.details["clair"] = {"unparseable": _listing(bad, why, raw), "answers": len(values),
                                "scale": "score/100",
                                "signature": self._signature(template, {"parse": "json-score", "scale": "0-1"})}

    def _masked(self, metric: str, values: np.ndarray, out: JudgeScores, all_bad: str) -> None:
        out.per_sample[metric] = values
        ok = np.isfinite(values)
        if ok.any():
            out.metrics[metric] = float(values[ok].mean())
            out.statistics[metric] = MaskedMeanStatistic(values)
        else:
            out.metrics[metric] = None
            out.reasons[metric] = all_bad

    def fleur(self, matched: MatchedPairs, out: JudgeScores, reason: str | None) -> None:
        template = prompts.prompt_hash("fleur")
        signature = self._signature(template, {"score": "E[digit]-2dec", "views": "all"})
        if reason:
            out.metrics["fleur"] = None
            out.reasons["fleur"] = reason
            return
        from vlmkit.multiview import load_view_images

        assert self.objects is not None
        views_key = {}
        for item in dict.fromkeys(matched.ids):
            obj = self.objects.get(item)
            if obj is None:
                raise InputError(f"no object folder for id {item} (fleur needs its views)")
            views_key[item] = ";".join(f"{v}:{p.name}:{p.stat().st_size}" for v, p in obj.views_in_order())
        requests = [((c, item, views_key[item]), prompts.FLEUR.format(candidate=c))
                    for c, item in zip(matched.generated, matched.ids, strict=True)]

        def run(texts: list[str], batch: list[int]) -> list[Any]:
            images = []
            for i in batch:
                obj = self.objects[matched.ids[i]]
                _, imgs, problems = load_view_images(obj, [v for v, _ in obj.views_in_order()])
                if problems:
                    raise InputError(problems[0])
                images.append(imgs)
            first, mass1 = self.model.digit_probabilities(texts, images, [prompts.FLEUR_ANSWER_PREFIX] * len(texts))
            second_prefix = [prompts.FLEUR_ANSWER_PREFIX + str(int(np.argmax(p))) for p in first]
            second, mass2 = self.model.digit_probabilities(texts, images, second_prefix)
            return [{"p1": p1.tolist(), "p2": p2.tolist(), "mass1": float(m1), "mass2": float(m2)}
                    for p1, p2, m1, m2 in zip(first, second, mass1, mass2, strict=True)]

        answers = self._ask("fleur", template, requests, run, "fleur")
        digits = np.arange(10)
        values = np.array([float(np.dot(a["p1"], digits) / 10 + np.dot(a["p2"], digits) / 100) for a in answers])
        self._masked("fleur", values, out, "no FLEUR score")
        out.details["fleur"] = {"answers": len(values), "signature": signature,
                                "mean_digit_mass": float(np.mean([a["mass1"] for a in answers])),
                                "definition": "sum_d p1(d)*d/10 + sum_d p2(d)*d/100 after the prefix "
                                              f"{prompts.FLEUR_ANSWER_PREFIX!r}, digits renormalised"}

    def attribute_f1(self, matched: MatchedPairs, out: JudgeScores,
                     extracted: dict[str, tuple[dict | None, str | None, str]]) -> None:
        assert self.schema is not None
        per_item, bad, why, raw = [], [], [], []
        for item, c, r in zip(matched.ids, matched.generated, matched.references, strict=True):
            (cs, cp, ca), (rs, rp, ra) = extracted[c], extracted[r]
            if cs is None or rs is None:
                per_item.append(None)
                bad.append(item)
                why.append(f"caption: {cp}" if cs is None else f"reference: {rp}")
                raw.append(ca if cs is None else ra)
            else:
                per_item.append(match_slots(cs, rs, self.schema))
        columns = item_columns(per_item)
        values = item_f1(columns)
        values[[i for i, c in enumerate(per_item) if c is None]] = math.nan
        out.per_sample["attribute_f1"] = values
        summary = summarise(per_item, self.schema)
        out.metrics["attribute_f1"] = summary["overall"]["f1"]
        if summary["overall"]["f1"] is None:
            out.reasons["attribute_f1"] = (f"no slot could be matched: {len(bad)} of {len(per_item)} extractions "
                                           "failed (judges.attribute_f1.unparseable), the rest stated no slot")
        else:
            out.statistics["attribute_f1"] = F1Statistic(columns)
        prompt = prompts.prompt_hash("attribute_f1", _schema_text(self.schema))
        out.details["attribute_f1"] = {**summary, "unparseable": _listing(bad, why, raw),
                                       "definition": "micro F1 = 2TP/(2TP+FP+FN) over all slots of all items",
                                       "signature": self._signature(prompt, {
                                           "schema": f"{self.schema.name}@{_schema_hash(self.schema)}",
                                           "agg": "micro-f1"})}

    def _extract(self, texts: list[str]) -> dict[str, tuple[dict | None, str | None, str]]:
        assert self.schema is not None
        keys = self.schema.slot_names
        slots = self.schema.describe_slots()
        template = prompts.prompt_hash("attribute_f1", _schema_text(self.schema))
        distinct = list(dict.fromkeys(texts))
        requests = [((t,), prompts.ATTRIBUTES.format(slots=slots, text=t, keys=", ".join(keys))) for t in distinct]
        answers = self._ask("attributes", template, requests, self._generate, "attributes")
        out = {}
        for text, answer in zip(distinct, answers, strict=True):
            parsed, problem = prompts.parse_attributes(answer, keys)
            out[text] = (parsed, problem, answer)
        return out

    def pairwise(self, jobs: Sequence[tuple[str, MatchedPairs]]) -> None:
        """Both shown orders of every pair of models on every item they share, as votes (unparseable: listed)."""
        template = prompts.prompt_hash("pairwise")
        captions = {name: dict(zip(m.ids, m.generated, strict=True)) for name, m in jobs}
        references = {i: r for _, m in jobs for i, r in zip(m.ids, m.references, strict=True)}
        requests, meta = [], []
        for a, b in combinations([name for name, _ in jobs], 2):
            for item in [i for i in captions[a] if i in captions[b]]:
                for first, second in ((a, b), (b, a)):
                    c1, c2 = captions[first][item], captions[second][item]
                    requests.append(((c1, c2, references[item]), prompts.PAIRWISE.format(
                        reference=references[item], first=c1, second=c2)))
                    meta.append((item, a, b, first, second))
        answers = self._ask("pairwise", template, requests, self._generate, "pairs")
        bad, why, raw = [], [], []
        time = now_iso()
        for (item, a, b, first, second), answer in zip(meta, answers, strict=True):
            verdict = prompts.parse_pairwise(answer)
            if verdict is None:
                bad.append(f"{item}:{first}|{second}")
                why.append("not one of A, B, tie, both_bad")
                raw.append(answer)
                continue
            winner = verdict
            if verdict in ("first", "second"):
                shown_winner = first if verdict == "first" else second
                winner = "left" if shown_winner == a else "right"
            self.pair_votes.append(make_vote(item_id=item, left=a, right=b, winner=winner, voter=self.judge_id,
                                             source=f"judge:{self.name}", shown_order=[first, second], time=time,
                                             prompt=template, answer=answer[:200]))
        self.pair_problems = {"asked": len(requests), "votes": len(self.pair_votes),
                              "unparseable": _listing(bad, why, raw)}

    # ---- everything ---------------------------------------------------------------------------------------------
    def judge_all(self, jobs: Sequence[tuple[str, MatchedPairs]]) -> dict[str, JudgeScores]:
        metrics = self.options.metrics
        fleur_reason = self._vision_and_digits() if "fleur" in metrics else None
        extracted = {}
        if "attribute_f1" in metrics:
            extracted = self._extract([t for _, m in jobs for t in (*m.generated, *m.references)])
        out = {}
        for name, matched in jobs:
            scores = JudgeScores()
            if "clair" in metrics:
                self.clair(matched, scores)
            if "fleur" in metrics:
                self.fleur(matched, scores, fleur_reason)
            if "attribute_f1" in metrics:
                self.attribute_f1(matched, scores, extracted)
            out[name] = scores
        if self.options.pairs and len(jobs) > 1:
            self.pairwise(jobs)
        log.info("judge %s: %d answers from the cache, %d new%s", self.judge_id, self.cache.hits, self.cache.misses,
                 "" if self.loaded else " (judge not loaded)")
        return out

    def describe(self) -> dict[str, Any]:
        return {"judge": self.judge_id, "path": str(self.path), "decoding": self.decoding,
                "cache": str(self.cache.path), "cache_hits": self.cache.hits, "cache_misses": self.cache.misses,
                "loaded": self.loaded, "metrics": list(self.options.metrics),
                "schema": self.schema.path if self.schema else None}


def _schema_text(schema: Schema) -> str:
    return schema.describe_slots() + "\n" + ",".join(schema.slot_names)


def _schema_hash(schema: Schema) -> str:
    import hashlib
    import json

    data = [(s.name, s.kind, dict(sorted(s.synonyms.items())), s.threshold) for s in schema.slots]
    raw = json.dumps([data, schema.default_era, schema.circa_years, sorted(schema.stop_words)])
    return hashlib.sha256(raw.encode()).hexdigest()[:8]

