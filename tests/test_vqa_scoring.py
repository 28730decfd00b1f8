"""The benchmark scoring, pinned to lmms-eval's TextVQA rules and VLMEvalKit's MMBench rules (issue 12)."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.vqa_data import write_mmbench_tsv
from vlmkit.io import InputError
from vlmkit.vqa import prompts
from vlmkit.vqa.chunks import chunk_range
from vlmkit.vqa.mmbench_scoring import extract_choice
from vlmkit.vqa.results import score
from vlmkit.vqa.stats import bootstrap_ci, paired_difference
from vlmkit.vqa.tasks import load_task, question_type
from vlmkit.vqa.textvqa_scoring import normalize_answer, vqa_accuracy

# (raw answer, what lmms-eval's EvalAIAnswerProcessor makes of it), each derived by hand from its rules.
NORMALISATION = [
    ("The Two Dogs.", "2 dogs"),            # the golden case: lower-case, period, article, number word
    ("Yes", "yes"),
    ("YES.", "yes"),
    ("no!", "no"),                          # "!" touching no space: replaced by a space
    ("No ! ", "no"),                        # " !" present: deleted
    ("dont", "don't"),                      # contractions
    ("isnt it", "isn't it"),
    ("hes", "he's"),
    ("twas", "'twas"),
    ("an apple", "apple"),                  # articles
    ("THE END", "end"),
    ("a", ""),
    ("three", "3"),                         # number words (zero..ten, and "none")
    ("one two ten", "1 2 10"),
    ("none", "0"),
    ("eleven", "eleven"),
    ("3.5", "3.5"),                         # a period before a digit stays
    ("$5.00", "$5.00"),
    ("Mr. Smith", "mr smith"),
    ("u.s.a.", "usa"),                      # every other period goes
    ("x" + "." * 40, "x" + "." * 8),        # ... at most 32 of them (re.UNICODE passed as re.sub's count)
    ("1,000", "1000"),                      # commas are deleted first
    ("what?", "what"),
    ("coca-cola", "coca cola"),
    ("coca - cola", "coca cola"),
    ("e-mail, inc.", "e mail inc"),
    ("yes/no", "yes no"),
    ("(1)", "1"),
    ('say "hi"', "say hi"),
    ("dog's", "dog 's"),
    ("2:30", "2:30"),
    ("  Hello\tWorld\n", "hello world"),
]


@pytest.mark.parametrize(("raw", "expected"), NORMALISATION)
def test_normalisation_follows_the_evalai_answer_processor(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


def leave_one_out(prediction: str, answers: list[str]) -> float:
    """The accuracy as lmms-eval's textvqa_process_results loops it (an independent computation)."""
    pred = normalize_answer(prediction)
    refs = [normalize_answer(a) for a in answers]
    accs = [min(1.0, sum(r == pred for j, r in enumerate(refs) if j != i) / 3) for i in range(len(refs))]
    return sum(accs) / len(accs)


@pytest.mark.parametrize(("matching", "expected"), [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_vqa_accuracy_golden_values(matching: int, expected: float) -> None:
    answers = ["Two dogs"] * matching + ["cat"] * (10 - matching)
    assert vqa_accuracy("The Two Dogs.", answers) == pytest.approx(expected, abs=1e-12)
    assert vqa_accuracy("The Two Dogs.", answers) == pytest.approx(leave_one_out("The Two Dogs.", answers), abs=1e-12)


def test_vqa_accuracy_equals_the_leave_one_out_loop_on_random_cases() -> None:
    rng = random.Random(0)
    vocabulary = ["yes", "no", "2", "two", "red", "nike", "Nike!", "the cat", "cat"]
    for _ in range(300):
        answers = [rng.choice(vocabulary) for _ in range(rng.randint(2, 12))]
        prediction = rng.choice(vocabulary)
        assert vqa_accuracy(prediction, answers) == pytest.approx(leave_one_out(prediction, answers), abs=1e-12)


def test_a_single_reference_answer_is_exact_match_not_always_zero() -> None:
    assert vqa_accuracy("Two", ["2"]) == 1.0 and vqa_accuracy("3", ["2"]) == 0.0


OPTIONS = {"A": "cat", "B": "dog", "C": "bird"}


@pytest.mark.parametrize(("answer", "expected"), [
    ("B", "B"), ("(C)", "C"), ("B. dog", "B"), ("The answer is C.", "C"), ("**B**", "B"), ("[A]", "A"),
    ("B:", "B"), ("A or B", None),             # two letters: undecided by letters, and no option text either
    ("a dog", "B"),                             # no capital letter word: the unique option text decides
    ("dog", "B"), ("a cat and a dog", None),   # two option texts: unextractable
    ("A dog is in the picture", None),         # the letter "A" is not near the end, and the text is too long
    ("It is A", "A"),                          # VLMEvalKit (non-verbose): the article "A" counts as the letter
    ("Z", "Z"), ("I do not know", None), ("b", None),
    ("it is definitely a dog, the animal", None),  # longer than twice the option texts: no text matching
])
def test_choice_extraction_like_vlmevalkit(answer: str, expected: str | None) -> None:
    assert extract_choice(answer, OPTIONS) == expected


# Cases written from VLMEvalKit's stated rules (vlmeval/utils/matching_util.py, 2026-06-25 revision), one per rule.
@pytest.mark.parametrize(("answer", "expected"), [
    # 1. a refusal phrase (case-sensitive) is Z, even when a letter follows
    ("Sorry, I can't help with images of people yet.", "Z"),
    ("I'm sorry, but without the image provided I would guess B", "Z"),
    ("Cannot determine the answer.", "Z"),
    ("cannot determine the answer", None),           # lower case: not VLMEvalKit's phrase
    # 2. exactly one option letter, among the last four words
    ("C", "C"), ("I think it is C", "C"), ("My final choice: (B)", "B"),
    ("B, because the animal on the left is a dog", None),   # the letter is not near the end: no letter rule
    ("so the answer would be B, not the others", "B"),      # "B" is 4th from the end
    ("so the answer would be B, not any of the others", None),
    ("A or B", None), ("Z", "Z"), ("(Z)", "Z"),
    # 3. the stated answer of a chain of thought
    ("The correct answer is **B**. Here's why: the animal on the left is clearly a dog and not a cat", "B"),
    ("The answer is c, since the animal in the picture has wings and feathers", "C"),
    ("The answer is D, since the animal in the picture has wings and feathers", None),  # D is no option here
    # 4. the option text, when the answer is short enough
    ("a bird", "C"), ("it is a bird or a cat", None),
])
def test_choice_extraction_follows_vlmevalkits_stated_rules(answer: str, expected: str | None) -> None:
    assert extract_choice(answer, OPTIONS) == expected


@pytest.fixture()
def mmbench_tsv(tmp_path: Path) -> Path:
    path = tmp_path / "mmbench_dev_en.tsv"
    write_mmbench_tsv(path, [
        {"index": 1, "question": "Which animal is shown?", "hint": "A pet.", "options": ["cat", "dog", "bird"],
         "answer": 1, "category": "object_localization", "l2": "finegrained_perception (instance-level)",
         "color": (200, 10, 10)},
        {"index": 2, "question": "What colour is the image?", "options": ["red", "green", "blue", "black"],
         "answer": 2, "category": "image_style", "l2": "coarse_perception", "color": (10, 10, 200)},
    ])
    return path


def test_mmbench_circular_scoring_one_group_right_one_with_a_wrong_rotation(mmbench_tsv: Path) -> None:
    data = load_task("mmbench", tsv=str(mmbench_tsv))
    assert [q.question_id for q in data.questions] == [1, 1000001, 2000001, 2, 1000002, 2000002, 3000002]
    assert all(q.image_b64 for q in data.questions)  # rotations resolved to their original's image
    first = data.questions[0]
    assert first.prompt == ("A pet.\nWhich animal is shown?\nA. cat\nB. dog\nC. bird\n"
                            "Answer with the option's letter from the given choices directly.")
    truth = {q.qid: q.answers[0] for q in data.questions}
    options = {q.qid: q.meta["options"] for q in data.questions}
    answers = {qid: f"The answer is {letter}." for qid, letter in truth.items()}
    answers["1"] = options["1"][truth["1"]]                # the option text ("dog"): still right
    answers["1000002"] = "A" if truth["1000002"] != "A" else "B"   # one rotation of group 2 wrong
    scored = score(data, answers, failures={}, name="m", signature={})
    r = scored.results
    assert r["accuracy"] == 0.5 and r["n"] == 2 and r["unit"] == "circular group"
    assert r["mmbench"]["circular"] is True and r["mmbench"]["rotations_per_group"] == {"3": 1, "4": 1}
    assert r["mmbench"]["row_accuracy"] == pytest.approx(6 / 7)
    assert r["by_category"] == {"image_style": {"n": 1, "accuracy": 0.0},
                                "object_localization": {"n": 1, "accuracy": 1.0}}
    assert r["by_l2_category"]["coarse_perception"] == {"n": 1, "accuracy": 0.0}
    assert {row["question_id"]: row["extracted"] for row in scored.rows}[1] == "B"

    answers["1000001"] = "I cannot tell"                     # unextractable = wrong, and counted
    r = score(data, answers, failures={}, name="m", signature={}).results
    assert r["accuracy"] == 0.0 and r["mmbench"]["unextractable"] == 1


def test_mmbench_bad_input_is_one_line(tmp_path: Path, mmbench_tsv: Path) -> None:
    text = mmbench_tsv.read_text(encoding="utf-8")
    bad = tmp_path / "bad.tsv"
    bad.write_text(text.replace('"B"\t"object_localization"', '"D"\t"object_localization"', 1), encoding="utf-8")
    with pytest.raises(InputError, match=r"question 1: answer 'D' is not one of the options A, B, C"):
        load_task("mmbench", tsv=str(bad))
    lines = text.splitlines()
    orphan = tmp_path / "orphan.tsv"
    orphan.write_text("\n".join([lines[0], *lines[2:4]]) + "\n", encoding="utf-8")  # original row 1 dropped
    with pytest.raises(InputError, match="question 1000001: rotation of question 1, which is not in the file"):
        load_task("mmbench", tsv=str(orphan))


def test_question_types_are_the_first_words() -> None:
    assert question_type("What brand is the camera?") == "what brand"
    assert question_type("how many people?") == "how many"
    assert question_type("What is the name of it?") == "what is the name"
    assert question_type("Is this open?") == "is"
    assert question_type("Name the street.") == "other"
    assert question_type("What's this?") == "what is" and question_type("what is written here") == "what is written"


def test_chunks_are_deterministic_disjoint_complete_and_never_empty() -> None:
    for n, k in itertools.product(range(1, 14), range(1, 14)):
        if k > n:
            with pytest.raises(InputError, match=f"--num_chunks {k}: more parts than the {n} questions"):
                chunk_range(n, k, 0)
            continue
        ranges = [chunk_range(n, k, i) for i in range(k)]
        assert [i for a, b in ranges for i in range(a, b)] == list(range(n))
        assert all(b > a for a, b in ranges) and max(b - a for a, b in ranges) - min(b - a for a, b in ranges) <= 1
    with pytest.raises(InputError, match=r"--chunk_idx 4: out of range; must be in 0..3"):
        chunk_range(10, 4, 4)


def test_bootstrap_interval_matches_the_normal_approximation() -> None:
    scores = np.array([1.0, 0.0] * 200)
    ci = bootstrap_ci(scores, resamples=2000, seed=1)
    half = (ci["high"] - ci["low"]) / 2
    assert ci["low"] < 0.5 < ci["high"]
    assert half == pytest.approx(1.96 * np.sqrt(0.25 / 400), abs=0.006)
    assert bootstrap_ci(scores, resamples=2000, seed=1) == ci  # seeded: reproducible
    assert bootstrap_ci([], resamples=10)["low"] is None


def test_paired_difference_and_permutation_test() -> None:
    a = np.array([0.0, 1.0] * 15)
    same = paired_difference(a, a, permutations=2000)
    assert same["difference"] == 0 and same["p_value"] == 1.0 and same["ties"] == 30
    better = paired_difference(np.zeros(30), np.ones(30), permutations=2000)
    assert better["difference"] == 1.0 and better["b_better"] == 30 and better["p_value"] == pytest.approx(1 / 2001)
    rng = np.random.default_rng(0)
    noise_a, noise_b = rng.integers(0, 2, 400).astype(float), rng.integers(0, 2, 400).astype(float)
    assert paired_difference(noise_a, noise_b, permutations=2000)["p_value"] > 0.05


def test_prompt_templates_are_checked() -> None:
    assert prompts.load_template("textvqa", None) == "{question}{ocr}\nAnswer the question using a single word or " \
                                                    "phrase."
    assert prompts.ocr_line(["NIKE", "just"]) == "\nReference OCR token: NIKE, just"
