"""The captioning field's n-gram metrics by pycocoevalcap: BLEU-1..4, METEOR, ROUGE-L, CIDEr (SPICE: never run).

The Java work of every model is queued first (`start`), so it runs on the other core while torch encodes."""

from __future__ import annotations

from vlmkit.evaluation.bootstrap import BleuStatistic, MeanStatistic
from vlmkit.evaluation.coco_metrics import COCO_METRICS, SPICE_REASON
from vlmkit.evaluation.metrics.spec import GroupContext, GroupScores, GroupSpec, MetricInfo, SignatureContext
from vlmkit.evaluation.signatures import package_version

METEOR_NO_CI = ("corpus METEOR is computed by the Java scorer from pooled statistics that pycocoevalcap does not "
                "expose (its per-item scores do not average to it): no CI")
LEXICAL = "Lexical match"
BLEU = tuple(MetricInfo(
    key=f"bleu_{n}", label=f"BLEU-{n}",
    description=f"corpus BLEU-{n}: geometric mean of the 1..{n}-gram precisions against the reference, with a "
                f"brevity penalty (COCO's PTB tokenisation)",
    column=8 if n == 4 else None, chart=n == 4, report_section=LEXICAL if n == 4 else None) for n in (1, 2, 3, 4))
METEOR = MetricInfo(
    key="meteor", label="METEOR",
    description="corpus METEOR: unigram matches with stems and synonyms, recall-weighted, with a fragmentation "
                "penalty", column=9, chart=True, report_section=LEXICAL)
ROUGE_L = MetricInfo(
    key="rouge_l", label="ROUGE-L",
    description="F-measure (β = 1.2) of the longest common subsequence of caption and reference, mean over items",
    column=10, chart=True, report_section=LEXICAL)
CIDER = MetricInfo(
    key="cider", label="CIDEr",
    description="CIDEr-D: TF-IDF-weighted n-gram similarity to the reference, ×10, mean over items",
    range="0..10", column=11, item_score=True, report_section=LEXICAL,
    caveats=("its IDF weights come from the evaluated references: CIDEr depends on the test set",))
SPICE = MetricInfo(
    key="spice", label="SPICE", description="SPICE: F-score of scene-graph tuples (not computed)", column=None,
    report_section=LEXICAL, always_null=SPICE_REASON)
assert tuple(m.key for m in (*BLEU, METEOR, ROUGE_L, CIDER)) == COCO_METRICS  # the scorer's names


def start(jobs, context: GroupContext) -> dict:
    coco = context.resources["coco"]
    return {name: coco.submit(m.generated, m.references) for name, m in jobs}


def compute(matched, context: GroupContext) -> GroupScores:
    out = GroupScores()
    coco = context.state["coco"][context.model_name].result()
    if coco.reason:
        out.reasons.update(dict.fromkeys(COCO_METRICS, coco.reason))
        return out
    out.reasons.update(coco.reasons)  # a metric the Java side could not compute (METEOR), with the reason
    out.notes += coco.notes
    for metric in COCO_METRICS:
        if metric in coco.corpus:
            out.metrics[metric] = coco.corpus[metric]
            out.per_sample[metric] = coco.per_sample[metric]
    for n, info in enumerate(BLEU, start=1):
        out.statistics[info.key] = BleuStatistic(coco.bleu_counts, n)
    for info in (ROUGE_L, CIDER):  # pycocoevalcap's corpus value is the mean of its per-item scores
        out.statistics[info.key] = MeanStatistic(coco.per_sample[info.key])
    if METEOR.key in coco.corpus:
        out.ci_unavailable[METEOR.key] = METEOR_NO_CI
        out.ci_methods[METEOR.key] = "none(corpus-java)"
    return out


def signature(metric: MetricInfo, context: SignatureContext):
    versions = {"pycocoevalcap": package_version("pycocoevalcap")}
    fields = {
        METEOR.key: {"agg": "corpus-java"},
        ROUGE_L.key: {"beta": 1.2, "agg": "mean"},
        CIDER.key: {"variant": "cider-d", "idf": "eval-refs", "agg": "mean"},
    }.get(metric.key, {"ref": "closest", "agg": "corpus"})  # BLEU-n
    return {"tok": "ptb", **fields}, versions


SPEC = GroupSpec(
    name="coco", metrics=(*BLEU, METEOR, ROUGE_L, CIDER, SPICE), compute=compute, signature=signature,
    requires=lambda protocol: ("coco",), start=start, position=6)
