"""compare.py's --output_dir holds ONE run: a second run removes the per-model files of the earlier run that it did
not rewrite (models left out or renamed), touches nothing else, and a run that fails leaves the earlier run intact."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import compare  # noqa: E402

CHEAP = ["--metrics", "lexical", "--no_coco", "--bootstrap", "0", "--clip_model", "none"]


def captions(folder: Path, *names: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    source = sorted((REPO / "examples" / "captions").glob("image_*.json"))[0]
    paths = []
    for name in names:
        records = json.loads(source.read_text())
        for record in records:
            record["data_by"] = name
        (folder / f"image_{name}.json").write_text(json.dumps(records))
        paths.append(str(folder / f"image_{name}.json"))
    return paths


def test_a_second_run_leaves_no_files_of_the_first_beside_its_own(tmp_path: Path) -> None:
    out = tmp_path / "results"
    truth = str(REPO / "examples" / "groundTruth.json")
    first = captions(tmp_path / "c1", "alpha", "beta")
    assert compare.main(["--generated", *first, "--ground_truth", truth, "--output_dir", str(out), *CHEAP]) == 0
    mine = out / "notes.txt"
    mine.write_text("a file of the user's")
    before = sorted(p.name for p in out.iterdir())
    assert "compare_beta_per_sample.jsonl" in before and "compare_alpha.txt" in before

    bad = captions(tmp_path / "c2", "alpha", "gamma")
    Path(bad[1]).write_text("{not json")
    with pytest.raises(Exception):  # noqa: B017 - any refusal; the point is what it leaves behind
        compare.main(["--generated", *bad, "--ground_truth", truth, "--output_dir", str(out), *CHEAP])
    assert sorted(p.name for p in out.iterdir()) == before  # a failed run removes nothing

    second = captions(tmp_path / "c3", "alpha", "gamma")
    assert compare.main(["--generated", *second, "--ground_truth", truth, "--output_dir", str(out), *CHEAP]) == 0
    after = sorted(p.name for p in out.iterdir())
    assert after == sorted([name.replace("beta", "gamma") for name in before])  # beta's three files are gone
    assert mine.read_text() == "a file of the user's"
    summary = json.loads((out / "batch_evaluation_summary.json").read_text())
    assert sorted(row["model_name"] for row in summary["models"]) == ["alpha", "gamma"]


def test_a_summary_naming_files_elsewhere_removes_nothing_outside_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "results"
    outside = tmp_path / "compare_precious.json"
    outside.write_text("{}")
    first = captions(tmp_path / "c1", "alpha")
    truth = str(REPO / "examples" / "groundTruth.json")
    assert compare.main(["--generated", *first, "--ground_truth", truth, "--output_dir", str(out), *CHEAP]) == 0
    summary_path = out / "batch_evaluation_summary.json"
    summary = json.loads(summary_path.read_text())
    summary["models"][0]["result_file"] = "../compare_precious.json"
    summary_path.write_text(json.dumps(summary))
    shutil.copy(outside, out / "unrelated.json")
    assert compare.main(["--generated", *first, "--ground_truth", truth, "--output_dir", str(out), *CHEAP]) == 0
    assert outside.is_file() and (out / "unrelated.json").is_file()
