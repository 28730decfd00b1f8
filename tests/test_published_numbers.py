"""Numbers and marks a user publishes from compare.py, pinned against independent computations through the public
entry points (compare.main and the files it writes), tightly enough that a one-line change to a formula fails:
the lexical tokeniser keeps digits (dates are in every vase caption), the † mark of the md/HTML tables means "not
significantly different from the best" (p >= 0.05 of the paired bootstrap test, p pinned against an independent
resampling with the same seed), and the CI of a mean metric is the percentile bootstrap over items."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import compare  # noqa: E402

CHEAP = ["--metrics", "lexical", "--no_coco", "--clip_model", "none"]
N = 40


def write(path: Path, captions: list[str], model: str | None = None) -> str:
    records = [{"images": [f"vase{i:02d}_1_c.jpg"], "caption": c, **({"data_by": model} if model else {})}
               for i, c in enumerate(captions)]
    path.write_text(json.dumps(records))
    return str(path)


def truth_captions() -> list[str]:
    shapes = ["amphora", "kylix", "hydria", "krater", "lekythos"]
    return [f"Attic {shapes[i % 5]} number {i}, made in {520 - i} BC, with {i % 3 + 1} figures." for i in range(N)]


def words(text: str) -> set[str]:
    """An independent tokeniser for the check: split on anything that is not a letter or digit (ASCII captions)."""
    return {t for t in re.split(r"[^a-z0-9_]+", text.lower()) if t}


def test_lexical_similarity_keeps_the_digits_of_dates(tmp_path: Path) -> None:
    truth = ["Attic amphora, made in 500 BC.", "Attic kylix, made in 480 BC.", "A krater."]
    generated = ["Attic amphora, made in 400 BC.", "Attic kylix, made in 480 BC.", "A krater from 450 BC."]
    out = tmp_path / "out"
    assert compare.main(["--generated", write(tmp_path / "image_m.json", generated, "m"), "--ground_truth",
                         write(tmp_path / "gt.json", truth), "--output_dir", str(out), "--bootstrap", "0",
                         *CHEAP]) == 0
    per_item = [json.loads(line)["lexical_similarity"] for line in (out / "compare_m_per_sample.jsonl").open()]
    # by hand: {attic, amphora, made, in, bc} shared, 500 vs 400 -> 5/7; identical -> 1; {a, krater} of 5 -> 2/5
    assert per_item == pytest.approx([5 / 7, 1.0, 2 / 5], abs=1e-6)
    independent = [len(words(g) & words(r)) / len(words(g) | words(r)) for g, r in zip(generated, truth, strict=True)]
    assert json.loads((out / "compare_m.json").read_text())["lexical_similarity"] == pytest.approx(
        np.mean(independent), abs=1e-12)


def three_caption_sets() -> tuple[list[str], list[str], list[str]]:
    truth = truth_captions()
    tie = list(truth)
    tie[7] = "Attic krater number 7, made in 400 BC, with two figures."
    worse = [f"A {c} object on a plain stand." for c in ("grey", "green", "blue", "white") * (N // 4)]
    return truth, tie, worse


def jaccards(generated: list[str], truth: list[str]) -> np.ndarray:
    pairs = zip(generated, truth, strict=True)
    return np.array([len(words(g) & words(r)) / len(words(g) | words(r)) for g, r in pairs])


@pytest.fixture(scope="module")
def three_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best = the ground truth; tie = the ground truth with one item changed (p far above 0.05); worse = unrelated
    captions (p = 1/1001). One compare.main run with the default 1000 resamples, seed 0."""
    tmp = tmp_path_factory.mktemp("three")
    truth, tie, worse = three_caption_sets()
    files = [write(tmp / "image_best.json", truth, "best"), write(tmp / "image_tie.json", tie, "tie"),
             write(tmp / "image_worse.json", worse, "worse")]
    out = tmp / "out"
    assert compare.main(["--generated", *files, "--ground_truth", write(tmp / "gt.json", truth), "--output_dir",
                         str(out), *CHEAP]) == 0
    return out


def per_item(out: Path, model: str) -> np.ndarray:
    """The independent per-item Jaccard values, after checking compare's per-sample file (rounded to 6 places)."""
    truth, tie, worse = three_caption_sets()
    values = jaccards({"best": truth, "tie": tie, "worse": worse}[model], truth)
    rows = [json.loads(line) for line in (out / f"compare_{model}_per_sample.jsonl").open()]
    assert [r["id"] for r in rows] == [f"vase{i:02d}_1" for i in range(N)]
    assert [r["lexical_similarity"] for r in rows] == pytest.approx(values.tolist(), abs=1e-6)
    return values


def independent_test(a: np.ndarray, best: np.ndarray, resamples: int = 1000, seed: int = 0) -> tuple[float, float,
                                                                                                          float, float]:
    """Paired bootstrap over items, written out: the same seeded index matrix, mean difference per resample,
    two-sided p = (1 + #{|d_b - d| >= |d|}) / (B + 1), percentile 95 % interval of d_b."""
    index = np.random.default_rng(seed).integers(0, len(a), size=(resamples, len(a)))
    d = a.mean() - best.mean()
    d_b = a[index].mean(axis=1) - best[index].mean(axis=1)
    p = (1 + np.count_nonzero(np.abs(d_b - d) >= abs(d))) / (resamples + 1)
    low, high = np.quantile(d_b, [0.025, 0.975])
    return float(d), float(p), float(low), float(high)


def test_significance_p_and_ci_equal_an_independent_paired_bootstrap(three_models: Path) -> None:
    summary = json.loads((three_models / "batch_evaluation_summary.json").read_text())
    best = per_item(three_models, "best")
    assert best.tolist() == [1.0] * N
    significance = summary["significance"]["lexical_similarity"]
    assert significance["best"]["best"] is True
    for model in ("tie", "worse"):
        values = per_item(three_models, model)
        d, p, low, high = independent_test(values, best)
        got = significance[model]
        assert "best" not in got
        assert got["diff"] == pytest.approx(d, abs=1e-6) and got["p"] == pytest.approx(p, abs=1e-12)
        assert got["ci"] == pytest.approx([low, high], abs=1e-6)
    assert significance["tie"]["p"] > 0.3 and significance["worse"]["p"] == pytest.approx(1 / 1001)
    # the model's own CI: percentile bootstrap of its mean over the same seeded resamples
    tie = per_item(three_models, "tie")
    index = np.random.default_rng(0).integers(0, N, size=(1000, N))
    row = next(r for r in summary["models"] if r["model_name"] == "tie")
    assert row["confidence_intervals"]["lexical_similarity"] == pytest.approx(
        np.quantile(tie[index].mean(axis=1), [0.025, 0.975]), abs=1e-6)


def table_cell(md: str, model: str, column: str) -> str:
    lines = [line for line in md.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    row = next(line for line in lines if f"| {model} |" in line)
    return [c.strip() for c in row.strip("|").split("|")][header.index(column)]


def test_the_dagger_marks_exactly_the_models_not_significantly_worse_than_the_best(three_models: Path) -> None:
    md = (three_models / "model_comparison_table.md").read_text()
    for column in ("Lexical (Jaccard)", "Overall"):
        assert table_cell(md, "best", column).startswith("**")
        assert table_cell(md, "tie", column).endswith(" †")  # p > 0.3: not significantly different
        assert "†" not in table_cell(md, "worse", column) and "**" not in table_cell(md, "worse", column)
    html = (three_models / "evaluation_report.html").read_text()
    rows = {name: re.search(rf"<tr[^>]*>(?:(?!</tr>).)*?>{name}<(?:(?!</tr>).)*</tr>", html, re.S).group(0)
            for name in ("best", "tie", "worse")}
    assert "†" in rows["tie"] and "†" not in rows["worse"] and "†" not in rows["best"]
