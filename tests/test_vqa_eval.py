"""eval_vqa.py / compare_vqa.py end to end on a tiny random Qwen2.5-VL and its LoRA adapter from train.py (issue 12).

Twelve synthetic TextVQA-format questions: one chunk equals two chunks + merge, the adapter changes the answers,
--score_only reproduces a hand-computed accuracy, resume after a crash loses and duplicates nothing, and every kind of
bad input stops before the model is loaded with one line and nothing written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import compare_vqa
import eval_vqa
import train
from tests.fixtures.crash import crash_generate_on_call
from tests.fixtures.vqa_data import write_mmbench_tsv, write_textvqa
from vlmkit.generation.hf_backend import HFCaptioner
from vlmkit.io import InputError, read_json, read_jsonl

REPO = Path(__file__).resolve().parent.parent
FAST = ["--max_new_tokens", "3", "--batch_size", "4", "--no_progress", "--bootstrap", "200"]


@pytest.fixture(scope="module")
def textvqa(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_textvqa(tmp_path_factory.mktemp("textvqa"))


@pytest.fixture(scope="module")
def base_model(tiny_qwen2_5_vl_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen2.5-VL, generating only letter word pieces (a random LM otherwise emits byte junk or stops)."""
    from transformers import AutoTokenizer, GenerationConfig

    out = tmp_path_factory.mktemp("vqa_base") / "Qwen2.5-VL-tiny"
    shutil.copytree(tiny_qwen2_5_vl_dir, out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    words = re.compile(r" ?[A-Za-z]+")
    config = GenerationConfig.from_pretrained(out)
    config.suppress_tokens = [i for i in range(len(tokenizer)) if not words.fullmatch(tokenizer.decode([i]))]
    config.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def adapter(base_model: Path, repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("vqa_lora") / "qwen-lora"
    examples = repo_root / "examples"
    assert train.main(["--arch", "qwen2_5_vl", "--base_model", str(base_model), "--data",
                       str(examples / "groundTruth.json"), "--image_folder", str(examples / "multiview_images"),
                       "--views", "front", "--max_pixels", str(56 * 56), "--output_dir", str(out), "--max_steps", "2",
                       "--per_device_train_batch_size", "2", "--learning_rate", "1e-2", "--save_steps", "100"]) == 0
    return out


def run_args(textvqa: tuple[Path, Path], model: Path, output: Path, *extra: str) -> list[str]:
    annotations, images = textvqa
    return ["--task", "textvqa", "--annotations", str(annotations), "--image_dir", str(images), "--model_path",
            str(model), "--output_dir", str(output), *FAST, *extra]


@pytest.fixture(scope="module")
def reference(textvqa, base_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One chunk (the run merges and scores itself)."""
    out = tmp_path_factory.mktemp("vqa_ref") / "base"
    assert eval_vqa.main(run_args(textvqa, base_model, out)) == 0
    return out


def test_one_chunk_run_writes_answers_scores_and_results(reference: Path) -> None:
    answers = read_jsonl(reference / "answers.jsonl")
    assert [a["question_id"] for a in answers] == list(range(100, 112))
    assert all(a["answer"].strip() and re.fullmatch(r"[A-Za-z ]+", a["answer"]) for a in answers)
    assert len({a["answer"] for a in answers}) > 1  # input-dependent answers
    results = read_json(reference / "results.json")
    scored = read_jsonl(reference / "predictions_scored.jsonl")
    assert results["n"] == 12 and results["complete"] and results["n_failed"] == 0
    assert results["accuracy"] == pytest.approx(sum(r["score"] for r in scored) / 12)
    assert set(results["by_question_type"]) == {"what brand", "how many", "what color"}
    sig = results["signature"]
    assert sig["task"] == "textvqa" and sig["model"]["adapter_path"] is None and len(sig["dataset"]["sha256"]) == 64
    assert sig["prompt"]["template"].endswith("Answer the question using a single word or phrase.")
    assert sig["decoding"]["max_new_tokens"] == 3 and sig["decoding"]["do_sample"] is False
    assert results["ci95"]["method"].startswith("percentile bootstrap over 12 items")


def test_two_chunks_and_merge_equal_one_chunk(textvqa, base_model: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "base"
    assert eval_vqa.main(run_args(textvqa, base_model, out, "--num_chunks", "2", "--chunk_idx", "1")) == 0
    with pytest.raises(InputError, match=r"missing chunk answers\.chunk-0-of-2\.jsonl"):
        eval_vqa.main(["--merge", "--output_dir", str(out)])
    assert not (out / "results.json").exists()
    assert eval_vqa.main(run_args(textvqa, base_model, out, "--num_chunks", "2", "--chunk_idx", "0")) == 0
    chunks = out / "chunks"
    report = chunks / "answers.chunk-0-of-2.report.json"
    kept = report.read_bytes()
    report.unlink()  # what a chunk killed with -9 leaves
    with pytest.raises(InputError, match=r"chunk 0 of 2 did not finish \(no report: still running or killed\)"):
        eval_vqa.main(["--merge", "--output_dir", str(out)])
    report.write_bytes(kept)
    meta = chunks / "answers.chunk-1-of-2.meta.json"
    kept = meta.read_text()
    meta.write_text(kept.replace('"max_new_tokens": 3', '"max_new_tokens": 5'))
    with pytest.raises(InputError, match=r"from a different run than chunk 0 \(decoding\.max_new_tokens differ\)"):
        eval_vqa.main(["--merge", "--output_dir", str(out)])
    meta.write_text(kept)
    answers = chunks / "answers.chunk-0-of-2.jsonl"
    kept = answers.read_text()
    answers.write_text(kept + (chunks / "answers.chunk-1-of-2.jsonl").read_text().splitlines()[0] + "\n")
    with pytest.raises(InputError, match=r"question 106 does not belong to chunk 0 of 2"):
        eval_vqa.main(["--merge", "--output_dir", str(out)])
    answers.write_text(kept)
    assert not (out / "results.json").exists()
    assert eval_vqa.main(["--merge", "--output_dir", str(out), "--bootstrap", "200"]) == 0
    for name in ("answers.jsonl", "predictions_scored.jsonl"):
        assert read_jsonl(out / name) == read_jsonl(reference / name)
    merged, single = read_json(out / "results.json"), read_json(reference / "results.json")
    assert merged["accuracy"] == single["accuracy"] and merged["ci95"] == single["ci95"]
    assert merged["by_question_type"] == single["by_question_type"] and merged["chunks"] == 2
    with pytest.raises(InputError, match="results already exist; pass --overwrite"):
        eval_vqa.main(["--merge", "--output_dir", str(out)])


def test_adapter_run_differs_from_the_base_run(textvqa, base_model: Path, adapter: Path, reference: Path,
                                               tmp_path: Path) -> None:
    out = tmp_path / "lora"
    assert eval_vqa.main(run_args(textvqa, base_model, out, "--adapter_path", str(adapter))) == 0
    base = {a["question_id"]: a["answer"] for a in read_jsonl(reference / "answers.jsonl")}
    lora = {a["question_id"]: a["answer"] for a in read_jsonl(out / "answers.jsonl")}
    assert base.keys() == lora.keys() and base != lora
    sig = read_json(out / "results.json")["signature"]["model"]
    assert sig["name"] == "qwen-lora" and sig["adapter_path"] == str(adapter.resolve()) and sig["adapter_sha256"]

    report = tmp_path / "comparison"
    assert compare_vqa.main([str(reference), str(out), "--output_dir", str(report), "--bootstrap", "200"]) == 0
    comparison = read_json(report / "comparison.json")
    assert [m["name"] for m in comparison["models"]] == ["Qwen2.5-VL-tiny", "qwen-lora"]
    assert comparison["paired"][0]["n"] == 12 and comparison["warnings"] == []
    assert "qwen-lora" in (report / "comparison.md").read_text() and "<svg" in (report / "comparison.html").read_text()


def hand_written(path: Path, answers: dict[int, str]) -> Path:
    path.write_text("".join(json.dumps({"question_id": q, "answer": a}) + "\n" for q, a in answers.items()))
    return path


def test_score_only_gives_the_hand_computed_accuracy(textvqa, tmp_path: Path) -> None:
    annotations, _ = textvqa
    # 4 x "Adidas." (7 of 10 humans: 1.0), 4 x "The Nike" (3 of 10: 0.9), 4 x "puma" (0.0) -> (4 + 3.6) / 12
    picks = ["Adidas.", "The Nike", "puma"]
    predictions = hand_written(tmp_path / "answers.jsonl", {100 + i: picks[i % 3] for i in range(12)})
    out = tmp_path / "scored"
    assert eval_vqa.main(["--task", "textvqa", "--score_only", "--predictions", str(predictions), "--annotations",
                          str(annotations), "--output_dir", str(out)]) == 0
    results = read_json(out / "results.json")
    assert results["accuracy"] == pytest.approx(7.6 / 12, abs=1e-12) and results["name"] == "answers"
    assert results["by_question_type"] == {"how many": {"n": 4, "accuracy": pytest.approx(0.9)},
                                           "what brand": {"n": 4, "accuracy": 1.0},
                                           "what color": {"n": 4, "accuracy": 0.0}}
    assert results["answer_stats"]["unique"] == 3 and results["answer_stats"]["top"][0]["count"] == 4
    rows = read_jsonl(out / "predictions_scored.jsonl")
    assert [r["normalized_answer"] for r in rows[:3]] == ["adidas", "nike", "puma"]

    partial = hand_written(tmp_path / "partial.jsonl", {100: "adidas", 101: "nike"})
    args = ["--task", "textvqa", "--score_only", "--predictions", str(partial), "--annotations", str(annotations),
            "--output_dir", str(tmp_path / "partial")]
    with pytest.raises(InputError, match=r"question 102: no prediction \(10 of 12 missing; --allow_missing"):
        eval_vqa.main(args)
    assert eval_vqa.main([*args, "--allow_missing"]) == 1  # scored, with the missing ones listed
    results = read_json(tmp_path / "partial" / "results.json")
    assert results["accuracy"] == pytest.approx(0.95) and results["n_missing"] == 10 and not results["complete"]

    two = tmp_path / "compare"
    assert compare_vqa.main([str(out), str(tmp_path / "partial"), "--output_dir", str(two)]) == 0
    paired = read_json(two / "comparison.json")["paired"][0]
    assert paired["n"] == 2 and paired["difference"] == pytest.approx(0.95 - (1.0 + 0.9) / 2)


def test_resume_after_a_crash_loses_and_duplicates_nothing(textvqa, base_model: Path, reference: Path,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "base"
    crash_generate_on_call(monkeypatch, 2)  # the process dies in the second batch
    with pytest.raises(KeyboardInterrupt):
        eval_vqa.main(run_args(textvqa, base_model, out))
    chunk = out / "chunks" / "answers.chunk-0-of-1.jsonl"
    assert read_jsonl(chunk) == read_jsonl(reference / "answers.jsonl")[:4] and not (out / "results.json").exists()
    monkeypatch.undo()
    with pytest.raises(InputError, match="chunk already exists; pass --resume"):
        eval_vqa.main(run_args(textvqa, base_model, out))
    with pytest.raises(InputError, match=r"made by a different run \(decoding\.max_new_tokens differ\)"):
        eval_vqa.main(run_args(textvqa, base_model, out, "--resume", "--max_new_tokens", "5"))
    assert eval_vqa.main(run_args(textvqa, base_model, out, "--resume")) == 0
    assert read_jsonl(out / "answers.jsonl") == read_jsonl(reference / "answers.jsonl")
    report = read_json(out / "chunks" / "answers.chunk-0-of-1.report.json")
    assert report["totals"]["already_done"] == 4 and report["totals"]["captioned"] == 8


def test_an_unreadable_image_is_a_listed_failure_and_resume_retries_it(textvqa, base_model: Path, reference: Path,
                                                                       tmp_path: Path) -> None:
    annotations, images = textvqa
    broken = tmp_path / "images"
    shutil.copytree(images, broken)
    (broken / "img05.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    args = ["--task", "textvqa", "--annotations", str(annotations), "--image_dir", str(broken), "--model_path",
            str(base_model), "--output_dir", str(out), *FAST]
    assert eval_vqa.main(args) == 1
    results = read_json(out / "results.json")
    assert results["n"] == 11 and results["n_failed"] == 1 and not results["complete"]
    assert results["failed"][0]["question_id"] == 105 and "unreadable image" in results["failed"][0]["reason"]
    shutil.copy(images / "img05.jpg", broken / "img05.jpg")
    assert eval_vqa.main([*args, "--resume"]) == 0
    assert read_jsonl(out / "answers.jsonl") == read_jsonl(reference / "answers.jsonl")


@pytest.fixture()
def no_model_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the model must not be loaded for bad input")

    monkeypatch.setattr(HFCaptioner, "__init__", refuse)


@pytest.mark.usefixtures("no_model_loading")
def test_bad_input_is_one_line_before_the_model_and_writes_nothing(textvqa, base_model: Path, adapter: Path,
                                                                   tmp_path: Path) -> None:
    annotations, images = textvqa
    data = json.loads(annotations.read_text())
    out = tmp_path / "out"

    def fails(match: str, *, ann: dict | list | None = None, extra: tuple[str, ...] = (), model: Path = base_model,
              image_dir: Path = images) -> None:
        path = annotations
        if ann is not None:
            path = tmp_path / "ann.json"
            path.write_text(json.dumps(ann))
        args = ["--task", "textvqa", "--annotations", str(path), "--image_dir", str(image_dir), "--model_path",
                str(model), "--output_dir", str(out), *FAST, *extra]
        with pytest.raises(InputError, match=match):
            eval_vqa.main(args)
        assert not out.exists()

    fails(r"ann\.json: not a TextVQA annotation file", ann=[{"image": "a.jpg", "caption": "x"}])
    fails(r"ann\.json: item 0: missing 'image_id'", ann={"data": [{"question_id": 1, "question": "q"}]})
    no_answers = {"data": [{**data["data"][0], "answers": []}]}
    fails(r"question 100: no answers \(a test split\?", ann=no_answers)
    fails(r"question 100: duplicated question_id", ann={"data": data["data"][:1] * 2})
    empty_dir = tmp_path / "nothing"
    empty_dir.mkdir()
    fails(r"img00\.jpg: question 100: image not found \(12 of 12 images missing", image_dir=empty_dir)
    fails(r"--chunk_idx 2: out of range; must be in 0..1", extra=("--num_chunks", "2", "--chunk_idx", "2"))
    fails(r"--num_chunks 13: more parts than the 12 questions", extra=("--num_chunks", "13"))
    fails(r"is a LoRA adapter, not a model", model=adapter)

    wrong_base = tmp_path / "other-base"
    shutil.copytree(base_model, wrong_base)
    config = json.loads((wrong_base / "config.json").read_text())
    config["text_config"]["intermediate_size"] = 48  # another architecture size: the LoRA matrices cannot fit
    (wrong_base / "config.json").write_text(json.dumps(config))
    fails(r"qwen-lora: does not fit the base model .*other-base: .*mlp\.(down|gate|up)_proj.* features",
          model=wrong_base, extra=("--adapter_path", str(adapter)))
    other_class = tmp_path / "other-lora"
    shutil.copytree(adapter, other_class)
    adapter_config = json.loads((other_class / "adapter_config.json").read_text())
    adapter_config["auto_mapping"]["base_model_class"] = "InternVLForConditionalGeneration"
    (other_class / "adapter_config.json").write_text(json.dumps(adapter_config))
    fails(r"adapter for a InternVLForConditionalGeneration .* is a Qwen2_5_VLForConditionalGeneration",
          extra=("--adapter_path", str(other_class)))
    assert eval_vqa.main(run_args(textvqa, base_model, out, "--adapter_path", str(adapter), "--dry_run")) == 0
    assert not out.exists() or not any(out.iterdir())


def test_mmbench_tsv_with_base64_images_end_to_end(base_model: Path, tmp_path: Path) -> None:
    tsv = tmp_path / "mmbench_dev_en.tsv"
    write_mmbench_tsv(tsv, [
        {"index": 1, "question": "Which animal?", "options": ["cat", "dog", "bird"], "answer": 1,
         "category": "object_localization", "l2": "fp", "color": (200, 10, 10)},
        {"index": 2, "question": "Which colour?", "hint": "Look closely.", "options": ["red", "blue"], "answer": 1,
         "category": "image_style", "l2": "cp", "color": (10, 10, 200)},
    ])
    out = tmp_path / "mmbench"
    assert eval_vqa.main(["--task", "mmbench", "--tsv", str(tsv), "--model_path", str(base_model), "--output_dir",
                          str(out), *FAST]) == 0
    results = read_json(out / "results.json")
    rows = read_jsonl(out / "predictions_scored.jsonl")
    assert results["n"] == 2 and results["unit"] == "circular group" and len(rows) == 5
    assert results["mmbench"]["rotations_per_group"] == {"2": 1, "3": 1}
    assert results["accuracy"] == sum(r["score"] for r in {r["group"]: r for r in rows}.values()) / 2
    assert results["mmbench"]["unextractable"] == sum(r["extracted"] is None for r in rows)
    predictions = hand_written(tmp_path / "letters.jsonl", {r["question_id"]: r["gt"] for r in rows})
    assert eval_vqa.main(["--task", "mmbench", "--tsv", str(tsv), "--score_only", "--predictions", str(predictions),
                          "--output_dir", str(tmp_path / "letters")]) == 0
    assert read_json(tmp_path / "letters" / "results.json")["accuracy"] == 1.0


@pytest.mark.slow
def test_eval_vqa_sh_runs_one_process_per_gpu_and_merges(textvqa, base_model: Path, reference: Path,
                                                         tmp_path: Path) -> None:
    annotations, images = textvqa
    out = tmp_path / "base"
    env = {**os.environ, "PYTHON": sys.executable, "GPU_LIST": "0,1", "MODEL_PATH": str(base_model),
           "ANNOTATIONS": str(annotations), "IMAGE_DIR": str(images), "OUTPUT_DIR": str(out),
           "NAME": "Qwen2.5-VL-tiny"}
    with_progress = [arg for arg in FAST if arg != "--no_progress"]
    proc = subprocess.run(["sh", str(REPO / "eval_vqa.sh"), *with_progress], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import torch

    if torch.cuda.device_count() >= 2:
        assert "2 chunk(s) on GPU 0,1" in proc.stdout and "chunk 1: model on cuda:0" in proc.stdout
    else:  # the device it really uses, from the model's own log line
        assert "2 chunk(s) on the CPU" in proc.stdout
        assert "  chunk 0: model on cpu, torch.float32" in proc.stdout
    final = [line for line in proc.stdout.splitlines() if line.startswith("  answering:")][-1]
    assert re.fullmatch(r"  answering: chunk 0 (\d+)/\1 chunk 1 (\d+)/\2", final), final  # progress, to the end
    assert sorted(p.name for p in (out / "logs").iterdir()) == ["chunk-0-of-2.log", "chunk-1-of-2.log"]
    for name in ("answers.jsonl", "predictions_scored.jsonl"):
        assert read_jsonl(out / name) == read_jsonl(reference / name)
    assert read_json(out / "results.json")["chunks"] == 2
