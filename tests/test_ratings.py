"""rate.py: Bradley–Terry ratings from votes, their bootstrap CIs, judge swap consistency, length control and which
metric agrees with the votes; each number checked against a hand solution or an independent computation."""

import json
import math

import numpy as np
import pytest
from scipy.stats import kendalltau

import rate
from vlmkit.ratings.agreement import kendall_tau_b, metric_agreement
from vlmkit.ratings.analysis import RateOptions, compute_ratings
from vlmkit.ratings.bradley_terry import ELO_SCALE, VoteTable, fit_bradley_terry
from vlmkit.ratings.compare_run import CompareRun, ModelRun
from vlmkit.ratings.consistency import swap_consistency
from vlmkit.ratings.length import fit_length_controlled, length_covariate
from vlmkit.votes import Vote, append_votes, make_vote

T = "2026-12-04T10:00:00+00:00"


def vote(left, right, winner, item="i1", voter="ann", source="human", shown=None):
    return Vote.from_dict(make_vote(item_id=item, left=left, right=right, winner=winner, voter=voter, source=source,
                                    shown_order=shown or [left, right], time=T))


def repeat(n, left, right, winner, item="i1"):
    return [vote(left, right, winner, item=f"{item}-{k}") for k in range(n)]


def hand_case():
    # Strengths 4 : 2 : 1 predict exactly these win shares, so they are the MLE: A-B 2 of 3, B-C 2 of 3, A-C 4 of 5.
    return (repeat(2, "A", "B", "left") + repeat(1, "A", "B", "right") + repeat(2, "B", "C", "left")
            + repeat(1, "B", "C", "right") + repeat(4, "A", "C", "left") + repeat(1, "A", "C", "right"))


def test_bradley_terry_hand_solved_three_models():
    theta = fit_bradley_terry(VoteTable.from_votes(hand_case()).wins_matrix())
    assert theta[0] - theta[2] == pytest.approx(math.log(4), abs=1e-5)
    assert theta[1] - theta[2] == pytest.approx(math.log(2), abs=1e-5)
    data = compute_ratings(hand_case(), RateOptions(baseline="C", anchor=1000, resamples=0)).data
    assert data["models"]["A"]["rating"] == pytest.approx(1000 + 400 * math.log10(4), abs=1e-3)
    assert data["models"]["B"]["rating"] == pytest.approx(1000 + 400 * math.log10(2), abs=1e-3)
    assert data["ranking"] == ["A", "B", "C"]
    assert data["models"]["A"] == {"rating": pytest.approx(1240.824, abs=1e-3), "ci": None, "wins": 6, "losses": 2,
                                   "ties": 0}
    assert data["n_votes"] == 11 and data["baseline"] == "C"


def mm_fit(wins, iterations=20000):
    """Hunter's (2004) MM iteration for BT, written independently: pi_i <- W_i / sum_j n_ij / (pi_i + pi_j)."""
    k = len(wins)
    games = wins + wins.T
    pi = np.ones(k)
    for _ in range(iterations):
        denom = (games / (pi[:, None] + pi[None, :])).sum(axis=1)
        pi = wins.sum(axis=1) / denom
        pi /= np.exp(np.log(pi).mean())
    return np.log(pi)


def random_votes(n, k=5, items=60, seed=0, tie_share=0.15, both_bad_share=0.0):
    rng = np.random.default_rng(seed)
    strength = np.linspace(-1.0, 1.2, k)
    names = [f"m{i}" for i in range(k)]
    out = []
    for v in range(n):
        i, j = rng.choice(k, 2, replace=False)
        u = rng.random()
        if u < both_bad_share:
            winner = "both_bad"
        elif u < both_bad_share + tie_share:
            winner = "tie"
        else:
            winner = "left" if rng.random() < 1 / (1 + math.exp(strength[j] - strength[i])) else "right"
        out.append(vote(names[i], names[j], winner, item=f"obj{v % items}"))
    return out


def test_bradley_terry_equals_an_independent_mm_fit_with_ties():
    table = VoteTable.from_votes(random_votes(600))
    wins = table.wins_matrix()
    ours = fit_bradley_terry(wins)
    np.testing.assert_allclose(ours - ours.mean(), mm_fit(wins), atol=2e-5)
    # The stacked fit of several problems at once solves each one as alone.
    stacked = fit_bradley_terry(np.stack([wins, wins.T, wins * 3]))
    np.testing.assert_allclose(stacked[0], ours, atol=2e-5)
    np.testing.assert_allclose(stacked[1], -ours, atol=2e-5)
    np.testing.assert_allclose(stacked[2], ours, atol=2e-5)


def test_a_tie_is_half_a_win_and_both_bad_is_excluded_and_counted():
    votes = [vote("A", "B", "left", item="x"), vote("A", "B", "tie", item="y")]
    theta = fit_bradley_terry(VoteTable.from_votes(votes).wins_matrix())
    assert theta[0] - theta[1] == pytest.approx(math.log(3), abs=1e-5)  # 1.5 wins of 2 games: odds 3
    with_bad = votes + [vote("A", "B", "both_bad", item="z"), vote("B", "C", "both_bad", item="z"),
                        vote("B", "C", "left", item="x"), vote("B", "C", "right", item="y")]
    data = compute_ratings(with_bad, RateOptions(baseline="B", resamples=0)).data
    assert data["models"]["A"]["rating"] - 1000 == pytest.approx(ELO_SCALE * math.log(3), abs=1e-3)
    assert data["models"]["C"]["rating"] == pytest.approx(1000, abs=1e-3)
    assert data["both_bad"] == {"excluded": 2, "by_model": {"A": 1, "B": 2, "C": 1}}
    assert data["n_votes"] == 4
    assert data["models"]["A"] | {"rating": 0} == {"rating": 0, "ci": None, "wins": 1, "losses": 0, "ties": 1}


def test_ci_contains_the_estimate_and_shrinks_with_more_votes():
    widths = []
    for n in (300, 3000):
        data = compute_ratings(random_votes(n, items=n // 5, seed=1), RateOptions(baseline="m0", resamples=300)).data
        for name in ("m1", "m2", "m3", "m4"):
            m = data["models"][name]
            assert m["ci"][0] < m["rating"] < m["ci"][1]
        widths.append(np.mean([data["models"][m]["ci"][1] - data["models"][m]["ci"][0] for m in ("m2", "m4")]))
    assert widths[1] < widths[0] / 2.2  # ~ 1/sqrt(10) = 0.32 expected


def test_swap_consistency_on_a_hand_made_judge_file():
    j = "judge:tiny"
    votes = [
        vote("A", "B", "left", item="1", source=j, voter="t", shown=["A", "B"]),
        vote("A", "B", "left", item="1", source=j, voter="t", shown=["B", "A"]),  # same verdict: A
        vote("A", "C", "left", item="1", source=j, voter="t", shown=["A", "C"]),
        vote("A", "C", "right", item="1", source=j, voter="t", shown=["C", "A"]),  # flips: A then C
        vote("B", "C", "tie", item="2", source=j, voter="t", shown=["B", "C"]),
        vote("B", "C", "tie", item="2", source=j, voter="t", shown=["C", "B"]),  # same: tie
        vote("B", "C", "left", item="3", source=j, voter="t", shown=["B", "C"]),  # one order only
        vote("A", "B", "left", item="1", source="human", voter="ann"),
    ]
    out = swap_consistency(votes)
    # decided: A (shown 1st), A (2nd), A (1st), C (1st), B (1st): the first shown won 4 of 5
    assert out[j] | {"reason": None} == {"votes": 7, "pairs": 3, "flipped": 1, "flip_rate": pytest.approx(1 / 3),
                                         "consistency": pytest.approx(2 / 3), "reason": None, "decided_votes": 5,
                                         "position_first_wins": pytest.approx(4 / 5)}
    assert out["human"]["pairs"] == 0 and out["human"]["flip_rate"] is None and out["human"]["reason"]


def irls_logistic(X, y, iterations=50):
    """Plain Newton/IRLS logistic regression with fractional targets (independent of the module's L-BFGS fit)."""
    beta = np.zeros(X.shape[1])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-X @ beta))
        beta += np.linalg.solve(X.T @ (X * (p * (1 - p))[:, None]), X.T @ (y - p))
    return beta


def test_length_controlled_fit_equals_an_independent_logistic_regression():
    votes = random_votes(800, k=4, seed=3)
    rng = np.random.default_rng(4)
    lengths = {(m, v.item_id): int(rng.integers(5, 60)) for v in votes for m in ("m0", "m1", "m2", "m3")}
    table = VoteTable.from_votes(votes)
    # Make the longer caption win more often, so beta is clearly positive.
    x = length_covariate(table, lengths)
    score = np.where(x > 0.3, 1.0, table.score)
    table = VoteTable(table.models, table.items, table.item, table.left, table.right, score, table.votes, 0, {})
    theta, beta = fit_length_controlled(table, x)
    design = np.zeros((len(x), 4))
    design[np.arange(len(x)), table.left] += 1
    design[np.arange(len(x)), table.right] -= 1
    reference = irls_logistic(np.column_stack([design[:, 1:], x]), score)  # m0 fixed at 0
    np.testing.assert_allclose(theta[0, 1:] - theta[0, 0], reference[:3], atol=1e-4)
    assert beta[0] == pytest.approx(reference[3], abs=1e-4)
    assert beta[0] > 0.5


def test_kendall_tau_b_equals_scipy():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.integers(0, 4, 6).astype(float), rng.normal(size=6)
        assert kendall_tau_b(a, b)[0] == pytest.approx(kendalltau(a, b).statistic, abs=1e-12)


def test_metric_agreement_tau_and_pairwise_accuracy_by_hand():
    # Humans: A > B > C. Metric "good" ranks A > B > C per item; "bad" the reverse; "half" ties everywhere but A-C.
    votes = []
    for item in ("1", "2", "3", "4"):
        votes += [vote("A", "B", "left", item=item), vote("B", "C", "left", item=item), vote("C", "A", "right",
                                                                                               item=item)]
    votes.append(vote("A", "B", "tie", item="1"))  # not decided: left out of pairwise accuracy
    values = {"A": (0.9, 0.1, 0.5), "B": (0.5, 0.5, 0.5), "C": (0.1, 0.9, 0.2)}
    run = CompareRun(folder=".", models={
        m: ModelRun(m, {"good": v[0], "bad": v[1], "half": v[2]},
                    {i: {"id": i, "generated": "x", "good": v[0], "bad": v[1], "half": v[2]} for i in "1234"})
        for m, v in values.items()})
    ratings = compute_ratings(votes, RateOptions(resamples=50))
    rows = {r["metric"]: r for r in metric_agreement(ratings, run, 0.95)["rows"]}
    assert rows["good"]["kendall_tau"] == pytest.approx(1.0)
    assert rows["bad"]["kendall_tau"] == pytest.approx(-1.0)
    assert rows["good"]["pairwise_accuracy"] == 1.0 and rows["bad"]["pairwise_accuracy"] == 0.0
    # half: A-B tie (0.5), B-C right (B 0.5 > C 0.2), A-C right (A 0.5 > C 0.2): (0.5 + 1 + 1) / 3 per item
    assert rows["half"]["pairwise_accuracy"] == pytest.approx(2.5 / 3)
    assert rows["half"]["decided_votes"] == 12 and rows["half"]["metric_ties"] == 4
    assert rows["half"]["kendall_tau"] == pytest.approx(kendalltau([0.5, 0.5, 0.2], [3, 2, 1]).statistic)
    assert [r["metric"] for r in metric_agreement(ratings, run, 0.95)["rows"]] == ["good", "half", "bad"]
    # A pairwise judge: consistent on item 1's A-B pair (A both times), position-following on its B-C pair.
    j = "judge:j"
    judge = [vote("A", "B", "left", item="1", source=j, shown=["A", "B"]),
             vote("A", "B", "left", item="1", source=j, shown=["B", "A"]),
             vote("B", "C", "left", item="1", source=j, shown=["B", "C"]),
             vote("B", "C", "right", item="1", source=j, shown=["C", "B"])]
    row = {r["metric"]: r for r in metric_agreement(ratings, run, 0.95, judge)["rows"]}[j]
    assert row["pairwise_accuracy"] == pytest.approx((1.0 + 0.5) / 2)  # A>B: 1; B>C: the flip counts half
    assert (row["decided_votes"], row["votes_without_value"], row["judge_votes"]) == (2, 10, 4)


def _write_votes(path, votes):
    append_votes(path, [v.raw for v in votes])


def test_rate_cli_writes_ratings_json_md_html(tmp_path):
    _write_votes(tmp_path / "votes.jsonl", hand_case())
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        rate.run_main(rate.main, ["--votes", str(tmp_path / "votes.jsonl"), "--output_dir", str(out),
                                  "--baseline", "C", "--bootstrap", "100"])
    assert exit_info.value.code == 0
    data = json.loads((out / "ratings.json").read_text())
    assert set(data) >= {"models", "n_votes", "baseline", "swap_consistency"}
    assert set(data["models"]["A"]) == {"rating", "ci", "wins", "losses", "ties"}
    html = (out / "ratings.html").read_text()
    assert "<svg" in html and "http" not in html.replace("http://www.w3.org", "")
    assert "| 1 | A | 1241 |" in (out / "ratings.md").read_text()


@pytest.mark.parametrize("line, message", [
    ('{"item_id": "x"}', "line 2: missing key(s)"),
    ("not json", "line 2: not JSON"),
])
def test_rate_bad_votes_one_line_exit_2_nothing_written(tmp_path, capsys, line, message):
    path = tmp_path / "votes.jsonl"
    _write_votes(path, hand_case()[:1])
    with open(path, "a") as handle:
        handle.write(line + "\n")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        rate.run_main(rate.main, ["--votes", str(path), "--output_dir", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}: ") and message in err[0]
    assert not (out / "ratings.json").exists()


def test_rate_unknown_baseline_and_missing_captions_are_input_errors(tmp_path, capsys):
    path = tmp_path / "votes.jsonl"
    _write_votes(path, hand_case())
    captions = tmp_path / "image_A.json"
    captions.write_text(json.dumps([{"images": ["i1-0_1_x.glb"], "caption": "a vase"}]))
    for extra, message in ((["--baseline", "Z"], "--baseline: 'Z' is not a model"),
                           (["--captions", str(captions)], "captions: no caption of model")):
        with pytest.raises(SystemExit) as exit_info:
            rate.run_main(rate.main, ["--votes", str(path), "--output_dir", str(tmp_path / "o"), *extra])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "o" / "ratings.json").exists()


def test_rate_reads_a_real_compare_run(tmp_path, capsys, monkeypatch):
    import compare
    from tests.fixtures.fake_text_encoder import BagOfWordsEncoder, write_captions
    from tests.test_compare_cli import BAD, GOOD, IDS, TRUTH
    from vlmkit.evaluation import pipeline

    monkeypatch.setattr(pipeline.SentenceEncoder, "load", classmethod(lambda cls, *a, **k: BagOfWordsEncoder()))
    gt = write_captions(tmp_path / "groundTruth.json", list(zip(IDS, TRUTH, strict=True)))
    files = [write_captions(tmp_path / f"image_{name}.json", list(zip(IDS, caps, strict=True)), name)
             for name, caps in (("good", GOOD), ("bad", BAD), ("mid", GOOD[:3] + BAD[3:]))]
    results = tmp_path / "results"
    with pytest.raises(SystemExit) as exit_info:
        compare.run_main(compare.main, ["--generated", *map(str, files), "--ground_truth", str(gt), "--output_dir",
                                        str(results), "--no_coco", "--clip_model", "none", "--bootstrap", "50"])
    assert exit_info.value.code == 0
    # Humans prefer the good captions; mid equals good on the first three items, so those are ties.
    votes = []
    for n, item in enumerate(IDS):
        votes.append(vote("good", "bad", "left", item=item, shown=["bad", "good"] if n % 2 else None))
        votes.append(vote("mid", "bad", "left" if n < 3 else "tie", item=item))
        votes.append(vote("good", "mid", "tie" if n < 3 else "left", item=item))
    _write_votes(tmp_path / "votes.jsonl", votes)
    out = tmp_path / "ratings"
    with pytest.raises(SystemExit) as exit_info:
        rate.run_main(rate.main, ["--votes", str(tmp_path / "votes.jsonl"), "--compare_dir", str(results),
                                  "--output_dir", str(out), "--baseline", "bad", "--bootstrap", "200"])
    assert exit_info.value.code == 0, capsys.readouterr().err
    data = json.loads((out / "ratings.json").read_text())
    assert data["ranking"] == ["good", "mid", "bad"]
    rows = {r["metric"]: r for r in data["agreement"]["rows"]}
    assert {"semantic_similarity", "lexical_similarity", "r_at_1", "overall_score", "fid_score"} <= set(rows)
    # Independent count from the per-sample files: lexical Jaccard of the voted captions.
    lex = {}
    for m in ("good", "bad", "mid"):
        lines = (results / f"compare_{m}_per_sample.jsonl").read_text().splitlines()
        lex[m] = {r["id"]: r["lexical_similarity"] for r in map(json.loads, lines)}
    hits = total = 0
    for v in votes:
        if v.winner in ("left", "right"):
            a, b = lex[v.left][v.item_id], lex[v.right][v.item_id]
            won, lost = (a, b) if v.winner == "left" else (b, a)
            hits += 1.0 if won > lost else 0.5 if won == lost else 0.0
            total += 1
    assert rows["lexical_similarity"]["pairwise_accuracy"] == pytest.approx(hits / total)
    assert rows["lexical_similarity"]["kendall_tau"] == pytest.approx(1.0)
    assert rows["fid_score"]["pairwise_accuracy"] is None and rows["fid_score"]["reason"]
    assert data["length_controlled"]["models"]["good"]["rating"] is not None  # captions came from the compare run
    assert "Which metric agrees" in (out / "ratings.md").read_text()


def test_mixed_sources_are_also_rated_each_on_its_own_votes():
    human = hand_case()
    judge = [Vote.from_dict({**v.raw, "source": "judge:j", "voter": "j"}) for v in random_votes(60, k=3, seed=5)]
    judge = [Vote.from_dict({**v.raw, "left": "ABC"[int(v.left[1])], "right": "ABC"[int(v.right[1])],
                             "shown_order": ["ABC"[int(m[1])] for m in v.shown_order]}) for v in judge]
    data = compute_ratings(human + judge, RateOptions(baseline="C", resamples=50)).data
    alone = compute_ratings(human, RateOptions(baseline="C", resamples=50)).data
    assert data["by_source"]["human"]["models"]["A"]["rating"] == pytest.approx(alone["models"]["A"]["rating"])
    assert data["by_source"]["human"]["n_votes"] == 11 and data["by_source"]["judge:j"]["n_votes"] == 60
    assert data["n_votes"] == 71
