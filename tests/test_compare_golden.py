"""Golden outputs of compare.py: every file a run writes, byte for byte, after normalising only what changes from
run to run (times, dates, temp paths, package versions).

These pin refactors of the evaluation code (issue 19: the metric registry, the ranking kernel, the embedding
cache): a change that moves one number, one label or one footnote fails here. The numbers come from real encoders
(the packaged all-MiniLM-L6-v2, a tiny random CLIP seeded by demo.tiny) on this toolkit's pinned torch, so a
different CPU or torch build may move a last digit: regenerate deliberately with

    VLMKIT_UPDATE_GOLDEN=1 python -m pytest -q tests/test_compare_golden.py

and review the diff (git diff tests/golden) before committing it.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

import compare
from vlmkit.cli import run_main

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("VLMKIT_UPDATE_GOLDEN") == "1"
VOLATILE = (
    (re.compile(r'"(created_at|seconds_[a-z_]+)": [^,\n]+'), r'"\1": "<volatile>"'),
    (re.compile(r"created \d{4}-\d\d-\d\dT[\d:+]+"), "created <date>"),
    (re.compile(r"\|(transformers|sentence-transformers|pycocoevalcap|numpy|vlmkit):[^|\s\"]+"), r"|\1:<version>"),
    # the packaged MiniLM lies in whichever environment runs the tests (a CI venv, a user's venv)
    (re.compile(r"[^\s\"']*/site-packages/"), "<site-packages>/"),
)


def normalise(text: str, roots: dict[str, str]) -> str:
    for root, name in roots.items():
        text = text.replace(root, name)
    for pattern, replacement in VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def run_compare(argv: list[object]) -> None:
    with pytest.raises(SystemExit) as exc:
        run_main(compare.main, [str(a) for a in argv])
    assert exc.value.code == 0


def check_against_golden(case: str, out: Path, roots: dict[str, str], suffixes: tuple[str, ...]) -> None:
    written = sorted(p for p in out.rglob("*") if p.is_file() and p.suffix in suffixes)
    assert written, f"{case}: nothing written"
    golden = GOLDEN / case
    if UPDATE:
        for old in golden.glob("*") if golden.exists() else []:
            if old.suffix in suffixes:
                old.unlink()
        golden.mkdir(parents=True, exist_ok=True)
        for path in written:
            (golden / path.name).write_text(normalise(path.read_text(encoding="utf-8"), roots), encoding="utf-8")
    expected = sorted(p.name for p in golden.glob("*") if p.suffix in suffixes)
    assert [p.name for p in written] == expected
    for path in written:
        got = normalise(path.read_text(encoding="utf-8"), roots)
        want = (golden / path.name).read_text(encoding="utf-8")
        assert got == want, f"{case}/{path.name} differs from tests/golden/{case}/{path.name}"


TEXT_OUTPUTS = (".json", ".jsonl", ".txt", ".md", ".csv")
WITH_HTML = (*TEXT_OUTPUTS, ".html")  # pinned where the report has no thumbnails (pinned after issue 19's legend)


def _examples(tmp_path: Path, examples_copy: Path) -> dict[str, str]:
    return {str(tmp_path): "<tmp>", str(examples_copy): "<examples>"}


def test_examples_with_coco_match_the_golden_files(examples_copy: Path, tmp_path: Path) -> None:
    """./compare.sh --examples as a user runs it: MiniLM, pycocoevalcap (Java), no CLIP weights (nulls + reasons)."""
    if shutil.which("java") is None:
        pytest.skip("needs Java for pycocoevalcap")
    out = tmp_path / "out"
    run_compare(["--generated", *sorted((examples_copy / "captions").glob("image_*.json")),
                 "--ground_truth", examples_copy / "groundTruth.json", "--images_dir",
                 examples_copy / "multiview_images", "--clip_model", tmp_path / "no-clip-here", "--output_dir", out])
    check_against_golden("examples", out, _examples(tmp_path, examples_copy), TEXT_OUTPUTS)


def test_tiny_clip_vlmkit_protocol_matches_the_golden_files(examples_copy: Path, tmp_path: Path,
                                                            tiny_clip_dir: Path) -> None:
    """Every CLIP metric (text, image-grounded CLIPScore, RefCLIPScore) and a full overall score."""
    out = tmp_path / "out"
    run_compare(["--generated", *sorted((examples_copy / "captions").glob("image_*.json")),
                 "--ground_truth", examples_copy / "groundTruth.json", "--images_dir",
                 examples_copy / "multiview_images", "--clip_model", tiny_clip_dir, "--output_dir", out,
                 "--no_coco", "--bootstrap", "200", "--fid_bootstrap", "20"])
    roots = {**_examples(tmp_path, examples_copy), str(tiny_clip_dir): "<tiny_clip>"}
    check_against_golden("tiny_clip_vlmkit", out, roots, TEXT_OUTPUTS)


def test_tiny_clip_vasevqa3d_protocol_matches_the_golden_files(examples_copy: Path, tmp_path: Path,
                                                               tiny_clip_dir: Path) -> None:
    """The reference protocol: CLIP text for semantic and R@k (argsort rule), whitespace Jaccard, raw-embedding FD."""
    from vlmkit.evaluation.encoders import packaged_minilm_path

    out = tmp_path / "out"
    run_compare(["--generated", *sorted((examples_copy / "captions").glob("image_*.json")),
                 "--ground_truth", examples_copy / "groundTruth.json", "--clip_model", tiny_clip_dir,
                 "--protocol", "vasevqa3d", "--sentence_model", packaged_minilm_path(), "--output_dir", out,
                 "--no_coco"])
    roots = {**_examples(tmp_path, examples_copy), str(tiny_clip_dir): "<tiny_clip>",
             str(packaged_minilm_path()): "<minilm>"}
    check_against_golden("tiny_clip_vasevqa3d", out, roots, WITH_HTML)


def test_single_output_mode_matches_the_golden_files(examples_copy: Path, tmp_path: Path) -> None:
    """--output (one model, VaseVQA-3D style) with a subset of the groups: the reasons of the groups left out."""
    out = tmp_path / "out"
    run_compare(["--generated", examples_copy / "captions" / "image_illustration-vague.json", "--ground_truth",
                 examples_copy / "groundTruth.json", "--output", out / "qwen_eval.json",
                 "--metrics", "semantic,retrieval,lexical", "--clip_model", "none"])
    check_against_golden("single_output", out, _examples(tmp_path, examples_copy), TEXT_OUTPUTS)


def _tied_set(root: Path) -> tuple[Path, Path]:
    """40 items whose references repeat (every 4th shares one text) and whose captions repeat: retrieval ties."""
    import json

    words = ["red-figure", "amphora", "Attica", "krater", "black-figure", "lekythos", "Corinth", "hydria", "525 BC",
             "meander", "palmette", "Dionysos", "Herakles", "chariot", "warrior"]
    truth, generated = [], []
    for i in range(40):
        item = f"00000000-0000-4000-8000-{i:012d}_{i + 1}"
        ref = f"A {words[i // 4 % 15]} vase with {words[(i // 4 * 7) % 15]} decoration."
        cap = f"A {words[(i * 3) % 15]} with {words[i % 15]}." if i % 5 else ref
        truth.append({"images": [f"{item}_front.jpg"], "caption": ref})
        generated.append({"images": [f"{item}_front.jpg"], "caption": cap, "data_by": "tied-model"})
    root.mkdir(parents=True, exist_ok=True)
    (root / "gt.json").write_text(json.dumps(truth))
    (root / "image_tied-model.json").write_text(json.dumps(generated))
    return root / "gt.json", root / "image_tied-model.json"


@pytest.mark.parametrize("protocol", ["vlmkit", "vasevqa3d"])
def test_tied_references_match_the_golden_files(tmp_path: Path, tiny_clip_dir: Path, protocol: str) -> None:
    """Duplicated references: the tie rules of both protocols (shared in expectation; argsort order)."""
    from vlmkit.evaluation.encoders import packaged_minilm_path

    truth, generated = _tied_set(tmp_path / "data")
    out = tmp_path / "out"
    run_compare(["--generated", generated, "--ground_truth", truth, "--clip_model", tiny_clip_dir, "--protocol",
                 protocol, "--sentence_model", packaged_minilm_path(), "--output_dir", out, "--no_coco"])
    roots = {str(tmp_path): "<tmp>", str(tiny_clip_dir): "<tiny_clip>", str(packaged_minilm_path()): "<minilm>"}
    check_against_golden(f"tied_{protocol}", out, roots, WITH_HTML)
