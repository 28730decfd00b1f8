"""The question-set loaders: TextVQA with the optional OCR line, generic VQA JSONL, prompt templates (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.vqa_data import write_textvqa
from vlmkit.io import InputError
from vlmkit.vqa.tasks import load_task


@pytest.fixture()
def textvqa(tmp_path: Path) -> tuple[Path, Path]:
    return write_textvqa(tmp_path / "textvqa", n=3)


def test_textvqa_prompt_is_llavas_and_the_ocr_line_is_optional(textvqa, tmp_path: Path) -> None:
    annotations, images = textvqa
    plain = load_task("textvqa", annotations=str(annotations), image_dir=str(images))
    assert plain.questions[0].prompt == "what brand is this?\nAnswer the question using a single word or phrase."
    assert plain.questions[0].image_path == images / "img00.jpg" and plain.questions[0].question_type == "what brand"
    with pytest.raises(InputError, match=r"question 100: no OCR tokens for image img00"):
        load_task("textvqa", annotations=str(annotations), ocr=True)
    ocr = tmp_path / "TextVQA_Rosetta_OCR_v0.2_val.json"
    ocr.write_text(json.dumps({"data": [{"image_id": f"img0{i}", "ocr_tokens": ["NIKE", "just", "do"]}
                                        for i in range(3)]}))
    with_ocr = load_task("textvqa", annotations=str(annotations), ocr=True, ocr_file=str(ocr))
    assert with_ocr.questions[0].prompt == ("what brand is this?\nReference OCR token: NIKE, just, do\n"
                                            "Answer the question using a single word or phrase.")
    assert with_ocr.options["ocr"] and with_ocr.sha256 == plain.sha256
    with pytest.raises(InputError, match="pass --ocr too"):
        load_task("textvqa", annotations=str(annotations), ocr_file=str(ocr))


def test_prompt_file_fields_are_checked(textvqa, tmp_path: Path) -> None:
    annotations, _ = textvqa
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Q: {question} A:")
    assert load_task("textvqa", annotations=str(annotations), prompt_file=str(prompt)).questions[1].prompt == \
        "Q: how many cats are there? A:"
    prompt.write_text("{question} {options}")
    with pytest.raises(InputError, match=r"unknown field\(s\) \{options\} for --task textvqa"):
        load_task("textvqa", annotations=str(annotations), prompt_file=str(prompt))
    prompt.write_text("Q: {question}")
    with pytest.raises(InputError, match=r"has no \{ocr\} field"):
        load_task("textvqa", annotations=str(annotations), prompt_file=str(prompt), ocr=True)


def test_generic_vqa_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    rows = [{"question_id": "a1", "image": "photos/1.jpg", "question": "Is it red?", "answers": ["yes"]},
            {"question_id": "a2", "image": "/abs/2.jpg", "question": "Which vase?", "answers": ["amphora", "jar"],
             "question_type": "shape"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_task("vqa", questions=str(path))
    assert [q.image_path for q in data.questions] == [tmp_path / "photos" / "1.jpg", Path("/abs/2.jpg")]
    assert [q.question_type for q in data.questions] == ["is", "shape"]
    path.write_text(json.dumps({"question_id": 1, "image": "x.jpg", "question": "q"}) + "\n")
    with pytest.raises(InputError, match=r"q\.jsonl: question 1: no answers"):
        load_task("vqa", questions=str(path))
    path.write_text(json.dumps({"id": 1, "image": "x.jpg"}) + "\n")
    with pytest.raises(InputError, match=r"q\.jsonl: line 1: missing 'question_id'"):
        load_task("vqa", questions=str(path))
    with pytest.raises(InputError, match="--task mmbench needs --tsv"):
        load_task("mmbench", questions=str(path))
