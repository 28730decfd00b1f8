"""clip_score: VaseVQA-3D's definition, the cosine of the CLIP *text* embeddings of caption and reference."""

from __future__ import annotations

from vlmkit.evaluation.clip_scores import rowwise_cosine
from vlmkit.evaluation.metrics.spec import GroupContext, GroupScores, GroupSpec, MetricInfo, SignatureContext
from vlmkit.evaluation.signatures import encoder_fields

CLIP_TEXT = MetricInfo(
    key="clip_score", label="CLIP text sim",
    description="cosine of the CLIP text embeddings of caption and reference (VaseVQA-3D's CLIP score; it needs "
                "no image)",
    range="-1..1 (in practice 0..1)", column=1, chart=True, item_score=True, vasevqa3d_order=0,
    overall_weight=0.25, caveats=("captions longer than CLIP's 77-token context are truncated",))


def text_cosine(matched, context: GroupContext):
    """Caption-reference cosine in CLIP's text space (also RefCLIPScore's text half)."""
    return rowwise_cosine(*context.pair_embeddings("clip", matched.generated, matched.references))


def compute(matched, context: GroupContext) -> GroupScores:
    out = GroupScores()
    out.mean(CLIP_TEXT.key, text_cosine(matched, context))
    return out


def signature(metric: MetricInfo, context: SignatureContext):
    fields, versions = encoder_fields("clip", context.encoders)
    return {**fields, "sim": "cos", "agg": "mean"}, versions


SPEC = GroupSpec(
    name="clip", metrics=(CLIP_TEXT,), compute=compute, signature=signature, requires=lambda protocol: ("clip",),
    encoder=lambda protocol: "clip", uses_label="CLIP text sim", position=0)
