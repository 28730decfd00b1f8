"""Judge metrics, by a local model (compare.py --judge_model): CLAIR, FLEUR and attribute F1 (docs/judges.md).

Off by default: the group is in `OPTIONAL_GROUPS`, switched on for a run with `--judge_model` (the pipeline enables
it and passes the judge stage as the `judge` resource). All the judging happens once per run in `prepare`
(vlmkit/judges/stage.py: cached answers, one model load at most, attribute extraction shared by all models);
`compute` hands each model its part. Unparseable judge answers make the item's value null (listed under
`judges.<metric>.unparseable`), never 0, and are left out of the mean and its bootstrap (a masked mean).
"""

from __future__ import annotations

from vlmkit.evaluation.metrics.spec import GroupContext, GroupScores, GroupSpec, MetricInfo, SignatureContext
from vlmkit.evaluation.signatures import package_version

SECTION = "Judge metrics (local judge model)"
CLAIR = MetricInfo(
    key="clair", label="CLAIR (judge)",
    description="the judge's 0-100 likelihood that caption and reference describe the same object, from its JSON "
                "answer, /100 (CLAIR, Chan et al. 2023)", chart=True, report_section=SECTION,
    caveats=("an LLM judge's number: reproducible only with the same judge, prompt and greedy decoding (signature)",
             "items whose answer is not JSON with a score are null and left out of the mean (listed)"))
FLEUR = MetricInfo(
    key="fleur", label="FLEUR (judge)",
    description="reference-free: a VLM sees the views and the caption; the score is the expectation over the "
                "digit tokens' probabilities of its 0.xy rating (FLEUR, Lee et al. 2024)", chart=True,
    report_section=SECTION, caveats=("needs a vision-language judge and --images_dir",))
ATTRIBUTE_F1 = MetricInfo(
    key="attribute_f1", label="Attribute F1 (judge)",
    description="micro F1 of the schema's slots (shape, technique, date, subject, painter, provenance) extracted "
                "by the judge from caption and reference, matched with normalisation and date overlap "
                "(CAPTURE-style)", chart=True, report_section=SECTION,
    caveats=("per-slot precision, recall and F1 are under judges.attribute_f1 in compare_<model>.json",))
METRICS = (CLAIR, FLEUR, ATTRIBUTE_F1)
JUDGE_METRICS = tuple(m.key for m in METRICS)
DETAILS = "judges"


def prepare(jobs, context: GroupContext):
    return context.resources["judge"].judge_all(jobs)


def compute(matched, context: GroupContext) -> GroupScores:
    scores = context.state["judge"][context.model_name]
    out = GroupScores()
    out.metrics.update(scores.metrics)
    out.per_sample.update(scores.per_sample)
    out.statistics.update(scores.statistics)
    out.reasons.update(scores.reasons)
    out.details[DETAILS] = scores.details
    return out


def signature(metric: MetricInfo, context: SignatureContext):
    details = (context.details.get(DETAILS) or {}).get(metric.key) or {}
    return dict(details.get("signature") or {}), {"transformers": package_version("transformers")}


def report_lines(data: dict) -> list[str]:
    lines = []
    for key in JUDGE_METRICS:
        bad = ((data.get(DETAILS) or {}).get(key) or {}).get("unparseable") or {}
        if bad.get("count"):
            lines.append(f"  ({key}: {bad['count']} unparseable judge answer(s), null: {', '.join(bad['ids'][:10])}"
                         f"{' ...' if bad['count'] > 10 else ''})")
    return lines


SPEC = GroupSpec(name="judge", metrics=METRICS, compute=compute, signature=signature,
                 requires=lambda protocol: ("judge",), prepare=prepare, details_key=DETAILS,
                 report_lines=report_lines)
