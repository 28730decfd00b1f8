"""The metric registry (vlmkit/evaluation/metrics/): a new metric is one spec, and every output shows it."""

from __future__ import annotations

import ast
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

import compare
from vlmkit.cli import run_main
from vlmkit.evaluation import metrics as registry
from vlmkit.evaluation.metrics.spec import GroupScores, GroupSpec, MetricInfo
from vlmkit.records import load_caption_records

REPO = Path(__file__).resolve().parent.parent
MODEL = "image_illustration-vague.json"

TOY = MetricInfo(key="toy_length_ratio", label="Toy length ratio",
                 description="shorter over longer caption length in characters (a test's toy metric)",
                 caveats=("a toy: says nothing about the caption",))


def _toy_compute(matched, context) -> GroupScores:
    out = GroupScores()
    out.mean(TOY.key, [min(len(g), len(r)) / max(len(g), len(r))
                       for g, r in zip(matched.generated, matched.references, strict=True)])
    return out


TOY_SPEC = GroupSpec(name="toy", metrics=(TOY,), compute=_toy_compute,
                     signature=lambda metric, context: ({"unit": "chars", "agg": "mean"}, {}))


@pytest.fixture()
def toy(monkeypatch: pytest.MonkeyPatch) -> GroupSpec:
    monkeypatch.setattr(registry, "GROUPS", (*registry.GROUPS, TOY_SPEC))  # the one line a new metric adds
    return TOY_SPEC


def _expected(examples: Path) -> tuple[list[float], float]:
    truth = {r.id: r.caption for r in load_caption_records(examples / "groundTruth.json")}
    gen = {r.id: r.caption for r in load_caption_records(examples / "captions" / MODEL)}
    values = [min(len(gen[i]), len(truth[i])) / max(len(gen[i]), len(truth[i])) for i in truth]
    return values, float(np.mean(values))


def test_a_toy_metric_is_one_spec_and_appears_in_every_output(toy, examples_copy: Path, tmp_path: Path,
                                                                capsys) -> None:
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        run_main(compare.main, [str(a) for a in (
            "--generated", examples_copy / "captions" / MODEL,
            examples_copy / "captions" / "image_illustration-generic.json",
            "--ground_truth", examples_copy / "groundTruth.json", "--output_dir", out, "--clip_model", "none",
            "--no_coco", "--bootstrap", "100")])
    assert exc.value.code == 0, capsys.readouterr().err
    per_item, value = _expected(examples_copy)
    result = json.loads((out / "compare_illustration-vague.json").read_text())
    assert result[TOY.key] == pytest.approx(value, abs=1e-12)
    low, high = result["confidence_intervals"][TOY.key]
    assert low <= value <= high
    assert result["metric_signatures"][TOY.key] == (
        "proto:vlmkit|unit:chars|agg:mean|ci:paired-bootstrap-percentile95%-B100-seed0|vlmkit:"
        + __import__("vlmkit").__version__)
    rows = [json.loads(line) for line in (out / "compare_illustration-vague_per_sample.jsonl").read_text().splitlines()]
    assert [r[TOY.key] for r in rows] == pytest.approx([round(v, 6) for v in per_item], abs=1e-12)
    assert f"- Toy length ratio: {value:.4f}" in (out / "compare_illustration-vague.txt").read_text()

    md = (out / "model_comparison_table.md").read_text()
    header = md.splitlines()[0].split(" | ")
    assert header[-3] == "Toy length ratio"  # a new column goes after the built-in ones
    assert f"{TOY.key}: proto:vlmkit|unit:chars" in md
    lines = (out / "model_comparison_table.csv").read_text().splitlines(keepends=True)
    table = list(csv.DictReader(io.StringIO("".join(line for line in lines if not line.startswith("#")))))
    row = next(r for r in table if r["model_name"] == "illustration-vague")
    assert float(row[TOY.key]) == pytest.approx(value, abs=1e-12) and row[f"{TOY.key}_ci_low"]
    summary = json.loads((out / "batch_evaluation_summary.json").read_text())
    assert TOY.key in summary["significance"] and TOY.key in summary["metric_signatures"]

    html = (out / "evaluation_report.html").read_text()
    assert "shorter over longer caption length in characters" in html  # the legend
    assert "a toy: says nothing about the caption" in html
    assert "Not in the chart" in html and "Toy length ratio (range 0..1, higher is better)" in html


def test_a_toy_metric_is_a_metrics_group_of_its_own(toy, examples_copy: Path, tmp_path: Path) -> None:
    assert "toy" in compare.build_parser().format_help()
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        run_main(compare.main, [str(a) for a in (
            "--generated", examples_copy / "captions" / MODEL, "--ground_truth", examples_copy / "groundTruth.json",
            "--output_dir", out, "--metrics", "toy", "--bootstrap", "0")])
    assert exc.value.code == 0
    result = json.loads((out / "compare_illustration-vague.json").read_text())
    assert result[TOY.key] == pytest.approx(_expected(examples_copy)[1], abs=1e-12)
    assert result["semantic_similarity"] is None
    assert result["unavailable"]["semantic_similarity"] == "not requested (--metrics)"


def test_the_registry_derives_the_orders_the_outputs_use() -> None:
    """Pinned: the table's columns, VaseVQA-3D's keys, the overall weights, the chart, the gallery scores."""
    assert registry.table_metrics() == (
        "overall_score", "clip_score", "clip_image_score", "semantic_similarity", "r_at_1", "r_at_5", "r_at_10",
        "lexical_similarity", "bleu_4", "meteor", "rouge_l", "cider", "fid_score")
    assert registry.vasevqa3d_keys() == ("clip_score", "fid_score", "semantic_similarity", "r_at_1", "r_at_5",
                                         "r_at_10", "lexical_similarity", "overall_score")
    assert registry.overall_weights() == {"clip_score": 0.25, "semantic_similarity": 0.25, "r_at_10": 0.20,
                                          "lexical_similarity": 0.15, "r_at_5": 0.10, "r_at_1": 0.05}
    assert registry.chart_metrics() == ("overall_score", "clip_score", "semantic_similarity", "r_at_1", "r_at_5",
                                        "r_at_10", "lexical_similarity", "bleu_4", "meteor", "rouge_l")
    assert registry.item_score_metrics() == ("overall_score", "semantic_similarity", "lexical_similarity",
                                             "clip_score", "clip_image_score", "cider")
    assert registry.all_groups() == ("clip", "clip_image", "semantic", "fid", "retrieval", "lexical", "coco")
    assert registry.lower_is_better() == frozenset({"fid_score"})


def _string_constants(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    docstrings |= {id(c) for node in ast.walk(tree) if isinstance(node, ast.Assign)  # __all__: function names
                   and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
                   for c in ast.walk(node.value)}
    return {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings}


def test_no_module_outside_the_registry_names_a_metric_key() -> None:
    """The registry is vlmkit/evaluation/metrics/ (and coco_metrics.py, the scorer that names what it returns)."""
    keys = set(registry.infos())
    readers = [p for p in (REPO / "vlmkit" / "evaluation").glob("*.py") if p.name != "coco_metrics.py"]
    readers += [REPO / "compare.py", REPO / "vlmkit" / "retrieval" / "metrics.py"]
    offenders = {p.name: sorted(keys & _string_constants(p)) for p in readers}
    assert {name: found for name, found in offenders.items() if found} == {}
