"""Memory estimates of the dense Hessian, the dense eigendecomposition and the landscape grid.

Each configuration runs in a fresh interpreter. After the imports it records its resident
memory (VmRSS) as the baseline, then the step runs and the peak (VmHWM) is read. The peak
is reset through /proc/self/clear_refs just before the step, so a transient peak of the
imports, or of building the test matrix, does not count. Where the kernel rejects the
reset, the peak since the start of the process is used instead, which can only raise the
measured growth. The library's estimate may not fall below the growth by more than MARGIN.

The sizes keep each subprocess to seconds, most of them TensorFlow's import, while the
growth stays between 40 and 200 MiB.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hessian_core.memory import GIB, STRUCTURED_MAX_BLOCK_SIZE, MemoryBudgetError
from hessian_core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
# The growth of one configuration varied between runs by up to a quarter where TensorFlow
# runs (130 and 165 MiB for one Hessian, 102 to 142 MiB for one grid), and by 0.1 % for
# the eigendecomposition. So each estimate must cover the high runs by itself. The margin
# only absorbs memory that no estimate models, such as freed blocks that glibc keeps and
# kernel code paged in on first use.
MARGIN = 0.10
MEBIBYTE = 1024**2

MEASURE = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np

    request = json.loads(sys.argv[1])
    kind, budget = request["kind"], request["budget_gib"]
    # Only the eigendecomposition runs without TensorFlow, which takes seconds to import.
    if kind in ("hessian", "surface"):
        import tensorflow as tf
        from hessian_core.hessian_methods import compute_hessian
        from hessian_core.landscape import estimate_surface_bytes, surface
        from hessian_core.loss import PoissonLoss
        from hessian_core.network import glorot_uniform_theta
        from hessian_core.settings import Settings
    from hessian_core.spectrum import check_eigh_memory, dense_spectrum


    def status_bytes(key):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError(key + " is missing from /proc/self/status")


    def reset_peak():
        # Writing 5 sets VmHWM to the current VmRSS (Linux 4.0 and later).
        try:
            with open("/proc/self/clear_refs", "w") as clear_refs:
                clear_refs.write("5")
            return True
        except OSError:
            return False


    baseline = status_bytes("VmRSS")

    if kind == "hessian":
        reset = reset_peak()
        settings = Settings(**request["settings"])
        loss = PoissonLoss.from_settings(settings)
        theta = glorot_uniform_theta(loss.layout, 0)
        result = compute_hessian(loss, theta, memory_budget_gib=budget)
        figures = {"estimate": result.record.memory_estimate_bytes, "block_size": result.record.block_size,
                   "chunk_points": result.record.chunk_points}
    elif kind == "eigh":
        # A few large, well separated eigenvalues and one negative one over a random bulk in
        # [-1, 1], so the Lanczos step for the eigenvectors converges quickly.
        n = request["n"]
        generator = np.random.default_rng(0)
        matrix = generator.standard_normal((n, n)) / np.sqrt(n)
        matrix = (matrix + matrix.T) / 2
        matrix[np.arange(30), np.arange(30)] += 1000 * 0.85 ** np.arange(30)
        matrix[-1, -1] -= 50.0
        # The estimate counts the matrix, so the growth does too, but not the temporaries above.
        reset = reset_peak()
        estimate = check_eigh_memory(n, budget)
        dense_spectrum(matrix, top_k=20, bottom_k=1, memory_budget_gib=budget)
        figures = {"estimate": estimate}
    elif kind == "surface":
        reset = reset_peak()
        settings = Settings(**request["settings"])
        loss = PoissonLoss.from_settings(settings)
        theta = glorot_uniform_theta(loss.layout, 0)
        generator = np.random.default_rng(1)
        direction_x, direction_y = generator.standard_normal((2, loss.n_params))
        points = request["points"]
        estimate = estimate_surface_bytes(loss, points, budget)
        result = surface(loss, theta, direction_x, direction_y, 1.0, points, memory_budget_gib=budget)
        figures = {"estimate": estimate, "batch_size": result.batch_size}
    else:
        raise ValueError(kind)

    peak = status_bytes("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"growth": peak - baseline, "peak_was_reset": reset, **figures}))
    """
)


def measure(request: dict) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", MEASURE, json.dumps(request)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def describe(figures: dict) -> str:
    return ", ".join(
        f"{name} {value / MEBIBYTE:.1f} MiB" if name in ("growth", "estimate") else f"{name} {value}"
        for name, value in figures.items()
    )


# (settings, budget in GiB, whether the plan must split the points into chunks). One
# hidden layer of 40 with 2,000 + 500 points gets a full block of 16 columns over all
# points at 1 GiB and 8 columns over chunks of 250 points at 0.22 GiB. Two layers of 20
# (P = 501) get 11 columns over all points at 0.3 GiB.
HESSIAN_CASES = [
    ({"hidden_layers": 1, "width": 40, "n_interior": 2000, "n_boundary": 500}, 1.0, False),
    ({"hidden_layers": 1, "width": 40, "n_interior": 2000, "n_boundary": 500}, 0.22, True),
    ({"hidden_layers": 2, "width": 20, "n_interior": 1000, "n_boundary": 500}, 0.3, False),
]


@pytest.mark.parametrize("values, budget_gib, chunked", HESSIAN_CASES)
def test_hessian_estimate_bounds_measured_peak(values, budget_gib, chunked):
    figures = measure({"kind": "hessian", "settings": values, "budget_gib": budget_gib})
    assert (figures["chunk_points"] is not None) == chunked, describe(figures)
    if chunked:
        assert figures["block_size"] < STRUCTURED_MAX_BLOCK_SIZE, describe(figures)
    assert figures["growth"] > 40 * MEBIBYTE, describe(figures)
    assert figures["estimate"] >= (1 - MARGIN) * figures["growth"], describe(figures)
    assert figures["estimate"] <= budget_gib * GIB, describe(figures)


@pytest.mark.parametrize("n", [1500, 2500])
def test_eigh_estimate_bounds_measured_peak(n):
    figures = measure({"kind": "eigh", "n": n, "budget_gib": 2.0})
    # At least the matrix itself: 17 and 48 MiB.
    assert figures["growth"] > 8 * n * n, describe(figures)
    assert figures["estimate"] >= (1 - MARGIN) * figures["growth"], describe(figures)


# Two hidden layers of 40 with 1,000 + 500 points: about 14 MB per loss evaluation in the
# batch. Half of the budget of 0.25 GiB goes to the batches, which hold 9 evaluations.
SURFACE_SETTINGS = {"hidden_layers": 2, "width": 40, "n_interior": 1000, "n_boundary": 500}


@pytest.mark.parametrize("points", [9, 25])
def test_surface_estimate_bounds_measured_peak(points):
    figures = measure({"kind": "surface", "settings": SURFACE_SETTINGS, "points": points, "budget_gib": 0.25})
    assert figures["batch_size"] > 1, describe(figures)
    assert figures["growth"] > 40 * MEBIBYTE, describe(figures)
    assert figures["estimate"] >= (1 - MARGIN) * figures["growth"], describe(figures)
    assert figures["estimate"] <= 0.25 * GIB, describe(figures)


def test_surface_estimate_at_lowest_budget():
    """At the lowest budget, 64 MiB, a grid over budget is rejected with a coarser one that fits."""
    from hessian_core.landscape import estimate_surface_bytes
    from hessian_core.loss import PoissonLoss

    # 27 MB per loss evaluation, so a 401 × 401 grid (6.4 MB) no longer fits beside one.
    loss = PoissonLoss.from_settings(Settings(hidden_layers=2, width=40, n_interior=2000, n_boundary=600))
    budget_gib = 0.0625
    with pytest.raises(MemoryBudgetError) as caught:
        estimate_surface_bytes(loss, 401, budget_gib)
    assert caught.value.field == "memory_budget_gib"
    match = re.search(r"use a coarser grid of at most (\d+) points per axis", str(caught.value))
    assert match is not None, str(caught.value)
    coarser = int(match.group(1))
    assert 3 <= coarser < 401
    assert estimate_surface_bytes(loss, coarser, budget_gib) <= budget_gib * GIB
    with pytest.raises(MemoryBudgetError):
        estimate_surface_bytes(loss, coarser + 1, budget_gib)
