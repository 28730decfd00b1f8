"""Fréchet distance between two sets of embeddings (VaseVQA-3D's `fid_score`, on sentence embeddings).

FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).

pytorch-fid and [VaseVQA-3D] compute the last term with `scipy.linalg.sqrtm(S1 @ S2)`, a non-symmetric product
whose square root can come back complex or inaccurate for the rank-deficient covariances that small samples
give. Here it is computed in float64 from symmetric matrices only: (S1 S2)^(1/2) is similar to
(S1^(1/2) S2 S1^(1/2))^(1/2), which is symmetric positive semi-definite, so its trace is the sum of the
square roots of the eigenvalues of M = S1^(1/2) S2 S1^(1/2), obtained with `eigh`. Tiny negative
eigenvalues from rounding are clipped to 0, and so is the final distance. The result agrees with the sqrtm
formulation wherever that one is accurate (pinned to 1e-6 in the tests, with and without `eps`).

`eps` adds eps·I to both covariances ([VaseVQA-3D] uses 1e-6); `weights` are integer frequency weights of the
rows (a bootstrap resample's counts: the same as repeating the rows, without building the repeated matrix).
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
    eps: float = 0.0
    normalised: bool = True


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def _factor(x: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The mean and a factor A with A^T A = the unbiased (frequency-weighted) covariance, as np.cov computes it."""
    w = np.ones(len(x)) if weights is None else weights.astype(np.float64)
    mean = (w @ x) / w.sum()
    return mean, (x - mean) * np.sqrt(w / (w.sum() - 1.0))[:, None]


def frechet_distance(x: np.ndarray, y: np.ndarray, eps: float = 0.0, weights: np.ndarray | None = None) -> float:
    """FD between the Gaussians fitted to the rows of `x` and of `y` (unbiased covariances, as pytorch-fid).

    `weights` (optional, one integer per row, shared by x and y: paired rows) are frequency weights.

    With fewer rows than dimensions (96 objects, 768-dim embeddings) the work is done in the subspace V spanned by
    the centred rows of both sets (an orthonormal basis from a QR): both covariances map V into itself and are
    eps·I on its complement, where the complement's share of tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)) is
    eps + eps - 2·eps = 0. The result is exactly that of the full d x d computation, at the cost of an r x r one
    (r <= 2n), which is what makes `--fid_bootstrap` affordable.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if weights is not None:
        weights = np.asarray(weights, dtype=np.int64)
        keep = weights > 0
        x, y, weights = x[keep], y[keep], weights[keep]
    mu_x, a = _factor(x, weights)
    mu_y, b = _factor(y, weights)
    if len(a) + len(b) < a.shape[1]:
        basis, _ = np.linalg.qr(np.concatenate([a, b]).T)  # d x r, orthonormal columns spanning both row spaces
        a, b = a @ basis, b @ basis
    cov_x = a.T @ a + eps * np.eye(a.shape[1])
    cov_y = b.T @ b + eps * np.eye(b.shape[1])
    sqrt_cov_x = _sqrt_psd(cov_x)
    middle = sqrt_cov_x @ cov_y @ sqrt_cov_x
    middle = (middle + middle.T) / 2.0  # symmetric up to rounding; make it exactly so for eigh
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0.0, None)).sum()
    diff = mu_x - mu_y
    value = float(diff @ diff + np.trace(cov_x) + np.trace(cov_y) - 2.0 * tr_covmean)
    return max(value, 0.0)


def frechet_result(generated: np.ndarray, reference: np.ndarray, eps: float = 0.0,
                   normalised: bool = True) -> FrechetResult:
    """FD with its sample sizes, and a warning when the estimate is known to be unreliable."""
    n_gen, n_ref = len(generated), len(reference)
    dim = int(generated.shape[1]) if generated.ndim == 2 else 0
    if min(n_gen, n_ref) < 2:
        reason = f"needs at least 2 items per side, got {min(n_gen, n_ref)}"
        return FrechetResult(None, n_gen, n_ref, dim, reason=reason, eps=eps, normalised=normalised)
    warning = None
    if min(n_gen, n_ref) <= dim:
        warning = (f"n={min(n_gen, n_ref)} <= embedding dim {dim}: the covariances are rank-deficient and FD is "
                   f"biased upward at small n; compare FD only between runs with the same n")
    return FrechetResult(frechet_distance(generated, reference, eps), n_gen, n_ref, dim, warning, eps=eps,
                         normalised=normalised)
