"""The command line: files written, progress shown, bad options rejected in one line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hessian_core.cli import OPTION_NAMES, build_parser
from hessian_core.settings import RANGES, IntRange

ROOT = Path(__file__).resolve().parents[1]
SMALL_OPTIONS = [
    "--hidden-layers", "1", "--width", "6", "--n-interior", "60", "--n-boundary", "40",
    "--adam-steps", "20", "--lbfgs-steps", "5", "--test-grid", "11",
]


def run_cli(*arguments, timeout=300):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "hessian_core", *arguments],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=environment,
    )


def test_run_writes_training_files(tmp_path):
    out = tmp_path / "run"
    completed = run_cli("run", "--out", str(out), "--skip-hessian", *SMALL_OPTIONS, "--boundary", "top-edge")
    assert completed.returncode == 0, completed.stderr
    for name in ("config.json", "history.csv", "theta.npy", "metrics.json"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["width"] == 6
    assert config["boundary"] == "top-edge"
    theta = np.load(out / "theta.npy", allow_pickle=False)
    assert theta.shape == ((2 + 1) * 6 + (6 + 1) * 1,)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["relative_l2_error"] > 0
    assert metrics["boundary_sampling"] == "top-edge"
    rows = (out / "history.csv").read_text().splitlines()
    assert rows[0] == "phase,step,loss,pde_loss,boundary_loss,seconds"
    assert len(rows) >= 1 + 20
    assert "[train]" in completed.stderr
    # No stray temporary files from the atomic writes.
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    "arguments, expected",
    [
        (["--width", "0"], "width must be between 1 and 512, got 0"),
        (["--width", "abc"], "--width must be an integer, got 'abc'"),
        (["--activation", "relu"], "second derivative is zero almost everywhere"),
        (["--learning-rate", "nan"], "learning_rate must be a finite number"),
        (["--boundary", "left"], "boundary must be one of edges, top-edge, got 'left'"),
        (["--n-interior", "-5"], "n_interior must be between 1 and 100000, got -5"),
        (["--no-such-option"], "unrecognized arguments: --no-such-option"),
    ],
)
def test_bad_option_exits_2_with_one_line(tmp_path, arguments, expected):
    completed = run_cli("run", "--out", str(tmp_path / "x"), *arguments, timeout=120)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert expected in lines[0]
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "x").exists()


def test_help_gives_units_and_defaults():
    help_text = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    for fragment in ("--hidden-layers", "--n-interior", "--boundary", "--learning-rate", "--lbfgs-steps", "(default: 50)", "GiB"):
        assert fragment in help_text


def test_theta_file_is_analysed_as_given(tmp_path):
    theta = np.linspace(-0.5, 0.5, 3 * 6 + 7)
    np.save(tmp_path / "start.npy", theta)
    out = tmp_path / "given"
    completed = run_cli(
        "run", "--out", str(out), "--skip-hessian", *SMALL_OPTIONS,
        "--adam-steps", "0", "--lbfgs-steps", "0", "--theta", str(tmp_path / "start.npy"),
    )
    assert completed.returncode == 0, completed.stderr
    assert np.array_equal(np.load(out / "theta.npy"), theta)


def test_mismatched_theta_file_exits_2(tmp_path):
    np.save(tmp_path / "wrong.npy", np.zeros(7))
    completed = run_cli("run", "--out", str(tmp_path / "x"), "--skip-hessian", *SMALL_OPTIONS, "--theta", str(tmp_path / "wrong.npy"))
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert "shape (25,)" in lines[0]


def outside_values(name):
    """Values just outside each end of a numeric range, NaN and a huge number, as CLI text."""
    spec = RANGES[name]
    if isinstance(spec, IntRange):
        return [str(spec.low - 1), str(spec.high + 1), "1e400"]
    below = spec.low if not spec.low_inclusive else spec.low / 2
    return [repr(below), repr(spec.high * 1.5), "nan", "inf"]


def option_for(name):
    return OPTION_NAMES.get(name, "--" + name.replace("_", "-"))


@pytest.mark.parametrize(
    "name, text",
    [(name, text) for name in RANGES for text in outside_values(name)],
)
def test_every_numeric_setting_rejected_outside_range(tmp_path, name, text):
    completed = run_cli("run", "--out", str(tmp_path / "x"), option_for(name), text, timeout=120)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert name in lines[0] or option_for(name) in lines[0]
    assert not (tmp_path / "x").exists()


def test_out_path_that_is_a_file_exits_2(tmp_path):
    existing = tmp_path / "taken"
    existing.write_text("keep me")
    completed = run_cli("run", "--out", str(existing), "--skip-hessian", *SMALL_OPTIONS, timeout=120)
    assert completed.returncode == 2
    assert "is a file" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert existing.read_text() == "keep me"
