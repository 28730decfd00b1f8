"""compare.py end to end with a deterministic test encoder: matching by id, coverage, outputs, bad inputs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

import compare
from tests.fixtures.fake_text_encoder import BagOfWordsEncoder, write_captions
from vlmkit.cli import run_main
from vlmkit.evaluation import coco_metrics, pipeline

IDS = [f"0000000{n}-aaaa-4bbb-8ccc-dddddddddddd_{n}" for n in range(1, 7)]
TRUTH = [
    "Athenian black-figure lekythos depicting Herakles and the boar.",
    "Athenian red-figure amphora depicting a warrior departing.",
    "Black-figure hydria with women at a fountain house.",
    "Red-figure calyx krater with Dionysos and satyrs.",
    "Red-figure kylix with an athlete holding a strigil.",
    "Corinthian oinochoe with friezes of animals and rosettes.",
]
GOOD = [
    "Black-figure lekythos showing Herakles and the boar.",
    "Red-figure amphora showing a warrior departing.",
    "Hydria with women at a fountain house, black-figure.",
    "Calyx krater with Dionysos and satyrs, red-figure.",
    "Kylix with an athlete and a strigil, red-figure.",
    "Corinthian oinochoe with animal friezes and rosettes.",
]
BAD = ["A vase.", "A pot with people.", "A jar.", "A big bowl.", "A cup.", "A jug with animals."]


@pytest.fixture()
def encoder(monkeypatch: pytest.MonkeyPatch) -> BagOfWordsEncoder:
    fake = BagOfWordsEncoder()
    monkeypatch.setattr(pipeline.SentenceEncoder, "load", classmethod(lambda cls, *a, **k: fake))
    return fake


@pytest.fixture()
def data(tmp_path: Path) -> dict[str, Path]:
    return {
        "gt": write_captions(tmp_path / "groundTruth.json", list(zip(IDS, TRUTH, strict=True))),
        "good": write_captions(tmp_path / "captions" / "image_good.json", list(zip(IDS, GOOD, strict=True)), "good"),
        "bad": write_captions(tmp_path / "captions" / "image_bad.json", list(zip(IDS, BAD, strict=True)), "bad"),
        "out": tmp_path / "results",
    }


def run(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        run_main(compare.main, [str(a) for a in argv])
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def base_args(data: dict[str, Path]) -> list[object]:
    return ["--ground_truth", data["gt"], "--output_dir", data["out"], "--no_coco", "--clip_model", "none"]


def per_sample(path: Path) -> dict[str, dict]:
    return {row["id"]: row for row in map(json.loads, path.read_text().splitlines())}


def test_matches_by_id_not_position(capsys, encoder, data, tmp_path) -> None:
    shuffled = list(zip(IDS, GOOD, strict=True))
    random.Random(3).shuffle(shuffled)
    write_captions(tmp_path / "shuffled" / "image_good.json", shuffled, "good")
    code, _, _ = run(capsys, "--generated", data["good"], *base_args(data))
    assert code == 0
    ordered = json.loads((data["out"] / "compare_good.json").read_text())
    rows = per_sample(data["out"] / "compare_good_per_sample.jsonl")
    data["out"] = tmp_path / "results_shuffled"
    code, _, _ = run(capsys, "--generated", tmp_path / "shuffled" / "image_good.json", *base_args(data))
    assert code == 0
    shuffled_result = json.loads((data["out"] / "compare_good.json").read_text())
    assert per_sample(data["out"] / "compare_good_per_sample.jsonl") == rows
    for key in ("semantic_similarity", "r_at_1", "lexical_similarity", "fid_score", "overall_score"):
        assert shuffled_result[key] == pytest.approx(ordered[key])
    for item, gen, ref in zip(IDS, GOOD, TRUTH, strict=True):
        assert rows[item]["generated"] == gen and rows[item]["reference"] == ref
        assert rows[item]["semantic_similarity"] == pytest.approx(float(encoder.vector(gen) @ encoder.vector(ref)),
                                                                  abs=1e-6)
    assert ordered["r_at_1"] == 1.0  # every good caption retrieves its own reference


def test_two_models_one_call_table_summary_and_html(capsys, encoder, data) -> None:
    code, out, _ = run(capsys, "--generated", data["bad"], data["good"], *base_args(data))
    assert code == 0
    # each distinct text encoded exactly once, in one call, for all metrics and both models
    assert encoder.calls == [len(set(TRUTH + GOOD + BAD))]
    summary = json.loads((data["out"] / "batch_evaluation_summary.json").read_text())
    assert summary["ranking"] == ["good", "bad"]
    assert [m["rank"] for m in summary["models"]] == [1, 2]
    assert summary["warnings"] == []
    md = (data["out"] / "model_comparison_table.md").read_text()
    assert md.index("| 1 | good |") < md.index("| 2 | bad |") and "0.7" not in md.split("\n")[0]
    assert out.startswith("| Rank | Model |")
    csv_lines = (data["out"] / "model_comparison_table.csv").read_text().splitlines()
    assert csv_lines[1].startswith("1,good,") and csv_lines[2].startswith("2,bad,")
    good = json.loads((data["out"] / "compare_good.json").read_text())
    assert float(csv_lines[1].split(",")[2]) == pytest.approx(good["overall_score"])
    for key in ("clip_score", "fid_score", "semantic_similarity", "r_at_1", "r_at_5", "r_at_10",
                "lexical_similarity", "overall_score", "metadata"):
        assert key in good
    assert good["metadata"]["model_name"] == "good" and good["metadata"]["total_pairs"] == 6
    assert good["retrieval"]["pool_size"] == 6 and good["retrieval"]["chance"]["r_at_1"] == pytest.approx(1 / 6)
    assert good["fid"]["n_generated"] == 6 and "embedding dim 64" in good["fid"]["warning"]
    assert good["overall_score_partial"] and good["overall"]["missing_components"] == ["clip_score"]
    assert good["unavailable"]["clip_score"] == "CLIP disabled (--clip_model none)"
    assert good["bleu_4"] is None and "not requested" in good["unavailable"]["bleu_4"]
    rows = per_sample(data["out"] / "compare_good_per_sample.jsonl")
    assert np.mean([r["overall_score"] for r in rows.values()]) == pytest.approx(good["overall_score"])
    html = (data["out"] / "evaluation_report.html").read_text()
    assert "<svg" in html and "http://" not in html and "https://" not in html
    assert "Kylix with an athlete and a strigil, red-figure." in html and "A jug with animals." in html
    assert "Showing 6 of 6 items" in html
    txt = (data["out"] / "compare_good.txt").read_text()
    assert "PARTIAL" in txt and "pool N=6" in txt


def test_duplicates_and_unmatched_are_counted(capsys, encoder, data, tmp_path) -> None:
    pairs = list(zip(IDS, GOOD, strict=True)) + [(IDS[0], "A second, ignored caption."),
                                                  ("99999999-eeee_7", "An item the ground truth lacks.")]
    gen = write_captions(tmp_path / "dups" / "image_dups.json", pairs, "dups")
    truth = list(zip(IDS, TRUTH, strict=True)) + [(IDS[1], "A duplicate reference.")]
    write_captions(data["gt"], truth)
    code, _, _ = run(capsys, "--generated", gen, *base_args(data))
    assert code == 0
    result = json.loads((data["out"] / "compare_dups.json").read_text())
    cov = result["coverage"]
    assert cov["duplicate_generated_ids"]["count"] == 1 and cov["duplicate_generated_ids"]["ids"] == [IDS[0]]
    assert cov["duplicate_ground_truth_ids"]["count"] == 1 and cov["duplicate_ground_truth_ids"]["ids"] == [IDS[1]]
    assert cov["unmatched_generated"] == {"count": 1, "ids": ["99999999-eeee_7"]}
    assert cov["matched"] == 6 and cov["coverage"] == 1.0 and cov["generated_records"] == 8
    rows = per_sample(data["out"] / "compare_dups_per_sample.jsonl")
    assert rows[IDS[0]]["generated"] == GOOD[0] and rows[IDS[1]]["reference"] == TRUTH[1]  # first kept


def test_missing_predictions_error_then_allow_missing(capsys, encoder, data, tmp_path) -> None:
    partial = write_captions(tmp_path / "part" / "image_part.json", list(zip(IDS, GOOD, strict=True))[2:], "part")
    code, _, err = run(capsys, "--generated", data["good"], partial, *base_args(data))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert str(partial) in err and "no prediction for 2 of 6" in err and IDS[0] in err and IDS[1] in err
    assert not data["out"].exists()  # nothing written, not even for the valid file

    code, _, _ = run(capsys, "--generated", data["good"], partial, "--allow_missing", *base_args(data))
    assert code == 0
    result = json.loads((data["out"] / "compare_part.json").read_text())
    assert result["coverage"]["coverage"] == pytest.approx(4 / 6)
    assert result["coverage"]["missing_predictions"] == {"count": 2, "ids": IDS[:2]}
    assert result["retrieval"]["pool_size"] == 4 and result["metadata"]["total_pairs"] == 4
    summary = json.loads((data["out"] / "batch_evaluation_summary.json").read_text())
    assert any("different id sets" in w for w in summary["warnings"])
    assert "WARNING: models were scored on different id sets" in (data["out"] / "model_comparison_table.md").read_text()


def _corrupt(kind: str, data: dict[str, Path]) -> tuple[list[object], str, str]:
    """Make one bad input; returns (extra argv, text the error must contain, file it must name)."""
    gen = data["good"]
    if kind == "malformed_json":
        gen.write_text(gen.read_text()[:-5])
        return [], "malformed JSON", str(gen)
    if kind == "not_a_list":
        gen.write_text(json.dumps({"images": ["x_1.jpg"], "caption": "x"}))
        return [], "expected a JSON list", str(gen)
    if kind == "no_images":
        gen.write_text(json.dumps([{"caption": "x", "data_by": "good"}]))
        return [], "item 0: 'images' must be", str(gen)
    if kind == "empty_caption":
        records = json.loads(gen.read_text())
        records[3]["caption"] = "   "
        gen.write_text(json.dumps(records))
        return [], f"item 3 (id {IDS[3]}): empty caption", str(gen)
    if kind == "not_utf8":
        gen.write_bytes(b"[{\"images\": [\"a_1.jpg\"], \"caption\": \"\xff\xfe\"}]")
        return [], "cannot read file", str(gen)
    if kind == "directory":
        gen.unlink()
        gen.mkdir()
        return [], "cannot read file", str(gen)
    if kind == "missing_file":
        gen.unlink()
        return [], "file not found", str(gen)
    if kind == "bad_ground_truth":
        data["gt"].write_text("[{\"images\": [\"x_1.jpg\"], \"caption\": 5}]")
        return [], "item 0 (id x_1): 'caption' must be a string", str(data["gt"])
    if kind == "missing_sentence_model":
        missing = data["out"].parent / "models" / "all-mpnet-base-v2"
        return ["--sentence_model", missing], "sentence-transformers model not found", str(missing)
    if kind == "missing_images_dir":
        missing = data["out"].parent / "no_renders"
        return ["--images_dir", missing], "input folder not found", str(missing)
    if kind == "unknown_metric":
        return ["--metrics", "semantic,bleu"], "unknown metric group(s) bleu", "--metrics"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["malformed_json", "not_a_list", "no_images", "empty_caption", "not_utf8",
                                  "directory", "missing_file", "bad_ground_truth", "missing_sentence_model",
                                  "missing_images_dir", "unknown_metric"])
def test_bad_input_one_line_error_and_no_files_touched(capsys, encoder, data, kind) -> None:
    data["out"].mkdir()
    sentinel = data["out"] / "compare_good.json"
    sentinel.write_text("earlier result\n")
    extra, message, names = _corrupt(kind, data)
    code, out, err = run(capsys, "--generated", data["bad"], data["good"], *base_args(data), *extra)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert message in err and names in err
    assert sentinel.read_text() == "earlier result\n"
    assert sorted(p.name for p in data["out"].iterdir()) == ["compare_good.json"]  # no temp or partial files


def test_single_output_file_mode_and_model_names(capsys, encoder, data, tmp_path) -> None:
    nameless = write_captions(tmp_path / "captions" / "image_my-model.json", list(zip(IDS, GOOD, strict=True)))
    target = tmp_path / "single" / "qwen_eval.json"
    code, out, _ = run(capsys, "--generated", nameless, *base_args(data), "--output", target)
    assert code == 0 and "my-model: overall_score" in out
    assert sorted(p.name for p in target.parent.iterdir()) == ["qwen_eval.json", "qwen_eval.txt",
                                                               "qwen_eval_per_sample.jsonl"]
    assert json.loads(target.read_text())["metadata"]["model_name"] == "my-model"  # no data_by: from file name
    code, _, err = run(capsys, "--generated", nameless, data["good"], *base_args(data), "--output", target)
    assert code == 2 and "--output names one result file" in err

    same = write_captions(tmp_path / "other" / "image_good-v2.json", list(zip(IDS, GOOD, strict=True)), "good")
    code, _, _ = run(capsys, "--generated", data["good"], same, *base_args(data))
    assert code == 0  # both say data_by "good": the file names tell them apart
    assert {p.name for p in data["out"].glob("compare_*.json")} == {"compare_good.json", "compare_good-v2.json"}
    code, _, _ = run(capsys, "--generated", data["good"], "--model_name", "renamed", *base_args(data))
    assert code == 0 and (data["out"] / "compare_renamed.json").is_file()


def test_missing_java_makes_coco_metrics_unavailable(capsys, encoder, data, monkeypatch) -> None:
    monkeypatch.setattr(coco_metrics.shutil, "which", lambda name: None)
    args = [a for a in base_args(data) if a != "--no_coco"]
    code, _, _ = run(capsys, "--generated", data["good"], *args)
    assert code == 0
    result = json.loads((data["out"] / "compare_good.json").read_text())
    for metric in ("bleu_4", "meteor", "rouge_l", "cider"):
        assert result[metric] is None and result["unavailable"][metric].startswith("Java not found on PATH")
    assert result["spice"] is None and "CoreNLP" in result["unavailable"]["spice"]
    assert result["semantic_similarity"] is not None


def test_missing_clip_model_is_null_with_reason(capsys, encoder, data, tmp_path) -> None:
    args = [a if a != "none" else tmp_path / "models" / "clip" for a in base_args(data)]
    code, _, _ = run(capsys, "--generated", data["good"], *args)
    assert code == 0
    result = json.loads((data["out"] / "compare_good.json").read_text())
    assert result["clip_score"] is None and "CLIP model not found at" in result["unavailable"]["clip_score"]
    assert result["overall_score_partial"] is True and result["overall"]["weight_covered"] == 0.75


# ---- issue 10: signatures, confidence intervals, significance, escaping ------------------------------------------
def test_cis_signatures_and_significance_in_every_output(capsys, encoder, data) -> None:
    code, out, _ = run(capsys, "--generated", data["bad"], data["good"], *base_args(data), "--seed", "3")
    assert code == 0
    good = json.loads((data["out"] / "compare_good.json").read_text())
    rows = per_sample(data["out"] / "compare_good_per_sample.jsonl")
    # the CI is the percentile interval of 1000 resampled means over one seeded index matrix (recomputed here)
    index = np.random.default_rng(3).integers(0, 6, size=(1000, 6))
    for metric in ("semantic_similarity", "lexical_similarity", "r_at_1", "overall_score"):
        values = np.array([rows[i][metric] for i in IDS])
        expected = np.quantile(values[index].mean(axis=1), [0.025, 0.975])
        assert good["confidence_intervals"][metric] == pytest.approx(expected, abs=1e-6), metric
        low, high = good["confidence_intervals"][metric]
        assert low <= good[metric] <= high
    assert "fid_score" not in good["confidence_intervals"]
    assert "--fid_bootstrap" in good["confidence_interval_unavailable"]["fid_score"]
    sig = good["metric_signatures"]
    assert sig["semantic_similarity"] == ("proto:vlmkit|enc:bag-of-words-test-encoder|tok:encoder|sim:cos|agg:mean|"
                                          "ci:paired-bootstrap-percentile95%-B1000-seed3|vlmkit:0.1.0|"
                                          f"sentence-transformers:{_version('sentence-transformers')}")
    assert "|pool:6|k:1|tie:f32-equal-expected|" in sig["r_at_1"] and "|tok:w+-lower|empty:1|" in sig[
        "lexical_similarity"]
    assert set(sig) == {k for k, v in good.items() if k in good["metric_signatures"] and v is not None}
    txt = (data["out"] / "compare_good.txt").read_text()
    assert "## Metric signatures" in txt and sig["r_at_5"] in txt and "(95% CI " in txt

    summary = json.loads((data["out"] / "batch_evaluation_summary.json").read_text())
    assert summary["protocol"] == "vlmkit" and summary["metric_signatures"]["r_at_1"] == sig["r_at_1"]
    semantic = summary["significance"]["semantic_similarity"]
    assert semantic["good"] == {"diff": 0.0, "ci": [0.0, 0.0], "p": 1.0, "best": True}
    assert semantic["bad"]["diff"] == pytest.approx(json.loads((data["out"] / "compare_bad.json").read_text())[
        "semantic_similarity"] - good["semantic_similarity"])
    assert semantic["bad"]["ci"][1] < 0 and semantic["bad"]["p"] < 0.05
    assert summary["significance_method"]["shared_items"] == 6 and summary["significance_method"]["alpha"] == 0.05
    assert "fid_score" not in summary["significance"]  # no --fid_bootstrap

    md = (data["out"] / "model_comparison_table.md").read_text()
    good_row = next(line for line in md.splitlines() if line.startswith("| 1 | good |"))
    half = (good["confidence_intervals"]["semantic_similarity"][1] -
            good["confidence_intervals"]["semantic_similarity"][0]) / 2
    assert f"**{good['semantic_similarity']:.4f} ± {half:.4f}**" in good_row
    assert "paired bootstrap test, two-sided p >= 0.05, on the 6 items" in md
    assert "Metric signatures (protocol vlmkit):" in md and sig["r_at_10"] in md and md in out
    lines = (data["out"] / "model_comparison_table.csv").read_text().splitlines()
    header = lines[0].split(",")
    first = dict(zip(header, lines[1].split(","), strict=False))
    assert float(first["semantic_similarity_ci_low"]) == pytest.approx(good["confidence_intervals"][
        "semantic_similarity"][0]) and first["semantic_similarity_p_vs_best"] == "1.0"
    assert any(line.startswith("# r_at_1: proto:vlmkit|") for line in lines)
    html = (data["out"] / "evaluation_report.html").read_text()
    assert html.count('class="ci"') >= 2 and "Metric signatures" in html and "<b>" in html


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def test_bootstrap_off_means_no_ci_and_no_significance(capsys, encoder, data) -> None:
    code, out, _ = run(capsys, "--generated", data["bad"], data["good"], *base_args(data), "--bootstrap", "0")
    assert code == 0
    good = json.loads((data["out"] / "compare_good.json").read_text())
    assert good["confidence_intervals"] == {}
    assert good["confidence_interval_unavailable"]["semantic_similarity"] == "bootstrap off (--bootstrap 0)"
    assert "|ci:none(--bootstrap 0)|" in good["metric_signatures"]["semantic_similarity"]
    summary = json.loads((data["out"] / "batch_evaluation_summary.json").read_text())
    assert summary["significance"] == {} and summary["significance_method"] is None
    assert " ± " not in out and "**" not in out.split("\n\n")[0]


def test_model_names_are_escaped_in_the_markdown_table(capsys, encoder, data) -> None:
    code, out, _ = run(capsys, "--generated", data["good"], data["bad"], "--model_name", "<b>evil</b>|x",
                       "--model_name", "plain", *base_args(data))
    assert code == 0
    md = (data["out"] / "model_comparison_table.md").read_text()
    assert "| &lt;b&gt;evil&lt;/b&gt;\\|x |" in md and "<b>" not in md
    assert all(line.count(" | ") == md.splitlines()[0].count(" | ") for line in md.splitlines()[2:4])
    assert "<b>evil</b>" not in (data["out"] / "evaluation_report.html").read_text()


def test_signature_differences_are_warned(capsys, caplog, encoder, data, tmp_path) -> None:
    partial = write_captions(tmp_path / "part" / "image_part.json", list(zip(IDS, GOOD, strict=True))[2:], "part")
    code, _, _ = run(capsys, "--generated", data["good"], partial, "--allow_missing", *base_args(data))
    assert code == 0
    summary = json.loads((data["out"] / "batch_evaluation_summary.json").read_text())
    warning = next(w for w in summary["warnings"] if w.startswith("metric signatures differ"))
    assert "r_at_1 (pool)" in warning and "fid_score (n)" in warning
    assert warning in caplog.text  # and on stderr
    assert summary["metric_signatures"]["r_at_1"] == {
        name: json.loads((data["out"] / f"compare_{name}.json").read_text())["metric_signatures"]["r_at_1"]
        for name in ("good", "part")}
    assert summary["significance_method"]["shared_items"] == 4
    md = (data["out"] / "model_comparison_table.md").read_text()
    assert "WARNING: metric signatures differ" in md and "r_at_1 [part]: proto:vlmkit" in md


def test_evaluator_and_result_constructors_are_keyword_only(encoder) -> None:
    from vlmkit.evaluation.evaluator import CaptionEvaluator, ModelResult

    with pytest.raises(TypeError):
        CaptionEvaluator(encoder)
    with pytest.raises(TypeError):
        ModelResult("m", None, {}, {}, {}, None)
    assert CaptionEvaluator(sentence_encoder=encoder).sentence_store is not None


def test_fid_bootstrap_gives_the_frechet_distance_a_ci_and_a_test(capsys, encoder, data) -> None:
    code, _, _ = run(capsys, "--generated", data["bad"], data["good"], *base_args(data), "--fid_bootstrap", "20")
    assert code == 0
    good = json.loads((data["out"] / "compare_good.json").read_text())
    low, high = good["confidence_intervals"]["fid_score"]
    assert 0.0 <= low <= good["fid_score"] <= high
    assert "|ci:paired-bootstrap-normal95%-B20-seed0|" in good["metric_signatures"]["fid_score"]
    summary = json.loads((data["out"] / "batch_evaluation_summary.json").read_text())
    assert summary["significance"]["fid_score"]["good"]["best"] is True  # lower is better
    assert summary["significance"]["fid_score"]["bad"]["diff"] > 0
