"""semantic_similarity: cosine of the generated and the reference caption's embeddings (sentence model; CLIP
text under the vasevqa3d protocol)."""

from __future__ import annotations

from vlmkit.evaluation.clip_scores import rowwise_cosine
from vlmkit.evaluation.metrics.spec import GroupContext, GroupScores, GroupSpec, MetricInfo, SignatureContext
from vlmkit.evaluation.signatures import encoder_fields

SEMANTIC = MetricInfo(
    key="semantic_similarity", label="Semantic sim",
    description="cosine of the sentence-model embeddings of caption and reference (vasevqa3d: CLIP text "
                "embeddings): meaning, not wording",
    range="-1..1 (in practice 0..1)", column=3, chart=True, item_score=True, vasevqa3d_order=2,
    overall_weight=0.25,
    caveats=("under --protocol vasevqa3d it is the CLIP text cosine again and duplicates CLIP text sim",))


def compute(matched, context: GroupContext) -> GroupScores:
    out = GroupScores()
    gen, ref = context.pair_embeddings(context.protocol.semantic_encoder, matched.generated, matched.references)
    out.mean(SEMANTIC.key, rowwise_cosine(gen, ref))
    return out


def signature(metric: MetricInfo, context: SignatureContext):
    fields, versions = encoder_fields(context.protocol.semantic_encoder, context.encoders)
    return {**fields, "sim": "cos", "agg": "mean"}, versions


SPEC = GroupSpec(
    name="semantic", metrics=(SEMANTIC,), compute=compute, signature=signature,
    requires=lambda protocol: (protocol.semantic_encoder,), encoder=lambda protocol: protocol.semantic_encoder,
    uses_label="semantic similarity", reports_encoder=True, position=2)
