"""Concurrent runs, kill -9 at every step of a multi-file commit, and --resume past bad images, through the CLIs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import compare
import qwen
from dataprocess import filter as dp_filter
from tests.fixtures.bad_files import bad_image
from tests.fixtures.caption_data import make_image, write_json, write_jsonl
from vlmkit.cli import run_main
from vlmkit.io import read_json
from vlmkit.outputs import OutputLock

REPO = Path(__file__).resolve().parent.parent

# Runs an entry point's main() with `vlmkit.io._commit_step` replaced: the process dies (os._exit, like kill -9:
# no clean-up, no finally) when the commit reaches step number argv[1].
KILL_AT_STEP = textwrap.dedent("""
    import importlib, os, sys
    from vlmkit import io
    stop_at, module, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    steps = []
    def step(name):
        steps.append(name)
        if len(steps) == stop_at:
            os._exit(9)
    io._commit_step = step
    from vlmkit.cli import run_main
    run_main(importlib.import_module(module).main, argv)
""")


def run_cli(main, argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        run_main(main, [str(a) for a in argv])
    return exit_.value.code or 0, capsys.readouterr().err


def kill_at(step: int, module: str, argv: list[str]) -> int:
    proc = subprocess.run([sys.executable, "-c", KILL_AT_STEP, str(step), module, *map(str, argv)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode


def contents(folder: Path, names: list[str]) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in names}


def leftovers(folder: Path, names: list[str]) -> list[str]:
    """Anything in `folder` but the result files and a killed run's stale lock (which the next run takes over)."""
    return sorted(p.name for p in folder.iterdir() if p.name not in names and not p.name.endswith(".lock"))


# ---- dataprocess.filter: four files, one unit --------------------------------------------------------------
FILTER_FILES = ["kept.jsonl", "kept_stats.jsonl", "kept_dropped.jsonl", "kept_summary.json"]


def check_filter_set(folder: Path) -> None:
    """The four files agree with each other (one run's set): the summary's counts match the other three."""
    summary = read_json(folder / "kept_summary.json")
    lines = {name: (folder / name).read_text().splitlines() for name in FILTER_FILES[:3]}
    assert len(lines["kept.jsonl"]) == summary["kept"]
    assert len(lines["kept_stats.jsonl"]) == summary["total"]
    assert len(lines["kept_dropped.jsonl"]) == summary["dropped"]


@pytest.mark.parametrize("step", range(1, 2 * len(FILTER_FILES) + 2))
def test_filter_killed_at_each_commit_step_leaves_the_old_or_the_new_set(tmp_path: Path, step: int,
                                                                          capsys: pytest.CaptureFixture) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("process:\n  - words_num_filter:\n      min_num: 3\n")
    old = write_jsonl(tmp_path / "old.jsonl", [{"text": "three good words"}, {"text": "and four more words"}])
    new = write_jsonl(tmp_path / "new.jsonl", [{"text": "two words"}, {"text": "one"},
                                               {"text": "now five words here ok"}])
    out = tmp_path / "out"
    common = ["--recipe", recipe, "--export_path", out / "kept.jsonl", "--np", "1", "--no_progress"]
    assert run_cli(dp_filter.main, ["--dataset_path", old, *common], capsys)[0] == 0
    before = contents(out, FILTER_FILES)

    # 4 files staged, the manifest (the commit point), 4 published: 9 steps, each killed once
    assert kill_at(step, "dataprocess.filter", ["--dataset_path", new, *common]) == 9
    # The next run finishes or undoes the killed commit before anything else (here: it then fails on a missing
    # input, after taking over the dead run's lock): the folder holds one complete set, and no staging folder.
    code, err = run_cli(dp_filter.main, ["--dataset_path", tmp_path / "nowhere.jsonl", *common], capsys)
    assert code == 2 and "nowhere.jsonl: input file not found" in err
    after = contents(out, FILTER_FILES)
    committed = step > len(FILTER_FILES)  # from the manifest on, the new set is the committed one
    if committed:
        assert all(after[n] != before[n] for n in FILTER_FILES)  # every file is the new run's
    else:
        assert after == before
    check_filter_set(out)
    assert leftovers(out, FILTER_FILES) == []
    assert run_cli(dp_filter.main, ["--dataset_path", new, *common], capsys)[0] == 0  # the stale lock is taken over
    check_filter_set(out)


# ---- compare.py: per-model files + summary, tables and HTML, one unit ---------------------------------------
COMPARE_FILES = ["compare_good.json", "compare_good.txt", "compare_good_per_sample.jsonl",
                 "batch_evaluation_summary.json", "model_comparison_table.md", "model_comparison_table.csv",
                 "evaluation_report.html"]
CMP_IDS = ["0000000a-aaaa-4bbb-8ccc-dddddddddddd_1", "0000000b-aaaa-4bbb-8ccc-dddddddddddd_2"]


def _captions(path: Path, captions: list[str], data_by: str | None = None) -> Path:
    rows = [{"images": [f"{i}_ac001001.jpg"], "caption": c, **({"data_by": data_by} if data_by else {})}
            for i, c in zip(CMP_IDS, captions, strict=True)]
    return write_json(path, rows)


def check_compare_set(folder: Path) -> float:
    """The per-model result and the summary agree (one run's set); returns the model's lexical similarity."""
    result = read_json(folder / "compare_good.json")
    summary = read_json(folder / "batch_evaluation_summary.json")
    value = result["metrics"]["lexical_similarity"] if "metrics" in result else result["lexical_similarity"]
    assert f"{value:.4f}"[:5] in (folder / "model_comparison_table.md").read_text()
    assert json.dumps(value) in json.dumps(summary)
    rows = (folder / "compare_good_per_sample.jsonl").read_text().splitlines()
    assert len(rows) == len(CMP_IDS)
    return value


@pytest.mark.parametrize("step", range(1, 2 * len(COMPARE_FILES) + 2))
def test_compare_killed_at_each_commit_step_leaves_the_old_or_the_new_set(tmp_path: Path, step: int,
                                                                           capsys: pytest.CaptureFixture) -> None:
    truth = _captions(tmp_path / "gt.json", ["a red figure amphora with warriors", "a black figure lekythos"])
    old = _captions(tmp_path / "old" / "image_good.json", ["a red amphora", "a lekythos"], "good")
    new = _captions(tmp_path / "new" / "image_good.json", ["a red figure amphora", "a black figure jug"], "good")
    out = tmp_path / "results"
    common = ["--ground_truth", truth, "--output_dir", out, "--no_coco", "--clip_model", "none",
              "--metrics", "lexical"]
    assert run_cli(compare.main, ["--generated", old, *common], capsys)[0] == 0
    before = contents(out, COMPARE_FILES)
    old_value = check_compare_set(out)

    assert kill_at(step, "compare", ["--generated", new, *common]) == 9  # 7 staged, manifest, 7 published
    code, err = run_cli(compare.main, ["--generated", tmp_path / "nowhere.json", *common], capsys)
    assert code == 2 and "nowhere.json" in err  # the next run recovers the commit first, then fails on its input
    after = contents(out, COMPARE_FILES)
    if step > len(COMPARE_FILES):
        assert all(after[n] != before[n] for n in COMPARE_FILES)
        assert check_compare_set(out) != old_value
    else:
        assert after == before
        check_compare_set(out)
    assert leftovers(out, COMPARE_FILES) == []


# ---- two writers, one output --------------------------------------------------------------------------------
# qwen.py whose generation waits until the test allows it to go on (a file appears): a run that is provably still
# writing its output while the second run starts.
HELD_QWEN = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from vlmkit.generation.hf_backend import HFCaptioner
    started, go = Path(sys.argv[1]), Path(sys.argv[2])
    real = HFCaptioner.generate
    def held(self, inputs):
        started.touch()
        while not go.exists():
            time.sleep(0.05)
        return real(self, inputs)
    HFCaptioner.generate = held
    import qwen
    from vlmkit.cli import run_main
    run_main(qwen.main, sys.argv[3:])
""")


def _flat(folder: Path, names: list[str]) -> Path:
    for k, name in enumerate(names):
        make_image(folder / name, (32, 32), color=(30 * k, 100, 50))
    return folder


@pytest.mark.slow
def test_two_runs_on_one_output_one_refuses_naming_the_other_and_no_record_is_lost(
        tmp_path: Path, tiny_qwen2_5_vl_dir: Path, capsys: pytest.CaptureFixture) -> None:
    first = _flat(tmp_path / "gpu0", ["a1.jpg", "a2.jpg"])
    second = _flat(tmp_path / "gpu1", ["b1.jpg", "b2.jpg"])
    out = tmp_path / "captions"
    common = ["--model_path", tiny_qwen2_5_vl_dir, "--output_dir", out, "--output_name", "image_x.json",
              "--max_new_tokens", "2", "--min_pixels", "784", "--max_pixels", "3136", "--no_progress", "--resume"]
    started, go = tmp_path / "started", tmp_path / "go"
    running = subprocess.Popen([sys.executable, "-c", HELD_QWEN, started, go, "--input_dir", first,
                                *map(str, common)], cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not started.exists():
            assert running.poll() is None and time.monotonic() < deadline, running.stderr.read()
            time.sleep(0.1)
        # The second run (another GPU, other inputs, the same output) refuses at once, naming the first.
        code, err = run_cli(qwen.main, ["--input_dir", second, *common], capsys)
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 2 and len(errors) == 1
        assert errors[0].startswith(f"error: {out / 'image_x.json'}: caption file is being written by pid "
                                    f"{running.pid} on {os.uname().nodename}, started ")
        assert "wait for it to finish or choose another output" in errors[0]
        go.touch()
        assert running.wait(timeout=120) == 0, running.stderr.read()
    finally:
        if running.poll() is None:
            running.kill()
    first_run = read_json(out / "image_x.json")
    assert [r["images"] for r in first_run] == [["a1.jpg"], ["a2.jpg"]]
    # Run again once the first has finished: both runs' records are in the file, none lost.
    assert run_cli(qwen.main, ["--input_dir", second, *common], capsys)[0] == 0
    both = read_json(out / "image_x.json")
    assert [r["images"] for r in both] == [["a1.jpg"], ["a2.jpg"], ["b1.jpg"], ["b2.jpg"]]
    assert both[:2] == first_run
    assert not (out / "image_x.json.lock").exists()


# ---- --resume past a bad image, and merge past a running shard -----------------------------------------------
def test_resume_lists_a_bad_image_again_instead_of_crashing_on_it(tmp_path: Path, tiny_qwen2_5_vl_dir: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    images = _flat(tmp_path / "images", ["a1.jpg", "a3.jpg"])
    bad_image(images / "a2.png", "bomb")
    out = tmp_path / "captions"
    argv = ["--model_path", tiny_qwen2_5_vl_dir, "--input_dir", images, "--output_dir", out, "--max_new_tokens", "2",
            "--min_pixels", "784", "--max_pixels", "3136", "--no_progress"]
    report_path = out / "Qwen2.5-VL-tiny_caption_generation_report.json"
    stale = [out / ".image_Qwen2.5-VL-tiny.json.k1ll3d.tmp", out / f".{report_path.name}.k1ll3d.tmp"]
    for path in stale:  # what a run killed inside an atomic write leaves behind
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('[{"images": ["a1.jp')
    assert run_cli(qwen.main, argv, capsys)[0] == 1
    assert not any(path.exists() for path in stale)  # removed by the next writer, under the lock
    captions = read_json(out / "image_Qwen2.5-VL-tiny.json")
    assert [r["images"] for r in captions] == [["a1.jpg"], ["a3.jpg"]]
    for _ in range(2):  # every --resume retries the bad item, lists it again, keeps the others
        assert run_cli(qwen.main, [*argv, "--resume"], capsys)[0] == 1
        report = read_json(report_path)
        assert report["totals"] == {"items": 3, "already_done": 2, "attempted": 1, "captioned": 0, "failed": 1,
                                    "skipped_views": 0}
        assert report["failures"][0]["id"] == "a2" and "too large image" in report["failures"][0]["reason"]
        assert read_json(out / "image_Qwen2.5-VL-tiny.json") == captions
    # a larger limit (the file is trusted) lets PIL open it; this 45-byte file then fails as truncated, still per item
    assert run_cli(qwen.main, [*argv, "--resume", "--max_image_pixels", "0"], capsys)[0] == 1
    assert "image" in read_json(report_path)["failures"][0]["reason"]


def test_merge_refuses_a_shard_that_is_still_being_written(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    shards = tmp_path / "captions" / "shards"
    for i in range(2):
        write_json(shards / f"image_x.shard-{i}-of-2.json",
                   [{"images": [f"item{i}.jpg"], "caption": f"caption {i}", "data_by": "x"}])
    argv = ["--model_path", tmp_path, "--merge", "--output_dir", tmp_path / "captions", "--output_name",
            "image_x.json"]
    with OutputLock(shards / "image_x.shard-1-of-2.json"):  # shard 1's run is still going
        code, err = run_cli(qwen.main, argv, capsys)
    assert code == 2 and "shard 1 of 2 is being written by pid" in err
    assert not (tmp_path / "captions" / "image_x.json").exists()
    assert run_cli(qwen.main, argv, capsys)[0] == 0
    assert [r["caption"] for r in read_json(tmp_path / "captions" / "image_x.json")] == ["caption 0", "caption 1"]
    report = read_json(tmp_path / "captions" / "x_caption_generation_report.json")
    assert report["records"] == 2 and report["num_shards"] == 2
