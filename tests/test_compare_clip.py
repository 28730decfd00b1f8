"""CLIP metrics with a tiny random CLIP, checked against a direct transformers computation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPModel, CLIPProcessor

import compare
from tests.fixtures.fake_text_encoder import BagOfWordsEncoder
from vlmkit.cli import run_main
from vlmkit.evaluation import pipeline
from vlmkit.ids import VIEWS
from vlmkit.multiview import find_object_dirs_by_id
from vlmkit.records import load_caption_records

MODEL_FILE = "image_illustration-vague.json"


@pytest.fixture()
def encoder(monkeypatch: pytest.MonkeyPatch) -> BagOfWordsEncoder:
    fake = BagOfWordsEncoder()
    monkeypatch.setattr(pipeline.SentenceEncoder, "load", classmethod(lambda cls, *a, **k: fake))
    return fake


def run(capsys, *argv: object) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        run_main(compare.main, [str(a) for a in argv])
    return exc.value.code, capsys.readouterr().err


def args(examples: Path, clip_dir: Path, out: Path) -> list[object]:
    return ["--generated", examples / "captions" / MODEL_FILE, "--ground_truth", examples / "groundTruth.json",
            "--images_dir", examples / "multiview_images", "--clip_model", clip_dir, "--output_dir", out,
            "--no_coco"]


def _features(output) -> torch.Tensor:
    feats = output.pooler_output if hasattr(output, "pooler_output") else output
    return torch.nn.functional.normalize(feats.float(), dim=-1)


def test_clip_text_score_clipscore_and_refclipscore_match_direct_computation(
        capsys, encoder, examples_copy: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    code, err = run(capsys, *args(examples_copy, tiny_clip_dir, tmp_path / "out"))
    assert code == 0, err
    result = json.loads((tmp_path / "out" / "compare_illustration-vague.json").read_text())
    rows = {json.loads(line)["id"]: json.loads(line)
            for line in (tmp_path / "out" / "compare_illustration-vague_per_sample.jsonl").read_text().splitlines()}
    assert result["overall_score_partial"] is False and result["overall"]["weight_covered"] == pytest.approx(1.0)
    assert result["metadata"]["encoders"]["clip"]["dim"] == 16
    assert result["metadata"]["encoders"]["clip"]["texts_truncated_to_context"] > 0  # char-level: > 77 tokens

    model = CLIPModel.from_pretrained(str(tiny_clip_dir)).eval()
    processor = CLIPProcessor.from_pretrained(str(tiny_clip_dir))
    generated = {r.id: r.caption for r in load_caption_records(examples_copy / "captions" / MODEL_FILE)}
    truth = {r.id: r.caption for r in load_caption_records(examples_copy / "groundTruth.json")}
    objects = find_object_dirs_by_id(examples_copy / "multiview_images")
    clip_scores, image_scores = [], []
    with torch.no_grad():
        for item, row in rows.items():
            text = processor.tokenizer([generated[item], truth[item]], padding=True, truncation=True, max_length=77,
                                       return_tensors="pt")
            gen_f, ref_f = _features(model.get_text_features(**text))
            views = [Image.open(objects[item].path / f"{v}.jpg").convert("RGB") for v in VIEWS]
            img_f = _features(model.get_image_features(**processor(images=views, return_tensors="pt")))
            text_cos = float(gen_f @ ref_f)
            clip_s = float(np.mean([2.5 * max(float(v @ gen_f), 0.0) for v in img_f]))
            ref_term = max(text_cos, 0.0)
            ref_clip = 2 * clip_s * ref_term / (clip_s + ref_term) if clip_s + ref_term > 0 else 0.0
            assert row["clip_score"] == pytest.approx(text_cos, abs=1e-5)
            assert row["clip_image_score"] == pytest.approx(clip_s, abs=1e-5)
            assert row["ref_clip_score"] == pytest.approx(ref_clip, abs=1e-5)
            assert row["views_used"] == 6
            clip_scores.append(text_cos)
            image_scores.append(clip_s)
    assert result["clip_score"] == pytest.approx(np.mean(clip_scores), abs=1e-6)
    assert result["clip_image_score"] == pytest.approx(np.mean(image_scores), abs=1e-6)
    html = (tmp_path / "out" / "evaluation_report.html").read_text()
    assert html.count("data:image/jpeg;base64,") == 36  # 6 items x 6 views, embedded


def test_corrupt_view_image_is_an_input_error(capsys, encoder, examples_copy: Path, tiny_clip_dir: Path,
                                              tmp_path: Path) -> None:
    folder = sorted((examples_copy / "multiview_images").iterdir())[2]
    (folder / "left.jpg").write_bytes(b"not a jpeg")
    code, err = run(capsys, *args(examples_copy, tiny_clip_dir, tmp_path / "out"))
    last = err.splitlines()[-1]  # before it only the model-loading progress bar
    assert code == 2 and last.startswith("error: ") and "error:" not in "".join(err.splitlines()[:-1])
    assert str(folder / "left.jpg") in last and "unreadable image" in last
    assert not (tmp_path / "out").exists()


def test_missing_object_folder_is_an_input_error(capsys, encoder, examples_copy: Path, tiny_clip_dir: Path,
                                                 tmp_path: Path) -> None:
    folder = sorted((examples_copy / "multiview_images").iterdir())[0]
    for view in folder.iterdir():
        view.unlink()
    folder.rmdir()
    code, err = run(capsys, *args(examples_copy, tiny_clip_dir, tmp_path / "out"))
    assert code == 2 and err.count("\n") == 1
    assert "no object folder for id " + folder.name.split("_ac001001")[0] in err
    assert not (tmp_path / "out").exists()


def test_a_missing_view_is_warned_and_counted(capsys, caplog, encoder, examples_copy: Path, tiny_clip_dir: Path,
                                              tmp_path: Path) -> None:
    folder = sorted((examples_copy / "multiview_images").iterdir())[1]
    (folder / "top.jpg").unlink()
    (folder / "left.jpg").unlink()
    code, err = run(capsys, *args(examples_copy, tiny_clip_dir, tmp_path / "out"))
    assert code == 0, err
    item = folder.name.split("_ac001001")[0]
    assert "CLIPScore: 1 of 6 objects miss views" in caplog.text and f"{item}: left, top" in caplog.text
    result = json.loads((tmp_path / "out" / "compare_illustration-vague.json").read_text())
    assert result["views"] == {"expected_per_item": 6, "views_used": 34, "views_missing": 2,
                               "items_with_missing_views": 1, "ids": [item],
                               "missing_by_view": {"front": 0, "back": 0, "left": 1, "right": 0, "top": 1,
                                                   "bottom": 0}}
    rows = {json.loads(line)["id"]: json.loads(line)
            for line in (tmp_path / "out" / "compare_illustration-vague_per_sample.jsonl").read_text().splitlines()}
    assert rows[item]["views_used"] == 4 and rows[item]["views_missing"] == 2
    assert all(r["views_missing"] == 0 for i, r in rows.items() if i != item)
    assert any("1 items miss views" in note for note in result["notes"])
    assert "2 missing in 1 items" in (tmp_path / "out" / "compare_illustration-vague.txt").read_text()


def test_a_siglip_model_serves_as_clip_model_with_its_own_padding(capsys, encoder, examples_copy: Path,
                                                                 tiny_siglip_words_dir: Path, tmp_path: Path) -> None:
    """SigLIP (e.g. a retrieval.py fine-tune) has no projection_dim and was trained on max-length padded text."""
    from transformers import AutoModel, AutoProcessor

    code, err = run(capsys, *args(examples_copy, tiny_siglip_words_dir, tmp_path / "out"))
    assert code == 0, err
    result = json.loads((tmp_path / "out" / "compare_illustration-vague.json").read_text())
    clip = result["metadata"]["encoders"]["clip"]
    model = AutoModel.from_pretrained(str(tiny_siglip_words_dir)).eval()
    processor = AutoProcessor.from_pretrained(str(tiny_siglip_words_dir))
    assert clip["dim"] == model.config.text_config.hidden_size and clip["text_padding"] == "max_length"
    assert "-padmax" in result["metric_signatures"]["clip_score"]
    generated = {r.id: r.caption for r in load_caption_records(examples_copy / "captions" / MODEL_FILE)}
    truth = {r.id: r.caption for r in load_caption_records(examples_copy / "groundTruth.json")}
    expected = []
    with torch.no_grad():
        for item in truth:
            text = processor.tokenizer([generated[item], truth[item]], padding="max_length", truncation=True,
                                       max_length=clip["context_length"], return_tensors="pt")
            gen_f, ref_f = _features(model.get_text_features(**text))
            expected.append(float(gen_f @ ref_f))
    assert result["clip_score"] == pytest.approx(float(np.mean(expected)), abs=1e-5)
