"""Evaluate retrieval on a pairs JSONL: text->image and image->text R@1/5/10, MRR, NDCG@10, chance, bootstrap CIs.

One embedding pass per model (distinct images once, every caption once), then both directions from the same
matrices (vlmkit.retrieval.metrics, chunked). With a zero-shot base model the same queries are scored by both,
and the table shows zero-shot vs fine-tuned with the difference in percentage points and its paired bootstrap
95% CI (the [CLIP retrieval guide]'s table: R@1 58 -> 71, +13 pp on Flickr30k).

`make_evaluator` gives the same evaluation as a sentence-transformers evaluator, run by the trainer on the
validation set (per epoch or every eval_steps), so the numbers in metrics.jsonl are the ones `retrieval.py eval`
prints for the same checkpoint and data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from vlmkit.retrieval.data import EvalSet
from vlmkit.retrieval.metrics import DEFAULT_MAX_CHUNK_ELEMENTS, METRICS, Ranked, bootstrap_ci, rank_relevant

log = logging.getLogger(__name__)

DIRECTIONS = {"t2i": "text -> image", "i2t": "image -> text"}


@dataclass
class Evaluation:
    t2i: Ranked
    i2t: Ranked

    def ranked(self) -> dict[str, Ranked]:
        return {"t2i": self.t2i, "i2t": self.i2t}

    def summary(self) -> dict[str, dict[str, float]]:
        return {d: r.summary() for d, r in self.ranked().items()}


def embed(model: Any, data: EvalSet, batch_size: int = 64, dtype: Any = np.float32,
          progress: bool = True, cache: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(images, captions) embeddings; `cache` (vlmkit.retrieval.model.ModelCache) skips what an earlier run
    encoded -- bitwise the same rows, as every batch has one shape."""
    from vlmkit.retrieval.model import encode_images, encode_texts

    images = encode_images(model, data.images, batch_size, dtype, progress, cache=cache)
    texts = encode_texts(model, data.captions, batch_size, dtype, progress, cache=cache)
    return images, texts


def evaluate_embeddings(images: np.ndarray, texts: np.ndarray, data: EvalSet,
                        max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS, progress: bool = False) -> Evaluation:
    t2i = rank_relevant(texts, images, data.caption_image, max_chunk_elements, progress, "text -> image")
    i2t = rank_relevant(images, texts, data.image_captions(), max_chunk_elements, progress, "image -> text")
    return Evaluation(t2i, i2t)


def evaluate_model(model: Any, data: EvalSet, batch_size: int = 64, dtype: Any = np.float32,
                   progress: bool = True, cache: Any = None) -> Evaluation:
    images, texts = embed(model, data, batch_size, dtype, progress, cache)
    return evaluate_embeddings(images, texts, data, progress=progress)


def pool_info(data: EvalSet, ev: Evaluation) -> dict[str, Any]:
    return {"images": len(data.images), "captions": len(data.captions),
            "t2i_queries": len(data.captions), "i2t_queries": len(data.images),
            "chance": {d: r.chance() for d, r in ev.ranked().items()},
            "tied_queries": {d: r.tied_queries for d, r in ev.ranked().items()}}


def report(ev: Evaluation, data: EvalSet, n_bootstrap: int = 1000, seed: int = 0,
           zero_shot: Evaluation | None = None) -> dict[str, Any]:
    """The eval JSON: metrics (fractions 0..1), pool and chance, 95% CIs, and the zero-shot comparison."""
    out: dict[str, Any] = {d: r.summary() for d, r in ev.ranked().items()}
    out["pool"] = pool_info(data, ev)
    out["ci95"] = {d: bootstrap_ci(r.per_query(), n_bootstrap, seed) for d, r in ev.ranked().items()}
    out["bootstrap"] = {"resamples": n_bootstrap, "seed": seed, "level": 0.95, "unit": "query"}
    if zero_shot is not None:
        out["zero_shot"] = {d: r.summary() for d, r in zero_shot.ranked().items()}
        out["zero_shot"]["ci95"] = {d: bootstrap_ci(r.per_query(), n_bootstrap, seed)
                                    for d, r in zero_shot.ranked().items()}
        delta: dict[str, dict[str, Any]] = {}
        for d, r in ev.ranked().items():
            z = zero_shot.ranked()[d]
            ci = bootstrap_ci(r.per_query(), n_bootstrap, seed, other=z.per_query())
            delta[d] = {m: {"delta": 100 * (r.summary()[m] - z.summary()[m]),
                            "ci95": [100 * v for v in ci[m]] if m in ci else None} for m in METRICS}
        out["delta_points"] = delta
    return out


def _pct(value: float) -> str:
    return f"{100 * value:6.1f}"


def format_table(result: dict[str, Any]) -> str:
    """Plain-text table(s): per direction, each metric (percent) with its CI, or zero-shot vs fine-tuned + delta."""
    lines = []
    pool = result["pool"]
    for d, title in DIRECTIONS.items():
        queries = pool[f"{d}_queries"]
        lines.append(f"{d} ({title}): {queries} queries over {pool['images' if d == 't2i' else 'captions']} "
                     f"candidates")
        zero = result.get("zero_shot")
        if zero:
            lines.append(f"  {'metric':8s} {'zero-shot':>9s} {'fine-tuned':>10s} {'delta (pp)':>10s}   95% CI of delta"
                         f"   chance")
            for m in METRICS:
                delta = result["delta_points"][d][m]
                ci = delta["ci95"]
                ci_text = f"[{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else "n/a"
                lines.append(f"  {m:8s} {_pct(zero[d][m]):>9s} {_pct(result[d][m]):>10s} {delta['delta']:>+10.1f}   "
                             f"{ci_text:15s} {_pct(pool['chance'][d][m])}")
        else:
            lines.append(f"  {'metric':8s} {'value':>6s}   95% CI           chance")
            for m in METRICS:
                ci = result["ci95"][d].get(m)
                ci_text = f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "n/a"
                lines.append(f"  {m:8s} {_pct(result[d][m])}   {ci_text:16s} {_pct(pool['chance'][d][m])}")
    return "\n".join(lines)


def flat_metrics(ev: Evaluation) -> dict[str, float]:
    """`t2i_R@1`, ... for the trainer's logs."""
    return {f"{d}_{m}": v for d, values in ev.summary().items() for m, v in values.items()}


def make_evaluator(data: EvalSet, batch_size: int, name: str = "val"):
    """The evaluation above as a sentence-transformers evaluator (primary metric: text->image MRR); the class is
    made here so that importing this module does not import sentence-transformers."""
    from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

    class RetrievalEvaluator(BaseEvaluator):
        def __init__(self) -> None:
            super().__init__()
            self.data = data
            self.batch_size = batch_size
            self.name = name
            self.primary_metric = "t2i_MRR"
            self.last: Evaluation | None = None

        def __call__(self, model, output_path=None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
            was_training = model.training
            model.eval()
            try:
                self.last = evaluate_model(model, self.data, self.batch_size, progress=False)
            finally:
                model.train(was_training)
            metrics = flat_metrics(self.last)
            # the metric names stay plain (t2i_R@1): the trainer adds its own "eval_" prefix
            return self.prefix_name_to_metrics(metrics, "")

    return RetrievalEvaluator()
