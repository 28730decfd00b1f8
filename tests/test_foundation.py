"""The shared foundation: id rule, caption-record validation, atomic writes, tiny fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlmkit.ids import item_id, object_image_name
from vlmkit.io import InputError, atomic_write_json, read_json, write_all_or_nothing
from vlmkit.records import duplicate_ids, load_caption_records


def test_item_id_rule() -> None:
    folder = "3f2a9c1e-8b4d-4e6a-9f1b-2c7d5e8a0b13_1_ac001001_textured_4k.glb_shaded"
    assert item_id(folder) == "3f2a9c1e-8b4d-4e6a-9f1b-2c7d5e8a0b13_1"
    assert item_id(object_image_name(folder)) == item_id(folder)
    assert object_image_name(folder) == "3f2a9c1e-8b4d-4e6a-9f1b-2c7d5e8a0b13_1_ac001001.jpg"
    assert item_id("dir/sub/abc_12.png") == "abc_12"
    assert item_id("image1.jpg") == "image1"
    assert item_id("abc_x_1.jpg") == "abc_x_1"  # second part not a number: whole stem


def test_examples_are_consistent(repo_root: Path) -> None:
    truth = load_caption_records(repo_root / "examples" / "groundTruth.json")
    folders = sorted(p.name for p in (repo_root / "examples" / "multiview_images").iterdir())
    assert sorted(item_id(f) for f in folders) == sorted(r.id for r in truth)
    for path in (repo_root / "examples" / "captions").glob("image_*.json"):
        generated = load_caption_records(path, require_data_by=True)
        assert {r.id for r in generated} == {r.id for r in truth}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[{\"images\": [\"a_1.jpg\"], \"caption\": \"x\"", "malformed JSON"),
        ("{\"images\": []}", "expected a JSON list"),
        ("[{\"images\": [], \"caption\": \"x\"}]", "item 0: 'images' must be"),
        ("[{\"images\": [\"a_1.jpg\"], \"caption\": \"ok\"}, {\"images\": [\"b_2.jpg\"], \"caption\": \"  \"}]",
         "item 1 (id b_2): empty caption"),
        ("[{\"images\": [\"a_1.jpg\"], \"caption\": 3}]", "'caption' must be a string"),
    ],
)
def test_caption_file_errors_name_file_and_item(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputError) as err:
        load_caption_records(path)
    assert str(path) in str(err.value) and message in str(err.value)
    assert "\n" not in str(err.value)


def test_duplicate_ids_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "dup.json"
    path.write_text(json.dumps([{"images": ["a_1_x.jpg"], "caption": "p"}, {"images": ["a_1_y.jpg"], "caption": "q"}]))
    assert duplicate_ids(load_caption_records(path)) == {"a_1": 2}


def test_atomic_writes_leave_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    atomic_write_json(target, {"v": 1})

    class Boom:
        pass

    with pytest.raises(TypeError):
        atomic_write_json(target, {"v": Boom()})
    assert read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    write_all_or_nothing({tmp_path / "a.txt": "A", tmp_path / "b.txt": "B"})
    assert (tmp_path / "a.txt").read_text() == "A" and (tmp_path / "b.txt").read_text() == "B"


def test_tiny_clip_loads_with_auto_classes(tiny_clip_dir: Path) -> None:
    import torch
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(tiny_clip_dir)
    processor = AutoProcessor.from_pretrained(tiny_clip_dir)
    assert sum(p.numel() for p in model.parameters()) < 500_000
    enc = processor.tokenizer(["a vase " * 40], truncation=True, return_tensors="pt")
    assert enc.input_ids.shape[1] == 77  # CLIP's context, truncated like the released tokenizer
    with torch.no_grad():
        feats = model.get_text_features(**enc).pooler_output
    assert feats.shape == (1, 16)


def test_tiny_tokenizer_chat_template(tiny_tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    text = tok.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text.endswith("<|im_start|>assistant\n")
    assert "<|vision_start|><|image_pad|><|vision_end|>Describe." in text
    ids = tok(text).input_ids
    assert tok.convert_tokens_to_ids("<|image_pad|>") in ids
    assert tok.decode(ids) == text


def test_multiview_discovery_and_view_loading(examples_copy: Path) -> None:
    from vlmkit.multiview import discover_objects, load_view_images

    objects = discover_objects(examples_copy / "multiview_images")
    assert len(objects) == 6 and all(len(o.view_files) == 6 for o in objects)
    obj = objects[0]
    (obj.path / "left.jpg").write_bytes(b"not a jpeg")
    (obj.path / "top.jpg").unlink()
    views, images, problems = load_view_images(obj, ("front", "left", "top"))
    assert views == ["front"] and len(images) == 1
    assert len(problems) == 2 and "unreadable image" in problems[0] and "view top missing" in problems[1]


def test_tiny_qwen2_5_vl_generates_input_dependent_text(tiny_qwen2_5_vl_dir: Path, repo_root: Path) -> None:
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(tiny_qwen2_5_vl_dir)
    processor = AutoProcessor.from_pretrained(tiny_qwen2_5_vl_dir)
    assert sum(p.numel() for p in model.parameters()) < 500_000
    folders = sorted((repo_root / "examples" / "multiview_images").iterdir())
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the vase."}]}]
    text = processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    images = [[Image.open(f / "front.jpg")] for f in folders[:2]]
    enc = processor(text=[text, text], images=images, return_tensors="pt", padding=True)
    out = model.generate(**enc, max_new_tokens=6, do_sample=False)
    decoded = processor.batch_decode(out[:, enc.input_ids.shape[1]:], skip_special_tokens=True)
    assert decoded[0] != decoded[1]


def test_training_sample_formats(tmp_path: Path) -> None:
    from vlmkit.samples import caption_sample, load_training_data

    sample = caption_sample("a_1", ["v/front.jpg", "v/back.jpg"], "A vase.", "Describe the vase.", source="t")
    assert sample.to_chat_messages()[0]["content"] == [
        {"type": "image"}, {"type": "image"}, {"type": "text", "text": "Describe the vase."}
    ]
    (tmp_path / "train.jsonl").write_text(json.dumps(sample.to_json()) + "\n")
    samples, root = load_training_data(tmp_path / "train.jsonl")
    assert samples[0].to_json() == sample.to_json() and root == tmp_path
    assert samples[0].resolved_images(root)[0] == tmp_path / "v" / "front.jpg"

    llava = [{"id": "x", "image": "000.jpg", "conversations": [
        {"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "A cat."},
        {"from": "human", "value": "Colour?"}, {"from": "gpt", "value": "Black."}]}]
    (tmp_path / "llava.json").write_text(json.dumps(llava))
    samples, root = load_training_data(tmp_path / "llava.json", image_folder="/data/coco")
    assert len(samples[0].conversations) == 4 and root == Path("/data/coco")

    (tmp_path / "captions.json").write_text(json.dumps([{"image": "b_2.jpg", "caption": ""}]))
    with pytest.raises(InputError, match=r"captions.json: item 0 \(b_2.jpg\): empty or missing caption"):
        load_training_data(tmp_path / "captions.json")
    bad = {"id": "z", "images": ["a.jpg"], "conversations": [{"from": "human", "value": "no image"},
                                                              {"from": "gpt", "value": "x"}]}
    (tmp_path / "bad.jsonl").write_text(json.dumps(bad) + "\n")
    with pytest.raises(InputError, match="bad.jsonl: line 1: 0 '<image>' placeholders for 1 images"):
        load_training_data(tmp_path / "bad.jsonl")


def test_written_files_get_the_usual_permissions(tmp_path: Path) -> None:
    import os

    umask = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "a.json", [1])
        write_all_or_nothing({tmp_path / "b.png": b"\x89PNG", tmp_path / "c.txt": "c"})
    finally:
        os.umask(umask)
    for name in ("a.json", "b.png", "c.txt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.png").read_bytes() == b"\x89PNG"


def test_multiview_caption_samples_use_the_caption_prompt(examples_copy: Path) -> None:
    from vlmkit.prompt import MULTIVIEW_PROMPT, build_prompt
    from vlmkit.samples import multiview_caption_samples

    mv = examples_copy / "multiview_images"
    folder = next(p for p in mv.iterdir() if p.name.startswith("7c1e4b2a"))
    (folder / "top.jpg").unlink()
    joined = multiview_caption_samples(examples_copy / "groundTruth.json", mv, ["front", "top", "back"])
    assert len(joined.samples) == 6 and not joined.skipped
    where, missing = joined.missing_views["7c1e4b2a-0d9f-4a3c-8e5b-6f2a1d9c4e70_2"]
    assert missing == ["top"] and "groundTruth.json: item 1" in where
    sample = next(s for s in joined.samples if s.id.startswith("7c1e4b2a"))
    assert sample.images == [f"{folder.name}/front.jpg", f"{folder.name}/back.jpg"]
    human = sample.conversations[0]["value"]
    assert human == "<image>\n<image>\n" + build_prompt(MULTIVIEW_PROMPT, ["front", "back"])
    assert "2 views: front, back" in human
