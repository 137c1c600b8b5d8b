"""Memory estimates, block planning and the budget check of the dense Hessian methods."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hessian_core.memory import (
    GIB,
    TENSORFLOW_WORKSPACE_BYTES,
    MemoryBudgetError,
    budget_bytes,
    dense_matrix_bytes,
    eigh_memory_bytes,
    plan_blocks,
    structured_block_bytes,
)

REPOSITORY = Path(__file__).resolve().parents[1]


def test_dense_and_eigh_bytes():
    assert dense_matrix_bytes(5301) == 8 * 5301**2
    assert dense_matrix_bytes(5301, count=3) == 3 * 8 * 5301**2
    assert eigh_memory_bytes(5301) == 4 * 8 * 5301**2


def test_budget_bytes_rejects_non_positive():
    assert budget_bytes(2.0) == 2 * GIB
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive number of GiB"):
            budget_bytes(bad)


def test_structured_estimate_grows_with_block_and_points():
    widths = (2, 50, 50, 50, 1)
    small = structured_block_bytes(widths, 1000, 1000, 8, 8)
    assert structured_block_bytes(widths, 1000, 1000, 16, 8) > small
    assert structured_block_bytes(widths, 2000, 1000, 8, 8) > small
    assert structured_block_bytes(widths, 1000, 1000, 8, 4) < small


def test_plan_rejects_dense_results_over_budget():
    dense = dense_matrix_bytes(5301, 3)
    with pytest.raises(MemoryBudgetError) as caught:
        plan_blocks("the test Hessian", lambda k, chunk: 0, 5301, 1000, dense, GIB // 2)
    error = caught.value
    assert error.needed_bytes == dense + TENSORFLOW_WORKSPACE_BYTES
    assert error.budget_bytes == GIB // 2
    assert f"{dense + TENSORFLOW_WORKSPACE_BYTES:,} bytes" in str(error)
    assert "matrix-free" in str(error)


def test_plan_block_size_follows_budget():
    def block_bytes(k, chunk):
        return k * chunk * 1000

    plans = [plan_blocks("test", block_bytes, 5000, 2000, 0, budget) for budget in (GIB // 2, GIB, 2 * GIB)]
    sizes = [plan.block_size for plan in plans]
    assert sizes == sorted(sizes)
    for plan in plans:
        assert plan.total_bytes <= plan.budget_bytes
        assert 1 <= plan.block_size <= 256


def test_plan_shrinks_point_chunk_before_tiny_blocks():
    def block_bytes(k, chunk):
        return k * chunk * 200_000

    plan = plan_blocks("test", block_bytes, 5000, 2000, 0, TENSORFLOW_WORKSPACE_BYTES + 8 * 1000 * 200_000)
    assert plan.chunk_points < 2000
    assert plan.block_size >= 8


def test_plan_rejects_when_one_column_cannot_fit():
    with pytest.raises(MemoryBudgetError, match="one column per block"):
        plan_blocks("test", lambda k, chunk: 10 * GIB, 100, 100, 0, GIB)


# Runs in a fresh interpreter: the peak resident memory (ru_maxrss, KiB on Linux) after the
# Hessian, minus the peak after the imports, must stay within the budget.
MEASURE_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    import tensorflow as tf
    from hessian_core.hessian_methods import compute_hessian
    from hessian_core.loss import PoissonLoss
    from hessian_core.network import glorot_uniform_theta
    from hessian_core.settings import Settings

    def peak_bytes():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    baseline = peak_bytes()
    budget_gib = float(sys.argv[1])
    settings = Settings(width=20, n_interior=600, n_boundary=600)
    loss = PoissonLoss.from_settings(settings)
    theta = glorot_uniform_theta(loss.layout, 0)
    result = compute_hessian(loss, theta, memory_budget_gib=budget_gib)
    print(json.dumps({
        "baseline": baseline,
        "peak": peak_bytes(),
        "block_size": result.record.block_size,
        "estimate": result.record.memory_estimate_bytes,
    }))
    """
)


def test_default_method_peak_memory_within_budget():
    budget_gib = 0.3
    completed = subprocess.run(
        [sys.executable, "-c", MEASURE_SCRIPT, str(budget_gib)],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    used = figures["peak"] - figures["baseline"]
    assert figures["estimate"] <= budget_gib * GIB
    assert used <= budget_gib * GIB, f"peak {used / 2**20:.0f} MiB above the baseline, block {figures['block_size']}"
