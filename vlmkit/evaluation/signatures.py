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


def metric_signatures(*, protocol: Any, metrics: Mapping[str, float | None], encoders: Mapping[str, Any],
                      n_items: int, pool_size: int | None, ci_methods: Mapping[str, str],
                      overall_components: tuple[str, ...] = (), views: int | None = None) -> dict[str, str]:
    """{metric: signature} for every metric that has a value."""
    clip, sentence = encoders.get("clip"), encoders.get("sentence_encoder")
    versions_st = {"sentence-transformers": package_version("sentence-transformers")}
    versions_tf = {"transformers": package_version("transformers")}
    versions_coco = {"pycocoevalcap": package_version("pycocoevalcap")}
    by_encoder = {"clip": (_clip_fields(clip), versions_tf), "sentence": (_sentence_fields(sentence), versions_st)}
    semantic_fields, semantic_versions = by_encoder[protocol.semantic_encoder]
    retrieval_fields, retrieval_versions = by_encoder[protocol.retrieval_encoder]
    tie = "argsort-desc" if protocol.retrieval_rule == "argsort" else "f32-equal-expected"
    lexical = ({"tok": "w+-lower", "empty": "1"} if protocol.lexical_tokens == "words"
               else {"tok": "whitespace-lower", "empty": "0"})
    ptb = {"tok": "ptb"}
    table: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
        "clip_score": ({**_clip_fields(clip), "sim": "cos", "agg": "mean"}, versions_tf),
        "clip_image_score": ({**_clip_fields(clip), "views": views or "all", "w": 2.5, "agg": "mean"}, versions_tf),
        "ref_clip_score": ({**_clip_fields(clip), "views": views or "all", "hm": "clipscore+textcos",
                            "agg": "mean"}, versions_tf),
        "semantic_similarity": ({**semantic_fields, "sim": "cos", "agg": "mean"}, semantic_versions),
        **{f"r_at_{k}": ({**retrieval_fields, "sim": "cos", "pool": pool_size, "k": k, "tie": tie},
                         retrieval_versions) for k in (1, 5, 10)},
        "lexical_similarity": ({**lexical, "sim": "jaccard", "agg": "mean"}, {}),
        "fid_score": ({**_sentence_fields(sentence), "emb": "l2" if protocol.fid_normalised else "raw",
                       "eps": f"{protocol.fid_eps:g}", "cov": "unbiased", "n": n_items},
                      {**versions_st, "numpy": package_version("numpy")}),
        **{f"bleu_{k}": ({**ptb, "ref": "closest", "agg": "corpus"}, versions_coco) for k in (1, 2, 3, 4)},
        "meteor": ({**ptb, "agg": "corpus-java"}, versions_coco),
        "rouge_l": ({**ptb, "beta": 1.2, "agg": "mean"}, versions_coco),
        "cider": ({**ptb, "variant": "cider-d", "idf": "eval-refs", "agg": "mean"}, versions_coco),
        "overall_score": ({"w": "vasevqa3d", "comp": "+".join(overall_components) or "none",
                           "renorm": "yes" if len(overall_components) < 6 else "no", "agg": "mean"}, {}),
    }
    out = {}
    for metric, value in metrics.items():
        if value is None or metric not in table:
            continue
        fields, versions = table[metric]
        clean = {"proto": protocol.name, **fields}
        clean["ci"] = ci_methods.get(metric, "none")
        clean["vlmkit"] = _vlmkit_version()
        clean.update(versions)
        out[metric] = format_signature(clean)
    return out
