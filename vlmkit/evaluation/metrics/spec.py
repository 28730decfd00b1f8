"""What a metric group declares: the contract between one group's module and everything that reads it.

A group (`--metrics` name) is one `GroupSpec`: its metrics (`MetricInfo`: key, label, what it measures, range,
direction, caveats, where it is shown, its overall weight, its CI method), the resources it needs under a protocol
(an encoder, the renders, Java), how to compute it for one model (`compute(matched, context) -> GroupScores`) and
the fields of its metric signatures. The evaluator, the reports, the tables, the signatures, the overall score and
the HTML legend all read these; none of them names a metric. The shape is pycocoevalcap's (one scorer per metric
behind one `compute_score` contract, the orchestrator a list) and dataprocess/ops/'s (one class per operator, one
list).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vlmkit.evaluation.bootstrap import MeanStatistic, Statistic

BOOTSTRAP_OFF = "bootstrap off (--bootstrap 0)"
LAST = 1000  # default position of a new metric or group: after the existing ones


@dataclass(frozen=True)
class MetricInfo:
    """One reported number."""

    key: str  # the JSON key (VaseVQA-3D's where it has one)
    label: str  # table / chart / report label
    description: str  # what it measures, one sentence (HTML legend)
    range: str = "0..1"  # its range, as shown in the legend
    higher_is_better: bool = True
    caveats: tuple[str, ...] = ()  # always true of this metric (the run's own caveats come as notes)
    column: int | None = LAST  # position among the table's columns (md/csv/HTML); None: not a column
    chart: bool = False  # drawn in the HTML bar chart (only metrics on a 0..1 scale)
    item_score: bool = False  # shown next to each caption in the HTML gallery
    percent: bool = False  # shown as a percentage (R@k)
    report_section: str | None = "Core metrics"  # section of compare_<model>.txt; None: not listed there
    vasevqa3d_order: int | None = None  # position among VaseVQA-3D's top-level JSON keys (first in the file)
    overall_weight: float = 0.0  # weight in VaseVQA-3D's overall score (0: not a component)
    ci_kind: str = "mean"  # BootstrapSettings.method kind: "mean" (percentile CI) or "fid" (--fid_bootstrap)
    no_ci_reason: str = BOOTSTRAP_OFF  # why it has no CI when it has a statistic but no interval was drawn
    always_null: str | None = None  # the reason when the metric is never computed (SPICE)


@dataclass
class GroupScores:
    """What one metric group computed for one model.

    metrics: corpus values (a metric left out is null: give its reason in `reasons`, never 0.0). per_sample: one
    value per matched item, for each metric and any extra column (the per-sample jsonl). statistics: what each
    metric's CI and significance test are drawn from (`mean()` sets the usual mean-over-items one).
    ci_unavailable / ci_methods: a metric with a value but no CI (its reason / its signature's `ci:` field).
    details: the group's section of compare_<model>.json (under `GroupSpec.details_key`). notes: caveats of this
    run (the .txt, the JSON and the HTML show them).
    """

    metrics: dict[str, float | None] = field(default_factory=dict)
    per_sample: dict[str, np.ndarray] = field(default_factory=dict)
    statistics: dict[str, Statistic] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    ci_unavailable: dict[str, str] = field(default_factory=dict)
    ci_methods: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)  # details_key -> JSON section

    def mean(self, metric: str, values: np.ndarray) -> None:
        """A metric that is the mean of its per-item scores."""
        values = np.asarray(values, dtype=np.float64)
        self.per_sample[metric] = values
        self.metrics[metric] = float(values.mean())
        self.statistics[metric] = MeanStatistic(values)

    def merge(self, other: GroupScores) -> None:
        for name in ("metrics", "per_sample", "statistics", "reasons", "ci_unavailable", "ci_methods", "details"):
            getattr(self, name).update(getattr(other, name))
        self.notes += other.notes


@dataclass
class GroupContext:
    """What `compute` (and `start` / `prepare`) may use: given by the evaluator, the same for every group."""

    protocol: Any  # protocols.Protocol
    stores: Mapping[str, Any]  # encoder kind ("sentence", "clip") -> EmbeddingStore (every text already encoded)
    resources: Mapping[str, Any]  # "clip", "images" (object folders), "coco" (CocoScorer), ...
    state: dict[str, Any]  # group name -> what its start/prepare returned
    encoders: Mapping[str, Any]  # encoders_used(): the descriptions written to the JSON
    model_name: str = ""
    retrieval_chunk_elements: int = 0
    progress: bool = False

    def pair_embeddings(self, kind: str, generated: Sequence[str], references: Sequence[str]):
        store = self.stores[kind]
        return store.embed(generated), store.embed(references)


@dataclass(frozen=True)
class SignatureContext:
    """What the signature fields may depend on."""

    protocol: Any
    encoders: Mapping[str, Any]
    n_items: int
    details: Mapping[str, dict[str, Any]]  # every group's JSON section of this model
    overall_components: tuple[str, ...] = ()
    ci_methods: Mapping[str, str] = field(default_factory=dict)  # metric -> the `ci:` field
    views: int | None = None  # views per object (CLIPScore)


Fields = tuple[dict[str, Any], dict[str, str]]  # (signature fields, package versions)


@dataclass(frozen=True)
class GroupSpec:
    """One metric group, as `--metrics` names it."""

    name: str
    metrics: tuple[MetricInfo, ...]
    compute: Callable[[Any, GroupContext], GroupScores]  # (MatchedPairs, context) -> scores of one model
    signature: Callable[[MetricInfo, SignatureContext], Fields]
    requires: Callable[[Any], tuple[str, ...]] = lambda protocol: ()  # resources, in the order their absence is told
    encoder: Callable[[Any], str | None] = lambda protocol: None  # the text encoder kind whose store it reads
    uses_label: str | None = None  # "semantic similarity": what the encoder is used for, in the reports
    reports_encoder: bool = False  # the JSON's encoders block names "<group>_encoder"
    start: Callable[[Sequence[tuple[str, Any]], GroupContext], Any] | None = None  # queue background work (first)
    prepare: Callable[[Sequence[tuple[str, Any]], GroupContext], Any] | None = None  # once per run, before encoding
    details_key: str | None = None  # its section of compare_<model>.json
    report_lines: Callable[[dict[str, Any]], list[str]] | None = None  # .txt lines under its metrics' section
    position: int = LAST  # where the group is listed (--help, JSON keys, signatures); computed in registry order

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(m.key for m in self.metrics)
