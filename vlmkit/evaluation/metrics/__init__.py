"""The metric registry: every metric group compare.py computes, in one tuple.

Each group is one module here with one `GroupSpec` (see `spec.py` for the contract); `GROUPS` lists them in the
order the evaluator runs them (the per-item columns follow it). Everything else is derived from it: the groups
`--metrics` accepts, the metric keys and their labels, the table and chart columns, VaseVQA-3D's top-level JSON
keys, the overall score's weights, which metrics are lower-is-better, the signature fields and the HTML legend.
Nothing outside this package names a metric key. To add a metric group: write one module with one `SPEC` and add
it to `GROUPS` (CONTRIBUTING.md, "How to add a metric").

The lookups are functions, not constants, so that a group added at run time (a test's toy metric) is seen by
every reader.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from vlmkit.evaluation.metrics import clip_image, clip_text, coco, fid, judges, lexical, retrieval, semantic
from vlmkit.evaluation.metrics.overall import OVERALL
from vlmkit.evaluation.metrics.overall import signature as _overall_signature
from vlmkit.evaluation.metrics.spec import GroupSpec, MetricInfo, SignatureContext

GROUPS: tuple[GroupSpec, ...] = (semantic.SPEC, retrieval.SPEC, fid.SPEC, lexical.SPEC, clip_text.SPEC,
                                 clip_image.SPEC, coco.SPEC)
OVERALL_KEY = OVERALL.key
# Groups a run switches on (not in `all`, no columns or keys otherwise): compare.py --judge_model enables "judge".
OPTIONAL_GROUPS: tuple[GroupSpec, ...] = (judges.SPEC,)


@contextmanager
def enabled(*names: str) -> Iterator[None]:
    """Register optional groups for the duration of one run (every reader sees them, as if in GROUPS)."""
    global GROUPS
    saved = GROUPS
    GROUPS = (*saved, *(g for g in OPTIONAL_GROUPS if g.name in names and g not in saved))
    try:
        yield
    finally:
        GROUPS = saved


def listed_groups() -> tuple[GroupSpec, ...]:
    """The groups in listing order (--help, the JSON's keys, the signatures): by `position`, then registry order."""
    return tuple(sorted(GROUPS, key=lambda g: g.position))


def group(name: str) -> GroupSpec:
    return next(g for g in GROUPS if g.name == name)


def all_groups() -> tuple[str, ...]:
    return tuple(g.name for g in listed_groups())


def metric_groups() -> dict[str, tuple[str, ...]]:
    """{group: its metric keys}, in listing order."""
    return {g.name: g.keys for g in listed_groups()}


def all_metrics() -> tuple[str, ...]:
    """Every group metric's key in listing order (the overall score is not one: it is derived from them)."""
    return tuple(m.key for g in listed_groups() for m in g.metrics)


def infos() -> dict[str, MetricInfo]:
    """{key: MetricInfo} of every metric, the overall score last."""
    return {**{m.key: m for g in listed_groups() for m in g.metrics}, OVERALL.key: OVERALL}


def info(key: str) -> MetricInfo | None:
    return infos().get(key)


def labels() -> dict[str, str]:
    found = infos()
    return {OVERALL.key: OVERALL.label, **{k: m.label for k, m in found.items() if k != OVERALL.key}}


def group_of(key: str) -> GroupSpec | None:
    return next((g for g in GROUPS if key in g.keys), None)


def table_metrics() -> tuple[str, ...]:
    """The table's metric columns (md, csv, HTML), by `column`."""
    found = [m for m in infos().values() if m.column is not None]
    return tuple(m.key for m in sorted(found, key=lambda m: m.column))


def chart_metrics() -> tuple[str, ...]:
    """The bar chart's metrics (all on a 0..1 scale): the table's order."""
    found = infos()
    return tuple(k for k in table_metrics() if found[k].chart)


def item_score_metrics() -> tuple[str, ...]:
    """The scores shown next to each caption in the HTML gallery: the overall score, then registry order."""
    return (OVERALL.key, *(m.key for g in GROUPS for m in g.metrics if m.item_score))


def vasevqa3d_keys() -> tuple[str, ...]:
    """VaseVQA-3D's top-level keys of compare_<model>.json, in its order."""
    found = [m for m in infos().values() if m.vasevqa3d_order is not None]
    return tuple(m.key for m in sorted(found, key=lambda m: m.vasevqa3d_order))


def overall_weights() -> dict[str, float]:
    """The overall score's components and weights, heaviest first (listing order among equals)."""
    found = [m for m in infos().values() if m.overall_weight]
    return {m.key: m.overall_weight for m in sorted(found, key=lambda m: -m.overall_weight)}


def lower_is_better() -> frozenset[str]:
    return frozenset(k for k, m in infos().items() if not m.higher_is_better)


def is_percent(key: str) -> bool:
    found = info(key)
    return bool(found and found.percent)


def report_sections() -> dict[str, list[GroupSpec]]:
    """{section of compare_<model>.txt: the groups with a metric there}, in order of first appearance."""
    out: dict[str, list[GroupSpec]] = {}
    for g in listed_groups():
        for m in g.metrics:
            if m.report_section and g not in out.setdefault(m.report_section, []):
                out[m.report_section].append(g)
    return out


def section_metrics(section: str) -> tuple[str, ...]:
    """A .txt section's metrics: VaseVQA-3D's keys first (in its order), then listing order."""
    found = [m for m in infos().values() if m.report_section == section]
    listing = list(infos())
    return tuple(m.key for m in sorted(found, key=lambda m: (m.vasevqa3d_order is None, m.vasevqa3d_order or 0,
                                                             listing.index(m.key))))


def signature_fields(key: str, context: SignatureContext):
    """(fields, versions) of one metric's signature, or None for an unknown key."""
    if key == OVERALL.key:
        return _overall_signature(OVERALL, context, len(overall_weights()))
    owner = group_of(key)
    if owner is None:
        return None
    return owner.signature(next(m for m in owner.metrics if m.key == key), context)


def parse_metric_groups(spec: str | None, no_coco: bool = False) -> frozenset[str]:
    """`all` or a comma list of group names -> the set of groups; unknown names raise ValueError."""
    names = all_groups()
    if not spec or spec.strip().lower() == "all":
        groups = set(names)
    else:
        groups = {g.strip().lower() for g in spec.split(",") if g.strip()}
        unknown = groups - set(names)
        if unknown:
            raise ValueError(f"unknown metric group(s) {', '.join(sorted(unknown))}; choose from "
                             f"{', '.join(names)} or all")
    if no_coco:
        groups.discard(coco.SPEC.name)
    return frozenset(groups)


ALL_GROUPS: tuple[str, ...] = all_groups()  # the built-in groups (a default for callers; readers use all_groups())


def groups_needing(protocol, kind: str, groups) -> set[str]:
    """The requested groups that read the text encoder `kind` ("sentence" or "clip") under `protocol`."""
    return {g.name for g in GROUPS if g.name in groups and g.encoder(protocol) == kind}


def groups_requiring(resource: str, groups, protocol) -> set[str]:
    """The requested groups that need `resource` ("images", "coco", ...) under `protocol`."""
    return {g.name for g in GROUPS if g.name in groups and resource in g.requires(protocol)}


def encoder_uses(protocol, kind: str) -> str:
    """What an encoder is used for, for the reports: e.g. "semantic similarity, retrieval, FD"."""
    return ", ".join(g.uses_label for g in GROUPS if g.uses_label and g.encoder(protocol) == kind)


# Snapshots of the built-in registry for callers that want a constant (readers inside compare call the functions,
# which also see a group added at run time).
LABELS: dict[str, str] = labels()
METRIC_GROUPS: dict[str, tuple[str, ...]] = metric_groups()
ALL_METRICS: tuple[str, ...] = all_metrics()
