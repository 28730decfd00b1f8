"""Ranking metrics (vlmkit.retrieval.metrics) against independent computations: stable argsort, brute-force chance."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from vlmkit.retrieval.data import EvalSet, Pair
from vlmkit.retrieval.metrics import bootstrap_ci, chance_levels, rank_relevant


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def reference(queries: np.ndarray, keys: np.ndarray, relevant: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per-query metrics from a full stable argsort of each score row (the textbook way)."""
    scores = queries.astype(np.float32) @ keys.astype(np.float32).T
    first, ndcg = [], []
    for q, rel in enumerate(relevant):
        order = np.argsort(-scores[q], kind="stable")
        positions = np.flatnonzero(np.isin(order, rel)) + 1
        first.append(positions[0])
        dcg = sum(1 / math.log2(p + 1) for p in positions if p <= 10)
        ideal = sum(1 / math.log2(i + 1) for i in range(1, min(len(rel), 10) + 1))
        ndcg.append(dcg / ideal)
    first = np.array(first)
    return {"R@1": first <= 1, "R@5": first <= 5, "R@10": first <= 10, "MRR": 1 / first, "NDCG@10": np.array(ndcg)}


@pytest.mark.parametrize("chunk", [1, 37, 10_000_000])
def test_one_relevant_item_per_query_equals_a_stable_argsort(chunk: int) -> None:
    rng = np.random.default_rng(1)
    keys, queries = unit(rng, 40, 8), unit(rng, 90, 8)
    targets = rng.integers(0, 40, 90)
    ranked = rank_relevant(queries, keys, targets, max_chunk_elements=chunk)
    ref = reference(queries, keys, [np.array([t]) for t in targets])
    for name, values in ranked.per_query().items():
        np.testing.assert_allclose(values, ref[name].astype(float), rtol=0, atol=1e-12, err_msg=name)
    assert ranked.tied_queries == 0


@pytest.mark.parametrize("chunk", [1, 100, 10_000_000])
def test_several_relevant_items_per_query_equal_a_stable_argsort(chunk: int) -> None:
    rng = np.random.default_rng(2)
    keys, queries = unit(rng, 60, 6), unit(rng, 25, 6)
    relevant = [rng.choice(60, size=rng.integers(1, 12), replace=False) for _ in range(25)]
    ranked = rank_relevant(queries, keys, relevant, max_chunk_elements=chunk)
    ref = reference(queries, keys, relevant)
    for name, values in ranked.per_query().items():
        np.testing.assert_allclose(values, ref[name].astype(float), rtol=0, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("chunk", [1, 3, 10_000_000])
def test_exact_ties_are_shared_in_expectation_and_counted(chunk: int) -> None:
    rng = np.random.default_rng(3)
    keys = unit(rng, 10, 4)
    keys[7] = keys[2]  # a duplicate image: identical embeddings, so equal rounded scores
    queries = np.stack([keys[2], keys[7], keys[5]])
    ranked = rank_relevant(queries, keys, np.array([2, 7, 5]), max_chunk_elements=chunk)
    assert ranked.first_rank.tolist() == [1, 1, 1]  # best case; the twins share ranks 1 and 2 in expectation
    assert ranked.per_query()["MRR"].tolist() == [0.75, 0.75, 1.0]
    assert ranked.tied_queries == 2
    # both twins relevant to one query: no tie with a NON-relevant key
    assert rank_relevant(queries[:1], keys, [np.array([2, 7])]).tied_queries == 0


def brute_force_chance(pool: int, m: int) -> dict[str, float]:
    """Average over every position set of the m relevant items (all rankings equally likely)."""
    totals = dict.fromkeys(("R@1", "R@5", "R@10", "MRR", "NDCG@10"), 0.0)
    combos = list(itertools.combinations(range(1, pool + 1), m))
    ideal = sum(1 / math.log2(i + 1) for i in range(1, min(m, 10) + 1))
    for positions in combos:
        first = positions[0]
        for k in (1, 5, 10):
            totals[f"R@{k}"] += first <= k
        totals["MRR"] += 1 / first
        totals["NDCG@10"] += sum(1 / math.log2(p + 1) for p in positions if p <= 10) / ideal
    return {k: v / len(combos) for k, v in totals.items()}


@pytest.mark.parametrize("pool,m", [(12, 1), (12, 3), (7, 2), (3, 1), (15, 5)])
def test_chance_levels_are_the_exact_expectation_over_random_rankings(pool: int, m: int) -> None:
    expected = brute_force_chance(pool, m)
    got = chance_levels(np.array([m, m]), pool)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name


def test_chance_levels_average_over_queries_with_different_numbers_of_relevant_items() -> None:
    a, b = brute_force_chance(9, 1), brute_force_chance(9, 4)
    got = chance_levels(np.array([1, 4, 4]), 9)
    for name in a:
        assert got[name] == pytest.approx((a[name] + 2 * b[name]) / 3, abs=1e-12)


def test_bootstrap_is_seeded_brackets_the_mean_and_a_paired_difference_of_equals_is_zero() -> None:
    rng = np.random.default_rng(4)
    values = {"R@1": (rng.random(200) < 0.3).astype(float), "MRR": rng.random(200)}
    ci = bootstrap_ci(values, 300, seed=7)
    assert ci == bootstrap_ci(values, 300, seed=7)
    for name, (lo, hi) in ci.items():
        assert lo <= values[name].mean() <= hi and lo < hi
    assert bootstrap_ci(values, 100, seed=1, other=values) == {"R@1": [0.0, 0.0], "MRR": [0.0, 0.0]}
    assert bootstrap_ci(values, 0) == {}


def test_float16_embeddings_rank_like_their_float32_values() -> None:
    rng = np.random.default_rng(5)
    keys, queries = unit(rng, 300, 16).astype(np.float16), unit(rng, 50, 16).astype(np.float16)
    relevant = [rng.choice(300, size=3, replace=False) for _ in range(50)]
    ranked = rank_relevant(queries, keys, relevant, max_chunk_elements=500)
    ref = reference(queries.astype(np.float32), keys.astype(np.float32), relevant)
    np.testing.assert_array_equal(ranked.per_query()["MRR"], ref["MRR"])


def test_eval_set_groups_captions_by_image() -> None:
    pairs = [Pair("a", "/i/1.png"), Pair("b", "/i/2.png"), Pair("c", "/i/1.png"), Pair("d", "/i/3.png")]
    data = EvalSet.from_pairs(pairs)
    assert data.images == ["/i/1.png", "/i/2.png", "/i/3.png"]
    assert data.caption_image.tolist() == [0, 1, 0, 2]
    assert [c.tolist() for c in data.image_captions()] == [[0, 2], [1], [3]]
