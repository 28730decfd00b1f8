"""The README's tour, walked top to bottom on a fresh copy of the repository with its "no weights yet" paths.

Every command below is checked to appear verbatim in the README's tour table, then run in order in the copy (the
shell of a new user: `python` on PATH, nothing in ./data, ./models, ./outputs, ./results), so each row's input must
come from an earlier row. Only cost-cutting flags are added (fewer new tokens, fewer bootstrap resamples, no Java
COCO metrics, one retrieval epoch, small renders), plus what a row says to add for "no weights yet" (retrieval's
`model_name_or_path=models/tiny/clip_words`); they change how long a step takes, not what it reads or writes.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# (command as written in the README's tour, extra arguments appended for cost, extra environment for cost)
TOUR: list[tuple[str, str, dict[str, str]]] = [
    ("python examples/make_examples.py --data_dir ./data", "", {}),
    ("python render.py --input ./data/glb --output_dir ./data/multiview_images", " --size 64 --no_progress", {}),
    ("python -m demo.tiny ./models/tiny --models qwen2_5_vl,siglip,qwen3_lm,clip_words", "", {}),
    ("python qwen.py --input_dir ./data/multiview_images --output_dir ./data/captions --model_path "
     "./models/tiny/qwen2_5_vl", " --max_new_tokens 6 --no_progress", {}),
    ("./compare.sh", " --bootstrap 50", {"NO_COCO": "1"}),
    ("python -m dataprocess.convert --vasevqa ./data/groundTruth.json --multiview_dir ./data/multiview_images "
     "--output ./data/train.jsonl --val_ratio 0.2 --retrieval_output ./data/pairs.jsonl", "", {}),
    ("VISION_MODEL=./models/tiny/siglip LM_MODEL=./models/tiny/qwen3_lm EVAL_DATA=./data/train_val.jsonl sh train.sh "
     "--max_steps 2", " --gradient_accumulation_steps 2", {}),
    ("NAME=ft sh test.sh && ./compare.sh", " --bootstrap 50", {"NO_COCO": "1", "MAX_NEW_TOKENS": "6"}),
    ("python retrieval.py train configs/retrieval/clip_text_to_image.yaml --config_override data_path=data/pairs.jsonl "
     "val_data_path=data/pairs_val.jsonl image_root=null output_dir=outputs/clip_vases", " model_name_or_path="
     "models/tiny/clip_words epochs=1 batch_size=8", {}),
    ("python retrieval.py eval --model outputs/clip_vases/merged --data data/pairs_val.jsonl --output "
     "results/retrieval_eval.json", " --bootstrap 50", {}),
    ("TASK=vqa QUESTIONS=examples/vqa/questions.jsonl MODEL_PATH=./outputs/llava-finetune/base NAME=base sh "
     "eval_vqa.sh && TASK=vqa QUESTIONS=examples/vqa/questions.jsonl MODEL_PATH=./outputs/llava-finetune-merged "
     "NAME=ft sh eval_vqa.sh && python compare_vqa.py results/vqa/base results/vqa/ft", " --bootstrap 50",
     {"MAX_NEW_TOKENS": "3"}),
]


def tour_text() -> str:
    readme = (REPO / "README.md").read_text()
    return readme.split("## Tour", 1)[1].split("\n## ", 1)[0]


def test_every_tour_command_is_in_the_readme() -> None:
    text = tour_text()
    for command, _, _ in TOUR:
        assert f"`{command}`" in text, command
    assert "add `model_name_or_path=models/tiny/clip_words`" in text


def fresh_copy(dst: Path) -> Path:
    """The repository's files as a clone has them: tracked plus untracked-but-not-ignored (nothing built)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                                capture_output=True, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        ignore = shutil.ignore_patterns(".git", "data", "models", "outputs", "results", ".venv", "__pycache__")
        shutil.copytree(REPO, dst, ignore=ignore)
        return dst
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dst / name)
    return dst


@pytest.mark.slow
def test_the_tour_runs_top_to_bottom_on_a_fresh_copy(tmp_path: Path) -> None:
    repo = fresh_copy(tmp_path / "vlmkit")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "python"  # a new user's `python` (a wrapper, not a symlink: a venv is found by its path)
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON": sys.executable,
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    for key in ("NUM_GPUS", "GPU_LIST", "OUTPUT_DIR", "MODEL_PATH", "NAME", "TASK", "CAPTION_DIR"):
        env.pop(key, None)
    has_osmesa = ctypes.util.find_library("OSMesa") is not None
    for command, extra, cost_env in TOUR:
        if command.startswith("python render.py") and not has_osmesa:  # renders need libOSMesa (CI installs it)
            shutil.copytree(REPO / "examples" / "multiview_images", repo / "data" / "multiview_images")
            continue
        proc = subprocess.run(["sh", "-c", command + extra], cwd=repo, env={**env, **cost_env}, capture_output=True,
                              text=True, timeout=900)
        assert proc.returncode == 0, f"{command}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"

    data = repo / "data"
    assert len(list((data / "glb").glob("*.glb"))) == 6 and len(list((data / "multiview_images").iterdir())) >= 6
    captions = sorted(p.name for p in (data / "captions").glob("image_*.json"))
    assert captions == ["image_ft.json", "image_qwen2_5_vl.json"]
    summary = json.loads((repo / "results" / "batch_evaluation_summary.json").read_text())
    assert sorted(summary["ranking"]) == ["ft", "qwen2_5_vl"] and summary["models"][0]["pairs"] == 6
    assert (repo / "outputs" / "llava-finetune-merged" / "model.safetensors").is_file()
    assert (repo / "outputs" / "clip_vases" / "merged" / "config.json").is_file()
    assert json.loads((repo / "results" / "retrieval_eval.json").read_text())["t2i"]["R@1"] is not None
    vqa = json.loads((repo / "results" / "vqa" / "ft" / "results.json").read_text())
    assert vqa["n"] == len((REPO / "examples" / "vqa" / "questions.jsonl").read_text().splitlines())
    assert (repo / "results" / "vqa_comparison" / "comparison.md").is_file()  # compare_vqa.py's default output
