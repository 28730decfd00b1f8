"""Record Data-Juicer 1.6.1's own answers on the adversarial cases (cases.json) into data_juicer_1.6.1.json.

Run with a separate venv that has the real Data-Juicer (it is not a requirement of vlmkit):

    python3 -m venv /tmp/djvenv && /tmp/djvenv/bin/pip install py-data-juicer==1.6.1 imagededup aiohttp
    /tmp/djvenv/bin/python tests/data/dj_parity/record_with_data_juicer.py

Filters run as Data-Juicer's executor runs them (compute_stats_batched, then process_batched, on one sample's
`__dj__stats__`); the de-duplicator runs compute_hash per sample and its own `process` on an HF dataset.
tests/test_dj_parity.py runs vlmkit's operators on the same files and compares with what is recorded here.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def plain(value):
    return value.tolist() if hasattr(value, "tolist") else value


def run_filter(op, samples):
    out = []
    for s in samples:
        batch = {"text": [s["text"]], "images": [[str(HERE / "images" / n) for n in s["images"]]],
                 "__dj__stats__": [{}]}
        batch = op.compute_stats_batched(batch)
        keep = bool(list(op.process_batched(batch))[0])
        out.append({"stats": {k: plain(v) for k, v in batch["__dj__stats__"][0].items()}, "keep": keep})
    return out


def run_dedup(op, samples):
    from data_juicer.utils.constant import HashKeys
    from datasets import Dataset

    rows = []
    for i, s in enumerate(samples):
        row = op.compute_hash({"text": s["text"], "images": [str(HERE / "images" / n) for n in s["images"]]})
        rows.append({"idx": i, "text": row["text"], HashKeys.imagehash: row[HashKeys.imagehash],
                     HashKeys.hash: row.get(HashKeys.hash, "")})
    kept, _ = op.process(Dataset.from_list(rows))
    return {"imagehash": [r[HashKeys.imagehash] for r in rows], "text_hash": [r[HashKeys.hash] for r in rows],
            "kept": list(kept["idx"])}


def main() -> None:
    import data_juicer
    from data_juicer.ops import OPERATORS

    cases = json.loads((HERE / "cases.json").read_text())["cases"]
    results = []
    for case in cases:
        op = OPERATORS.modules[case["op"]](**case["params"], text_key="text", image_key="images")
        runner = run_dedup if case["op"] == "image_deduplicator" else run_filter
        results.append(runner(op, case["samples"]))
    out = {"data_juicer_version": data_juicer.__version__, "results": results}
    (HERE / f"data_juicer_{data_juicer.__version__}.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"{len(results)} cases recorded with Data-Juicer {data_juicer.__version__}")




def main_clip() -> None:
    """image_text_similarity_filter on the tiny random CLIP of demo.tiny (seed 0), built into a temporary folder.

    Needs torch and transformers in the Data-Juicer venv too (for this one-off recording they were taken from the
    project's venv through a .pth file; the recorded numbers are the model's, on this CPU)."""
    import sys
    import tempfile

    import data_juicer
    from data_juicer.ops import OPERATORS

    sys.path.insert(0, str(HERE.parents[2]))
    from demo.tiny.clip import build_tiny_clip

    spec = json.loads((HERE / "cases_clip.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        model = str(build_tiny_clip(Path(tmp) / "clip", seed=0))
        results = []
        for case in spec["cases"]:
            op = OPERATORS.modules[case["op"]](hf_clip=model, **case["params"], text_key="text", image_key="images")
            results.append(run_filter(op, case["samples"]))
    out = {"data_juicer_version": data_juicer.__version__, "model": spec["model"], "results": results}
    (HERE / f"data_juicer_{data_juicer.__version__}_clip.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"{len(results)} CLIP cases recorded with Data-Juicer {data_juicer.__version__}")


if __name__ == "__main__":
    main()
    main_clip()
