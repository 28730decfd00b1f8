"""The one ranking kernel (vlmkit.ranking) against brute force: every order of the tied keys, averaged.

Scores are constructed exactly (one-hot keys: query row j's score for key i is query[j, i]), with ties of several
sizes, relevant keys inside and outside tie groups, and low-signal scores 2e-7 apart that are distinct. Both callers
are checked: compare's R@k (`evaluation.caption_recall.rank_counts`, one relevant key) and retrieval's R@K / MRR /
NDCG@10 (`retrieval.metrics.rank_relevant`, several relevant keys), for several chunk sizes.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from vlmkit.evaluation.caption_recall import rank_counts
from vlmkit.ranking import rank
from vlmkit.retrieval.metrics import rank_relevant

CHUNKS = (1, 5, 10**9)


def brute_force(scores: np.ndarray, relevant: list[list[int]]) -> dict[str, np.ndarray]:
    """Per query: R@1/5/10, MRR and NDCG@10 averaged over EVERY order of the keys with equal scores."""
    out = {name: [] for name in ("R@1", "R@5", "R@10", "MRR", "NDCG@10")}
    for row, rel in zip(scores, relevant, strict=True):
        values = sorted(set(row.tolist()), reverse=True)
        groups = [[i for i in range(len(row)) if row[i] == v] for v in values]
        totals = dict.fromkeys(out, 0.0)
        orders = list(itertools.product(*(itertools.permutations(g) for g in groups)))
        for parts in orders:
            order = [i for part in parts for i in part]
            ranks = sorted(order.index(r) + 1 for r in rel)
            for k in (1, 5, 10):
                totals[f"R@{k}"] += ranks[0] <= k
            totals["MRR"] += 1 / ranks[0]
            ideal = sum(1 / math.log2(i + 1) for i in range(1, min(len(rel), 10) + 1))
            totals["NDCG@10"] += sum(1 / math.log2(p + 1) for p in ranks if p <= 10) / ideal
        for name in out:
            out[name].append(totals[name] / len(orders))
    return {name: np.array(v) for name, v in out.items()}


def constructed_scores() -> np.ndarray:
    """9 keys; rows with ties of 2, 3, 4 and 6 keys, and distinct scores 2e-7 apart."""
    return np.array([
        [0.9, 0.5, 0.5, 0.5, 0.1, 0.2, 0.3, 0.0, 0.4],
        [0.5, 0.5, 0.9, 0.9, 0.5, 0.5, 0.1, 0.2, 0.9],
        [0.3, 0.3, 0.3, 0.3, 0.3, 0.1, 0.2, 0.4, 0.3],
        [3e-7, 5e-7, 1e-7, 7e-7, 9e-7, 1.1e-6, 1.3e-6, 0.0, 5e-7],
        [0.2, 0.7, 0.7, 0.1, 0.7, 0.7, 0.0, 0.3, 0.3],
        [0.6, 0.6, 0.6, 0.6, 0.1, 0.1, 0.1, 0.8, 0.8],
    ], dtype=np.float32)


@pytest.mark.parametrize("chunk", CHUNKS)
def test_compare_recall_equals_brute_force_over_tie_orders(chunk: int) -> None:
    scores = constructed_scores()
    keys = np.eye(9, dtype=np.float32)
    targets = np.array([2, 4, 5, 1, 6, 0])
    result = rank_counts(scores, keys, targets, max_chunk_elements=chunk)
    truth = brute_force(scores, [[t] for t in targets])
    for k in (1, 5, 10):
        np.testing.assert_allclose(result.hits(k), truth[f"R@{k}"], rtol=0, atol=1e-12, err_msg=f"R@{k}")
    # distinct low-signal scores are not ties (an absolute 1e-6 tolerance would merge them)
    assert result.tied[3] == 1 and result.better[3] == 4  # 5e-7 ties only its exact twin (key 8)


@pytest.mark.parametrize("chunk", CHUNKS)
def test_retrieval_metrics_with_several_relevant_keys_equal_brute_force(chunk: int) -> None:
    scores = constructed_scores()
    keys = np.eye(9, dtype=np.float32)
    relevant = [[1, 2], [2, 3, 4], [0, 7, 8], [1, 8, 0], [1, 7], [7, 0, 4, 5]]
    ranked = rank_relevant(scores, keys, [np.array(r) for r in relevant], max_chunk_elements=chunk)
    truth = brute_force(scores, relevant)
    for name, values in ranked.per_query().items():
        np.testing.assert_allclose(values, truth[name], rtol=0, atol=1e-12, err_msg=name)
    # row 1: relevant 2 and 3 tie the non-relevant 8; row 3: relevant 1 and 8 tie only each other
    assert ranked.ranking.nonrelevant_tie.tolist() == [True, True, True, False, True, True]
    assert ranked.tied_queries == 5


def test_a_duplicated_image_ties_with_its_twin_and_both_relevant_is_no_tie() -> None:
    rng = np.random.default_rng(3)
    keys = rng.normal(size=(10, 4)).astype(np.float32)
    keys /= np.linalg.norm(keys, axis=1, keepdims=True)
    keys[7] = keys[2]  # identical embeddings: their rounded scores are equal, so they always tie
    queries = np.stack([keys[2], keys[7], keys[5]])
    for chunk in CHUNKS:
        ranked = rank_relevant(queries, keys, np.array([2, 7, 5]), max_chunk_elements=chunk)
        assert ranked.first_rank.tolist() == [1, 1, 1] and ranked.tied_queries == 2
        assert ranked.per_query()["R@1"].tolist() == [0.5, 0.5, 1.0]
        assert ranked.per_query()["MRR"].tolist() == [0.75, 0.75, 1.0]
    both = rank_relevant(queries[:1], keys, [np.array([2, 7])])
    assert both.tied_queries == 0 and both.per_query()["R@1"].tolist() == [1.0]
    assert both.per_query()["NDCG@10"].tolist() == [1.0]


@pytest.mark.parametrize("chunk", CHUNKS)
def test_the_argsort_rule_is_numpys_descending_argsort_for_several_relevant_keys(chunk: int) -> None:
    scores = constructed_scores()
    keys = np.eye(9, dtype=np.float32)
    relevant = [[1, 2], [2, 3, 4], [0, 7, 8], [1, 8, 0], [1, 7], [7, 0, 4, 5]]
    got = rank(scores, keys, [np.array(r) for r in relevant], rule="argsort", max_chunk_elements=chunk)
    for q, rel in enumerate(relevant):
        order = np.argsort(scores[q] @ keys.T)[::-1].tolist()
        ranks = sorted(order.index(r) + 1 for r in rel)
        assert got.better[q] == ranks[0] - 1
        assert got.mrr[q] == 1 / ranks[0]
        ideal = sum(1 / math.log2(i + 1) for i in range(1, min(len(rel), 10) + 1))
        assert got.ndcg[q] == pytest.approx(sum(1 / math.log2(p + 1) for p in ranks if p <= 10) / ideal, abs=1e-12)
        for k in (1, 5, 10):
            assert got.hits(k)[q] == float(ranks[0] <= k)


def test_random_embeddings_with_duplicates_do_not_depend_on_the_chunking() -> None:
    rng = np.random.default_rng(8)
    keys = rng.normal(size=(120, 12)).astype(np.float32)
    keys[1::3] = keys[::3][: len(keys[1::3])]  # many exact duplicates
    queries = (keys[:80] + 0.5 * rng.normal(size=(80, 12))).astype(np.float16)  # float16 storage, as retrieval
    relevant = [rng.choice(120, size=rng.integers(1, 5), replace=False) for _ in range(80)]
    full = rank_relevant(queries, keys, relevant, max_chunk_elements=10**9).per_query()
    for chunk in (1, 13, 700):
        part = rank_relevant(queries, keys, relevant, max_chunk_elements=chunk).per_query()
        for name in full:
            np.testing.assert_array_equal(part[name], full[name], err_msg=f"{name} chunk {chunk}")


def test_bad_relevance_lists_are_refused() -> None:
    keys = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match="at least one relevant"):
        rank(keys, keys, [np.array([0]), np.array([], dtype=np.int64), np.array([2])])
    with pytest.raises(ValueError, match="outside the pool"):
        rank(keys, keys, np.array([0, 1, 3]))
    with pytest.raises(ValueError, match="unknown ranking rule"):
        rank(keys, keys, rule="stable")
