"""clip_image_score (CLIPScore, Hessel et al. 2021) and ref_clip_score (RefCLIPScore), grounded in the object's
rendered views; needs a CLIP model and --images_dir."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from vlmkit.evaluation.clip_scores import clip_image_scores, ref_clip_scores
from vlmkit.evaluation.matching import ID_SAMPLE
from vlmkit.evaluation.metrics.clip_text import text_cosine
from vlmkit.evaluation.metrics.spec import GroupContext, GroupScores, GroupSpec, MetricInfo, SignatureContext
from vlmkit.evaluation.signatures import encoder_fields
from vlmkit.ids import VIEWS
from vlmkit.io import InputError
from vlmkit.multiview import load_view_images

log = logging.getLogger(__name__)

CLIP_IMAGE = MetricInfo(
    key="clip_image_score", label="CLIPScore (image)",
    description="CLIPScore: 2.5 · max(cos(view image, caption), 0) in CLIP's space, averaged over the object's "
                "rendered views: does the caption fit the object, without a reference",
    range="0..2.5", column=2, item_score=True)
REF_CLIP = MetricInfo(
    key="ref_clip_score", label="RefCLIPScore",
    description="RefCLIPScore: harmonic mean of CLIPScore and max(cos(caption, reference), 0)",
    range="0..1.43", column=None)


def prepare(jobs: Sequence[tuple[str, object]], context: GroupContext) -> dict:
    """CLIP embeddings of every view of each item (once per run, shared by all models); a corrupt render fails here,
    before minutes of text encoding."""
    clip, objects = context.resources["clip"], context.resources["images"]
    cache = context.resources.get("embedding_cache")
    namespace = clip.cache_namespace("image") if cache is not None and hasattr(clip, "cache_namespace") else None
    todo = list(dict.fromkeys(i for _, m in jobs for i in m.ids))
    embeddings: dict[str, np.ndarray] = {}
    names: dict[str, list[str]] = {}
    if namespace:  # an item's views as one entry: the same batch as when they were first encoded
        keys = {item: _views_key(namespace, objects[item]) for item in todo}
        cached = cache.get_many(list(keys.values()))
        for item in todo:
            if keys[item] in cached:
                embeddings[item] = cached[keys[item]]
                names[item] = [v for v, _ in objects[item].views_in_order()]
        todo = [item for item in todo if item not in embeddings]
    incomplete: dict[str, list[str]] = {}
    for item in tqdm(todo, desc="CLIP views", unit="item", disable=not sys.stderr.isatty() or len(todo) < 20,
                     leave=False):
        obj = objects[item]
        views, images, problems = load_view_images(obj, [v for v, _ in obj.views_in_order()])
        if problems:
            raise InputError(problems[0])
        if not images:
            raise InputError(f"{obj.path}: no view images (front/back/left/right/top/bottom) for id {item}")
        embeddings[item] = clip.encode_images(images)
        names[item] = views
        if namespace:
            cache.put_many(namespace, {_views_key(namespace, obj): embeddings[item]})
    for item in names:
        if len(names[item]) < len(VIEWS):
            incomplete[item] = [v for v in VIEWS if v not in names[item]]
    if incomplete:
        shown = "; ".join(f"{item}: {', '.join(missing)}" for item, missing in list(incomplete.items())[:5])
        log.warning("CLIPScore: %d of %d objects miss views and are scored on the views they have (%s%s)",
                    len(incomplete), len(names), shown, "; ..." if len(incomplete) > 5 else "")
    return {"embeddings": embeddings, "names": names}


def _views_key(namespace: str, obj) -> str:
    """An item's views by name and file content (a re-rendered view is a new entry)."""
    from vlmkit.embedding_cache import content_key, file_digest

    return content_key(namespace, "views|" + "|".join(f"{v}:{file_digest(p)}" for v, p in obj.views_in_order()))


def _views_summary(ids: Sequence[str], names: dict[str, list[str]]) -> dict:
    missing = {i: [v for v in VIEWS if v not in names[i]] for i in ids}
    incomplete = [i for i in ids if missing[i]]
    return {"expected_per_item": len(VIEWS), "views_used": sum(len(names[i]) for i in ids),
            "views_missing": sum(len(m) for m in missing.values()), "items_with_missing_views": len(incomplete),
            "ids": incomplete[:ID_SAMPLE],
            "missing_by_view": {v: sum(v in missing[i] for i in ids) for v in VIEWS}}


def compute(matched, context: GroupContext) -> GroupScores:
    state = context.state["clip_image"]
    out = GroupScores()
    views = [state["embeddings"][i] for i in matched.ids]
    out.mean(CLIP_IMAGE.key, clip_image_scores(views, context.stores["clip"].embed(matched.generated)))
    out.mean(REF_CLIP.key, ref_clip_scores(out.per_sample[CLIP_IMAGE.key], text_cosine(matched, context)))
    used = np.array([len(state["names"][i]) for i in matched.ids])
    out.per_sample["views_used"] = used
    out.per_sample["views_missing"] = len(VIEWS) - used
    if (used < len(VIEWS)).any():
        out.notes.append(f"{CLIP_IMAGE.key} / {REF_CLIP.key}: {int((used < len(VIEWS)).sum())} items miss "
                         f"views ({int((len(VIEWS) - used).sum())} views in all) and are scored on the views "
                         f"they have (views_used / views_missing per item)")
    out.details["views"] = _views_summary(matched.ids, state["names"])
    return out


def report_lines(details: dict) -> list[str]:
    v = details["views"]
    if not v["items_with_missing_views"]:
        return []
    return [f"  (CLIPScore views: {v['views_used']} used, {v['views_missing']} missing in "
            f"{v['items_with_missing_views']} items: {', '.join(v['ids'])})"]


def signature(metric: MetricInfo, context: SignatureContext):
    fields, versions = encoder_fields("clip", context.encoders)
    views = context.views or "all"
    if metric.key == CLIP_IMAGE.key:
        return {**fields, "views": views, "w": 2.5, "agg": "mean"}, versions
    return {**fields, "views": views, "hm": "clipscore+textcos", "agg": "mean"}, versions


SPEC = GroupSpec(
    name="clip_image", metrics=(CLIP_IMAGE, REF_CLIP), compute=compute, signature=signature,
    requires=lambda protocol: ("clip", "images"), encoder=lambda protocol: "clip", uses_label="CLIPScore",
    prepare=prepare, details_key="views", report_lines=report_lines, position=1)
