"""compare_vqa.py's published numbers on the bundled VQA sample set (examples/vqa/questions.jsonl), through the public
entry points (eval_vqa.py --score_only, compare_vqa.py), pinned against independent computations: accuracy, the
paired difference, its bootstrap CI (the same seeded index matrix) and the two-sided sign-flip permutation p (exact
enumeration of every sign pattern; the test's 10,000 random flips must land within Monte-Carlo error of it)."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import compare_vqa  # noqa: E402
import eval_vqa  # noqa: E402

QUESTIONS = REPO / "examples" / "vqa" / "questions.jsonl"


def score(tmp_path: Path, name: str, correct: set[int]) -> Path:
    """Hand-written answers: right (the first human answer) on `correct`, "vase" (always wrong) elsewhere."""
    questions = [json.loads(line) for line in QUESTIONS.read_text().splitlines()]
    predictions = tmp_path / f"{name}.jsonl"
    predictions.write_text("".join(json.dumps({"question_id": q["question_id"], "answer": q["answers"][0]
                                               if q["question_id"] in correct else "vase"}) + "\n" for q in questions))
    out = tmp_path / name
    assert eval_vqa.main(["--task", "vqa", "--questions", str(QUESTIONS), "--score_only", "--predictions",
                          str(predictions), "--output_dir", str(out), "--name", name]) == 0
    return out


def exact_sign_flip_p(diff: np.ndarray) -> float:
    """Two-sided: the share of all 2^k sign patterns of the non-zero differences whose |mean| reaches the observed."""
    nonzero = diff[diff != 0]
    observed = abs(nonzero.sum())
    hits = sum(abs(np.dot(signs, nonzero)) >= observed - 1e-12
               for signs in itertools.product((-1.0, 1.0), repeat=len(nonzero)))
    return hits / 2 ** len(nonzero)


def test_paired_difference_ci_and_two_sided_p_on_the_sample_set(tmp_path: Path) -> None:
    n = len(QUESTIONS.read_text().splitlines())
    base_right, ft_right = {0, 1, 2}, {0, 1, 3, 4, 5, 6, 7, 8}
    base, ft = score(tmp_path, "base", base_right), score(tmp_path, "ft", ft_right)
    assert compare_vqa.main([str(base), str(ft), "--output_dir", str(tmp_path / "cmp")]) == 0
    comparison = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    paired = comparison["paired"][0]
    a = np.array([1.0 if i in base_right else 0.0 for i in range(n)])
    b = np.array([1.0 if i in ft_right else 0.0 for i in range(n)])
    diff = b - a
    assert (paired["n"], paired["b_better"], paired["a_better"], paired["ties"]) == (n, 6, 1, n - 7)
    assert paired["mean_a"] == pytest.approx(3 / n) and paired["mean_b"] == pytest.approx(8 / n)
    assert paired["difference"] == pytest.approx(5 / n, abs=1e-12)
    index = np.random.default_rng(0).integers(0, n, size=(1000, n))
    low, high = np.quantile(diff[index].mean(axis=1), [0.025, 0.975])
    assert (paired["ci"]["low"], paired["ci"]["high"]) == pytest.approx((low, high), abs=1e-12)
    exact = exact_sign_flip_p(diff)
    assert exact == pytest.approx(16 / 128)  # |S| >= 5 for S = sum of 7 signs: 2 * (1 + 7) of 128 patterns
    assert paired["p_value"] == pytest.approx(exact, abs=0.015)  # 10,000 random flips: SE about 0.0033
    assert "two-sided" in paired["test"]


def test_the_sample_set_is_well_formed_and_answerable_from_the_renders() -> None:
    questions = [json.loads(line) for line in QUESTIONS.read_text().splitlines()]
    assert len(questions) == 12 and len({q["question_id"] for q in questions}) == 12
    for q in questions:
        assert (QUESTIONS.parent / q["image"]).is_file() and q["answers"]


def test_the_bundled_examples_are_what_make_examples_writes_and_are_named_as_illustrations() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_examples", REPO / "examples" / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert [json.loads(line) for line in QUESTIONS.read_text().splitlines()] == module.vqa_questions()
    assert json.loads((REPO / "examples" / "groundTruth.json").read_text()) == module.ground_truth()
    files = sorted(p.name for p in (REPO / "examples" / "captions").glob("image_*.json"))
    assert files == ["image_illustration-close.json", "image_illustration-generic.json",
                     "image_illustration-vague.json"]  # hand-written illustrations, never named after real models
    for name in files:
        model = name.removeprefix("image_").removesuffix(".json")
        records = json.loads((REPO / "examples" / "captions" / name).read_text())
        assert [r["caption"] for r in records] == [captions[model] for *_, captions in module.VASES]
        assert {r["data_by"] for r in records} == {model}
