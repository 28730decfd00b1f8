"""retrieval.sh with two CPU processes (torchrun, gloo): same kind of output as one process, and the negatives are
gathered across processes (the first loss equals a one-process run over the same 16 pairs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def first_loss(output_dir: Path) -> float:
    last = sorted((output_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[-1]
    history = json.loads((last / "trainer_state.json").read_text())["log_history"]
    return next(h["loss"] for h in history if "loss" in h and h["step"] == 1)


@pytest.mark.slow
def test_two_processes_train_like_one_with_gathered_negatives(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable, "TINY_DIR": str(tmp_path / "tiny"), "TINY_NUM_GPUS": "2",
           "MASTER_PORT": "29517", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["sh", str(REPO / "retrieval.sh"), "--tiny", "--config_override", "epochs=2"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    out = tmp_path / "tiny" / "output"
    for name in ("adapter_config.json", "adapter_model.safetensors", "metrics.jsonl", "training_curves.png",
                 "vlmkit_retrieval.json", "merged/config.json", "merged/model.safetensors", "eval.json"):
        assert (out / name).is_file(), name
    info = json.loads((out / "vlmkit_retrieval.json").read_text())
    assert info["world_size"] == 2 and info["global_step"] == 6  # 48 pairs / (2 x 8) = 3 steps per epoch
    assert [r["epoch"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())] == [0, 1, 2]
    assert "t2i (text -> image)" in proc.stdout and "zero-shot" in proc.stdout

    # one process, batch 16 = the two processes' 8 + 8 pairs: the same first loss only if each process scored
    # its texts against all 16 images (without gathering, 8 negatives per text give a lower loss)
    sys.path.insert(0, str(REPO))
    import retrieval

    tiny = tmp_path / "tiny"
    single = tmp_path / "single"
    assert retrieval.main(["train", str(REPO / "configs/retrieval/clip_text_to_image.yaml"), "--config_override",
                           f"model_name_or_path={tiny / 'models' / 'clip_words'}",
                           f"data_path={tiny / 'data' / 'train.jsonl'}", "val_data_path=null", "eval_strategy=no",
                           "image_root=null", f"output_dir={single}", "max_steps=1", "batch_size=16",
                           "learning_rate=1e-2", "warmup_ratio=0", "lora_r=8", "lora_alpha=16", "logging_steps=1",
                           "lora_target_modules=q_proj,k_proj,v_proj,out_proj,fc1,fc2,text_projection,"
                           "visual_projection", "merge=false"]) == 0
    assert first_loss(out) == pytest.approx(first_loss(single), abs=1e-3)
