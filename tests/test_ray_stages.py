"""More stages on Ray, equal to the local executor: explore's image inspection, and a captioning actor SIGKILLed
mid-run (its batch is retried on a restarted actor: nothing lost, nothing twice). Shares test_ray_executor's local
Ray instance (2 CPUs, no dashboard)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from dataprocess import explore as dp_explore
from tests.fixtures.caption_data import make_image, write_jsonl
from tests.fixtures.ray_faults import KillsItsActorOnce, describe_prompt
from tests.test_ray_executor import ray_local  # noqa: F401  (the module's shared Ray)
from tests.test_streams import rows
from vlmkit.executor import ExecutorOptions
from vlmkit.generation.items import CaptionItem
from vlmkit.generation.ray_executor import caption_on_ray
from vlmkit.generation.runner import RunStats, caption_items
from vlmkit.io import read_json
from vlmkit.multiview import find_object_dirs_by_id

pytestmark = pytest.mark.slow
REPORT_FILES = ("explore.json", "explore.md")


def test_explore_on_ray_equals_local(ray_local, tmp_path: Path) -> None:  # noqa: F811
    extra = []
    for k in range(40):  # distinct images: several chunks of images on Ray
        make_image(tmp_path / "many" / f"{k}.png", (20 + k, 30))
        extra.append({"id": f"m{k}", "text": f"picture {k} of many", "images": [f"many/{k}.png", "img/big.jpg"]})
    data = write_jsonl(tmp_path / "data.jsonl", rows(tmp_path) + extra)
    common = ["--input", str(data), "--np", "2"]
    assert dp_explore.main([*common, "--output_dir", str(tmp_path / "local")]) == 0
    assert dp_explore.main([*common, "--output_dir", str(tmp_path / "ray"), "--executor", "ray",
                            "--num_workers", "2"]) == 0
    for name in REPORT_FILES:
        assert (tmp_path / "ray" / name).read_text() == (tmp_path / "local" / name).read_text(), name


def test_a_killed_captioning_actor_loses_and_duplicates_nothing(ray_local, examples_copy: Path,  # noqa: F811
                                                                 tmp_path: Path) -> None:
    objects = sorted(find_object_dirs_by_id(examples_copy / "multiview_images").values(), key=lambda o: o.id)
    items = [CaptionItem(obj, ("front", "back")) for obj in objects]
    victim = objects[3].path.name  # in the second batch of two
    marker = tmp_path / "killed.marker"

    def run(make, executor: ExecutorOptions | None) -> tuple[list[tuple[str, str]], RunStats]:
        got: list[tuple[str, str]] = []
        stats = RunStats(total=len(items))
        on_batch = lambda successes: got.extend((s.item.id, s.caption) for s in successes)  # noqa: E731
        if executor is None:
            caption_items(items, make(), prompt_for=describe_prompt, batch_size=2, on_batch=on_batch, stats=stats,
                          progress=False)
        else:
            caption_on_ray(items, executor, make_captioner=make, prompt_for=describe_prompt, batch_size=2,
                           on_batch=on_batch, stats=stats, progress=False)
        return got, stats

    marker.write_text("no kill in the local reference run")
    local, local_stats = run(functools.partial(KillsItsActorOnce, str(marker), victim), None)
    marker.unlink()
    ray, stats = run(functools.partial(KillsItsActorOnce, str(marker), victim),
                     ExecutorOptions(executor="ray", num_workers=2))
    assert marker.is_file()  # an actor really died, on the batch holding the victim
    assert len(local) == len(objects) == 6 and ray == local  # every item once, in order, the same captions
    assert stats.failures == local_stats.failures == [] and stats.captioned == 6 and stats.attempted == 6


def test_compare_encodes_on_ray_actors_like_locally(ray_local, examples_copy: Path, tiny_clip_dir: Path,  # noqa: F811
                                                    tmp_path: Path) -> None:
    import compare

    def run(out: str, cache: str, *extra: str) -> dict[str, dict]:
        assert compare.main(["--generated", *map(str, sorted((examples_copy / "captions").glob("image_*.json"))),
                             "--ground_truth", str(examples_copy / "groundTruth.json"), "--images_dir",
                             str(examples_copy / "multiview_images"), "--clip_model", str(tiny_clip_dir),
                             "--no_coco", "--bootstrap", "0", "--batch_size", "4", "--cache_dir",
                             str(tmp_path / cache), "--output_dir", str(tmp_path / out), *extra]) == 0
        return {p.name: _scores(read_json(p)) for p in sorted((tmp_path / out).glob("compare_*.json"))}

    local = run("local", "cache_local")
    ray = run("ray", "cache_ray", "--executor", "ray", "--num_workers", "2")  # every vector encoded on Ray
    assert len(local) == 3
    for name in local:
        assert ray[name] == local[name], name
    again = run("again", "cache_ray")  # a local run reading the vectors Ray computed: the cache stays the truth
    assert again == local


def _scores(report: dict) -> dict:
    """A compare report without its timings and paths (what differs between runs of the same scores)."""
    if isinstance(report, dict):
        return {k: _scores(v) for k, v in report.items()
                if not any(word in k for word in ("second", "created", "cache", "timing"))}
    if isinstance(report, list):
        return [_scores(v) for v in report]
    return report
