"""--executor ray gives the local executor's outputs: the filter (text and image operators, byte for byte) and
qwen.py on a tiny model (same captions, same listed failure); a Ray worker SIGKILLed mid-run loses and duplicates
nothing. One local Ray instance (2 CPUs, no dashboard, temp folder under /tmp) is shared by the module."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

import qwen
from dataprocess import filter as dp_filter
from tests.fixtures.caption_data import write_jsonl
from tests.fixtures.ray_faults import KillsItsWorkerOnce
from tests.test_streams import RECIPE, rows
from vlmkit.io import read_json

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
FILTER_FILES = ("kept.jsonl", "kept_stats.jsonl", "kept_dropped.jsonl")


@pytest.fixture(scope="module")
def ray_local():
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray

    tmp = tempfile.mkdtemp(prefix="vrt", dir="/tmp")
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, _temp_dir=tmp, log_to_driver=False,
             configure_logging=False, runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


def filter_run(tmp: Path, data: Path, out: Path, *extra: str) -> int:
    recipe = tmp / "recipe.yaml"
    recipe.write_text(RECIPE)
    return dp_filter.main(["--recipe", str(recipe), "--dataset_path", str(data), "--export_path",
                           str(out / "kept.jsonl"), "--no_progress", "--chunk_size", "3", *extra])


def test_filter_on_ray_equals_local_and_survives_a_killed_worker(ray_local, tmp_path: Path, monkeypatch) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", rows(tmp_path))
    assert filter_run(tmp_path, data, tmp_path / "local", "--np", "1") == 0
    assert filter_run(tmp_path, data, tmp_path / "ray", "--executor", "ray", "--num_workers", "2") == 0
    for name in FILTER_FILES:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    summary = read_json(tmp_path / "ray" / "kept_summary.json")
    assert summary["executor"] == "ray" and summary["chunks"] == 4 and len(summary["nodes"]) == 1

    monkeypatch.setattr(dp_filter, "FilterJob", KillsItsWorkerOnce)
    assert filter_run(tmp_path, data, tmp_path / "killed", "--executor", "ray", "--num_workers", "2") == 0
    assert (tmp_path / "killed.marker").is_file()  # a worker really died
    for name in FILTER_FILES:  # its chunk was retried: nothing lost, nothing twice
        assert (tmp_path / "killed" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name


def test_qwen_on_a_ray_actor_pool_equals_local(ray_local, tiny_qwen2_5_vl_dir: Path, examples_copy: Path,
                                              tmp_path: Path) -> None:
    images = examples_copy / "multiview_images"
    empty = images / "00000000-0000-4000-8000-000000000000_9_ac999999_shaded"
    empty.mkdir()  # no views: a listed failure in both runs
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Describe the vase ({views_phrase}).")

    def argv(out: Path, *extra: str) -> list[str]:
        return ["--model_path", str(tiny_qwen2_5_vl_dir), "--input_dir", str(images), "--output_dir", str(out),
                "--max_new_tokens", "6", "--min_pixels", "784", "--max_pixels", "3136", "--prompt_file", str(prompt),
                "--no_progress", "--batch_size", "2", *extra]

    assert qwen.main(argv(tmp_path / "local")) == 1
    assert qwen.main(argv(tmp_path / "ray", "--executor", "ray", "--num_workers", "2")) == 1
    name = "image_Qwen2.5-VL-tiny.json"
    local, ray = read_json(tmp_path / "local" / name), read_json(tmp_path / "ray" / name)
    assert len(local) == 6 and ray == local
    reports = [read_json(tmp_path / d / "Qwen2.5-VL-tiny_caption_generation_report.json") for d in ("local", "ray")]
    assert [r["failures"] for r in reports][0] == reports[1]["failures"] and len(reports[1]["failures"]) == 1
    assert reports[1]["settings"]["backend"]["executor"] == "ray"
    assert reports[1]["totals"] == reports[0]["totals"]


def test_render_on_ray_gives_the_local_images(ray_local, tmp_path: Path) -> None:
    import render
    from demo.procedural import SHAPES, Decoration, write_vase_glb

    models = tmp_path / "glb"
    for k, shape in enumerate(list(SHAPES)[:3]):  # procedural GLBs
        write_vase_glb(models / f"{shape}_{k + 1}.glb", shape, Decoration("red-figure" if k % 2 else "black-figure"),
                       segments=32, rows=32, texture_width=128)
    (models / "broken_9.glb").write_bytes(b"not a mesh")  # a failure of its own model only, in both runs
    args = ["--input", str(models), "--size", "64", "--views", "front,top", "--no_progress"]
    assert render.main([*args, "--output_dir", str(tmp_path / "local")]) == 1
    assert render.main([*args, "--output_dir", str(tmp_path / "ray"), "--executor", "ray", "--num_workers", "2"]) == 1
    local = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.jpg"))
    assert len(local) == 6
    for rel in local:
        assert (tmp_path / "ray" / rel).read_bytes() == (tmp_path / "local" / rel).read_bytes(), rel
    reports = [read_json(tmp_path / d / "render_report.json") for d in ("local", "ray")]
    assert reports[0]["failures"] == reports[1]["failures"] and len(reports[1]["failures"]) == 1


def test_eval_vqa_on_ray_actors_equals_local(ray_local, tiny_qwen2_5_vl_dir: Path, tmp_path: Path) -> None:
    import eval_vqa
    from tests.fixtures.vqa_data import write_textvqa

    annotations, images = write_textvqa(tmp_path / "textvqa")
    args = ["--task", "textvqa", "--annotations", str(annotations), "--image_dir", str(images), "--model_path",
            str(tiny_qwen2_5_vl_dir), "--max_new_tokens", "3", "--batch_size", "4", "--no_progress",
            "--bootstrap", "200"]
    assert eval_vqa.main([*args, "--output_dir", str(tmp_path / "local")]) == 0
    assert eval_vqa.main([*args, "--output_dir", str(tmp_path / "ray"), "--executor", "ray",
                          "--num_workers", "2"]) == 0
    assert (tmp_path / "ray" / "answers.jsonl").read_bytes() == (tmp_path / "local" / "answers.jsonl").read_bytes()
    local, ray = (read_json(tmp_path / d / "results.json") for d in ("local", "ray"))
    assert ray["accuracy"] == local["accuracy"] and ray["n"] == 12


def test_image_deduplicator_groups_by_hash_on_ray_like_locally(ray_local, tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from tests.fixtures.caption_data import read_jsonl

    rng = np.random.RandomState(1)
    for k in range(4):  # four distinct noise pictures, reused across chunks
        Image.fromarray(rng.randint(0, 255, (32, 32, 3)).astype("uint8")).resize((240, 240)).save(tmp_path / f"{k}.png")
    picks = [0, 1, 0, 2, 3, 1, 2, 0, 3, 3, 1, 2]
    data = write_jsonl(tmp_path / "data.jsonl", [{"id": f"s{i:02d}", "text": "a long enough caption here",
                                                 "images": [f"{k}.png"]} for i, k in enumerate(picks)])
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE + "  - image_deduplicator:\n      method: phash\n")
    common = ["--recipe", str(recipe), "--dataset_path", str(data), "--no_progress", "--chunk_size", "3"]
    assert dp_filter.main([*common, "--export_path", str(tmp_path / "local" / "kept.jsonl"), "--np", "1"]) == 0
    assert dp_filter.main([*common, "--export_path", str(tmp_path / "ray" / "kept.jsonl"), "--executor", "ray",
                           "--num_workers", "2"]) == 0
    for name in FILTER_FILES:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    assert [r["id"] for r in read_jsonl(tmp_path / "local" / "kept.jsonl")] == ["s00", "s01", "s03", "s04"]
