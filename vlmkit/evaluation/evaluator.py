"""Scoring matched caption pairs: every metric of every model from one set of loaded encoders.

`CaptionEvaluator.evaluate_all` is the one place where the work is ordered for speed: the pycocoevalcap work of
every model is queued on the Java thread first, then all distinct texts (references once, each model's captions)
are encoded in a single pass per encoder, then the cheap vectorised metrics run per model.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from vlmkit.evaluation.clip_scores import clip_image_scores, ref_clip_scores, rowwise_cosine
from vlmkit.evaluation.coco_metrics import COCO_METRICS, SPICE_REASON, CocoScorer
from vlmkit.evaluation.encoders import ClipEncoder, EmbeddingStore, TextEncoder
from vlmkit.evaluation.frechet import FrechetResult, frechet_result
from vlmkit.evaluation.lexical import jaccard_per_pair
from vlmkit.evaluation.matching import MatchedPairs
from vlmkit.evaluation.metrics import ALL_GROUPS, ALL_METRICS, METRIC_GROUPS
from vlmkit.evaluation.overall import OVERALL_WEIGHTS, OverallScore, overall_score
from vlmkit.evaluation.retrieval import DEFAULT_KS, DEFAULT_MAX_CHUNK_ELEMENTS, TIE_EPS, RetrievalResult, rank_counts
from vlmkit.io import InputError
from vlmkit.multiview import ObjectFolder, load_view_images

log = logging.getLogger(__name__)

RETRIEVAL_TIE_RULE = (f"a reference within {TIE_EPS:g} of the correct reference's cosine is a tie; ties are broken "
                      f"at random in expectation: with g better and t tied references a query counts "
                      f"clip((k - g) / (t + 1), 0, 1) toward R@k")


@dataclass
class ModelResult:
    """Everything computed for one model; `report.py` turns it into files."""

    model_name: str
    matched: MatchedPairs
    metrics: dict[str, float | None]
    reasons: dict[str, str]  # metric -> why it is null
    per_sample: dict[str, np.ndarray]
    overall: OverallScore
    retrieval: RetrievalResult | None = None
    fid: FrechetResult | None = None
    encoders: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


class CaptionEvaluator:
    def __init__(self, sentence_encoder: TextEncoder | None = None, clip: ClipEncoder | None = None,
                 clip_reason: str | None = None, coco: CocoScorer | None = None, coco_reason: str | None = None,
                 groups: frozenset[str] = frozenset(ALL_GROUPS), objects: dict[str, ObjectFolder] | None = None,
                 retrieval_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS, ks: Sequence[int] = DEFAULT_KS):
        self.sentence_store = EmbeddingStore(sentence_encoder) if sentence_encoder is not None else None
        self.clip = clip
        self.clip_store = EmbeddingStore(clip) if clip is not None else None
        self.clip_reason = clip_reason
        self.coco = coco
        self.coco_reason = coco_reason
        self.groups = groups
        self.objects = objects
        self.retrieval_chunk_elements = retrieval_chunk_elements
        self.ks = tuple(ks)
        self.timings: dict[str, float] = {}  # seconds per stage of the last evaluate_all (for bench/)
        self._view_embeddings: dict[str, np.ndarray] = {}
        self._view_names: dict[str, list[str]] = {}

    # ---- what can be computed, and why not -------------------------------------------------------------------
    def _group_reason(self, group: str) -> str | None:
        if group not in self.groups:
            return "not requested (--metrics)"
        if group in ("semantic", "fid", "retrieval") and self.sentence_store is None:
            return "no sentence encoder loaded"
        if group in ("clip", "clip_image") and self.clip is None:
            return self.clip_reason or "no CLIP model loaded"
        if group == "clip_image" and self.objects is None:
            return "needs the rendered views: pass --images_dir"
        if group == "coco" and self.coco is None:
            return self.coco_reason or "pycocoevalcap not loaded"
        return None

    def encoders_used(self) -> dict[str, Any]:
        def describe(encoder: Any) -> dict[str, Any]:
            if hasattr(encoder, "describe"):
                return encoder.describe()
            return {"name": getattr(encoder, "name", type(encoder).__name__), "dim": getattr(encoder, "dim", None)}

        sentence = describe(self.sentence_store.encoder) if self.sentence_store else None
        return {
            "sentence_encoder": sentence,
            "retrieval_encoder": sentence,
            "fid_encoder": sentence,
            "clip": describe(self.clip) if self.clip else None,
            "clip_unavailable_reason": None if self.clip else self.clip_reason,
        }

    # ---- images ------------------------------------------------------------------------------------------------
    def _embed_views(self, ids: Sequence[str]) -> None:
        """CLIP embeddings of every view of each item (once per run, shared by all models)."""
        todo = [i for i in dict.fromkeys(ids) if i not in self._view_embeddings]
        assert self.objects is not None and self.clip is not None
        for item in tqdm(todo, desc="CLIP views", unit="item", disable=not sys.stderr.isatty() or len(todo) < 20,
                         leave=False):
            obj = self.objects[item]
            views, images, problems = load_view_images(obj, [v for v, _ in obj.views_in_order()])
            if problems:
                raise InputError(problems[0])
            if not images:
                raise InputError(f"{obj.path}: no view images (front/back/left/right/top/bottom) for id {item}")
            self._view_embeddings[item] = self.clip.encode_images(images)
            self._view_names[item] = views

    # ---- the work ------------------------------------------------------------------------------------------
    def evaluate_all(self, jobs: Sequence[tuple[str, MatchedPairs]]) -> list[ModelResult]:
        """Score every (model name, matched pairs) job."""
        self.timings = {}
        coco_futures = {}
        if self._group_reason("coco") is None:
            assert self.coco is not None
            coco_futures = {name: self.coco.submit(m.generated, m.references) for name, m in jobs}
        if self._group_reason("clip_image") is None:  # first: a corrupt render fails before minutes of encoding
            start = time.perf_counter()
            self._embed_views([i for _, m in jobs for i in m.ids])
            self.timings["clip_image_encoding"] = time.perf_counter() - start
        all_texts = [t for _, m in jobs for t in (*m.references, *m.generated)]
        if self.sentence_store is not None and self.groups & {"semantic", "fid", "retrieval"}:
            start = time.perf_counter()
            self.sentence_store.add(all_texts)
            self.timings["sentence_encoding"] = time.perf_counter() - start
            self.timings["sentence_texts"] = len(self.sentence_store)
            log.info("sentence embeddings: %d distinct texts in %.1f s", len(self.sentence_store),
                     self.timings["sentence_encoding"])
        if self.clip_store is not None and self.groups & {"clip", "clip_image"}:
            start = time.perf_counter()
            self.clip_store.add(all_texts)
            self.timings["clip_text_encoding"] = time.perf_counter() - start
        start = time.perf_counter()
        results = [self._evaluate(name, matched, coco_futures.get(name)) for name, matched in jobs]
        self.timings["metrics_and_coco_wait"] = time.perf_counter() - start
        return results

    def _evaluate(self, name: str, matched: MatchedPairs, coco_future) -> ModelResult:
        start = time.perf_counter()
        metrics: dict[str, float | None] = dict.fromkeys(ALL_METRICS)
        reasons: dict[str, str] = {}
        per: dict[str, np.ndarray] = {}
        notes: list[str] = []
        for group, names in METRIC_GROUPS.items():
            reason = self._group_reason(group)
            if reason:
                reasons.update(dict.fromkeys(names, reason))
        retrieval = fid = None

        if self.sentence_store is not None and not all(self._group_reason(g) for g in ("semantic", "fid", "retrieval")):
            gen = self.sentence_store.embed(matched.generated)
            ref = self.sentence_store.embed(matched.references)
            if self._group_reason("semantic") is None:
                per["semantic_similarity"] = rowwise_cosine(gen, ref)
            if self._group_reason("retrieval") is None:
                retrieval = rank_counts(gen, ref, max_chunk_elements=self.retrieval_chunk_elements,
                                        progress=sys.stderr.isatty())
                for k in self.ks:
                    per[f"r_at_{k}"] = retrieval.hits(k)
                per["retrieval_rank"] = retrieval.best_rank
                per["retrieval_ties"] = retrieval.tied
                if retrieval.pool_size <= max(self.ks):
                    notes.append(f"retrieval pool N={retrieval.pool_size} <= {max(self.ks)}: R@k for k >= N is "
                                 f"1.0 by construction (chance level 1.0)")
            if self._group_reason("fid") is None:
                fid = frechet_result(gen, ref)
                metrics["fid_score"] = fid.value
                if fid.reason:
                    reasons["fid_score"] = fid.reason
                if fid.warning:
                    notes.append(f"fid_score: {fid.warning}")

        if self._group_reason("lexical") is None:
            per["lexical_similarity"] = jaccard_per_pair(matched.generated, matched.references)

        if self.clip_store is not None and (self._group_reason("clip") is None
                                            or self._group_reason("clip_image") is None):
            c_gen = self.clip_store.embed(matched.generated)
            text_cos = rowwise_cosine(c_gen, self.clip_store.embed(matched.references))
            if self._group_reason("clip") is None:
                per["clip_score"] = text_cos
            if self._group_reason("clip_image") is None:
                views = [self._view_embeddings[i] for i in matched.ids]
                per["clip_image_score"] = clip_image_scores(views, c_gen)
                per["ref_clip_score"] = ref_clip_scores(per["clip_image_score"], text_cos)
                per["views_used"] = np.array([len(self._view_names[i]) for i in matched.ids])

        if coco_future is not None:
            coco = coco_future.result()
            if coco.reason:
                reasons.update(dict.fromkeys(COCO_METRICS, coco.reason))
            else:
                for metric in COCO_METRICS:
                    metrics[metric] = coco.corpus[metric]
                    per[metric] = coco.per_sample[metric]
        if "coco" in self.groups:
            reasons["spice"] = SPICE_REASON  # whatever else happened: SPICE is never run

        for metric in ("semantic_similarity", "lexical_similarity", "clip_score", "clip_image_score",
                       "ref_clip_score", *(f"r_at_{k}" for k in self.ks)):
            if metric in per:
                metrics[metric] = float(np.mean(per[metric]))
        overall = overall_score(metrics)
        metrics["overall_score"] = overall.value
        if overall.value is not None:
            per["overall_score"] = _per_item_overall(per, overall)
        if overall.partial:
            notes.append(f"overall_score is partial: computed from {', '.join(overall.components)} "
                         f"({overall.weight_covered:.0%} of the weight); missing {', '.join(overall.missing)}")
        return ModelResult(name, matched, metrics, {k: v for k, v in reasons.items() if metrics.get(k) is None}, per,
                           overall, retrieval, fid, self.encoders_used(), notes, time.perf_counter() - start)


def _per_item_overall(per: dict[str, np.ndarray], overall: OverallScore) -> np.ndarray:
    """The overall score of each item; their mean is the corpus overall score (every component is a mean)."""
    total = sum(OVERALL_WEIGHTS[k] * per[k] for k in overall.components)
    return np.asarray(total, dtype=np.float64) / overall.weight_covered
