"""Fréchet distance between two sets of embeddings (VaseVQA-3D's `fid_score`, on sentence embeddings).

FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).

pytorch-fid computes the last term with `scipy.linalg.sqrtm(S1 @ S2)`, a non-symmetric product whose
square root can come back complex or inaccurate for the rank-deficient covariances that small samples
give. Here it is computed in float64 from symmetric matrices only: (S1 S2)^(1/2) is similar to
(S1^(1/2) S2 S1^(1/2))^(1/2), which is symmetric positive semi-definite, so its trace is the sum of the
square roots of the eigenvalues of M = S1^(1/2) S2 S1^(1/2), obtained with `eigh`. Tiny negative
eigenvalues from rounding are clipped to 0, and so is the final distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FrechetResult:
    value: float | None
    n_generated: int
    n_reference: int
    dim: int
    warning: str | None = None
    reason: str | None = None  # why value is None


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """FD between the Gaussians fitted to the rows of `x` and of `y` (unbiased covariances, as pytorch-fid)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mu_x, mu_y = x.mean(axis=0), y.mean(axis=0)
    cov_x = np.atleast_2d(np.cov(x, rowvar=False))
    cov_y = np.atleast_2d(np.cov(y, rowvar=False))
    sqrt_cov_x = _sqrt_psd(cov_x)
    middle = sqrt_cov_x @ cov_y @ sqrt_cov_x
    middle = (middle + middle.T) / 2.0  # symmetric up to rounding; make it exactly so for eigh
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0.0, None)).sum()
    diff = mu_x - mu_y
    value = float(diff @ diff + np.trace(cov_x) + np.trace(cov_y) - 2.0 * tr_covmean)
    return max(value, 0.0)


def frechet_result(generated: np.ndarray, reference: np.ndarray) -> FrechetResult:
    """FD with its sample sizes, and a warning when the estimate is known to be unreliable."""
    n_gen, n_ref = len(generated), len(reference)
    dim = int(generated.shape[1]) if generated.ndim == 2 else 0
    if min(n_gen, n_ref) < 2:
        reason = f"needs at least 2 items per side, got {min(n_gen, n_ref)}"
        return FrechetResult(None, n_gen, n_ref, dim, reason=reason)
    warning = None
    if min(n_gen, n_ref) <= dim:
        warning = (f"n={min(n_gen, n_ref)} <= embedding dim {dim}: the covariances are rank-deficient and FD is "
                   f"biased upward at small n; compare FD only between runs with the same n")
    return FrechetResult(frechet_distance(generated, reference), n_gen, n_ref, dim, warning)
