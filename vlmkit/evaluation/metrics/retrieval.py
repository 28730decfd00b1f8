"""r_at_1 / r_at_5 / r_at_10: text-to-text retrieval. Each generated caption queries the pool of all N matched
references; R@k is the share whose own reference ranks in the top k (ties by the protocol's rule)."""

from __future__ import annotations

import numpy as np

from vlmkit.evaluation.caption_recall import TIE_RULES, rank_counts
from vlmkit.evaluation.metrics.spec import GroupContext, GroupScores, GroupSpec, MetricInfo, SignatureContext
from vlmkit.evaluation.signatures import encoder_fields
from vlmkit.ranking import RECALL_KS

WEIGHTS = {1: 0.05, 5: 0.10, 10: 0.20}  # VaseVQA-3D's overall weights of R@1/5/10
RECALL = {k: MetricInfo(
    key=f"r_at_{k}", label=f"R@{k}",
    description=f"share of generated captions whose own reference is among the {k} most similar of the N "
                f"references (chance level min({k}, N)/N)",
    column=4 + i, chart=True, percent=True, report_section="Retrieval (R@k)", vasevqa3d_order=3 + i,
    overall_weight=WEIGHTS.get(k, 0.0),
    caveats=(f"1.0 by construction when the pool holds N ≤ {k} references",))
    for i, k in enumerate(RECALL_KS)}


def compute(matched, context: GroupContext) -> GroupScores:
    out = GroupScores()
    protocol = context.protocol
    gen, ref = context.pair_embeddings(protocol.retrieval_encoder, matched.generated, matched.references)
    result = rank_counts(gen, ref, max_chunk_elements=context.retrieval_chunk_elements, progress=context.progress,
                         rule=protocol.retrieval_rule)
    for k, info in RECALL.items():
        out.mean(info.key, result.hits(k))
    out.per_sample["retrieval_rank"] = result.best_rank
    out.per_sample["retrieval_ties"] = result.tied
    top = max(RECALL_KS)
    if result.pool_size <= top:
        out.notes.append(f"retrieval pool N={result.pool_size} <= {top}: R@k for k >= N is "
                         f"1.0 by construction (chance level 1.0)")
    kind = "CLIP text" if protocol.retrieval_encoder == "clip" else "sentence"
    out.details["retrieval"] = {
        "pool_size": result.pool_size,
        "chance": {info.key: _finite(result.chance(k)) for k, info in RECALL.items()},
        "similarity": f"cosine of L2-normalised {kind} embeddings",
        "encoder": (context.encoders.get("retrieval_encoder") or {}).get("name"),
        "tie_rule": TIE_RULES[result.rule],
        "queries_with_ties": int((result.tied > 0).sum()),
        "mean_best_rank": _finite(float(np.mean(result.best_rank))),
    }
    return out


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None


def report_lines(details: dict) -> list[str]:
    r = details["retrieval"]
    chance = ", ".join(f"{RECALL[k].label} {v:.2%}" for k, v in zip(RECALL, r["chance"].values(), strict=True))
    return [f"  (pool N={r['pool_size']} references; chance level {chance})"]


def signature(metric: MetricInfo, context: SignatureContext):
    protocol = context.protocol
    fields, versions = encoder_fields(protocol.retrieval_encoder, context.encoders)
    k = next(k for k, info in RECALL.items() if info.key == metric.key)
    tie = "argsort-desc" if protocol.retrieval_rule == "argsort" else "f32-equal-expected"
    pool = context.details.get("retrieval", {}).get("pool_size")
    return {**fields, "sim": "cos", "pool": pool, "k": k, "tie": tie}, versions


SPEC = GroupSpec(
    name="retrieval", metrics=tuple(RECALL.values()), compute=compute, signature=signature,
    requires=lambda protocol: (protocol.retrieval_encoder,), encoder=lambda protocol: protocol.retrieval_encoder,
    uses_label="retrieval", reports_encoder=True, details_key="retrieval", report_lines=report_lines, position=4)
