"""Hutchinson's stochastic estimate of the trace of a symmetric operator.

Public API
----------
hutchinson_trace(operator, n_probes=100, seed=0, block_size=16) -> TraceEstimate
    tr(A) ≈ (1/m) Σ_i z_iᵀ A z_i with m Rademacher probes z_i (entries ±1), reported with
    its standard error s / sqrt(m), s the sample standard deviation of the z_iᵀ A z_i.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from .lanczos import as_operator

logger = logging.getLogger(__name__)


@dataclass
class TraceEstimate:
    """A Hutchinson trace estimate with its uncertainty.

    Attributes
    ----------
    estimate : float
        Mean of the samples zᵀAz.
    standard_error : float
        Sample standard deviation (ddof = 1) divided by sqrt(n_probes); NaN for one probe.
    n_probes : int
        Number of Rademacher probes, which is also the number of products spent.
    seed : int
    samples : ndarray, shape (n_probes,)
        zᵀAz of every probe.
    """

    estimate: float
    standard_error: float
    n_probes: int
    seed: int
    samples: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        return {
            "estimate": self.estimate,
            "standard_error": None if math.isnan(self.standard_error) else self.standard_error,
            "n_probes": self.n_probes,
            "n_products": self.n_probes,
            "seed": self.seed,
        }


def hutchinson_trace(operator, n_probes: int = 100, seed: int = 0, block_size: int = 16) -> TraceEstimate:
    """Estimate tr(A) with Rademacher probes.

    .. math::

        \\operatorname{tr}(A) \\approx \\frac{1}{m} \\sum_{i=1}^{m} z_i^\\top A z_i,
        \\qquad z_i \\in \\{-1, +1\\}^P,

    unbiased, with variance 2 (‖A‖_F² − Σ A_jj²) / m for Rademacher probes.

    Parameters
    ----------
    operator : HessianVectorProduct, LinearOperator or array_like, shape (P, P)
    n_probes : int
        Number of probes m >= 1; costs m products.
    seed : int
        Seed of the probes.
    block_size : int
        Probes applied per batched product; only speed and memory depend on it.

    Raises
    ------
    NonFiniteError
        If a product contains NaN or ±inf; the message names the product number, which
        is the probe number.

    Examples
    --------
    >>> estimate = hutchinson_trace(np.diag([1.0, 2.0, 3.0]), n_probes=10)
    >>> estimate.estimate, estimate.standard_error
    (6.0, 0.0)
    """
    counting = as_operator(operator, "Hutchinson's trace estimator")
    n = counting.dimension
    if n_probes < 1:
        raise ValueError(f"n_probes must be at least 1, got {n_probes}")
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")

    rng = np.random.default_rng(seed)
    samples = np.empty(n_probes)
    for start in range(0, n_probes, block_size):
        count = min(block_size, n_probes - start)
        # One draw per probe, so the probes do not depend on block_size.
        probes = np.stack([rng.choice(np.array([-1.0, 1.0]), size=n) for _ in range(count)], axis=1)
        samples[start : start + count] = np.einsum("ij,ij->j", probes, counting.matmat(probes))

    estimate = float(np.mean(samples))
    standard_error = float(np.std(samples, ddof=1) / math.sqrt(n_probes)) if n_probes > 1 else math.nan
    logger.info("Hutchinson trace %.6g ± %.2g from %d probes", estimate, standard_error, n_probes)
    return TraceEstimate(estimate, standard_error, n_probes, seed, samples)
