"""Uncertainty of the reported numbers: paired bootstrap confidence intervals and significance between models.

A metric is a *statistic* of per-item columns: a mean over items (CLIP, semantic, R@k, lexical, CIDEr, ROUGE-L,
overall: one column), corpus BLEU (pycocoevalcap's formula over summed n-gram counts: ten columns), or the
Fréchet distance (not a function of column sums: recomputed per resample, only with `--fid_bootstrap`).

Vectorised resampling: B resamples of the N items are one matrix of counts W (B x N, how often each item is drawn
in each resample, from one seeded index matrix); every linear statistic of every model is then `W @ X` for the
stacked columns X (N x M), one matrix product, no Python loop per resample. The matrix is built in blocks of
rows (bounded memory for large N); the random stream, hence the result (up to float rounding in the matrix
product), does not depend on the block size.

- CI: the percentile interval of the B resampled values (95 % by default), items resampled with their pairs
  (generated and reference caption together); the retrieval pool and CIDEr's IDF stay those of the full set.
  The Fréchet distance gets the normal interval FD ± z·SE instead (SE = the standard deviation of its resampled
  values, the low end clipped at 0): a distance is biased upward under resampling (duplicated items add spread),
  so its whole percentile interval can lie above the estimate.
- Between models (one call): on the items all models share, the same W for every model (paired), the difference
  d = value(model) - value(best) per resample gives the CI of the difference, and the two-sided paired bootstrap
  p-value is p = (1 + #{b : |d_b - d| >= |d|}) / (B + 1) (the shifted-null test of Koehn 2004 and
  Berg-Kirkpatrick et al. 2012; a model against itself has d_b = d = 0 and p = 1).

Written by hand because no maintained library does this on pre-computed per-item scores of several metrics at
once (scipy.stats.bootstrap recomputes a Python statistic per resample and has no paired multi-model test;
sacrebleu's paired bootstrap is tied to its own BLEU/chrF/TER).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Protocol

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
ALPHA = 0.05
LEVEL = 0.95
MAX_BLOCK_ELEMENTS = 4_000_000  # counts per block of resamples (32 MB of float64)


class Statistic(Protocol):
    linear: bool  # True: a function of the weighted column sums (from_sums); False: from_weights per resample
    interval: str  # "percentile" or "normal"

    def subset(self, index: np.ndarray) -> Statistic: ...


@dataclass(frozen=True)
class MeanStatistic:
    """The mean of one per-item column."""

    values: np.ndarray
    linear = True
    interval = "percentile"

    @property
    def columns(self) -> np.ndarray:
        return np.asarray(self.values, dtype=np.float64)[:, None]

    def from_sums(self, sums: np.ndarray, total: float) -> np.ndarray:
        return sums[:, 0] / total

    def subset(self, index: np.ndarray) -> MeanStatistic:
        return MeanStatistic(np.asarray(self.values)[index])


@dataclass(frozen=True)
class BleuStatistic:
    """pycocoevalcap's corpus BLEU-n ("closest" reference length) from per-item counts.

    columns: testlen, reflen, guess_1..4, correct_1..4 (as pycocoevalcap's BleuScorer cooks them). The formula
    below is BleuScorer.compute_score's corpus part, vectorised over resamples (pinned to it in the tests).
    """

    counts: np.ndarray  # (n, 10)
    order: int  # n of BLEU-n
    linear = True
    interval = "percentile"

    @property
    def columns(self) -> np.ndarray:
        return np.asarray(self.counts, dtype=np.float64)

    def from_sums(self, sums: np.ndarray, total: float) -> np.ndarray:
        small, tiny = 1e-9, 1e-15  # pycocoevalcap's smoothing constants
        testlen, reflen = sums[:, 0], sums[:, 1]
        guess, correct = sums[:, 2:6], sums[:, 6:10]
        precision = np.cumprod((correct + tiny) / (guess + small), axis=1)[:, self.order - 1]
        bleu = precision ** (1.0 / self.order)
        ratio = (testlen + tiny) / (reflen + small)
        with np.errstate(divide="ignore"):
            penalty = np.where(ratio < 1, np.exp(1 - 1 / np.where(ratio < 1, ratio, 1.0)), 1.0)
        return bleu * penalty

    def subset(self, index: np.ndarray) -> BleuStatistic:
        return BleuStatistic(np.asarray(self.counts)[index], self.order)


@dataclass(frozen=True)
class FrechetStatistic:
    """The Fréchet distance of paired embedding rows; recomputes both covariances for every resample."""

    generated: np.ndarray
    reference: np.ndarray
    eps: float
    linear = False
    interval = "normal"

    def from_weights(self, weights: np.ndarray) -> np.ndarray:
        from vlmkit.evaluation.frechet import frechet_distance

        return np.array([frechet_distance(self.generated, self.reference, self.eps, w.astype(np.int64))
                         for w in weights])

    def subset(self, index: np.ndarray) -> FrechetStatistic:
        return FrechetStatistic(self.generated[index], self.reference[index], self.eps)


@dataclass(frozen=True)
class BootstrapSettings:
    resamples: int = DEFAULT_RESAMPLES  # 0: no CIs, no significance
    seed: int = DEFAULT_SEED
    fid_resamples: int = 0  # the Fréchet distance is bootstrapped only when > 0 (it recomputes covariances)
    level: float = LEVEL

    def method(self, kind: str = "mean") -> str:
        """The `ci:` field of a metric signature."""
        if kind == "fid":
            if not self.fid_resamples:
                return "none(--fid_bootstrap 0)"
            return f"paired-bootstrap-normal{self.level:.0%}-B{self.fid_resamples}-seed{self.seed}"
        if not self.resamples:
            return "none(--bootstrap 0)"
        return f"paired-bootstrap-percentile{self.level:.0%}-B{self.resamples}-seed{self.seed}"


def resample_counts(n: int, resamples: int, seed: int,
                    max_block_elements: int = MAX_BLOCK_ELEMENTS) -> Iterator[np.ndarray]:
    """Blocks of the (resamples x n) matrix of draw counts, from one seeded (resamples x n) index matrix."""
    rng = np.random.default_rng(seed)
    rows = max(1, max_block_elements // max(n, 1))
    for start in range(0, resamples, rows):
        b = min(rows, resamples - start)
        index = rng.integers(0, n, size=(b, n))
        flat = (index + (np.arange(b, dtype=np.int64) * n)[:, None]).ravel()
        yield np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)


def bootstrap_values(statistics: Mapping[object, Statistic], n: int, resamples: int, seed: int,
                     max_block_elements: int = MAX_BLOCK_ELEMENTS) -> dict[object, np.ndarray]:
    """The `resamples` bootstrap values of every statistic (all over the same n items, the same resamples)."""
    out: dict[object, np.ndarray] = {}
    linear = {key: s for key, s in statistics.items() if s.linear}
    if linear and resamples:
        blocks = [s.columns for s in linear.values()]
        stacked = np.concatenate(blocks, axis=1)
        sums = np.concatenate([w @ stacked for w in resample_counts(n, resamples, seed, max_block_elements)])
        start = 0
        for (key, s), block in zip(linear.items(), blocks, strict=True):
            out[key] = s.from_sums(sums[:, start:start + block.shape[1]], float(n))
            start += block.shape[1]
    for key, s in statistics.items():
        if not s.linear and resamples:
            out[key] = np.concatenate([s.from_weights(w) for w in resample_counts(n, resamples, seed,
                                                                                   max_block_elements)])
    return out


def point_value(statistic: Statistic, n: int) -> float:
    if statistic.linear:
        return float(statistic.from_sums(np.ones((1, n)) @ statistic.columns, float(n))[0])
    return float(statistic.from_weights(np.ones((1, n)))[0])


def mean_intervals(columns: np.ndarray, resamples: int, seed: int,
                   level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap CIs of the mean of each column of an (n items x k) matrix, all over the same seeded
    resamples (`resample_counts`): the one resampler behind compare, retrieval eval and the VQA benchmarks."""
    columns = np.asarray(columns, dtype=np.float64).reshape(len(columns), -1)
    n = len(columns)
    means = np.concatenate([w @ columns for w in resample_counts(n, resamples, seed)]) / n
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail], axis=0)
    return low, high


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)


def normal_interval(values: np.ndarray, point: float, level: float = LEVEL) -> tuple[float, float]:
    """point ± z·SE with the bootstrap standard error; the low end clipped at 0 (for a distance)."""
    half = NormalDist().inv_cdf(0.5 + level / 2.0) * float(np.std(values, ddof=1))
    return max(point - half, 0.0), point + half


def confidence_intervals(statistics: Mapping[str, Statistic], n: int,
                         settings: BootstrapSettings) -> dict[str, tuple[float, float]]:
    """{metric: (low, high)} for one model's statistics over its n items."""
    linear = {m: s for m, s in statistics.items() if s.linear}
    values = bootstrap_values(linear, n, settings.resamples, settings.seed)
    other = {m: s for m, s in statistics.items() if not s.linear}
    if other and settings.fid_resamples:
        values.update(bootstrap_values(other, n, settings.fid_resamples, settings.seed))
    return {m: normal_interval(v, point_value(statistics[m], n), settings.level)
            if statistics[m].interval == "normal" else percentile_interval(v, settings.level)
            for m, v in values.items()}


@dataclass(frozen=True)
class Comparison:
    diff: float
    ci: tuple[float, float]
    p: float
    best: bool = False

    def to_json(self) -> dict:
        out = {"diff": self.diff, "ci": list(self.ci), "p": self.p}
        if self.best:
            out["best"] = True
        return out


def compare_to_best(models: Sequence[tuple[str, Sequence[str], Mapping[str, Statistic]]],
                    settings: BootstrapSettings, lower_is_better: frozenset[str] | None = None,
                    ) -> tuple[dict[str, dict[str, Comparison]], list[str]]:
    """Per metric, each model against the best one on the items all models share.

    models: (name, item ids, {metric: statistic over those ids}), in ranking order (the first of several equally
    good models is the reference). Returns ({metric: {model: Comparison}}, shared ids). A metric is compared only
    when every model has a statistic for it; models level with the best are marked best too. `lower_is_better`:
    the metrics where the smallest value is best (default: the caption metric registry's).
    """
    if lower_is_better is None:
        from vlmkit.evaluation.metrics import lower_is_better as registry_lower

        lower_is_better = registry_lower()
    if len(models) < 2 or not settings.resamples:
        return {}, []
    id_sets = [set(ids) for _, ids, _ in models]
    shared = [i for i in models[0][1] if all(i in s for s in id_sets[1:])]
    if len(shared) < 2:
        return {}, shared
    metrics = [m for m in models[0][2] if all(m in stats for _, _, stats in models)]
    subsets: dict[tuple[str, str], Statistic] = {}
    for name, ids, stats in models:
        position = {item: i for i, item in enumerate(ids)}
        index = np.fromiter((position[i] for i in shared), dtype=np.int64, count=len(shared))
        for metric in metrics:
            subsets[(name, metric)] = stats[metric].subset(index)
    n = len(shared)
    values = bootstrap_values({k: s for k, s in subsets.items() if s.linear}, n, settings.resamples, settings.seed)
    if settings.fid_resamples:
        values.update(bootstrap_values({k: s for k, s in subsets.items() if not s.linear}, n,
                                       settings.fid_resamples, settings.seed))
    out: dict[str, dict[str, Comparison]] = {}
    for metric in metrics:
        names = [name for name, _, _ in models]
        if any((name, metric) not in values for name in names):
            continue  # e.g. the Fréchet distance without --fid_bootstrap
        points = {name: point_value(subsets[(name, metric)], n) for name in names}
        sign = -1.0 if metric in lower_is_better else 1.0
        best = max(names, key=lambda name: sign * points[name])  # the reference: first of equals (given order)
        out[metric] = {}
        for name in names:
            d = points[name] - points[best]
            d_b = values[(name, metric)] - values[(best, metric)]
            p = (1.0 + np.count_nonzero(np.abs(d_b - d) >= abs(d))) / (len(d_b) + 1.0)
            out[metric][name] = Comparison(float(d), percentile_interval(d_b, settings.level), float(p),
                                           best=d == 0.0)  # every model level with the best is a best one
    return out, shared
