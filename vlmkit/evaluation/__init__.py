"""Caption evaluation behind compare.py: match by id, score, report.

Modules, smallest first: `lexical` (Jaccard), `frechet` (Fréchet distance), `retrieval` (chunked R@k),
`clip_scores` (CLIP text similarity, CLIPScore, RefCLIPScore), `coco_metrics` (pycocoevalcap), `overall` (the
VaseVQA-3D's weighted score), `encoders` (sentence-transformers / CLIP, each text encoded once), `matching` (by id),
`evaluator` (all metrics of all models), `report` / `tables` / `html_report` (files), `pipeline` (the CLI job).
"""

import os

# torch's OpenMP threads spin while waiting for work by default. On a machine whose cores are shared (a laptop,
# a CI runner, other jobs), the spinning threads steal the cores the encoder needs: measured here on 2 shared
# cores, MiniLM encoded 32 captions/s with the default and 102/s with passive waiting. Only effective when set
# before torch is imported, which compare.py and bench/ do by importing this package first; a user's own
# OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from vlmkit.evaluation.overall import OVERALL_WEIGHTS, overall_score

__all__ = ["OVERALL_WEIGHTS", "overall_score"]
