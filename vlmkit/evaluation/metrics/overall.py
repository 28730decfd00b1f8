"""overall_score: VaseVQA-3D's weighted mean of six headline metrics (the weights are the components'
`overall_weight`; vlmkit/evaluation/overall.py computes it, partial when components are missing)."""

from __future__ import annotations

from vlmkit.evaluation.metrics.spec import MetricInfo, SignatureContext

OVERALL = MetricInfo(
    key="overall_score", label="Overall",
    description="VaseVQA-3D's weighted mean of CLIP text sim, semantic sim, R@10, lexical, R@5 and R@1",
    column=0, chart=True, item_score=True, report_section=None, vasevqa3d_order=7,
    caveats=("partial (*) when a component is missing: the weighted mean of the available ones, not comparable "
             "with a full score",))


def signature(metric: MetricInfo, context: SignatureContext, n_components: int):
    components = context.overall_components
    return {"w": "vasevqa3d", "comp": "+".join(components) or "none",
            "renorm": "yes" if len(components) < n_components else "no", "agg": "mean"}, {}
