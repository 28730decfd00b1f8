"""The paired bootstrap: CIs, their determinism and 1/sqrt(N) width, the test between models, vectorisation."""

from __future__ import annotations

import numpy as np
import pytest

from vlmkit.evaluation.bootstrap import (
    BleuStatistic,
    BootstrapSettings,
    FrechetStatistic,
    MeanStatistic,
    bootstrap_values,
    compare_to_best,
    confidence_intervals,
    point_value,
    resample_counts,
)
from vlmkit.evaluation.frechet import frechet_distance

SETTINGS = BootstrapSettings(resamples=1000, seed=0)


def _ids(n: int) -> list[str]:
    return [f"item{i}" for i in range(n)]


def test_ci_contains_the_point_estimate_and_is_deterministic() -> None:
    rng = np.random.default_rng(1)
    for values in (rng.uniform(size=96), (rng.uniform(size=96) < 0.03).astype(float), rng.normal(0.6, 0.2, 40)):
        stats = {"m": MeanStatistic(values)}
        low, high = confidence_intervals(stats, len(values), SETTINGS)["m"]
        assert low <= values.mean() <= high and low < high
        assert confidence_intervals(stats, len(values), SETTINGS)["m"] == (low, high)  # same seed, same CI
    stats = {"m": MeanStatistic(rng.uniform(size=96))}
    assert confidence_intervals(stats, 96, BootstrapSettings(1000, seed=1)) != confidence_intervals(stats, 96,
                                                                                                     SETTINGS)


def test_ci_width_shrinks_as_one_over_sqrt_n() -> None:
    rng = np.random.default_rng(2)
    widths = {}
    for n in (250, 1000):
        values = rng.uniform(size=n)
        low, high = confidence_intervals({"m": MeanStatistic(values)}, n, BootstrapSettings(2000, seed=0))["m"]
        widths[n] = high - low
        assert widths[n] == pytest.approx(2 * 1.96 * values.std() / np.sqrt(n), rel=0.15)  # the normal-theory width
    assert widths[250] / widths[1000] == pytest.approx(2.0, rel=0.2)


def test_resamples_are_one_seeded_index_matrix() -> None:
    """Counts @ columns equals the mean over an explicitly drawn index matrix (independent computation)."""
    rng = np.random.default_rng(3)
    values = rng.uniform(size=57)
    index = np.random.default_rng(5).integers(0, 57, size=(300, 57))
    expected = values[index].mean(axis=1)
    got = bootstrap_values({"m": MeanStatistic(values)}, 57, 300, seed=5)["m"]
    assert got == pytest.approx(expected, abs=1e-12)
    small_blocks = bootstrap_values({"m": MeanStatistic(values)}, 57, 300, seed=5, max_block_elements=100)["m"]
    assert small_blocks == pytest.approx(got, abs=1e-15)  # the block size does not change the stream
    counts = np.concatenate(list(resample_counts(57, 300, 5)))
    assert (counts.sum(axis=1) == 57).all()


def test_bleu_statistic_is_pycocoevalcaps_corpus_bleu_on_every_resample() -> None:
    from pycocoevalcap.bleu.bleu import Bleu

    from vlmkit.evaluation.coco_metrics import _bleu

    rng = np.random.default_rng(4)
    words = "a red black figure vase amphora kylix with herakles and the boar from attica c 500 bce".split()
    refs = {i: [" ".join(rng.choice(words, size=rng.integers(5, 12)))] for i in range(30)}
    hyps = {i: [" ".join(rng.choice(words, size=rng.integers(3, 12)))] for i in range(30)}
    score, _, counts = _bleu(refs, hyps)
    assert score == Bleu(4).compute_score(refs, hyps, verbose=0)[0]
    for order in (1, 2, 3, 4):
        assert point_value(BleuStatistic(counts, order), 30) == pytest.approx(score[order - 1], rel=1e-12)
    values = bootstrap_values({k: BleuStatistic(counts, k) for k in (1, 4)}, 30, 5, seed=9)
    index = np.random.default_rng(9).integers(0, 30, size=(5, 30))
    for b, rows in enumerate(index):  # the resample as a new corpus (duplicated items get new keys)
        resampled = Bleu(4).compute_score({j: refs[int(i)] for j, i in enumerate(rows)},
                                          {j: hyps[int(i)] for j, i in enumerate(rows)}, verbose=0)[0]
        assert values[1][b] == pytest.approx(resampled[0], rel=1e-9)
        assert values[4][b] == pytest.approx(resampled[3], rel=1e-9)


def test_frechet_weights_equal_repeated_rows_and_its_bootstrap() -> None:
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(40, 5)), rng.normal(0.2, 1.1, size=(40, 5))
    weights = np.bincount(rng.integers(0, 40, size=40), minlength=40)
    repeated = np.repeat(np.arange(40), weights)
    for eps in (0.0, 1e-6):
        assert frechet_distance(x, y, eps, weights) == pytest.approx(frechet_distance(x[repeated], y[repeated], eps),
                                                                     rel=1e-9)
    stat = FrechetStatistic(x, y, 1e-6)
    point = frechet_distance(x, y, 1e-6)
    low, high = confidence_intervals({"fid_score": stat}, 40, BootstrapSettings(1000, 0, fid_resamples=50))[
        "fid_score"]
    resampled = stat.from_weights(np.concatenate(list(resample_counts(40, 50, 0))))
    assert resampled.mean() > point  # a distance is biased upward under resampling: hence the normal interval
    half = 1.959964 * resampled.std(ddof=1)
    assert (low, high) == pytest.approx((max(point - half, 0.0), point + half), rel=1e-6)  # clipped at 0
    assert confidence_intervals({"fid_score": stat}, 40, SETTINGS) == {}  # without --fid_bootstrap: no CI


def test_a_model_against_itself_has_diff_zero_and_p_one() -> None:
    rng = np.random.default_rng(7)
    stats = {"m": MeanStatistic(rng.uniform(size=100))}
    result, shared = compare_to_best([("a", _ids(100), stats), ("copy", _ids(100), stats)], SETTINGS)
    assert len(shared) == 100
    for name in ("a", "copy"):
        assert result["m"][name].diff == 0.0 and result["m"][name].ci == (0.0, 0.0) and result["m"][name].p == 1.0
        assert result["m"][name].best  # level with the best


def test_a_clearly_better_model_is_significant_and_a_noisy_tie_is_not() -> None:
    rng = np.random.default_rng(8)
    base = rng.uniform(0.3, 0.7, size=100)
    better = {"m": MeanStatistic(base + 0.05 + rng.normal(0, 0.02, 100))}
    noise = rng.normal(0, 0.05, 100)
    # the noisy tie: the best model's values with zero-mean noise, 0.002 lower on average (SE of the diff ~0.005)
    same = {"m": MeanStatistic(better["m"].values + noise - noise.mean() - 0.002)}
    worse = {"m": MeanStatistic(base)}
    models = [("worse", _ids(100), worse), ("better", _ids(100), better), ("same", _ids(100), same)]
    result, _ = compare_to_best(models, SETTINGS)
    assert result["m"]["better"].best and result["m"]["better"].p == 1.0
    tie = result["m"]["same"]
    assert not tie.best and tie.diff == pytest.approx(-0.002, abs=1e-12)
    # independent paired bootstrap (same seeded index matrix): d_b per resample, two-sided p, percentile CI
    index = np.random.default_rng(SETTINGS.seed).integers(0, 100, size=(SETTINGS.resamples, 100))
    d_b = same["m"].values[index].mean(axis=1) - better["m"].values[index].mean(axis=1)
    p = (1 + np.count_nonzero(np.abs(d_b - tie.diff) >= abs(tie.diff))) / (SETTINGS.resamples + 1)
    assert tie.p == pytest.approx(p, abs=1e-12) and tie.p > 0.5  # not significant (two-sided; one-sided would halve it)
    assert tie.ci == pytest.approx(tuple(np.quantile(d_b, [0.025, 0.975])), abs=1e-12) and tie.ci[0] < 0 < tie.ci[1]
    worse_vs_best = result["m"]["worse"]
    assert worse_vs_best.p < 0.01 and worse_vs_best.ci[1] < 0 < -worse_vs_best.diff
    assert worse_vs_best.diff == pytest.approx(base.mean() - better["m"].values.mean())
    assert worse_vs_best.ci[0] <= worse_vs_best.diff <= worse_vs_best.ci[1]
    # lower is better for the Fréchet distance: the smaller value is the best
    fid = {"fid_score": MeanStatistic(np.full(100, 0.5))}
    result, _ = compare_to_best([("a", _ids(100), {"fid_score": MeanStatistic(np.full(100, 0.9))}),
                                 ("b", _ids(100), fid)], SETTINGS)
    assert result["fid_score"]["b"].best and result["fid_score"]["a"].diff == pytest.approx(0.4)


def test_significance_uses_only_the_shared_items() -> None:
    a = {"m": MeanStatistic(np.arange(10, dtype=float))}
    b = {"m": MeanStatistic(np.arange(10, dtype=float)[2:] + 1.0)}
    result, shared = compare_to_best([("a", _ids(10), a), ("b", _ids(10)[2:], b)], SETTINGS)
    assert shared == _ids(10)[2:]
    assert result["m"]["b"].best and result["m"]["a"].diff == pytest.approx(-1.0)
    assert result["m"]["a"].ci == pytest.approx((-1.0, -1.0))  # a constant paired difference
    assert compare_to_best([("a", _ids(10), a)], SETTINGS) == ({}, [])
    assert compare_to_best([("a", _ids(10), a), ("b", _ids(10), a)], BootstrapSettings(0)) == ({}, [])
