"""FID and KID between two image sets, from Inception pool3 features.

FID (Heusel et al. 2017, the TTUR paper) fits a Gaussian to each feature set and takes the
Fréchet distance between them. KID (Bińkowski et al. 2018, "Demystifying MMD GANs") is the
squared MMD under a cubic polynomial kernel, estimated without bias, so unlike FID its expected
value does not depend on the number of samples; it is averaged over random subsets. Features come
from `inception.InceptionFeatures`, the network both metrics are defined with.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from t2i_keras.metrics.inception import InceptionFeatures
from t2i_keras.utils.files import atomic_write_bytes, cache_dir


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """The mean [D] and covariance [D, D] (ddof=1, as TTUR) of features [N, D], in float64."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"expected features [N >= 2, D], got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (Dowson & Landau 1982).

    d² = |mu1 - mu2|² + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^½), as FID defines it.

    The trace of the square root needs no general matrix square root (TTUR's scipy sqrtm,
    which returns complex round-off and needs an epsilon on the diagonal when fewer than D+1
    samples make sigma singular). For any factor sigma1 = F Fᵀ, sigma1 sigma2 = F (Fᵀ sigma2)
    has the same nonzero eigenvalues as (Fᵀ sigma2) F = Fᵀ sigma2 F, which is symmetric positive
    semi-definite; so tr((sigma1 sigma2)^½) is the sum of the square roots of the eigenvalues
    of Fᵀ sigma2 F: exact for any PSD inputs, singular ones included. F is the Cholesky factor
    when sigma1 is positive definite (more samples than dimensions; then the cost is one
    `eigvalsh`, seconds at D = 2048 on 2 cores), else V Λ^½ from `eigh` (about twice that).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    dim = mu1.shape[0] if mu1.ndim == 1 else -1
    if mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise ValueError(
            f"expected means [D] and covariances [D, D] of one D, got {mu1.shape}, "
            f"{sigma1.shape}, {mu2.shape}, {sigma2.shape}"
        )
    try:
        factor = np.linalg.cholesky(sigma1)
    except np.linalg.LinAlgError:
        eigenvalues, eigenvectors = np.linalg.eigh(sigma1)
        factor = eigenvectors * np.sqrt(_drop_roundoff(eigenvalues))
    product = factor.T @ sigma2 @ factor
    # Symmetrized so that eigvalsh sees exactly the symmetric matrix the algebra promises.
    trace_sqrt = np.sqrt(_drop_roundoff(np.linalg.eigvalsh((product + product.T) / 2))).sum()
    mean_term = np.sum((mu1 - mu2) ** 2)
    return float(mean_term + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def frechet_distance_of_features(features1, features2) -> float:
    """FID between two feature sets [N1, D] and [N2, D]; the same value as `frechet_distance` of
    their statistics, computed faster when a set has fewer samples than dimensions.

    With A = (features - mean) / sqrt(N - 1), sigma = AᵀA, and the nonzero eigenvalues of
    sigma1 sigma2 = A1ᵀ (A1 A2ᵀ) A2 are those of M Mᵀ with M = A1 A2ᵀ [N1, N2]: so
    tr((sigma1 sigma2)^½) is the sum of M's singular values, an N1 x N2 problem instead of a
    D x D one (about 7 s at D = 2048 on 2 cores; the usual evaluation sizes here are far below).
    """
    features1 = np.asarray(features1, np.float64)
    features2 = np.asarray(features2, np.float64)
    mu1, sigma1 = feature_statistics(features1)
    mu2, sigma2 = feature_statistics(features2)
    if min(len(features1), len(features2)) > features1.shape[1]:
        return frechet_distance(mu1, sigma1, mu2, sigma2)
    a1 = (features1 - mu1) / np.sqrt(len(features1) - 1)
    a2 = (features2 - mu2) / np.sqrt(len(features2) - 1)
    trace_sqrt = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum()
    mean_term = np.sum((mu1 - mu2) ** 2)
    return float(mean_term + np.sum(a1**2) + np.sum(a2**2) - 2 * trace_sqrt)


def _drop_roundoff(eigenvalues: np.ndarray) -> np.ndarray:
    """Zeroes eigenvalues below D * eps * the largest: round-off, not variance.

    With fewer samples than dimensions the covariance is singular, and its null space comes
    back from `eigh` as eigenvalues of about ±1e-16; their square roots (1e-8 each, over
    hundreds of directions) would otherwise add visible error to the trace.
    """
    tolerance = len(eigenvalues) * np.finfo(np.float64).eps * max(eigenvalues.max(), 0.0)
    return np.where(eigenvalues > tolerance, eigenvalues, 0.0)


def kernel_inception_distance(
    features1,
    features2,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID: mean and standard deviation of the unbiased MMD² over random subsets.

    The kernel is k(x, y) = (x·y / D + 1)³ (Bińkowski et al. 2018). Each subset draws
    `subset_size` features from each set without replacement (fewer if a set is smaller); the
    defaults are torch-fidelity's and clean-fid's. The unbiased estimate can be slightly negative
    when the distributions match.

    Returns:
        (mean, std) over the subsets.
    """
    features1 = np.asarray(features1, np.float64)
    features2 = np.asarray(features2, np.float64)
    if features1.ndim != 2 or features2.ndim != 2 or features1.shape[1] != features2.shape[1]:
        raise ValueError(
            f"expected features [N, D] of one D, got {features1.shape} and {features2.shape}"
        )
    size = min(subset_size, len(features1), len(features2))
    if size < 2 or num_subsets < 1:
        raise ValueError(
            f"KID needs >= 2 features per set and >= 1 subset, got {size} and {num_subsets}"
        )
    dim = features1.shape[1]
    rng = np.random.default_rng(seed)
    estimates = []
    for _ in range(num_subsets):
        x = features1[rng.choice(len(features1), size, replace=False)]
        y = features2[rng.choice(len(features2), size, replace=False)]
        k_xx = (x @ x.T / dim + 1) ** 3
        k_yy = (y @ y.T / dim + 1) ** 3
        k_xy = (x @ y.T / dim + 1) ** 3
        # Within-set sums leave out the diagonal k(x_i, x_i): that is what removes the bias.
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (size * (size - 1))
        estimates.append(within - 2 * k_xy.mean())
    return float(np.mean(estimates)), float(np.std(estimates))


def feature_set_distances(
    real_features,
    generated_features,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """FID and KID between two feature sets [N, D].

    Returns:
        {"fid", "kid_mean", "kid_std", "num_real", "num_generated"}. FID's estimator is biased
        upwards at small N (Bińkowski et al. 2018), so report the counts with it and compare
        FIDs only at equal N.
    """
    kid_mean, kid_std = kernel_inception_distance(
        real_features, generated_features, kid_subsets, kid_subset_size, seed
    )
    return {
        "fid": frechet_distance_of_features(real_features, generated_features),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "num_real": len(real_features),
        "num_generated": len(generated_features),
    }


def image_set_distances(
    real_images: np.ndarray,
    generated_images: np.ndarray,
    features: InceptionFeatures | None = None,
    progress: bool = False,
    **kwargs,
) -> dict[str, float]:
    """FID and KID between two uint8 image sets [N, H, W, 3] (see `feature_set_distances`).

    Args:
        real_images, generated_images: uint8 [N, H, W, 3]; the sizes may differ (each is
            resized to 299x299 as the reference does).
        features: an `InceptionFeatures` to reuse; built with the default weights if None.
        progress: show a progress bar per set.
        **kwargs: `kid_subsets`, `kid_subset_size`, `seed` for `feature_set_distances`.
    """
    features = InceptionFeatures() if features is None else features
    return feature_set_distances(
        features(real_images, progress=progress),
        features(generated_images, progress=progress),
        **kwargs,
    )


class ReferenceStatistics(NamedTuple):
    """A reference set's features [N, D] (float32; KID needs them), their mu [D], sigma [D, D]."""

    mu: np.ndarray
    sigma: np.ndarray
    features: np.ndarray


def cached_reference_statistics(
    key: str, compute_fn: Callable[[], np.ndarray]
) -> ReferenceStatistics:
    """A reference set's statistics, computed by `compute_fn() -> features [N, D]` only once.

    Real-data features cost minutes of Inception time and never change, so they are stored in
    `cache_dir("fid_reference")/<key>.npz` (written atomically) and reused. The key must name
    everything they depend on, e.g. "flowers-test-64px".
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", key):
        raise ValueError(f"key must be letters, digits, '.', '_' or '-', got {key!r}")
    path = cache_dir("fid_reference") / f"{key}.npz"
    if not path.exists():
        features = np.asarray(compute_fn(), np.float32)
        mu, sigma = feature_statistics(features)
        buffer = io.BytesIO()
        np.savez(buffer, mu=mu, sigma=sigma, features=features)
        atomic_write_bytes(path, buffer.getvalue())
    with np.load(path) as stored:
        return ReferenceStatistics(stored["mu"], stored["sigma"], stored["features"])
