"""fid_score: the Fréchet distance between the generated and the reference sentence-embedding distributions."""

from __future__ import annotations

import numpy as np

from vlmkit.evaluation.bootstrap import FrechetStatistic
from vlmkit.evaluation.frechet import frechet_result
from vlmkit.evaluation.metrics.spec import GroupContext, GroupScores, GroupSpec, MetricInfo, SignatureContext
from vlmkit.evaluation.signatures import encoder_fields, package_version

FID = MetricInfo(
    key="fid_score", label="FD (sentence emb.)",
    description="Fréchet distance between the Gaussians fitted to the generated and to the reference sentence "
                "embeddings: how far the two sets of captions are apart as distributions, not per item",
    range="≥ 0 (0: the same distribution)", higher_is_better=False, column=12, vasevqa3d_order=1,
    caveats=("biased upward at small n (n ≤ the embedding dimension): compare FD only between runs with the "
             "same n",),
    ci_kind="fid",
    no_ci_reason="the Fréchet distance is bootstrapped only with --fid_bootstrap N (it recomputes the "
                 "covariances for every resample)")


def compute(matched, context: GroupContext) -> GroupScores:
    out = GroupScores()
    protocol = context.protocol
    gen, ref = context.pair_embeddings("sentence", matched.generated, matched.references)
    fid = frechet_result(gen, ref, eps=protocol.fid_eps, normalised=protocol.fid_normalised)
    out.metrics[FID.key] = fid.value
    if fid.reason:
        out.reasons[FID.key] = fid.reason
    else:
        out.statistics[FID.key] = FrechetStatistic(gen.astype(np.float64), ref.astype(np.float64), protocol.fid_eps)
    if fid.warning:
        out.notes.append(f"{FID.key}: {fid.warning}")
    embedding = "L2-normalised" if fid.normalised else "as encode() returns them"
    value = fid.value if fid.value is None or np.isfinite(fid.value) else None
    out.details["fid"] = {
        "value": value, "n_generated": fid.n_generated, "n_reference": fid.n_reference, "dim": fid.dim,
        "warning": fid.warning, "reason": fid.reason, "eps": fid.eps,
        "encoder": (context.encoders.get("fid_encoder") or {}).get("name"),
        "embedding": f"sentence embeddings {embedding}, float64 statistics"
                     + (f", {fid.eps:g}·I added to both covariances" if fid.eps else "")}
    return out


def report_lines(details: dict) -> list[str]:
    f = details["fid"]
    return [f"  (FD over n={f['n_generated']} generated / {f['n_reference']} reference embeddings, dim {f['dim']})"]


def signature(metric: MetricInfo, context: SignatureContext):
    fields, versions = encoder_fields("sentence", context.encoders)
    protocol = context.protocol
    return ({**fields, "emb": "l2" if protocol.fid_normalised else "raw", "eps": f"{protocol.fid_eps:g}",
             "cov": "unbiased", "n": context.n_items}, {**versions, "numpy": package_version("numpy")})


SPEC = GroupSpec(
    name="fid", metrics=(FID,), compute=compute, signature=signature, requires=lambda protocol: ("sentence",),
    encoder=lambda protocol: "sentence", uses_label="FD", reports_encoder=True, details_key="fid",
    report_lines=report_lines, position=3)
