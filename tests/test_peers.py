"""The peer benchmark's JAX and PyTorch Hessians, its block clock and its memory cap.

The JAX and PyTorch tests skip when those optional packages (requirements-bench.txt) are
missing; the others need only NumPy and TensorFlow.
"""

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

PEERS = Path(__file__).resolve().parents[1] / "benchmarks" / "peers"
sys.path.insert(0, str(PEERS))

from common import BlockClock, StopSampling, fill_by_blocks, load_problem  # noqa: E402
from problem_export import export_problem  # noqa: E402
from run import GIB, run_worker  # noqa: E402

RELATIVE_TOLERANCE = 1e-12  # float64


@pytest.fixture(scope="module")
def problem_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("peers") / "problem.npz"
    return export_problem(width=4, path=path, seed=3, n_interior=24, n_boundary=12)


@pytest.fixture(scope="module")
def reference_hessian(problem_path):
    """The Hessian of the project's own loss by a plain TensorFlow Jacobian of the gradient."""
    from tf_entries import make_loss

    problem = load_problem(problem_path, "float64")
    loss = make_loss(problem)
    theta = tf.constant(problem.theta)
    with tf.GradientTape() as outer:
        outer.watch(theta)
        with tf.GradientTape() as inner:
            inner.watch(theta)
            value = loss(theta)
        gradient = inner.gradient(value, theta)
    return outer.jacobian(gradient, theta).numpy()


def relative_difference(matrix, reference):
    return np.abs(np.asarray(matrix, dtype=np.float64) - reference).max() / np.abs(reference).max()


@pytest.mark.parametrize("entry", ["jax-hessian", "jax-hvp-blocked"])
def test_jax_entries_match_tensorflow(entry, problem_path, reference_hessian):
    pytest.importorskip("jax")
    import jax_hessian

    problem = load_problem(problem_path, "float64")
    matrix = jax_hessian.ENTRIES[entry](problem)(None)
    assert matrix.shape == reference_hessian.shape
    assert matrix.dtype == np.float64
    assert relative_difference(matrix, reference_hessian) <= RELATIVE_TOLERANCE


@pytest.mark.parametrize("entry", ["torch-hessian", "torch-hvp-blocked", "torch-vjp-blocked"])
def test_torch_entries_match_tensorflow(entry, problem_path, reference_hessian):
    pytest.importorskip("torch")
    import torch_hessian

    problem = load_problem(problem_path, "float64")
    matrix = torch_hessian.ENTRIES[entry](problem)(None)
    assert matrix.shape == reference_hessian.shape
    assert matrix.dtype == np.float64
    assert relative_difference(matrix, reference_hessian) <= RELATIVE_TOLERANCE


def test_blocked_jax_small_block_overlaps(problem_path, reference_hessian):
    # 7 does not divide P = 57, so the last block starts at P - 7 and overlaps the one before.
    pytest.importorskip("jax")
    import jax_hessian

    problem = load_problem(problem_path, "float64")
    assert problem.n_params % 7 != 0
    matrix = jax_hessian.make_blocked(problem, block_size=7)(None)
    assert relative_difference(matrix, reference_hessian) <= RELATIVE_TOLERANCE


def test_fill_by_blocks_covers_every_row():
    n_params = 10
    matrix = np.arange(n_params * n_params, dtype=float).reshape(n_params, n_params)
    requested = []

    def rows(indices):
        requested.append(indices.copy())
        return matrix[indices]

    out = fill_by_blocks(rows, n_params, 4, None, np.empty_like(matrix))
    assert np.array_equal(out, matrix)
    assert all(len(indices) == 4 for indices in requested)
    assert requested[-1].tolist() == [6, 7, 8, 9]


def test_block_clock_stops_and_extrapolates(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("common.time.perf_counter", lambda: now[0])
    clock = BlockClock(allowance_seconds=15.0, sample_seconds=5.0)
    clock.start()

    # First block 3 s (compilation), then 2 s per block of 10 rows out of 100, so the
    # first call projects to 3 + 90 rows * 0.2 s = 21 s, over the 15 s allowance.
    now[0] = 3.0
    clock.tick(10, 100)  # before sample_seconds: no decision yet
    now[0] = 5.0
    with pytest.raises(StopSampling):
        clock.tick(20, 100)
    assert clock.done_rows == 20
    assert clock.projected_steady_seconds() == pytest.approx(20.0)
    assert clock.projected_first_call_seconds() == pytest.approx(21.0)


def test_block_clock_lets_a_short_run_finish(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("common.time.perf_counter", lambda: now[0])
    clock = BlockClock(allowance_seconds=100.0, sample_seconds=1.0)
    clock.start()
    for done in range(10, 101, 10):
        now[0] += 2.0
        clock.tick(done, 100)
    assert clock.done_rows == 100


def test_run_worker_kills_above_memory_cap(tmp_path):
    script = tmp_path / "allocate.py"
    script.write_text(
        textwrap.dedent(
            """
            import time
            import numpy as np
            blocks = []
            for _ in range(40):
                blocks.append(np.ones(16 * 2**20))  # 128 MiB each, touched
                time.sleep(0.05)
            """
        )
    )
    cap_bytes = int(0.5 * GIB)
    worker = run_worker([sys.executable, str(script)], tmp_path / "log.txt", wall_limit=60.0, memory_cap_bytes=cap_bytes)
    assert worker.outcome is not None
    assert worker.outcome.startswith("exceeded 0.5 GiB")
    assert worker.polled_peak_bytes > cap_bytes
    assert worker.wall_seconds < 30.0


def test_run_worker_reports_timeout(tmp_path):
    worker = run_worker([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "log.txt", 1.0, GIB)
    assert worker.outcome == "timed out after 1 s"
    assert worker.wall_seconds < 10.0
