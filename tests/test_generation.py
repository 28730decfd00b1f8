"""qwen.py end to end on a tiny random Qwen2.5-VL, and the shared engine: resume, failures, batching, shards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import qwen
from tests.fixtures.crash import crash_generate_on_call
from vlmkit.generation.hf_backend import HFCaptioner
from vlmkit.generation.items import discover_items
from vlmkit.generation.shards import select_shard
from vlmkit.ids import VIEWS, item_id, object_image_name, parse_views
from vlmkit.io import InputError, read_json
from vlmkit.prompt import MULTIVIEW_PROMPT, build_prompt
from vlmkit.records import load_caption_records

MODEL_NAME = "Qwen2.5-VL-tiny"  # the fixture's folder name: default output name and data_by
# A short prompt keeps the visual tokens a large share of the input, so the tiny random model's greedy captions differ
# between objects and the equality tests below compare something real.
SHORT_PROMPT = "Describe the vase ({views_phrase})."


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prompt") / "prompt.txt"
    path.write_text(SHORT_PROMPT, encoding="utf-8")
    return path


def qwen_argv(model: Path, input_dir: Path, output_dir: Path, prompt_file: Path, *extra: str) -> list[str]:
    return ["--model_path", str(model), "--input_dir", str(input_dir), "--output_dir", str(output_dir),
            "--max_new_tokens", "6", "--min_pixels", "784", "--max_pixels", "3136", "--prompt_file", str(prompt_file),
            "--no_progress", *extra]


@pytest.fixture(scope="module")
def reference_dir(tiny_qwen2_5_vl_dir: Path, repo_root: Path, prompt_file: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One unbatched run over examples/: its output is what every other run must reproduce."""
    out = tmp_path_factory.mktemp("reference")
    argv = qwen_argv(tiny_qwen2_5_vl_dir, repo_root / "examples" / "multiview_images", out, prompt_file)
    assert qwen.main([*argv, "--batch_size", "1"]) == 0
    return out


@pytest.fixture(scope="module")
def reference(reference_dir: Path) -> list[dict]:
    return read_json(reference_dir / f"image_{MODEL_NAME}.json")


def test_qwen_writes_the_seed_caption_format(reference_dir: Path, reference: list[dict], repo_root: Path) -> None:
    out = reference_dir
    records = load_caption_records(out / f"image_{MODEL_NAME}.json", require_data_by=True)
    folders = sorted(p.name for p in (repo_root / "examples" / "multiview_images").iterdir())
    assert [r.id for r in records] == [item_id(f) for f in folders]
    assert [list(r.images) for r in records] == [[object_image_name(f)] for f in folders]
    assert all(set(raw) == {"images", "caption", "data_by"} for raw in reference)
    assert {r.data_by for r in records} == {MODEL_NAME}
    assert len({r.caption for r in records}) > 1  # input-dependent captions
    truth_ids = {r.id for r in load_caption_records(repo_root / "examples" / "groundTruth.json")}
    assert {r.id for r in records} == truth_ids  # compare.py joins these by id

    report = read_json(out / f"{MODEL_NAME}_caption_generation_report.json")
    assert report["status"] == "complete"
    assert report["totals"] == {"items": 6, "already_done": 0, "attempted": 6, "captioned": 6, "failed": 0,
                                "skipped_views": 0}
    assert report["failures"] == [] and report["seconds_per_item"] > 0 and report["items_per_second"] > 0
    assert report["settings"]["prompt_template"] == SHORT_PROMPT
    assert report["settings"]["backend"]["model_class"] == "Qwen2_5_VLForConditionalGeneration"


def test_batched_generation_equals_unbatched(tiny_qwen2_5_vl_dir: Path, examples_copy: Path, tmp_path: Path,
                                            prompt_file: Path, reference: list[dict]) -> None:
    argv = qwen_argv(tiny_qwen2_5_vl_dir, examples_copy / "multiview_images", tmp_path / "out", prompt_file)
    assert qwen.main([*argv, "--batch_size", "4"]) == 0  # batches of 4 and 2: left padding differs per batch
    assert read_json(tmp_path / "out" / f"image_{MODEL_NAME}.json") == reference


def test_resume_after_a_crash_loses_and_duplicates_nothing(tiny_qwen2_5_vl_dir: Path, examples_copy: Path,
                                                          tmp_path: Path, prompt_file: Path, reference: list[dict],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    argv = qwen_argv(tiny_qwen2_5_vl_dir, examples_copy / "multiview_images", out, prompt_file, "--batch_size", "2")
    crash_generate_on_call(monkeypatch, 2)  # the process dies in the second batch
    with pytest.raises(KeyboardInterrupt):
        qwen.main(argv)
    output = out / f"image_{MODEL_NAME}.json"
    assert read_json(output) == reference[:2]  # the finished batch is on disk, complete and valid
    report = read_json(out / f"{MODEL_NAME}_caption_generation_report.json")
    assert report["status"] == "interrupted" and report["totals"]["captioned"] == 2
    monkeypatch.undo()

    with pytest.raises(InputError, match="already exists; pass --resume"):
        qwen.main(argv)  # never silently overwritten
    assert qwen.main([*argv, "--resume"]) == 0
    assert read_json(output) == reference
    report = read_json(out / f"{MODEL_NAME}_caption_generation_report.json")
    assert report["totals"]["already_done"] == 2 and report["totals"]["captioned"] == 4


def test_corrupt_view_is_skipped_and_empty_folder_is_a_recorded_failure(
        tiny_qwen2_5_vl_dir: Path, examples_copy: Path, tmp_path: Path, prompt_file: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    images = examples_copy / "multiview_images"
    folders = sorted(p for p in images.iterdir())
    (folders[0] / "left.jpg").write_bytes(b"not a jpeg")
    (folders[1] / "top.jpg").unlink()
    empty = images / "00000000-0000-4000-8000-000000000000_9_ac001001_textured_4k.glb_shaded"
    empty.mkdir()
    seen_views: dict[str, list[str]] = {}
    prompts: list[str] = []
    real_prepare = HFCaptioner.prepare

    def spy(self, requests):
        for r in requests:
            seen_views[Path(r.paths[0]).parent.name] = r.views
            prompts.append(r.prompt)
        return real_prepare(self, requests)

    monkeypatch.setattr(HFCaptioner, "prepare", spy)
    out = tmp_path / "out"
    argv = qwen_argv(tiny_qwen2_5_vl_dir, images, out, prompt_file)
    assert qwen.main(argv) == 1  # some item failed: non-zero, but everything else is written
    records = load_caption_records(out / f"image_{MODEL_NAME}.json", require_data_by=True)
    assert [r.id for r in records] == [item_id(f.name) for f in folders]
    assert seen_views[folders[0].name] == ["front", "back", "right", "top", "bottom"]
    assert seen_views[folders[1].name] == ["front", "back", "left", "right", "bottom"]
    assert "Describe the vase (5 views: front, back, right, top, bottom)." in prompts
    report = read_json(out / f"{MODEL_NAME}_caption_generation_report.json")
    assert report["status"] == "complete_with_failures"
    assert report["totals"]["failed"] == 1 and report["totals"]["captioned"] == 6
    (failure,) = report["failures"]
    assert failure["id"] == "00000000-0000-4000-8000-000000000000_9"
    assert failure["reason"] == (f"no usable image: {empty}: no view images in the folder "
                                 "(expected front.jpg, back.jpg, left.jpg, right.jpg, top.jpg, bottom.jpg)")
    problems = [w["problem"] for w in report["skipped_views"]]
    assert len(problems) == 2 and "unreadable image" in problems[0] and "view top missing" in problems[1]

    # --resume retries exactly the failed item
    assert qwen.main([*argv, "--resume"]) == 1
    report = read_json(out / f"{MODEL_NAME}_caption_generation_report.json")
    assert report["totals"]["already_done"] == 6 and report["totals"]["attempted"] == 1


def test_sharding_then_merge_equals_a_single_run(tiny_qwen2_5_vl_dir: Path, examples_copy: Path, tmp_path: Path,
                                                 prompt_file: Path, reference: list[dict]) -> None:
    out = tmp_path / "out"
    argv = qwen_argv(tiny_qwen2_5_vl_dir, examples_copy / "multiview_images", out, prompt_file, "--batch_size", "2")
    for index in range(3):
        assert qwen.main([*argv, "--num_shards", "3", "--shard_index", str(index)]) == 0
    shard_files = sorted((out / "shards").glob("*.json"))
    assert [p.name for p in shard_files if p.name.startswith("image_")] == [
        f"image_{MODEL_NAME}.shard-{i}-of-3.json" for i in range(3)]
    assert all(len(read_json(out / "shards" / f"image_{MODEL_NAME}.shard-{i}-of-3.json")) == 2 for i in range(3))
    assert not list(out.glob("image_*.json"))  # compare.sh never sees a partial shard
    assert qwen.main(["--merge", "--output_dir", str(out), "--model_path", str(tiny_qwen2_5_vl_dir)]) == 0
    assert read_json(out / f"image_{MODEL_NAME}.json") == reference
    merged = read_json(out / f"{MODEL_NAME}_caption_generation_report.json")
    assert merged["num_shards"] == 3 and merged["records"] == 6 and merged["totals"]["captioned"] == 6

    with pytest.raises(InputError, match="already exists"):
        qwen.main(["--merge", "--output_dir", str(out), "--model_path", str(tiny_qwen2_5_vl_dir)])
    (out / "shards" / f"image_{MODEL_NAME}.shard-1-of-3.json").unlink()
    with pytest.raises(InputError, match=r"missing shard files image_Qwen2.5-VL-tiny.shard-1-of-3.json"):
        qwen.main(["--merge", "--overwrite", "--output_dir", str(out), "--model_path", str(tiny_qwen2_5_vl_dir)])
    with pytest.raises(InputError, match="--num_shards 7: more parts than the 6 items"):
        qwen.main([*argv, "--num_shards", "7", "--shard_index", "0"])


def test_single_model_captions_one_object(tiny_qwen2_5_vl_dir: Path, repo_root: Path, tmp_path: Path,
                                          prompt_file: Path, reference: list[dict]) -> None:
    folder = sorted((repo_root / "examples" / "multiview_images").iterdir())[2]
    argv = qwen_argv(tiny_qwen2_5_vl_dir, tmp_path / "unused", tmp_path / "out", prompt_file,
                     "--single_model", str(folder), "--output_name", "image_one.json", "--data_by", "qwen2.5")
    assert qwen.main(argv) == 0
    assert read_json(tmp_path / "out" / "image_one.json") == [{**reference[2], "data_by": "qwen2.5"}]


def test_prompt_lists_the_loaded_views() -> None:
    assert "I have provided 6 views: front, back, left, right, top, bottom." in build_prompt(MULTIVIEW_PROMPT, VIEWS)
    assert "I have provided 1 view: top." in build_prompt(MULTIVIEW_PROMPT, ["top"])
    assert build_prompt("{num_views} | {views} | {literal}", ["a", "b"]) == "2 | a, b | {literal}"
    assert parse_views("Top, front") == ("top", "front")
    with pytest.raises(InputError, match="choose from"):
        parse_views("front,side")
    with pytest.raises(InputError, match="listed twice"):
        parse_views("front,front")


def test_shards_are_a_deterministic_partition() -> None:
    for n in range(1, 12):
        items = list(range(n))
        for k in range(1, n + 1):
            shards = [select_shard(items, k, i) for i in range(k)]
            assert sum(shards, []) == items and all(shards)
            assert max(map(len, shards)) - min(map(len, shards)) <= 1
    with pytest.raises(InputError, match="--shard_index 3"):
        select_shard(list(range(5)), 3, 3)


def test_input_layout_detection(tmp_path: Path, repo_root: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    src = sorted((repo_root / "examples" / "multiview_images").iterdir())[0] / "front.jpg"
    shutil.copy(src, flat / "a_1_c.jpg")
    shutil.copy(src, flat / "b.png")
    items, layout = discover_items(flat, VIEWS)
    assert layout == "flat" and [(i.id, i.image_name) for i in items] == [("a_1", "a_1_c.jpg"), ("b", "b.png")]
    shutil.copy(src, flat / "b.jpg")
    with pytest.raises(InputError, match="image id b is also the id of"):
        discover_items(flat, VIEWS)
    (flat / "sub").mkdir()
    with pytest.raises(InputError, match="both image files and sub-folders"):
        discover_items(flat, VIEWS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no object folders or images found"):
        discover_items(tmp_path / "empty", VIEWS)


def test_resume_with_nothing_left_does_not_load_the_model(tiny_qwen2_5_vl_dir: Path, tmp_path: Path,
                                                          prompt_file: Path, reference: list[dict],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / f"image_{MODEL_NAME}.json").write_text(json.dumps(reference))
    argv = qwen_argv(tiny_qwen2_5_vl_dir, Path(__file__).parents[1] / "examples" / "multiview_images", out,
                     prompt_file, "--resume")

    def no_loading(*_args, **_kwargs):
        raise AssertionError("the model must not be loaded when nothing is left to caption")

    monkeypatch.setattr(HFCaptioner, "__init__", no_loading)
    assert qwen.main(argv) == 0
    with pytest.raises(InputError, match="missing-model: model folder not found; weights are never downloaded"):
        qwen.main([*argv, "--model_path", str(tmp_path / "missing-model")])  # checked before anything is written
    report_file = f"{MODEL_NAME}_caption_generation_report.json"
    assert {p.name for p in out.iterdir()} == {f"image_{MODEL_NAME}.json", report_file}
    report = read_json(out / f"{MODEL_NAME}_caption_generation_report.json")
    assert report["totals"]["already_done"] == 6 and report["totals"]["attempted"] == 0


class ScriptedCaptioner:
    """A backend stand-in for the runner's own logic: fails on chosen objects, or on everything."""

    def __init__(self, bad: set[str] | None = None) -> None:
        self.bad, self.calls = bad, []

    def caption(self, requests):
        self.calls.append(len(requests))
        names = [Path(r.paths[0]).parent.name for r in requests]
        if self.bad is None or any(n[:8] in self.bad for n in names):
            raise ValueError("cannot caption " + ", ".join(n[:8] for n in names))
        return [f"caption of {n[:8]}" for n in names]

    def describe(self):
        return {}


def test_runner_retries_a_failed_batch_item_by_item_and_aborts_a_broken_setup(repo_root: Path) -> None:
    from vlmkit.generation.runner import GenerationAborted, caption_items

    items, _ = discover_items(repo_root / "examples" / "multiview_images", VIEWS)
    bad = items[1].obj.path.name[:8]
    written = []
    stats = caption_items(items, ScriptedCaptioner({bad}), prompt_for=lambda _i, _v: "p", batch_size=4,
                          on_batch=written.append, progress=False)
    assert stats.captioned == 5 and [f["id"] for f in stats.failures] == [items[1].id]
    assert stats.failures[0]["reason"] == f"generation failed: ValueError: cannot caption {bad}"
    assert [[s.caption for s in batch] for batch in written] == [
        [f"caption of {it.obj.path.name[:8]}" for it in items[:4] if it is not items[1]],
        [f"caption of {it.obj.path.name[:8]}" for it in items[4:]]]

    broken = ScriptedCaptioner(None)
    with pytest.raises(GenerationAborted, match="generation failed for each of the first 8 items"):
        caption_items(items * 2, broken, prompt_for=lambda _i, _v: "p", batch_size=4, on_batch=lambda _s: None,
                      progress=False)
    stats = caption_items(items[:3], ScriptedCaptioner(None), prompt_for=lambda _i, _v: "p", batch_size=4,
                          on_batch=lambda _s: None, progress=False)
    assert len(stats.failures) == 3  # a few failures are recorded, not an abort
