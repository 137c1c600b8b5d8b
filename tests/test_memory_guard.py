"""Memory estimates against the peak resident memory measured in a subprocess.

Each configuration runs in a fresh interpreter, which records its resident memory after the
imports (the baseline) and its peak after the step; the estimate may not fall below the
measured growth by more than MARGIN.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hessian_core.memory import MemoryBudgetError
from hessian_core.settings import Settings
from hessian_core.training import check_training_memory, estimate_training_bytes, train

ROOT = Path(__file__).resolve().parents[1]
MARGIN = 0.10  # the estimate may be at most 10 % below the measured growth

MEASURE_TRAINING = """
import json, resource, sys
from hessian_core.settings import Settings
from hessian_core.training import train
import tensorflow
settings = Settings(**json.loads(sys.argv[1]))
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
train(settings)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"growth": peak - baseline}))
"""


def measure_growth(script, values):
    completed = subprocess.run(
        [sys.executable, "-c", script, json.dumps(values)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)},
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])["growth"]


@pytest.mark.parametrize(
    "values",
    [
        {"width": 128, "n_interior": 10000, "n_boundary": 1000},
        {"width": 64, "hidden_layers": 5, "n_interior": 8000, "n_boundary": 8000, "dtype": "float32"},
    ],
)
def test_training_estimate_bounds_measured_peak(values):
    values = {**values, "adam_steps": 2, "lbfgs_steps": 0, "test_grid": 11}
    growth = measure_growth(MEASURE_TRAINING, values)
    estimate = estimate_training_bytes(Settings(**values))
    assert estimate >= (1 - MARGIN) * growth, f"estimate {estimate:,} B, measured {growth:,} B"


def test_training_over_budget_is_rejected_before_start():
    settings = Settings(width=512, hidden_layers=8, n_interior=100_000, memory_budget_gib=2.0)
    with pytest.raises(MemoryBudgetError) as caught:
        train(settings)
    message = str(caught.value)
    assert "memory budget of 2.00 GiB" in message
    assert "fewer interior points" in message
    assert caught.value.needed_bytes == estimate_training_bytes(settings)


def test_default_training_fits_default_budget():
    assert check_training_memory(Settings()) < 2 * 1024**3
