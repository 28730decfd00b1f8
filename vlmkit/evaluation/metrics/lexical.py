"""lexical_similarity: Jaccard of the lower-cased token sets (`\\w+` words; vasevqa3d: whitespace tokens)."""

from __future__ import annotations

from vlmkit.evaluation.lexical import jaccard_per_pair
from vlmkit.evaluation.metrics.spec import GroupContext, GroupScores, GroupSpec, MetricInfo, SignatureContext

LEXICAL = MetricInfo(
    key="lexical_similarity", label="Lexical (Jaccard)",
    description="Jaccard overlap of the caption's and the reference's word sets: shared wording",
    column=7, chart=True, item_score=True, report_section="Lexical match", vasevqa3d_order=6, overall_weight=0.15)


def compute(matched, context: GroupContext) -> GroupScores:
    out = GroupScores()
    out.mean(LEXICAL.key, jaccard_per_pair(matched.generated, matched.references, context.protocol.lexical_tokens))
    return out


def signature(metric: MetricInfo, context: SignatureContext):
    words = context.protocol.lexical_tokens == "words"
    tokens = {"tok": "w+-lower", "empty": "1"} if words else {"tok": "whitespace-lower", "empty": "0"}
    return {**tokens, "sim": "jaccard", "agg": "mean"}, {}


SPEC = GroupSpec(name="lexical", metrics=(LEXICAL,), compute=compute, signature=signature, position=5)
