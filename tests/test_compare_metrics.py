"""compare.py's metric functions pinned on small hand-made cases (no models needed)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from vlmkit.evaluation.caption_recall import rank_counts
from vlmkit.evaluation.clip_scores import clip_image_scores, ref_clip_scores, rowwise_cosine
from vlmkit.evaluation.frechet import frechet_distance, frechet_result
from vlmkit.evaluation.lexical import jaccard, jaccard_per_pair
from vlmkit.evaluation.metrics import parse_metric_groups
from vlmkit.evaluation.overall import OVERALL_WEIGHTS, overall_score


def test_jaccard_pinned_values() -> None:
    assert jaccard("A red vase.", "a red jug") == pytest.approx(2 / 4)
    assert jaccard("Black-figure lekythos; Attica.", "black figure LEKYTHOS attica") == 1.0
    assert jaccard("amphora", "krater") == 0.0
    assert jaccard("...", "!!") == 1.0  # no words on either side
    assert jaccard_per_pair(["a b c", "x"], ["a b d", "y"]).tolist() == pytest.approx([2 / 4, 0.0])


def _one_hot_keys(n: int) -> np.ndarray:
    return np.eye(n, dtype=np.float32)  # query rows then ARE their score rows


def test_recall_at_k_known_rankings() -> None:
    scores = np.array([
        [0.9, 0.1, 0.2, 0.3],  # item 0: rank 1
        [0.5, 0.4, 0.3, 0.6],  # item 1: two better -> rank 3
        [0.1, 0.2, 0.3, 0.0],  # item 2: rank 1
        [0.7, 0.7, 0.7, 0.1],  # item 3: rank 4
    ], dtype=np.float32)
    result = rank_counts(scores, _one_hot_keys(4))
    assert result.best_rank.tolist() == [1, 3, 1, 4]
    assert result.recall(1) == 0.5
    assert result.recall(2) == 0.5
    assert result.recall(3) == 0.75
    assert result.recall(4) == 1.0
    assert result.chance(1) == 0.25 and result.chance(10) == 1.0


def test_recall_tie_rule_expected_credit() -> None:
    # item 1's reference ties with two others at the top: rank 1, 2 or 3 with equal chance.
    scores = np.array([[0.9, 0.0, 0.0], [0.5, 0.5, 0.5], [0.0, 0.0, 0.8]], dtype=np.float32)
    result = rank_counts(scores, _one_hot_keys(3))
    assert result.tied.tolist() == [0, 2, 0]
    assert result.hits(1).tolist() == pytest.approx([1.0, 1 / 3, 1.0])
    assert result.hits(2).tolist() == pytest.approx([1.0, 2 / 3, 1.0])
    assert result.hits(3).tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_tie_rule_is_float32_equality_not_an_absolute_tolerance() -> None:
    # low-signal scores 2e-7 apart: distinct, although an absolute 1e-6 tolerance would call them all ties
    scores = np.array([[3e-7, 5e-7, 1e-7, 7e-7]], dtype=np.float32)
    result = rank_counts(scores, _one_hot_keys(4)[:, :4])
    assert result.tied.tolist() == [0] and result.better.tolist() == [2]
    # identical reference texts have one embedding: always a tie, whatever the magnitude
    rng = np.random.default_rng(5)
    keys = rng.normal(size=(6, 8)).astype(np.float32)
    keys /= np.linalg.norm(keys, axis=1, keepdims=True)
    keys[3] = keys[0]
    queries = keys + 0.01 * rng.normal(size=keys.shape).astype(np.float32)
    result = rank_counts(queries, keys)
    assert result.tied[0] == 1 and result.tied[3] == 1 and (np.delete(result.tied, [0, 3]) == 0).all()
    assert result.hits(1)[0] == pytest.approx(0.5) and result.hits(1)[3] == pytest.approx(0.5)


def test_argsort_rule_is_numpys_descending_argsort() -> None:
    rng = np.random.default_rng(6)
    keys = rng.normal(size=(40, 8)).astype(np.float32)
    keys[5::7] = keys[0]  # exact ties: the order numpy's sort gives them decides, as in VaseVQA-3D
    queries = keys + 0.7 * rng.normal(size=keys.shape).astype(np.float32)
    for chunk in (1, 97, 10**9):
        result = rank_counts(queries, keys, max_chunk_elements=chunk, rule="argsort")
        for k in (1, 5, 10):
            expected = [float(i in np.argsort(queries[i] @ keys.T)[::-1][:k]) for i in range(40)]
            assert result.hits(k).tolist() == expected
        assert result.best_rank.tolist() == [int(np.where(np.argsort(queries[i] @ keys.T)[::-1] == i)[0][0]) + 1
                                             for i in range(40)]


def _argsort_hits(queries: np.ndarray, keys: np.ndarray, k: int) -> np.ndarray:
    """Independent full-matrix reference (valid without ties): is the own key among the top k?"""
    full = queries @ keys.T
    order = np.argsort(-full, axis=1, kind="stable")
    return (order[:, :k] == np.arange(len(queries))[:, None]).any(axis=1).astype(float)


@pytest.mark.parametrize("chunk_elements", [1, 150, 7_919, 10**9])
def test_chunked_recall_matches_full_matrix(chunk_elements: int) -> None:
    rng = np.random.default_rng(0)
    keys = rng.normal(size=(300, 16)).astype(np.float32)
    queries = keys + 0.8 * rng.normal(size=keys.shape).astype(np.float32)
    result = rank_counts(queries, keys, max_chunk_elements=chunk_elements)
    for k in (1, 5, 10):
        assert result.hits(k) == pytest.approx(_argsort_hits(queries, keys, k))
    # with exact duplicate keys (ties), every chunk size gives the same counts as one full block
    keys[1::2] = keys[::2]
    chunked = rank_counts(queries, keys, max_chunk_elements=chunk_elements)
    full = rank_counts(queries, keys, max_chunk_elements=10**12)
    assert (chunked.better == full.better).all() and (chunked.tied == full.tied).all()
    assert (full.tied >= 1).all()


def _pytorch_fid_formula(x: np.ndarray, y: np.ndarray) -> float:
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean, _ = scipy.linalg.sqrtm(s1.dot(s2), disp=False)
    covmean = covmean.real
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_distance_matches_pytorch_fid_formula() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 12))
    y = rng.normal(loc=0.3, scale=1.5, size=(500, 12)) @ rng.normal(size=(12, 12)) * 0.3
    assert frechet_distance(x, y) == pytest.approx(_pytorch_fid_formula(x, y), rel=1e-8)
    assert frechet_distance(x, y) == pytest.approx(frechet_distance(y, x), rel=1e-10)  # symmetric
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(x, x) >= 0.0  # clamped


def _vasevqa3d_fid_formula(x: np.ndarray, y: np.ndarray) -> float:
    """[VaseVQA-3D]'s FD: 1e-6*I on both covariances, sqrtm of the product, real part, no clamp."""
    s1 = np.cov(x, rowvar=False) + np.eye(x.shape[1]) * 1e-6
    s2 = np.cov(y, rowvar=False) + np.eye(y.shape[1]) * 1e-6
    covmean = scipy.linalg.sqrtm(s1.dot(s2)).real
    diff = x.mean(0) - y.mean(0)
    return float(diff.dot(diff) + np.trace(s1 + s2 - 2 * covmean))


@pytest.mark.parametrize("n,dim", [(20, 32), (64, 384), (200, 64)])
def test_frechet_distance_with_eps_matches_the_sqrtm_formulation(n: int, dim: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = x + 0.3 * rng.normal(size=(n, dim))  # rank-deficient covariances when n <= dim
    assert frechet_distance(x, y, eps=1e-6) == pytest.approx(_vasevqa3d_fid_formula(x, y), abs=1e-6)


@pytest.mark.parametrize("eps", [0.0, 1e-6])
def test_frechet_distance_in_the_row_subspace_equals_the_full_computation(eps: float) -> None:
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(30, 100)), rng.normal(0.1, 0.8, size=(30, 100))  # 2n < dim: the subspace path
    s1 = np.cov(x, rowvar=False) + eps * np.eye(100)
    s2 = np.cov(y, rowvar=False) + eps * np.eye(100)
    if eps:
        values, vectors = scipy.linalg.eigh(s1)
        root = (vectors * np.sqrt(values)) @ vectors.T
        tr_covmean = np.sqrt(scipy.linalg.eigvalsh(root @ s2 @ root)).sum()
    else:  # tr((A'A B'B)^(1/2)) = nuclear norm of A B' (exact; the 100-dim eigh would add sqrt(rounding) noise)
        a = (x - x.mean(0)) / np.sqrt(29)
        b = (y - y.mean(0)) / np.sqrt(29)
        tr_covmean = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    diff = x.mean(0) - y.mean(0)
    full = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean
    assert frechet_distance(x, y, eps) == pytest.approx(full, rel=1e-9)


def test_frechet_result_reports_n_and_small_sample_warning() -> None:
    rng = np.random.default_rng(2)
    small = frechet_result(rng.normal(size=(6, 8)), rng.normal(size=(6, 8)))
    assert small.n_generated == 6 and small.dim == 8 and small.value is not None
    assert "n=6 <= embedding dim 8" in small.warning
    big = frechet_result(rng.normal(size=(50, 8)), rng.normal(size=(50, 8)))
    assert big.warning is None
    single = frechet_result(np.ones((1, 8)), np.ones((1, 8)))
    assert single.value is None and "at least 2" in single.reason


def test_overall_score_full_and_partial() -> None:
    metrics = {"clip_score": 0.8, "semantic_similarity": 0.6, "r_at_10": 1.0, "lexical_similarity": 0.4,
               "r_at_5": 0.5, "r_at_1": 0.2}
    full = overall_score(metrics)
    assert full.value == pytest.approx(0.25 * 0.8 + 0.25 * 0.6 + 0.20 * 1.0 + 0.15 * 0.4 + 0.10 * 0.5 + 0.05 * 0.2)
    assert not full.partial and full.weight_covered == pytest.approx(1.0)
    assert sum(OVERALL_WEIGHTS.values()) == pytest.approx(1.0)

    partial = overall_score({**metrics, "clip_score": None})
    assert partial.partial and partial.missing == ("clip_score",)
    assert partial.weight_covered == pytest.approx(0.75)
    assert partial.value == pytest.approx((0.25 * 0.6 + 0.20 * 1.0 + 0.15 * 0.4 + 0.10 * 0.5 + 0.05 * 0.2) / 0.75)
    assert partial.to_json()["components"] == ["semantic_similarity", "r_at_10", "lexical_similarity", "r_at_5",
                                               "r_at_1"]
    assert overall_score({}).value is None


def test_clipscore_and_refclipscore_formulas() -> None:
    caption = np.array([[1.0, 0.0]])
    views = [np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])]  # cos 1, 0, -1 -> clipped 1, 0, 0
    clip_s = clip_image_scores(views, caption)
    assert clip_s.tolist() == pytest.approx([2.5 * (1 + 0 + 0) / 3])
    ref = ref_clip_scores(np.array([2.5, 1.0, 1.0]), np.array([0.5, -0.3, 0.0]))
    assert ref.tolist() == pytest.approx([2 * 2.5 * 0.5 / 3.0, 0.0, 0.0])
    assert rowwise_cosine(np.array([[0.6, 0.8]]), np.array([[1.0, 0.0]])).tolist() == pytest.approx([0.6])


def test_metric_group_parsing() -> None:
    assert "coco" not in parse_metric_groups("all", no_coco=True)
    assert parse_metric_groups("semantic, retrieval") == {"semantic", "retrieval"}
    with pytest.raises(ValueError, match="unknown metric group"):
        parse_metric_groups("semantic,bleu")
