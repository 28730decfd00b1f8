"""Metric signatures: one line per reported number saying exactly how it was computed.

In the spirit of sacrebleu's signatures (`nrefs:1|case:mixed|tok:13a|...|version:2.0.0`): `key:value` fields
joined by `|`, always in the same order for a metric, e.g.

    r_at_1     proto:vasevqa3d|enc:clip-vit-base-patch32@1c2d3e4f|tok:clip-trunc77|sim:cos|pool:96|k:1|
               tie:argsort-desc|ci:paired-bootstrap-percentile95%-B1000-seed0|vlmkit:0.1.0|transformers:5.23.0

Fields: `proto` protocol; `enc` encoder = folder name @ fingerprint (8 hex digits of a SHA-256 over the folder's
JSON config files and, per weight file, its size and first and last MiB: a different fine-tune of the same
architecture gets a different fingerprint; an injected encoder without a folder is named only); `tok`
tokenisation; `sim`/`agg` similarity and aggregation; `pool`, `k`, `tie` retrieval; `emb`, `eps`, `n` Fréchet
distance; `ci` the confidence-interval method; then the versions of the packages that produce the number.
Two numbers are comparable when their signatures are equal (`n` and `pool` may differ only if you accept a
different test set).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

SAMPLE_BYTES = 1 << 20
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx")


def model_fingerprint(folder: str | os.PathLike) -> str:
    """8 hex digits identifying a model folder's configuration and weights, cheaply (no full weight hash)."""
    root = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and ".git" not in p.parts and ".cache" not in p.parts):
        rel = path.relative_to(root).as_posix()
        if path.suffix == ".json":
            digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
        elif path.suffix in WEIGHT_SUFFIXES:
            size = path.stat().st_size
            with path.open("rb") as handle:
                head = handle.read(SAMPLE_BYTES)
                handle.seek(max(0, size - SAMPLE_BYTES))
                tail = handle.read(SAMPLE_BYTES)
            digest.update(f"{rel}\0{size}\0".encode() + head + tail)
    return digest.hexdigest()[:8]


@cache
def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def _vlmkit_version() -> str:
    from vlmkit import __version__

    return __version__


def encoder_id(description: Mapping[str, Any] | None) -> str:
    if not description:
        return "none"
    name = str(description.get("name"))
    fingerprint = description.get("fingerprint")
    return f"{name}@{fingerprint}" if fingerprint else name


def format_signature(fields: Mapping[str, Any]) -> str:
    return "|".join(f"{k}:{str(v).replace('|', '/')}" for k, v in fields.items())


def parse_signature(signature: str) -> dict[str, str]:
    return dict(part.split(":", 1) for part in signature.split("|") if part)


def differing_fields(signatures: Mapping[str, str]) -> list[str]:
    """The fields whose values are not the same in all the given signatures (one per model)."""
    parsed = [parse_signature(s) for s in signatures.values()]
    keys = list(dict.fromkeys(k for p in parsed for k in p))
    return [k for k in keys if len({p.get(k) for p in parsed}) > 1]


def _clip_fields(clip: Mapping[str, Any] | None) -> dict[str, Any]:
    clip = clip or {}
    pad = "-padmax" if clip.get("text_padding") == "max_length" else ""  # SigLIP: padded to its full context
    return {"enc": encoder_id(clip or None), "tok": f"clip-trunc{clip.get('context_length', 77)}{pad}"}


def _sentence_fields(sentence: Mapping[str, Any] | None) -> dict[str, Any]:
    max_len = (sentence or {}).get("max_seq_length")
    return {"enc": encoder_id(sentence), "tok": f"st-max{max_len}" if max_len else "encoder"}


def encoder_fields(kind: str, encoders: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The `enc` and `tok` fields of a text encoder kind ("clip" or "sentence") and the package that runs it."""
    if kind == "clip":
        return _clip_fields(encoders.get("clip")), {"transformers": package_version("transformers")}
    return (_sentence_fields(encoders.get("sentence_encoder")),
            {"sentence-transformers": package_version("sentence-transformers")})


def metric_signatures(*, protocol: Any, metrics: Mapping[str, float | None], context: Any) -> dict[str, str]:
    """{metric: signature} for every metric that has a value, in the order of `metrics`.

    Each metric's own fields come from its group's spec (`GroupSpec.signature`, see vlmkit/evaluation/metrics/);
    `proto` comes first, then those fields, then `ci`, the vlmkit version and the versions the group names."""
    from vlmkit.evaluation.metrics import signature_fields

    out = {}
    for metric, value in metrics.items():
        found = signature_fields(metric, context) if value is not None else None
        if found is None:
            continue
        fields, versions = found
        clean = {"proto": protocol.name, **fields}
        clean["ci"] = context.ci_methods.get(metric, "none")
        clean["vlmkit"] = _vlmkit_version()
        clean.update(versions)
        out[metric] = format_signature(clean)
    return out
