"""VaseVQA-3D's overall score: a weighted mean of six headline metrics.

    overall = 0.25 clip_score + 0.25 semantic_similarity + 0.20 r_at_10
            + 0.15 lexical_similarity + 0.10 r_at_5 + 0.05 r_at_1

The weights are the components' `overall_weight` in the metric registry (vlmkit/evaluation/metrics/).
When a component cannot be computed (typically clip_score without a local CLIP model), the score is the
weighted mean of the components that are available (the weights renormalised to sum to 1) and is marked
partial, with the components used and the share of the full weight they cover. A partial score is on the
same 0..1 scale but is not comparable with a full one; tables mark it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from vlmkit.evaluation.metrics import overall_weights

OVERALL_WEIGHTS: dict[str, float] = overall_weights()  # the built-in registry's (readers call overall_weights())


@dataclass(frozen=True)
class OverallScore:
    value: float | None
    components: tuple[str, ...]  # used
    missing: tuple[str, ...]  # not available
    weight_covered: float  # sum of the weights of the components used

    @property
    def partial(self) -> bool:
        return bool(self.missing)

    def to_json(self) -> dict:
        weights = overall_weights()
        return {
            "value": self.value,
            "partial": self.partial,
            "components": list(self.components),
            "missing_components": list(self.missing),
            "weights": {k: weights[k] for k in self.components},
            "weight_covered": round(self.weight_covered, 6),
            "formula": " + ".join(f"{w:.2f}*{k}" for k, w in weights.items()),
        }


def _present(value: float | None) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def overall_score(metrics: Mapping[str, float | None], weights: Mapping[str, float] | None = None) -> OverallScore:
    weights = overall_weights() if weights is None else weights
    used = tuple(k for k in weights if _present(metrics.get(k)))
    missing = tuple(k for k in weights if k not in used)
    covered = sum(weights[k] for k in used)
    if not used:
        return OverallScore(None, used, missing, 0.0)
    value = sum(weights[k] * float(metrics[k]) for k in used) / covered
    return OverallScore(value, used, missing, covered)
