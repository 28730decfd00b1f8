"""Caption evaluation behind compare.py: match by id, score, report.

Modules, smallest first: `lexical` (Jaccard), `frechet` (Fréchet distance), `retrieval` (chunked R@k),
`clip_scores` (CLIP text similarity, CLIPScore, RefCLIPScore), `coco_metrics` (pycocoevalcap), `overall` (the
seed's weighted score), `encoders` (sentence-transformers / CLIP, each text encoded once), `matching` (by id),
`evaluator` (all metrics of all models), `report` / `tables` / `html_report` (files), `pipeline` (the CLI job).
"""

from vlmkit.evaluation.overall import OVERALL_WEIGHTS, overall_score

__all__ = ["OVERALL_WEIGHTS", "overall_score"]
