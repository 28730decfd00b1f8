"""The statistics the judge metrics' bootstrap CIs and significance tests are drawn from (the `Statistic` protocol of
vlmkit.evaluation.bootstrap: linear in per-item columns, so every resample is one matrix product)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MaskedMeanStatistic:
    """The mean over the items whose value exists (NaN = an unparseable judge answer, left out, not 0)."""

    values: np.ndarray
    linear = True
    interval = "percentile"

    @property
    def columns(self) -> np.ndarray:
        values = np.asarray(self.values, dtype=np.float64)
        ok = np.isfinite(values)
        return np.column_stack([np.where(ok, values, 0.0), ok.astype(np.float64)])

    def from_sums(self, sums: np.ndarray, total: float) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return sums[:, 0] / sums[:, 1]

    def subset(self, index: np.ndarray) -> MaskedMeanStatistic:
        return MaskedMeanStatistic(np.asarray(self.values)[index])


@dataclass(frozen=True)
class F1Statistic:
    """Micro F1 = 2TP / (2TP + FP + FN) from per-item (TP, FP, FN) columns."""

    counts: np.ndarray  # (n, 3)
    linear = True
    interval = "percentile"

    @property
    def columns(self) -> np.ndarray:
        return np.asarray(self.counts, dtype=np.float64)

    def from_sums(self, sums: np.ndarray, total: float) -> np.ndarray:
        tp, fp, fn = sums[:, 0], sums[:, 1], sums[:, 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            return 2 * tp / (2 * tp + fp + fn)

    def subset(self, index: np.ndarray) -> F1Statistic:
        return F1Statistic(np.asarray(self.counts)[index])
