"""LLaVA composition from tiny CLIP/SigLIP + Qwen2/Qwen3, label masking, data formats and image pre-flight."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from vlmkit.ids import item_id
from vlmkit.io import InputError
from vlmkit.samples import TrainingSample, caption_sample
from vlmkit.training.data import IGNORE_INDEX, VLMCollator, encode_sample, load_samples
from vlmkit.training.preflight import preflight


@pytest.fixture(scope="module")
def composed(tmp_path_factory, tiny_clip_dir, tiny_siglip_dir, tiny_qwen2_lm_dir, tiny_qwen3_lm_dir):
    from vlmkit.training.compose import compose_llava

    out = tmp_path_factory.mktemp("composed")
    return {
        "clip": compose_llava(tiny_clip_dir, tiny_qwen2_lm_dir, out / "clip_qwen2"),
        "siglip": compose_llava(tiny_siglip_dir, tiny_qwen3_lm_dir, out / "siglip_qwen3"),
    }


@pytest.mark.parametrize(("vision", "extra_tokens", "strategy"), [("clip", 1, "default"), ("siglip", 0, "full")])
def test_composed_llava_holds_the_source_weights_and_captions(composed, tiny_clip_dir, tiny_siglip_dir,
                                                              tiny_qwen2_lm_dir, tiny_qwen3_lm_dir, vision,
                                                              extra_tokens, strategy):
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor

    base = composed[vision]
    vision_dir, lm_dir = (tiny_clip_dir, tiny_qwen2_lm_dir) if vision == "clip" else (tiny_siglip_dir,
                                                                                      tiny_qwen3_lm_dir)
    model = AutoModelForImageTextToText.from_pretrained(base)
    processor = AutoProcessor.from_pretrained(base)
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert processor.num_additional_image_tokens == extra_tokens
    assert model.config.vision_feature_select_strategy == strategy

    source_vision = AutoModel.from_pretrained(vision_dir)
    source_vision = getattr(source_vision, "vision_model", source_vision)  # CLIP is a dual encoder
    tower = model.model.vision_tower.state_dict()
    for key, value in source_vision.state_dict().items():
        assert torch.equal(tower[key], value), key
    lm = AutoModelForCausalLM.from_pretrained(lm_dir)
    composed_lm = model.model.language_model.state_dict()
    for key, value in lm.model.state_dict().items():
        if key == "embed_tokens.weight":  # one row added for <image>
            assert torch.equal(composed_lm[key][: value.shape[0]], value)
        else:
            assert torch.equal(composed_lm[key], value), key
    assert model.lm_head.weight.data_ptr() == model.model.language_model.embed_tokens.weight.data_ptr()  # tied

    # The generic captioner's path: chat template with {"type": "image"} items, processor, generate.
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "image"},
                                             {"type": "text", "text": "Describe this vase."}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text.count("<image>") == 2 and text.endswith("<|im_start|>assistant\n")
    images = [Image.new("RGB", (40, 30), (200, 50, 0)), Image.new("RGB", (30, 40), (0, 90, 200))]
    inputs = processor(text=[text], images=images, return_tensors="pt")
    assert (inputs["input_ids"] == model.config.image_token_index).sum() == 2 * model.config.image_seq_length
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_composing_needs_real_model_folders(tmp_path, tiny_siglip_dir):
    from vlmkit.training.compose import compose_llava

    with pytest.raises(InputError, match="--lm_model"):
        compose_llava(tiny_siglip_dir, tmp_path / "missing", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _supervised_text(processor, encoded) -> str:
    labels = encoded["labels"][0]
    return processor.tokenizer.decode(labels[labels != IGNORE_INDEX])


@pytest.mark.parametrize("which", ["llava", "qwen2_5_vl"])
def test_only_answers_and_their_end_token_are_supervised(composed, tiny_qwen2_5_vl_dir, which):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(composed["siglip"] if which == "llava" else tiny_qwen2_5_vl_dir)
    images = [Image.new("RGB", (56, 56), (i * 60, 20, 200)) for i in range(2)]
    caption = "Athenian red-figure kylix, c. 490 BCE."
    one = encode_sample(processor, caption_sample("v1", ["a.jpg", "b.jpg"], caption, "Describe these views."), images)
    assert _supervised_text(processor, one) == caption + "<|im_end|>"
    image_id = processor.image_token_id if hasattr(processor, "image_token_id") else None
    labels = one["labels"][0]
    ids = one["input_ids"][0]
    assert ((ids == image_id) & (labels != IGNORE_INDEX)).sum() == 0
    supervised = labels != IGNORE_INDEX
    assert torch.equal(labels[supervised], ids[supervised])
    # Exactly the answer + end token: the supervised positions are one contiguous block at the end of the turn.
    positions = supervised.nonzero().flatten()
    assert positions[-1] - positions[0] + 1 == len(positions)

    multi = TrainingSample("v2", ["a.jpg"], [
        {"from": "human", "value": "<image>\nWhat shape is this?"},
        {"from": "gpt", "value": "A kylix."},
        {"from": "human", "value": "And its date?"},
        {"from": "gpt", "value": "c. 500 BCE"},
    ])
    two = encode_sample(processor, multi, images[:1])
    assert _supervised_text(processor, two) == "A kylix.<|im_end|>c. 500 BCE<|im_end|>"


def test_collator_pads_right_and_stacks_images(composed):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(composed["clip"])
    img = Image.new("RGB", (32, 32))
    short = encode_sample(processor, caption_sample("a", ["x.jpg"], "Vase.", "Describe."), [img])
    long = encode_sample(processor, caption_sample("b", ["x.jpg", "y.jpg"], "A much longer caption of a vase.",
                                                   "Describe."), [img, img])
    batch = VLMCollator(processor.tokenizer.pad_token_id)([short, long])
    n = short["input_ids"].shape[1]
    assert batch["input_ids"].shape == (2, long["input_ids"].shape[1])
    assert batch["pixel_values"].shape[0] == 3
    assert (batch["labels"][0, n:] == IGNORE_INDEX).all() and (batch["attention_mask"][0, n:] == 0).all()
    assert (batch["input_ids"][0, n:] == processor.tokenizer.pad_token_id).all()


def test_preflight_measures_every_sample_and_rejects_or_drops_the_long_ones(composed, tmp_path):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(composed["clip"])
    Image.new("RGB", (32, 32)).save(tmp_path / "x.jpg")
    samples = [caption_sample("short", ["x.jpg"], "Vase.", "Describe."),
               caption_sample("long", ["x.jpg"], "Vase. " * 20, "Describe."),
               caption_sample("cut", ["x.jpg"] * 4, "Vase.", "Describe.")]
    lengths = [encode_sample(processor, s, [Image.new("RGB", (32, 32))] * len(s.images))["input_ids"].shape[1]
               for s in samples]
    image_tokens = processor.image_seq_length if hasattr(processor, "image_seq_length") else 16
    limit = lengths[0] + 1  # only "short" fits; "cut"'s last image would be cut at this length
    with pytest.raises(InputError) as err:
        preflight(samples, tmp_path, processor, data_path="d.jsonl", max_length=limit, max_length_source="given")
    message = str(err.value)
    assert message.startswith(f"d.jsonl: 2 of 3 samples longer than --max_length {limit} (given): ")
    assert f"long ({lengths[1]} tokens)" in message and f"cut ({lengths[2]} tokens, image tokens cut)" in message
    assert "\n" not in message
    result = preflight(samples, tmp_path, processor, data_path="d.jsonl", max_length=limit,
                       max_length_source="given", skip_bad=True, cache_dir=tmp_path / "cache")
    assert [s.id for s in result.kept] == ["short"] and result.lengths == [lengths[0]]
    assert [(s.sample_id, s.reason) for s in result.skipped] == [
        ("long", f"{lengths[1]} tokens > --max_length {limit}"),
        ("cut", f"{lengths[2]} tokens > --max_length {limit} (its image tokens would be cut)")]
    assert result.image_tokens == [image_tokens] and not result.cached
    again = preflight(samples, tmp_path, processor, data_path="d.jsonl", max_length=limit,
                      max_length_source="given", skip_bad=True, cache_dir=tmp_path / "cache")
    assert again.cached and again.lengths == result.lengths
    (tmp_path / "x.jpg").write_bytes((tmp_path / "x.jpg").read_bytes() + b"\0")  # the image changed: measured anew
    assert not preflight(samples, tmp_path, processor, data_path="d.jsonl", max_length=limit,
                         max_length_source="given", skip_bad=True, cache_dir=tmp_path / "cache").cached
    with pytest.raises(InputError, match=f"sample long: {lengths[1]} tokens > --max_length 20"):
        encode_sample(processor, caption_sample("long", ["x.jpg"], "Vase. " * 20, "Describe."),
                      [Image.new("RGB", (32, 32))], max_length=20)


def test_every_data_format_loads(tmp_path, examples_copy):
    img = tmp_path / "img"
    img.mkdir()
    Image.new("RGB", (8, 8)).save(img / "a_1.jpg")
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text(json.dumps(caption_sample("a_1", ["img/a_1.jpg"], "A vase.").to_json()) + "\n")
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps([{"image": "a_1.jpg", "caption": "A vase."}]))
    llava = tmp_path / "llava.json"
    llava.write_text(json.dumps([{"id": "q", "image": "a_1.jpg", "conversations": [
        {"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "A vase."},
        {"from": "human", "value": "Date?"}, {"from": "gpt", "value": "c. 500 BCE"}]}]))
    for path, folder in ((jsonl, None), (captions, str(img)), (llava, str(img))):
        samples, root = load_samples(path, folder)
        assert [p.is_file() for p in samples[0].resolved_images(root)] == [True]
    assert len(load_samples(llava, str(img))[0][0].conversations) == 4  # every turn kept

    views = ("front", "left", "top")
    samples, root = load_samples(examples_copy / "groundTruth.json", str(examples_copy / "multiview_images"),
                                 "Describe this vase.", views)
    assert len(samples) == 6
    assert [Path(p).stem for p in samples[0].images] == list(views)
    assert samples[0].conversations[0]["value"] == "<image>\n<image>\n<image>\nDescribe this vase."
    assert all(p.is_file() for p in samples[0].resolved_images(root))


def test_bad_images_stop_before_training_or_are_skipped_and_listed(composed, examples_copy, caplog):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(composed["clip"])
    check = {"max_length": 4096, "max_length_source": "given"}
    folder = examples_copy / "multiview_images"
    objects = sorted(folder.iterdir())
    (objects[0] / "front.jpg").unlink()  # a missing view: the object trains with the other five, with a warning
    (objects[1] / "back.jpg").write_bytes(b"not a jpeg")
    (objects[2] / "top.jpg").write_bytes((objects[2] / "top.jpg").read_bytes()[:300])  # truncated JPEG
    samples, root = load_samples(examples_copy / "groundTruth.json", str(folder))
    assert len(samples) == 6 and sorted(len(s.images) for s in samples) == [5, 6, 6, 6, 6, 6]
    assert "1 objects lack some requested views" in caplog.text and item_id(objects[0].name) in caplog.text
    with pytest.raises(InputError) as err:
        preflight(samples, root, processor, data_path="groundTruth.json", **check)
    message = str(err.value)
    assert message.startswith("groundTruth.json: sample ") and "unreadable" in message
    assert "(1 more samples with problems; --skip_bad_samples" in message and "\n" not in message
    result = preflight(samples, root, processor, data_path="groundTruth.json", skip_bad=True, **check)
    assert len(result.kept) == 4 and {Path(p.image).name for p in result.skipped} == {"back.jpg", "top.jpg"}
    reasons = {Path(p.image).name: p.reason for p in result.skipped}
    assert reasons["back.jpg"].startswith("unreadable image (") and reasons["top.jpg"].startswith("truncated image (")

    lost = caption_sample("gone_1", ["nowhere.jpg"], "A vase.")
    with pytest.raises(InputError, match=r"data.jsonl: sample gone_1: image .*nowhere.jpg: missing image \(file not"):
        preflight([lost], root, processor, data_path="data.jsonl", **check)
