"""Names of the metrics and the groups a user can pick with `--metrics`."""

from __future__ import annotations

from vlmkit.evaluation.coco_metrics import COCO_METRICS

METRIC_GROUPS: dict[str, tuple[str, ...]] = {
    "clip": ("clip_score",),
    "clip_image": ("clip_image_score", "ref_clip_score"),
    "semantic": ("semantic_similarity",),
    "fid": ("fid_score",),
    "retrieval": ("r_at_1", "r_at_5", "r_at_10"),
    "lexical": ("lexical_similarity",),
    "coco": (*COCO_METRICS, "spice"),
}
ALL_GROUPS: tuple[str, ...] = tuple(METRIC_GROUPS)
ALL_METRICS: tuple[str, ...] = tuple(m for group in METRIC_GROUPS.values() for m in group)

LABELS: dict[str, str] = {
    "overall_score": "Overall",
    "clip_score": "CLIP text sim",
    "clip_image_score": "CLIPScore (image)",
    "ref_clip_score": "RefCLIPScore",
    "semantic_similarity": "Semantic sim",
    "fid_score": "FD (sentence emb.)",
    "r_at_1": "R@1",
    "r_at_5": "R@5",
    "r_at_10": "R@10",
    "lexical_similarity": "Lexical (Jaccard)",
    "bleu_1": "BLEU-1",
    "bleu_2": "BLEU-2",
    "bleu_3": "BLEU-3",
    "bleu_4": "BLEU-4",
    "meteor": "METEOR",
    "rouge_l": "ROUGE-L",
    "cider": "CIDEr",
    "spice": "SPICE",
    "clair": "CLAIR (judge)",
    "fleur": "FLEUR (judge)",
    "attribute_f1": "Attribute F1 (judge)",
}
# Off by default: computed only with compare.py --judge_model (vlmkit/judges/stage.py), so not in METRIC_GROUPS.
JUDGE_METRICS: tuple[str, ...] = ("clair", "fleur", "attribute_f1")


def parse_metric_groups(spec: str | None, no_coco: bool = False) -> frozenset[str]:
    """`all` or a comma list of group names -> the set of groups; unknown names raise ValueError."""
    if not spec or spec.strip().lower() == "all":
        groups = set(ALL_GROUPS)
    else:
        groups = {g.strip().lower() for g in spec.split(",") if g.strip()}
        unknown = groups - set(ALL_GROUPS)
        if unknown:
            raise ValueError(f"unknown metric group(s) {', '.join(sorted(unknown))}; choose from "
                             f"{', '.join(ALL_GROUPS)} or all")
    if no_coco:
        groups.discard("coco")
    return frozenset(groups)
