"""Scoring matched caption pairs: every metric of every model from one set of loaded encoders.

The metric groups are the registry's (`vlmkit/evaluation/metrics/`): this module orders the work and knows no
metric. `CaptionEvaluator.evaluate_all` is the one place where the work is ordered for speed: each group's
background work is queued first (`start`: pycocoevalcap's Java thread), then its once-per-run work (`prepare`: the
CLIP view embeddings, so a corrupt render fails before minutes of encoding), then all distinct texts (references
once, each model's captions) are encoded in a single pass per encoder, then every group's `compute` runs per
model. A group that cannot run (not requested, or a resource it requires is missing) has its metrics null with the
reason.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vlmkit.embedding_cache import EmbeddingCache
from vlmkit.evaluation import metrics as registry
from vlmkit.evaluation.bootstrap import BootstrapSettings, Comparison, Statistic, compare_to_best, confidence_intervals
from vlmkit.evaluation.caption_recall import DEFAULT_MAX_CHUNK_ELEMENTS
from vlmkit.evaluation.coco_metrics import CocoScorer
from vlmkit.evaluation.encoders import ClipEncoder, EmbeddingStore, TextEncoder
from vlmkit.evaluation.matching import MatchedPairs
from vlmkit.evaluation.metrics.spec import GroupContext, GroupScores, GroupSpec, SignatureContext
from vlmkit.evaluation.overall import OverallScore, overall_score
from vlmkit.evaluation.protocols import PROTOCOLS, Protocol
from vlmkit.evaluation.signatures import metric_signatures
from vlmkit.ids import VIEWS
from vlmkit.multiview import ObjectFolder

log = logging.getLogger(__name__)

OVERALL = registry.OVERALL_KEY


@dataclass(kw_only=True)
class ModelResult:
    """Everything computed for one model; `report.py` turns it into files."""

    model_name: str
    matched: MatchedPairs
    metrics: dict[str, float | None]
    reasons: dict[str, str]  # metric -> why it is null
    per_sample: dict[str, np.ndarray]
    overall: OverallScore
    protocol: Protocol = PROTOCOLS["vlmkit"]  # the object; written as its name
    details: dict[str, dict[str, Any]] = field(default_factory=dict)  # each group's section of the JSON
    encoders: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    statistics: dict[str, Statistic] = field(default_factory=dict)  # what each metric's CI is drawn from
    confidence_intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    ci_unavailable: dict[str, str] = field(default_factory=dict)  # metric with a value but no CI -> why
    signatures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


class CaptionEvaluator:
    def __init__(self, *, sentence_encoder: TextEncoder | None = None, sentence_reason: str | None = None,
                 clip: ClipEncoder | None = None, clip_reason: str | None = None, coco: CocoScorer | None = None,
                 coco_reason: str | None = None, groups: frozenset[str] | None = None,
                 objects: dict[str, ObjectFolder] | None = None, protocol: Protocol = PROTOCOLS["vlmkit"],
                 bootstrap: BootstrapSettings | None = None,
                 retrieval_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS,
                 resources: Mapping[str, Any] | None = None, resource_reasons: Mapping[str, str] | None = None,
                 cache: EmbeddingCache | None = None):
        """`resources` / `resource_reasons`: more resources a group may require (name -> object / why absent).
        `cache`: the persistent embedding cache (None: encode everything); groups find it as the resource
        "embedding_cache"."""
        self.protocol = protocol
        self.cache = cache
        # vlmkit: one L2-normalised store for semantic/retrieval/FD; vasevqa3d: FD only, embeddings as returned.
        self.sentence_store = (EmbeddingStore(sentence_encoder, normalise=protocol.fid_normalised, cache=cache)
                               if sentence_encoder is not None else None)
        self.sentence_reason = sentence_reason
        self.clip = clip
        self.clip_store = EmbeddingStore(clip, cache=cache) if clip is not None else None
        self.clip_reason = clip_reason
        self.coco = coco
        self.groups = frozenset(registry.all_groups()) if groups is None else groups
        self.objects = objects
        self.bootstrap = bootstrap or BootstrapSettings()
        self.retrieval_chunk_elements = retrieval_chunk_elements
        self.timings: dict[str, float] = {}  # seconds per stage of the last evaluate_all (for bench/)
        self.resources: dict[str, Any] = {"sentence": self.sentence_store, "clip": clip, "images": objects,
                                          "coco": coco, "embedding_cache": cache, **(resources or {})}
        self.reasons: dict[str, str] = {
            "sentence": sentence_reason or "no sentence encoder loaded",
            "clip": clip_reason or "no CLIP model loaded",
            "images": "needs the rendered views: pass --images_dir",
            "coco": coco_reason or "pycocoevalcap not loaded", **(resource_reasons or {})}
        self._state: dict[str, Any] = {}

    # ---- what can be computed, and why not -------------------------------------------------------------------
    def _group_reason(self, spec: GroupSpec) -> str | None:
        if spec.name not in self.groups:
            return "not requested (--metrics)"
        for resource in spec.requires(self.protocol):
            if self.resources.get(resource) is None:
                return self.reasons.get(resource, f"{resource} not available")
        return None

    def encoders_used(self) -> dict[str, Any]:
        def describe(encoder: Any) -> dict[str, Any]:
            if hasattr(encoder, "describe"):
                return encoder.describe()
            return {"name": getattr(encoder, "name", type(encoder).__name__), "dim": getattr(encoder, "dim", None)}

        sentence = describe(self.sentence_store.encoder) if self.sentence_store else None
        clip = describe(self.clip) if self.clip else None
        by_kind = {"sentence": sentence, "clip": clip}
        out: dict[str, Any] = {"protocol": self.protocol.name, "sentence_encoder": sentence}
        for spec in registry.GROUPS:
            if spec.reports_encoder:
                out[f"{spec.name}_encoder"] = by_kind.get(spec.encoder(self.protocol))
        out.update({"clip": clip, "clip_unavailable_reason": None if self.clip else self.clip_reason,
                    "sentence_unavailable_reason": None if self.sentence_store else self.sentence_reason})
        return out

    def _context(self, model_name: str = "") -> GroupContext:
        stores = {k: s for k, s in (("sentence", self.sentence_store), ("clip", self.clip_store)) if s is not None}
        return GroupContext(protocol=self.protocol, stores=stores, resources=self.resources, state=self._state,
                            encoders=self.encoders_used(), model_name=model_name,
                            retrieval_chunk_elements=self.retrieval_chunk_elements, progress=sys.stderr.isatty())

    # ---- the work ------------------------------------------------------------------------------------------
    def evaluate_all(self, jobs: Sequence[tuple[str, MatchedPairs]]) -> list[ModelResult]:
        """Score every (model name, matched pairs) job."""
        self.timings = {}
        self._state = {}
        active = [spec for spec in registry.GROUPS if self._group_reason(spec) is None]
        context = self._context()
        for spec in active:
            if spec.start is not None:
                self._state[spec.name] = spec.start(jobs, context)
        for spec in active:
            if spec.prepare is not None:
                start = time.perf_counter()
                self._state[spec.name] = spec.prepare(jobs, context)
                self.timings[f"{spec.name}_prepare"] = time.perf_counter() - start
        all_texts = [t for _, m in jobs for t in (*m.references, *m.generated)]
        for kind, store in (("sentence", self.sentence_store), ("clip", self.clip_store)):
            if store is not None and registry.groups_needing(self.protocol, kind, self.groups):
                start = time.perf_counter()
                store.add(all_texts)
                label = "clip_text" if kind == "clip" else kind
                self.timings[f"{label}_encoding"] = time.perf_counter() - start
                self.timings[f"{label}_texts"] = len(store)
                self.timings[f"{label}_encoded"] = store.encoded
                log.info("%s embeddings: %d distinct texts in %.1f s", kind, len(store),
                         self.timings[f"{label}_encoding"])
        start = time.perf_counter()
        self.timings["bootstrap"] = 0.0
        results = [self._evaluate(name, matched) for name, matched in jobs]
        self.timings["metrics_and_coco_wait"] = time.perf_counter() - start
        return results

    def _evaluate(self, name: str, matched: MatchedPairs) -> ModelResult:
        start = time.perf_counter()
        scores = GroupScores()
        context = self._context(name)
        for spec in registry.GROUPS:
            reason = self._group_reason(spec)
            if reason:
                scores.reasons.update(dict.fromkeys(spec.keys, reason))
            else:
                scores.merge(spec.compute(matched, context))
            if spec.name in self.groups:  # whatever else happened: such a metric is never computed
                scores.reasons.update({m.key: m.always_null for m in spec.metrics if m.always_null})
        metrics: dict[str, float | None] = dict.fromkeys(registry.all_metrics())
        metrics.update(scores.metrics)
        overall = self._overall(metrics, scores)
        cis, ci_methods = self._confidence(scores, len(matched))
        signatures = metric_signatures(protocol=self.protocol, metrics=metrics, context=SignatureContext(
            protocol=self.protocol, encoders=context.encoders, n_items=len(matched), details=scores.details,
            overall_components=overall.components, ci_methods=ci_methods, views=len(VIEWS)))
        return ModelResult(
            model_name=name, matched=matched, metrics=metrics,
            reasons={k: v for k, v in scores.reasons.items() if metrics.get(k) is None}, per_sample=scores.per_sample,
            overall=overall, protocol=self.protocol, details=scores.details, encoders=dict(context.encoders),
            notes=scores.notes, statistics=scores.statistics, confidence_intervals=cis,
            ci_unavailable={m: r for m, r in scores.ci_unavailable.items() if metrics.get(m) is not None},
            signatures=signatures, seconds=time.perf_counter() - start)

    def _overall(self, metrics: dict[str, float | None], scores: GroupScores) -> OverallScore:
        overall = overall_score(metrics)
        metrics[OVERALL] = overall.value
        if overall.value is not None:
            scores.mean(OVERALL, _per_item_overall(scores.per_sample, overall))
            metrics[OVERALL] = overall.value  # the weighted corpus means (equal to the per-item mean)
        if overall.partial:
            scores.notes.append(f"{OVERALL} is partial: computed from {', '.join(overall.components)} "
                                f"({overall.weight_covered:.0%} of the weight); missing {', '.join(overall.missing)}")
        return overall

    # ---- uncertainty -------------------------------------------------------------------------------------------
    def _confidence(self, scores: GroupScores, n: int) -> tuple[dict[str, tuple[float, float]], dict[str, str]]:
        """Percentile bootstrap CIs of one model's metrics, and the `ci:` field of each metric's signature."""
        settings = self.bootstrap
        infos = registry.infos()
        methods = {m: settings.method(infos[m].ci_kind) for m in scores.statistics}
        methods.update(scores.ci_methods)
        if n < 2:
            scores.ci_unavailable.update({m: "needs at least 2 items" for m in scores.statistics})
            return {}, {m: "none(n<2)" for m in methods}
        start = time.perf_counter()
        cis = confidence_intervals(scores.statistics, n, settings)
        self.timings["bootstrap"] = self.timings.get("bootstrap", 0.0) + time.perf_counter() - start
        for metric in scores.statistics:
            if metric not in cis:
                scores.ci_unavailable[metric] = infos[metric].no_ci_reason
        return cis, methods

    def significance(self, results: Sequence[ModelResult]) -> tuple[dict[str, dict[str, Comparison]], list[str]]:
        """Every model against the best one per metric, on the items all models share (paired bootstrap)."""
        start = time.perf_counter()
        ranked = sorted(results, key=lambda r: (r.metrics[OVERALL] is None, -(r.metrics[OVERALL] or 0),
                                                r.model_name))  # the table's order
        out = compare_to_best([(r.model_name, r.matched.ids, r.statistics) for r in ranked], self.bootstrap,
                              lower_is_better=registry.lower_is_better())
        self.timings["bootstrap"] = self.timings.get("bootstrap", 0.0) + time.perf_counter() - start
        return out


def _per_item_overall(per: dict[str, np.ndarray], overall: OverallScore) -> np.ndarray:
    """The overall score of each item; their mean is the corpus overall score (every component is a mean)."""
    weights = registry.overall_weights()
    total = sum(weights[k] * per[k] for k in overall.components)
    return np.asarray(total, dtype=np.float64) / overall.weight_covered
