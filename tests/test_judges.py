"""Judge metrics of compare.py (--judge_model): attribute matching, answer parsing, the cache, and end-to-end runs
with a SCRIPTED STAND-IN judge (answers written in this file, named as such) and with a tiny random VLM."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import compare
import rate
from tests.fixtures.fake_text_encoder import BagOfWordsEncoder, write_captions
from vlmkit.cli import run_main
from vlmkit.evaluation import pipeline
from vlmkit.io import InputError
from vlmkit.judges import prompts
from vlmkit.judges.attributes import load_schema, match_slots, parse_date_range, summarise
from vlmkit.judges.stage import JudgeStage
from vlmkit.votes import read_votes

SCHEMA = load_schema()


# ---- attribute matching -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("a, b, overlap", [
    ("c. 520–500 BCE", "late 6th century BC", True),
    ("520-500 BC", "480-470 BC", False),
    ("ca. 510 BC", "500-490 BCE", True),  # circa = ±10 years
    ("ca. 530 BC", "500-490 BCE", False),
    ("the 520s BC", "525 BC", True),
    ("second half of the 5th century BCE", "c. 440 BC", True),
    ("early 5th century BC", "late 6th century BC", False),
    ("AD 120", "120 BC", False),
])
def test_date_ranges_match_when_they_overlap(a, b, overlap):
    slot = next(s for s in SCHEMA.slots if s.name == "date")
    assert match_slots({"date": a}, {"date": b}, SCHEMA)["date"].tp == int(overlap)
    assert slot.kind == "date_range"


def test_date_parsing_by_hand():
    assert parse_date_range("c. 520–500 BCE") == (-520, -500)
    assert parse_date_range("late 6th century BC") == (-534, -501)
    assert parse_date_range("6th century") == (-600, -501)  # default era BCE
    assert parse_date_range("the 520s BC") == (-529, -520)
    assert parse_date_range("unknown") is None


def test_attribute_matching_on_hand_written_vase_captions():
    # Caption: "An Athenian neck amphora in black figure, c. 520-500 BC, Herakles fighting the Nemean lion."
    caption = {"shape": "neck amphora", "technique": "black figure", "date": "c. 520-500 BC",
               "subject": "Herakles fighting the Nemean lion", "painter": None, "provenance": "Athenian"}
    # Reference: "Attic black-figure amphora, late 6th century BCE, Herakles wrestling the lion; Amasis Painter."
    reference = {"shape": "amphora", "technique": "Black-Figure", "date": "late 6th century BCE",
                 "subject": "Herakles wrestling the lion", "painter": "Amasis Painter", "provenance": "Attica"}
    counts = match_slots(caption, reference, SCHEMA)
    assert {k: (c.tp, c.fp, c.fn) for k, c in counts.items()} == {
        "shape": (1, 0, 0),  # synonym
        "technique": (1, 0, 0),  # normalised
        "date": (1, 0, 0),  # overlap
        "subject": (1, 0, 0),  # {herakles, lion} / {herakles, fighting, nemean, wrestling, lion} = 0.4 >= 0.34
        "painter": (0, 0, 1),  # missing in the caption
        "provenance": (1, 0, 0),  # Athenian ~ Attica
    }
    # A second caption with a wrong technique, an extra painter and no date.
    wrong = {"shape": "hydria", "technique": "red-figure", "painter": "Exekias", "date": "unknown"}
    counts2 = match_slots(wrong, reference, SCHEMA)
    assert (counts2["shape"].fp, counts2["shape"].fn) == (1, 1)
    assert (counts2["painter"].fp, counts2["painter"].fn) == (1, 1)
    assert (counts2["date"].tp, counts2["date"].fp, counts2["date"].fn) == (0, 0, 1)
    summary = summarise([counts, counts2, None], SCHEMA)
    # TP 5; FP: shape, technique, painter = 3; FN: painter, shape, technique, date, subject, painter, provenance = 7
    assert summary["overall"] | {} == {"tp": 5, "fp": 3, "fn": 7, "precision": 5 / 8, "recall": 5 / 12,
                                       "f1": 10 / 20}
    assert summary["per_slot"]["painter"] == {"tp": 0, "fp": 1, "fn": 2, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert summary["items_matched"] == 2


def test_schema_file_is_replaceable_and_checked(tmp_path):
    path = tmp_path / "coins.yaml"
    path.write_text("name: coins\ndefault_era: CE\nslots:\n  metal: {kind: category, synonyms: {silver: [ar]}}\n"
                    "  minted: {kind: date_range}\n")
    schema = load_schema(path)
    assert schema.slot_names == ("metal", "minted")
    assert match_slots({"metal": "AR", "minted": "120-130"}, {"metal": "silver", "minted": "AD 125"}, schema)[
        "minted"].tp == 1
    path.write_text("slots:\n  metal: {kind: colour}\n")
    with pytest.raises(InputError, match="slot metal: kind must be one of"):
        load_schema(path)
    path.write_text("slots: &a\n  metal: {kind: category}\n")
    with pytest.raises(InputError, match="anchor"):
        load_schema(path)


# ---- parsing ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("answer, score", [
    ('{"score": 85, "reason": "same vase"}', 0.85),
    ('Sure! ```json\n{"score": "40", "reason": "x"}\n```', 0.40),
    ("The caption is good, 90/100.", None),
    ('{"score": 140, "reason": "x"}', None),
    ('{"reason": "no score"}', None),
    ('{"score": true}', None),
])
def test_clair_answers_that_are_not_json_with_a_score_are_null(answer, score):
    value, _, problem = prompts.parse_clair(answer)
    assert value == (pytest.approx(score) if score is not None else None)
    assert (problem is None) == (score is not None)


def test_pairwise_answers():
    assert [prompts.parse_pairwise(a) for a in ("A", "b.", "Tie", "both_bad", "**A**", "Answer: B", "maybe")] == [
        "first", "second", "tie", "both_bad", "first", "second", None]


# ---- end to end with a scripted stand-in judge ----------------------------------------------------------------------
IDS = [f"0000000{n}-aaaa-4bbb-8ccc-dddddddddddd_{n}" for n in range(1, 5)]
TRUTH = ["Attic black-figure amphora, c. 520-500 BC, Herakles and the lion.",
         "Attic red-figure kylix, c. 480 BC, an athlete with a strigil.",
         "Corinthian oinochoe, 7th century BC, friezes of animals.",
         "Attic white-ground lekythos, c. 440 BC, a woman at a tomb."]
GOOD = ["Black-figure amphora from Athens, late 6th century BC, Herakles fighting the lion.",
        "Red-figure cup, 480s BC, an athlete holding a strigil.",
        "Corinthian jug with animal friezes, 7th century BC.",
        "UNREADABLE white-ground lekythos with a woman at a tomb."]
BAD = ["A red-figure hydria.", "A black-figure amphora, 6th century BC.", "A vase.", "A pot."]
SHAPES = ("amphora", "kylix", "cup", "oinochoe", "jug", "lekythos", "hydria")
TECHNIQUES = ("black-figure", "red-figure", "white-ground")


def scripted_extraction(text: str) -> dict:
    words = text.lower()
    date = re.search(r"(c\. \d+(?:-\d+)? bc|\d+s bc|late \d+th century bc|\d+th century bc|\d+-\d+ bc)", words)
    return {"shape": next((s for s in SHAPES if s in words), None),
            "technique": next((t for t in TECHNIQUES if t in words), None),
            "date": date.group(1) if date else None, "subject": None, "painter": None, "provenance": None}


class ScriptedJudge:
    """STAND-IN judge: answers computed by rules in this test from the prompt text (no model)."""

    def __init__(self):
        self.prompts: list[str] = []

    def generate(self, texts):
        out = []
        for text in texts:
            self.prompts.append(text)
            if text.startswith("Two captions"):
                a = text.split("Caption A:\n")[1].split("\n\nCaption B:")[0]
                b = text.split("Caption B:\n")[1].split("\n\nWhich")[0]
                out.append("A" if len(a) > len(b) else "B" if len(b) > len(a) else "tie")
            elif text.startswith("Extract"):
                body = text.split("Description:\n")[1].split("\n\nAnswer with")[0]
                out.append("not json" if "UNREADABLE" in body else json.dumps(scripted_extraction(body)))
            else:
                candidate = text.split("Candidate caption:\n")[1].split("\n\nOn a scale")[0]
                out.append("I like it" if "UNREADABLE" in candidate else
                           json.dumps({"score": min(100, 10 * len(candidate.split())), "reason": "length"}))
        return out


def expected_clair(caption: str) -> float | None:
    return None if "UNREADABLE" in caption else min(100, 10 * len(caption.split())) / 100


@pytest.fixture()
def judge_data(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline.SentenceEncoder, "load", classmethod(lambda cls, *a, **k: BagOfWordsEncoder()))
    return {"gt": write_captions(tmp_path / "gt.json", list(zip(IDS, TRUTH, strict=True))),
            "good": write_captions(tmp_path / "image_good.json", list(zip(IDS, GOOD, strict=True)), "good"),
            "bad": write_captions(tmp_path / "image_bad.json", list(zip(IDS, BAD, strict=True)), "bad"),
            "out": tmp_path / "results"}


def run_compare(capsys, data, judge_dir, *extra):
    argv = ["--generated", data["good"], data["bad"], "--ground_truth", data["gt"], "--output_dir", data["out"],
            "--no_coco", "--clip_model", "none", "--metrics", "lexical,semantic", "--bootstrap", "200",
            "--judge_model", judge_dir, *extra]
    with pytest.raises(SystemExit) as exc:
        run_main(compare.main, [str(a) for a in argv])
    captured = capsys.readouterr()
    assert exc.value.code == 0, captured.err
    return captured


def test_stand_in_judge_end_to_end_values_cache_and_pairwise_votes(capsys, judge_data, tiny_qwen3_lm_dir,
                                                                   monkeypatch):
    scripted = ScriptedJudge()
    monkeypatch.setattr(JudgeStage, "_load_transformers", lambda self: scripted)
    run_compare(capsys, judge_data, tiny_qwen3_lm_dir, "--judge_pairs")
    out = judge_data["out"]
    good = json.loads((out / "compare_good.json").read_text())
    rows = {r["id"]: r for r in map(json.loads, (out / "compare_good_per_sample.jsonl").read_text().splitlines())}
    # clair: score/100 per item; the unreadable answer is null (never 0), listed, and left out of the mean.
    expected = [expected_clair(c) for c in GOOD]
    assert [rows[i]["clair"] for i in IDS] == [pytest.approx(v) if v is not None else None for v in expected]
    assert good["clair"] == pytest.approx(np.mean([v for v in expected if v is not None]))
    assert good["judges"]["clair"]["unparseable"]["ids"] == [IDS[3]]
    assert good["clair"] is not None and len(good["confidence_intervals"]["clair"]) == 2
    assert good["metric_signatures"]["clair"].startswith(f"proto:vlmkit|judge:{tiny_qwen3_lm_dir.name}@")
    assert "|prompt:" in good["metric_signatures"]["clair"] and "|dec:greedy-max128|" in good["metric_signatures"][
        "clair"]
    # fleur needs a VLM and the views: null with the reason.
    assert good["fleur"] is None and "images_dir" in good["unavailable"]["fleur"]
    # attribute_f1 from the scripted extraction, matched independently here.
    counts = [match_slots(scripted_extraction(c), scripted_extraction(r), SCHEMA)
              for c, r in zip(GOOD[:3], TRUTH[:3], strict=True)]
    assert good["attribute_f1"] == pytest.approx(summarise(counts, SCHEMA)["overall"]["f1"])
    assert good["judges"]["attribute_f1"]["unparseable"]["ids"] == [IDS[3]] and rows[IDS[3]]["attribute_f1"] is None
    summary = json.loads((out / "batch_evaluation_summary.json").read_text())
    assert set(summary["significance"]) >= {"clair", "attribute_f1"}
    assert "CLAIR (judge)" in (out / "model_comparison_table.md").read_text()
    # Pairwise: both shown orders of each item, as votes in the shared format.
    votes = read_votes([out / "judge_votes.jsonl"])
    assert len(votes) == 2 * len(IDS) and {v.source for v in votes} == {f"judge:{tiny_qwen3_lm_dir.name}"}
    assert sorted((v.item_id, v.shown_order) for v in votes) == sorted(
        [(i, ("good", "bad")) for i in IDS] + [(i, ("bad", "good")) for i in IDS])
    assert all(v.winner == "left" for v in votes)  # the longer (good) caption wins in both orders
    asked = len(scripted.prompts)

    # Second run: everything from the cache; the judge is never loaded.
    def refuse(self):
        raise AssertionError("the judge was loaded although every answer is cached")

    monkeypatch.setattr(JudgeStage, "_load_transformers", refuse)
    run_compare(capsys, judge_data, tiny_qwen3_lm_dir, "--judge_pairs")
    again = json.loads((out / "compare_good.json").read_text())
    assert again["clair"] == good["clair"] and again["attribute_f1"] == good["attribute_f1"]
    assert again["metadata"]["judge"]["loaded"] is False and again["metadata"]["judge"]["cache_misses"] == 0
    assert len(scripted.prompts) == asked
    # rate.py reads the judge's votes: swap consistency of a length-following judge is perfect here.
    ratings = out.parent / "ratings"
    with pytest.raises(SystemExit) as exc:
        run_main(rate.main, ["--votes", str(out / "judge_votes.jsonl"), "--output_dir", str(ratings)])
    assert exc.value.code == 0
    data = json.loads((ratings / "ratings.json").read_text())
    source = data["swap_consistency"][f"judge:{tiny_qwen3_lm_dir.name}"]
    assert (source["pairs"], source["flipped"], source["position_first_wins"]) == (4, 0, 0.5)
    # A later run without --judge_pairs into the same folder leaves no stale judge votes (the folder holds one
    # run); the judge's answer cache in it stays (the judge is still never loaded).
    run_compare(capsys, judge_data, tiny_qwen3_lm_dir)
    assert not (out / "judge_votes.jsonl").exists()
    assert "judge_pairs" not in json.loads((out / "batch_evaluation_summary.json").read_text())
    assert json.loads((out / "compare_good.json").read_text())["metadata"]["judge"]["cache_misses"] == 0


def test_a_new_caption_asks_the_judge_only_for_what_is_new(capsys, judge_data, tiny_qwen3_lm_dir, monkeypatch):
    scripted = ScriptedJudge()
    monkeypatch.setattr(JudgeStage, "_load_transformers", lambda self: scripted)
    run_compare(capsys, judge_data, tiny_qwen3_lm_dir, "--judge_metrics", "clair")
    first = len(scripted.prompts)
    assert first == 2 * len(IDS)
    write_captions(judge_data["bad"], list(zip(IDS, ["A kylix."] + BAD[1:], strict=True)), "bad")
    run_compare(capsys, judge_data, tiny_qwen3_lm_dir, "--judge_metrics", "clair")
    assert len(scripted.prompts) == first + 1 and "A kylix." in scripted.prompts[-1]
    db = sqlite3.connect(judge_data["out"] / ".judge_cache" / "answers.sqlite")
    assert db.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == first + 1


def test_judge_flags_are_checked_before_anything_is_loaded(capsys, judge_data, tmp_path, tiny_qwen3_lm_dir):
    for extra, message in ((["--judge_model", tmp_path / "nope"], "nope"),
                           (["--judge_pairs"], "--judge_pairs needs --judge_model"),
                           (["--judge_model", tiny_qwen3_lm_dir, "--judge_pairs"], "pass two or more --generated"),
                           (["--judge_model", tmp_path, "--judge_metrics", "bleurt"], "--judge_metrics: unknown")):
        argv = ["--generated", judge_data["good"], "--ground_truth", judge_data["gt"], "--output_dir",
                judge_data["out"], "--no_coco", "--clip_model", "none", *extra]
        with pytest.raises(SystemExit) as exc:
            run_main(compare.main, [str(a) for a in argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert exc.value.code == 2 and len(err) == 1 and message in err[0]
    assert not judge_data["out"].exists() or not list(judge_data["out"].glob("compare_*"))


# ---- a tiny random VLM judge, end to end ---------------------------------------------------------------------------
def test_tiny_random_vlm_runs_every_judge_metric_then_answers_from_the_cache(capsys, tmp_path, repo_root,
                                                                            tiny_qwen2_5_vl_dir, monkeypatch):
    monkeypatch.setattr(pipeline.SentenceEncoder, "load", classmethod(lambda cls, *a, **k: BagOfWordsEncoder()))
    examples = repo_root / "examples"
    captions = sorted((examples / "captions").glob("image_*.json"))[:2]
    out = tmp_path / "results"
    argv = ["--generated", *captions, "--ground_truth", examples / "groundTruth.json", "--images_dir",
            examples / "multiview_images", "--output_dir", out, "--no_coco", "--clip_model", "none", "--metrics",
            "lexical", "--bootstrap", "100", "--judge_model", tiny_qwen2_5_vl_dir, "--judge_max_new_tokens", "16",
            "--judge_batch_size", "4", "--judge_pairs"]
    with pytest.raises(SystemExit) as exc:
        run_main(compare.main, [str(a) for a in argv])
    assert exc.value.code == 0, capsys.readouterr().err
    results = [json.loads(p.read_text()) for p in sorted(out.glob("compare_*.json"))]
    db = sqlite3.connect(out / ".judge_cache" / "answers.sqlite")
    stored = [json.loads(v) for (v,) in db.execute("SELECT value FROM answers")]
    fleur_answers = [a for a in stored if isinstance(a, dict)]
    for result in results:
        # A random model writes no JSON: clair and attribute_f1 are null with every item listed, never 0.
        assert result["clair"] is None and result["judges"]["clair"]["unparseable"]["count"] == 6
        assert result["attribute_f1"] is None and "attribute_f1" in result["unavailable"]
        assert 0.0 <= result["fleur"] <= 1.0 and len(result["confidence_intervals"]["fleur"]) == 2
    for answer in fleur_answers:
        assert sum(answer["p1"]) == pytest.approx(1.0) and sum(answer["p2"]) == pytest.approx(1.0)
    per_item = [json.loads(line)["fleur"] for line in (out / f"compare_{results[0]['metadata']['model_name']}"
                                                         f"_per_sample.jsonl").read_text().splitlines()]
    recomputed = sorted(round(np.dot(a["p1"], range(10)) / 10 + np.dot(a["p2"], range(10)) / 100, 6)
                        for a in fleur_answers)
    assert all(v in recomputed for v in per_item)
    first = [r["fleur"] for r in results]

    def refuse(self):
        raise AssertionError("the judge was loaded although every answer is cached")

    monkeypatch.setattr(JudgeStage, "_load_transformers", refuse)
    with pytest.raises(SystemExit) as exc:
        run_main(compare.main, [str(a) for a in argv])
    assert exc.value.code == 0
    again = [json.loads(p.read_text()) for p in sorted(out.glob("compare_*.json"))]
    assert [r["fleur"] for r in again] == first and again[0]["metadata"]["judge"]["loaded"] is False


def test_fleur_digit_probabilities_do_not_depend_on_the_batch(tiny_qwen2_5_vl_dir, repo_root):
    from vlmkit.judges.model import JudgeModel
    from vlmkit.multiview import find_object_dirs_by_id, load_view_images

    judge = JudgeModel(tiny_qwen2_5_vl_dir, device="cpu")
    objects = list(find_object_dirs_by_id(repo_root / "examples" / "multiview_images").values())[:3]
    images = [load_view_images(o, [v for v, _ in o.views_in_order()])[1] for o in objects]
    texts = [prompts.FLEUR.format(candidate=c) for c in ("A vase.", "An Attic black-figure amphora with Herakles.",
                                                          "Red-figure kylix.")]
    prefix = [prompts.FLEUR_ANSWER_PREFIX] * 3
    together, _ = judge.digit_probabilities(texts, images, prefix)
    alone = np.concatenate([judge.digit_probabilities(texts[i:i + 1], images[i:i + 1], prefix[:1])[0]
                            for i in range(3)])
    np.testing.assert_allclose(together, alone, atol=1e-4)
    assert judge.digit_ids() is not None
    assert Path(judge.path) == Path(tiny_qwen2_5_vl_dir)


def test_a_killed_judge_run_keeps_its_finished_batches(capsys, judge_data, tiny_qwen3_lm_dir, monkeypatch):
    class Crashing(ScriptedJudge):
        """STAND-IN judge that dies (as kill -9 would stop it) on its second batch."""

        def generate(self, texts):
            if self.prompts:
                raise KeyboardInterrupt
            return super().generate(texts)

    crashing = Crashing()
    monkeypatch.setattr(JudgeStage, "_load_transformers", lambda self: crashing)
    argv = ["--generated", judge_data["good"], judge_data["bad"], "--ground_truth", judge_data["gt"],
            "--output_dir", judge_data["out"], "--no_coco", "--clip_model", "none", "--metrics", "lexical",
            "--judge_model", tiny_qwen3_lm_dir, "--judge_metrics", "clair", "--judge_batch_size", "3"]
    with pytest.raises(SystemExit) as exc:
        run_main(compare.main, [str(a) for a in argv])
    assert exc.value.code == 130 and not (judge_data["out"] / "compare_good.json").exists()
    db = sqlite3.connect(judge_data["out"] / ".judge_cache" / "answers.sqlite")
    assert db.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 3  # the first batch, committed
    resumed = ScriptedJudge()
    monkeypatch.setattr(JudgeStage, "_load_transformers", lambda self: resumed)
    run_compare(capsys, judge_data, tiny_qwen3_lm_dir, "--judge_metrics", "clair", "--judge_batch_size", "3")
    assert len(resumed.prompts) == 2 * len(IDS) - 3  # only what was not finished


def test_a_text_only_judge_generates_greedily_and_fleur_says_why_not(tiny_qwen3_lm_dir, tmp_path):
    from vlmkit.judges.model import JudgeModel
    from vlmkit.judges.stage import JudgeOptions

    judge = JudgeModel(tiny_qwen3_lm_dir, device="cpu", max_new_tokens=8)
    assert judge.vision is False
    prompts_ = [prompts.CLAIR.format(candidate="A red-figure kylix.", reference=TRUTH[1]), "Describe a vase."]
    batched = judge.generate(prompts_)
    alone = [judge.generate([p])[0] for p in prompts_]
    assert batched == alone and all(isinstance(a, str) for a in batched)  # greedy: batching changes nothing
    stage = JudgeStage(JudgeOptions(model=tiny_qwen3_lm_dir, metrics=("fleur",)), tmp_path / "c.sqlite", objects={})
    assert stage._vision_and_digits() == "needs a vision-language judge (this judge is text-only)"
