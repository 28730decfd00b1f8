"""Scoring matched caption pairs: every metric of every model from one set of loaded encoders.

`CaptionEvaluator.evaluate_all` is the one place where the work is ordered for speed: the pycocoevalcap work of
every model is queued on the Java thread first, then all distinct texts (references once, each model's captions)
are encoded in a single pass per encoder, then the cheap vectorised metrics run per model. Each metric group is
one small method returning a `GroupScores` (values, per-item scores, the statistic its CI is drawn from, and
why a metric is missing); the protocol (`protocols.py`) decides which encoder and rule each group uses.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from vlmkit.evaluation.bootstrap import (
    BleuStatistic,
    BootstrapSettings,
    Comparison,
    FrechetStatistic,
    MeanStatistic,
    Statistic,
    compare_to_best,
    confidence_intervals,
)
from vlmkit.evaluation.clip_scores import clip_image_scores, ref_clip_scores, rowwise_cosine
from vlmkit.evaluation.coco_metrics import COCO_METRICS, SPICE_REASON, CocoScorer
from vlmkit.evaluation.encoders import ClipEncoder, EmbeddingStore, TextEncoder
from vlmkit.evaluation.frechet import FrechetResult, frechet_result
from vlmkit.evaluation.lexical import jaccard_per_pair
from vlmkit.evaluation.matching import ID_SAMPLE, MatchedPairs
from vlmkit.evaluation.metrics import ALL_GROUPS, ALL_METRICS, METRIC_GROUPS
from vlmkit.evaluation.overall import OVERALL_WEIGHTS, OverallScore, overall_score
from vlmkit.evaluation.protocols import PROTOCOLS, Protocol
from vlmkit.evaluation.retrieval import DEFAULT_KS, DEFAULT_MAX_CHUNK_ELEMENTS, TIE_RULES, RetrievalResult, rank_counts
from vlmkit.evaluation.signatures import metric_signatures
from vlmkit.ids import VIEWS
from vlmkit.io import InputError
from vlmkit.multiview import ObjectFolder, load_view_images

log = logging.getLogger(__name__)

RETRIEVAL_TIE_RULE = TIE_RULES["expected"]
METEOR_NO_CI = ("corpus METEOR is computed by the Java scorer from pooled statistics that pycocoevalcap does not "
                "expose (its per-item scores do not average to it): no CI")


@dataclass(kw_only=True)
class ModelResult:
    """Everything computed for one model; `report.py` turns it into files."""

    model_name: str
    matched: MatchedPairs
    metrics: dict[str, float | None]
    reasons: dict[str, str]  # metric -> why it is null
    per_sample: dict[str, np.ndarray]
    overall: OverallScore
    protocol: str = "vlmkit"
    retrieval: RetrievalResult | None = None
    fid: FrechetResult | None = None
    encoders: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    statistics: dict[str, Statistic] = field(default_factory=dict)  # what each metric's CI is drawn from
    confidence_intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    ci_unavailable: dict[str, str] = field(default_factory=dict)  # metric with a value but no CI -> why
    signatures: dict[str, str] = field(default_factory=dict)
    views: dict[str, Any] | None = None  # views used / missing (image-grounded CLIPScore)
    seconds: float = 0.0


@dataclass
class GroupScores:
    """What one metric group computed for one model."""

    metrics: dict[str, float | None] = field(default_factory=dict)
    per_sample: dict[str, np.ndarray] = field(default_factory=dict)
    statistics: dict[str, Statistic] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    ci_unavailable: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    retrieval: RetrievalResult | None = None
    fid: FrechetResult | None = None

    def mean(self, metric: str, values: np.ndarray) -> None:
        """A metric that is the mean of its per-item scores."""
        values = np.asarray(values, dtype=np.float64)
        self.per_sample[metric] = values
        self.metrics[metric] = float(values.mean())
        self.statistics[metric] = MeanStatistic(values)

    def merge(self, other: GroupScores) -> None:
        for name in ("metrics", "per_sample", "statistics", "reasons", "ci_unavailable"):
            getattr(self, name).update(getattr(other, name))
        self.notes += other.notes
        self.retrieval = other.retrieval or self.retrieval
        self.fid = other.fid or self.fid


class CaptionEvaluator:
    def __init__(self, *, sentence_encoder: TextEncoder | None = None, sentence_reason: str | None = None,
                 clip: ClipEncoder | None = None, clip_reason: str | None = None, coco: CocoScorer | None = None,
                 coco_reason: str | None = None, groups: frozenset[str] = frozenset(ALL_GROUPS),
                 objects: dict[str, ObjectFolder] | None = None, protocol: Protocol = PROTOCOLS["vlmkit"],
                 bootstrap: BootstrapSettings | None = None,
                 retrieval_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS, ks: Sequence[int] = DEFAULT_KS):
        self.protocol = protocol
        # vlmkit: one L2-normalised store for semantic/retrieval/FD; vasevqa3d: FD only, embeddings as returned.
        self.sentence_store = (EmbeddingStore(sentence_encoder, normalise=protocol.fid_normalised)
                               if sentence_encoder is not None else None)
        self.sentence_reason = sentence_reason
        self.clip = clip
        self.clip_store = EmbeddingStore(clip) if clip is not None else None
        self.clip_reason = clip_reason
        self.coco = coco
        self.coco_reason = coco_reason
        self.groups = groups
        self.objects = objects
        self.bootstrap = bootstrap or BootstrapSettings()
        self.retrieval_chunk_elements = retrieval_chunk_elements
        self.ks = tuple(ks)
        self.timings: dict[str, float] = {}  # seconds per stage of the last evaluate_all (for bench/)
        self._view_embeddings: dict[str, np.ndarray] = {}
        self._view_names: dict[str, list[str]] = {}

    # ---- what can be computed, and why not -------------------------------------------------------------------
    def _group_reason(self, group: str) -> str | None:
        if group not in self.groups:
            return "not requested (--metrics)"
        encoder = self.protocol.encoder_of(group)
        if encoder == "sentence" and self.sentence_store is None:
            return self.sentence_reason or "no sentence encoder loaded"
        if encoder == "clip" and self.clip is None:
            return self.clip_reason or "no CLIP model loaded"
        if group == "clip_image" and self.objects is None:
            return "needs the rendered views: pass --images_dir"
        if group == "coco" and self.coco is None:
            return self.coco_reason or "pycocoevalcap not loaded"
        return None

    def _store(self, group: str) -> EmbeddingStore:
        store = self.sentence_store if self.protocol.encoder_of(group) == "sentence" else self.clip_store
        assert store is not None
        return store

    def encoders_used(self) -> dict[str, Any]:
        def describe(encoder: Any) -> dict[str, Any]:
            if hasattr(encoder, "describe"):
                return encoder.describe()
            return {"name": getattr(encoder, "name", type(encoder).__name__), "dim": getattr(encoder, "dim", None)}

        sentence = describe(self.sentence_store.encoder) if self.sentence_store else None
        clip = describe(self.clip) if self.clip else None
        by_kind = {"sentence": sentence, "clip": clip}
        return {
            "protocol": self.protocol.name,
            "sentence_encoder": sentence,
            "semantic_encoder": by_kind[self.protocol.semantic_encoder],
            "retrieval_encoder": by_kind[self.protocol.retrieval_encoder],
            "fid_encoder": sentence,
            "clip": clip,
            "clip_unavailable_reason": None if self.clip else self.clip_reason,
            "sentence_unavailable_reason": None if self.sentence_store else self.sentence_reason,
        }

    # ---- images ------------------------------------------------------------------------------------------------
    def _embed_views(self, ids: Sequence[str]) -> None:
        """CLIP embeddings of every view of each item (once per run, shared by all models)."""
        todo = [i for i in dict.fromkeys(ids) if i not in self._view_embeddings]
        assert self.objects is not None and self.clip is not None
        incomplete: dict[str, list[str]] = {}
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
            if len(views) < len(VIEWS):
                incomplete[item] = [v for v in VIEWS if v not in views]
        if incomplete:
            shown = "; ".join(f"{item}: {', '.join(missing)}" for item, missing in list(incomplete.items())[:5])
            log.warning("CLIPScore: %d of %d objects miss views and are scored on the views they have (%s%s)",
                        len(incomplete), len(todo), shown, "; ..." if len(incomplete) > 5 else "")

    def _views_summary(self, ids: Sequence[str]) -> dict[str, Any]:
        missing = {i: [v for v in VIEWS if v not in self._view_names[i]] for i in ids}
        incomplete = [i for i in ids if missing[i]]
        return {"expected_per_item": len(VIEWS), "views_used": sum(len(self._view_names[i]) for i in ids),
                "views_missing": sum(len(m) for m in missing.values()), "items_with_missing_views": len(incomplete),
                "ids": incomplete[:ID_SAMPLE],
                "missing_by_view": {v: sum(v in missing[i] for i in ids) for v in VIEWS}}

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
        if self.sentence_store is not None and self.protocol.groups_needing("sentence", self.groups):
            start = time.perf_counter()
            self.sentence_store.add(all_texts)
            self.timings["sentence_encoding"] = time.perf_counter() - start
            self.timings["sentence_texts"] = len(self.sentence_store)
            log.info("sentence embeddings: %d distinct texts in %.1f s", len(self.sentence_store),
                     self.timings["sentence_encoding"])
        if self.clip_store is not None and self.protocol.groups_needing("clip", self.groups):
            start = time.perf_counter()
            self.clip_store.add(all_texts)
            self.timings["clip_text_encoding"] = time.perf_counter() - start
        start = time.perf_counter()
        self.timings["bootstrap"] = 0.0
        results = [self._evaluate(name, matched, coco_futures.get(name)) for name, matched in jobs]
        self.timings["metrics_and_coco_wait"] = time.perf_counter() - start
        return results

    def _group_methods(self) -> dict[str, Callable[[MatchedPairs], GroupScores]]:
        return {"semantic": self._semantic, "retrieval": self._retrieval, "fid": self._fid, "lexical": self._lexical,
                "clip": self._clip_text, "clip_image": self._clip_image}

    def _evaluate(self, name: str, matched: MatchedPairs, coco_future) -> ModelResult:
        start = time.perf_counter()
        scores = GroupScores()
        for group, method in self._group_methods().items():
            reason = self._group_reason(group)
            if reason:
                scores.reasons.update(dict.fromkeys(METRIC_GROUPS[group], reason))
            else:
                scores.merge(method(matched))
        coco_reason = self._group_reason("coco")
        if coco_reason:
            scores.reasons.update(dict.fromkeys(METRIC_GROUPS["coco"], coco_reason))
        elif coco_future is not None:
            scores.merge(self._coco(coco_future))
        if "coco" in self.groups:
            scores.reasons["spice"] = SPICE_REASON  # whatever else happened: SPICE is never run
        metrics: dict[str, float | None] = dict.fromkeys(ALL_METRICS)
        metrics.update(scores.metrics)
        overall = self._overall(metrics, scores)
        cis, ci_methods = self._confidence(scores, len(matched))
        views = self._views_summary(matched.ids) if "views_used" in scores.per_sample else None
        encoders = self.encoders_used()
        signatures = metric_signatures(
            protocol=self.protocol, metrics=metrics, encoders=encoders, n_items=len(matched),
            pool_size=scores.retrieval.pool_size if scores.retrieval else None, ci_methods=ci_methods,
            overall_components=overall.components, views=len(VIEWS))
        return ModelResult(
            model_name=name, matched=matched, metrics=metrics,
            reasons={k: v for k, v in scores.reasons.items() if metrics.get(k) is None}, per_sample=scores.per_sample,
            overall=overall, protocol=self.protocol.name, retrieval=scores.retrieval, fid=scores.fid,
            encoders=encoders, notes=scores.notes, statistics=scores.statistics, confidence_intervals=cis,
            ci_unavailable={m: r for m, r in scores.ci_unavailable.items() if metrics.get(m) is not None},
            signatures=signatures, views=views, seconds=time.perf_counter() - start)

    # ---- one method per metric group -------------------------------------------------------------------------
    def _pair_embeddings(self, group: str, matched: MatchedPairs) -> tuple[np.ndarray, np.ndarray]:
        store = self._store(group)
        return store.embed(matched.generated), store.embed(matched.references)

    def _semantic(self, matched: MatchedPairs) -> GroupScores:
        out = GroupScores()
        out.mean("semantic_similarity", rowwise_cosine(*self._pair_embeddings("semantic", matched)))
        return out

    def _retrieval(self, matched: MatchedPairs) -> GroupScores:
        out = GroupScores()
        gen, ref = self._pair_embeddings("retrieval", matched)
        result = rank_counts(gen, ref, max_chunk_elements=self.retrieval_chunk_elements,
                             progress=sys.stderr.isatty(), rule=self.protocol.retrieval_rule)
        for k in self.ks:
            out.mean(f"r_at_{k}", result.hits(k))
        out.per_sample["retrieval_rank"] = result.best_rank
        out.per_sample["retrieval_ties"] = result.tied
        out.retrieval = result
        if result.pool_size <= max(self.ks):
            out.notes.append(f"retrieval pool N={result.pool_size} <= {max(self.ks)}: R@k for k >= N is "
                             f"1.0 by construction (chance level 1.0)")
        return out

    def _fid(self, matched: MatchedPairs) -> GroupScores:
        out = GroupScores()
        gen, ref = self._pair_embeddings("fid", matched)
        fid = frechet_result(gen, ref, eps=self.protocol.fid_eps, normalised=self.protocol.fid_normalised)
        out.fid = fid
        out.metrics["fid_score"] = fid.value
        if fid.reason:
            out.reasons["fid_score"] = fid.reason
        else:
            out.statistics["fid_score"] = FrechetStatistic(gen.astype(np.float64), ref.astype(np.float64),
                                                           self.protocol.fid_eps)
        if fid.warning:
            out.notes.append(f"fid_score: {fid.warning}")
        return out

    def _lexical(self, matched: MatchedPairs) -> GroupScores:
        out = GroupScores()
        out.mean("lexical_similarity", jaccard_per_pair(matched.generated, matched.references,
                                                        self.protocol.lexical_tokens))
        return out

    def _clip_text_cosine(self, matched: MatchedPairs) -> np.ndarray:
        assert self.clip_store is not None
        return rowwise_cosine(self.clip_store.embed(matched.generated), self.clip_store.embed(matched.references))

    def _clip_text(self, matched: MatchedPairs) -> GroupScores:
        out = GroupScores()
        out.mean("clip_score", self._clip_text_cosine(matched))
        return out

    def _clip_image(self, matched: MatchedPairs) -> GroupScores:
        assert self.clip_store is not None
        out = GroupScores()
        views = [self._view_embeddings[i] for i in matched.ids]
        out.mean("clip_image_score", clip_image_scores(views, self.clip_store.embed(matched.generated)))
        out.mean("ref_clip_score", ref_clip_scores(out.per_sample["clip_image_score"],
                                                   self._clip_text_cosine(matched)))
        used = np.array([len(self._view_names[i]) for i in matched.ids])
        out.per_sample["views_used"] = used
        out.per_sample["views_missing"] = len(VIEWS) - used
        if (used < len(VIEWS)).any():
            out.notes.append(f"clip_image_score / ref_clip_score: {int((used < len(VIEWS)).sum())} items miss "
                             f"views ({int((len(VIEWS) - used).sum())} views in all) and are scored on the views "
                             f"they have (views_used / views_missing per item)")
        return out

    def _coco(self, coco_future) -> GroupScores:
        out = GroupScores()
        coco = coco_future.result()
        if coco.reason:
            out.reasons.update(dict.fromkeys(COCO_METRICS, coco.reason))
            return out
        out.reasons.update(coco.reasons)  # a metric the Java side could not compute (METEOR), with the reason
        out.notes += coco.notes
        for metric in COCO_METRICS:
            if metric in coco.corpus:
                out.metrics[metric] = coco.corpus[metric]
                out.per_sample[metric] = coco.per_sample[metric]
        for order in (1, 2, 3, 4):
            out.statistics[f"bleu_{order}"] = BleuStatistic(coco.bleu_counts, order)
        for metric in ("rouge_l", "cider"):  # pycocoevalcap's corpus value is the mean of its per-item scores
            out.statistics[metric] = MeanStatistic(coco.per_sample[metric])
        if "meteor" in coco.corpus:
            out.ci_unavailable["meteor"] = METEOR_NO_CI
        return out

    def _overall(self, metrics: dict[str, float | None], scores: GroupScores) -> OverallScore:
        overall = overall_score(metrics)
        metrics["overall_score"] = overall.value
        if overall.value is not None:
            scores.mean("overall_score", _per_item_overall(scores.per_sample, overall))
            metrics["overall_score"] = overall.value  # the weighted corpus means (equal to the per-item mean)
        if overall.partial:
            scores.notes.append(f"overall_score is partial: computed from {', '.join(overall.components)} "
                                f"({overall.weight_covered:.0%} of the weight); missing {', '.join(overall.missing)}")
        return overall

    # ---- uncertainty -------------------------------------------------------------------------------------------
    def _confidence(self, scores: GroupScores, n: int) -> tuple[dict[str, tuple[float, float]], dict[str, str]]:
        """Percentile bootstrap CIs of one model's metrics, and the `ci:` field of each metric's signature."""
        settings = self.bootstrap
        methods = {m: settings.method("fid" if m == "fid_score" else "mean") for m in scores.statistics}
        methods.update({m: "none(corpus-java)" for m in scores.ci_unavailable})
        if n < 2:
            scores.ci_unavailable.update({m: "needs at least 2 items" for m in scores.statistics})
            return {}, {m: "none(n<2)" for m in methods}
        start = time.perf_counter()
        cis = confidence_intervals(scores.statistics, n, settings)
        self.timings["bootstrap"] = self.timings.get("bootstrap", 0.0) + time.perf_counter() - start
        for metric in scores.statistics:
            if metric not in cis:
                scores.ci_unavailable[metric] = (
                    "bootstrap off (--bootstrap 0)" if metric != "fid_score" else
                    "the Fréchet distance is bootstrapped only with --fid_bootstrap N (it recomputes the "
                    "covariances for every resample)")
        return cis, methods

    def significance(self, results: Sequence[ModelResult]) -> tuple[dict[str, dict[str, Comparison]], list[str]]:
        """Every model against the best one per metric, on the items all models share (paired bootstrap)."""
        start = time.perf_counter()
        ranked = sorted(results, key=lambda r: (r.metrics["overall_score"] is None, -(r.metrics["overall_score"] or 0),
                                                r.model_name))  # the table's order
        out = compare_to_best([(r.model_name, r.matched.ids, r.statistics) for r in ranked], self.bootstrap)
        self.timings["bootstrap"] = self.timings.get("bootstrap", 0.0) + time.perf_counter() - start
        return out


def _per_item_overall(per: dict[str, np.ndarray], overall: OverallScore) -> np.ndarray:
    """The overall score of each item; their mean is the corpus overall score (every component is a mean)."""
    total = sum(OVERALL_WEIGHTS[k] * per[k] for k in overall.components)
    return np.asarray(total, dtype=np.float64) / overall.weight_covered
