"""A command-line run killed with SIGKILL leaves only whole output files under their final names.

The CLI writes every output through a temporary file beside it and renames it into place
(``hessian_core.files``). These tests kill a real ``python -m hessian_core run`` at two
points: while the Hessian is being computed, found by watching its standard error, and
halfway through writing ``hessian.npy``. A kill sent from outside cannot be timed to land
inside a write. So for the second point a small wrapper replaces ``numpy.save`` in the
child process with one that writes the header and half the data, then sends SIGKILL to
its own process.
"""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from hessian_core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
# Fails a run that never reaches the expected stage instead of hanging the suite. No
# duration is asserted.
STAGE_TIMEOUT_SECONDS = 300

# Training finishes in a few seconds. The Hessian of P = 1,051 parameters then takes
# seconds, far longer than the kill takes to arrive after its first progress line.
SLOW_HESSIAN = {"hidden_layers": 2, "width": 30, "n_interior": 300, "n_boundary": 100, "adam_steps": 5, "lbfgs_steps": 0, "test_grid": 11}
# Reaches the writing of the Hessian files within seconds.
FAST_HESSIAN = {
    "hidden_layers": 1, "width": 6, "n_interior": 60, "n_boundary": 40, "adam_steps": 5, "lbfgs_steps": 0,
    "test_grid": 11, "top_k": 2, "landscape_points": 5,
}

TRAINING_FILES = {"config.json", "history.csv", "theta.npy", "metrics.json"}
HESSIAN_FILES = {"hessian.npy", "hessian_pde.npy", "hessian_boundary.npy", "hessian.json"}
ANALYSIS_FILES = HESSIAN_FILES | {"eigenvalues.npy", "spectrum.json", "landscape.npz"}

# Runs the CLI with numpy.save replaced: a 2-D array (a Hessian matrix) gets its .npy header
# and the first half of its data, then the process kills itself in the middle of the write.
KILL_WHILE_WRITING = """
import os, signal, sys
import numpy as np

original_save = np.save

def save_half_then_kill(stream, array, allow_pickle=True):
    array = np.asarray(array)
    if array.ndim != 2:
        return original_save(stream, array, allow_pickle=allow_pickle)
    np.lib.format.write_array_header_1_0(stream, np.lib.format.header_data_from_array_1_0(array))
    data = np.ascontiguousarray(array).tobytes()
    stream.write(data[: len(data) // 2])
    stream.flush()
    os.kill(os.getpid(), signal.SIGKILL)

np.save = save_half_then_kill
from hessian_core.cli import main
sys.exit(main(sys.argv[1:]))
"""


def cli_arguments(values: dict, out: Path) -> list[str]:
    options = []
    for name, value in values.items():
        options += ["--" + name.replace("_", "-"), str(value)]
    return ["--log-level", "INFO", "run", "--out", str(out), *options]


class WatchedRun:
    """A CLI subprocess whose standard error is read line by line on a thread."""

    def __init__(self, command: list[str]) -> None:
        environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for_line(self, prefix: str) -> str:
        """Return the first standard-error line starting with ``prefix``, failing the test if the run ends first."""
        while True:
            try:
                line = self._queue.get(timeout=STAGE_TIMEOUT_SECONDS)
            except queue.Empty:
                self.kill()
                pytest.fail(f"no line starting {prefix!r} within {STAGE_TIMEOUT_SECONDS} s; stderr so far:\n{''.join(self.lines)}")
            if line is None:
                pytest.fail(f"the run exited with status {self.process.wait()} before {prefix!r}:\n{''.join(self.lines)}")
            self.lines.append(line)
            if line.startswith(prefix):
                return line

    def wait(self) -> int:
        """Wait for the run to end and collect the rest of its standard error; return its status."""
        try:
            status = self.process.wait(timeout=STAGE_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the run did not end within {STAGE_TIMEOUT_SECONDS} s:\n{''.join(self.lines)}")
        # The reader thread puts None after the last line, once the pipe is closed.
        while (line := self._queue.get(timeout=STAGE_TIMEOUT_SECONDS)) is not None:
            self.lines.append(line)
        return status

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=60)


def final_named_files(out: Path) -> set[str]:
    return {path.name for path in out.iterdir() if not path.name.startswith(".")}


def temporary_files(out: Path) -> list[Path]:
    return [path for path in out.iterdir() if path.name.startswith(".")]


def assert_training_files_whole(out: Path, settings: Settings) -> None:
    """Every training output loads in full and matches the run's settings."""
    theta = np.load(out / "theta.npy", allow_pickle=False)
    assert theta.shape == (settings.n_params,)
    assert theta.dtype == np.float64
    assert np.all(np.isfinite(theta))
    assert json.loads((out / "config.json").read_text())["width"] == settings.width
    assert "relative_l2_error" in json.loads((out / "metrics.json").read_text())
    rows = (out / "history.csv").read_text().splitlines()
    assert rows[0] == "phase,step,loss,pde_loss,boundary_loss,seconds"
    assert len(rows) == 1 + settings.adam_steps


def npy_header_bytes(array: np.ndarray) -> int:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, np.lib.format.header_data_from_array_1_0(array))
    return buffer.tell()


def assert_every_npy_loads(out: Path) -> None:
    for path in out.glob("*.npy"):
        array = np.load(path, allow_pickle=False)
        assert array.size > 0, path.name


def test_kill_during_hessian_leaves_whole_files(tmp_path):
    settings = Settings(**SLOW_HESSIAN)
    out = tmp_path / "run"
    run = WatchedRun([sys.executable, "-m", "hessian_core", *cli_arguments(SLOW_HESSIAN, out)])
    # Printed by the Hessian stage once its plan is made, right before the first block.
    run.wait_for_line("[hessian] 0 of")
    run.kill()

    assert run.process.returncode == -signal.SIGKILL
    assert final_named_files(out) == TRAINING_FILES
    assert_training_files_whole(out, settings)
    assert_every_npy_loads(out)
    # No write was in progress while the Hessian was being computed.
    assert temporary_files(out) == []


def test_kill_while_writing_hessian_keeps_final_name_absent(tmp_path):
    settings = Settings(**FAST_HESSIAN)
    n = settings.n_params
    out = tmp_path / "run"
    run = WatchedRun([sys.executable, "-c", KILL_WHILE_WRITING, *cli_arguments(FAST_HESSIAN, out)])
    run.wait()
    stderr = "".join(run.lines)

    assert run.process.returncode == -signal.SIGKILL, stderr
    # Every column was computed, and the stage died before reporting its files written.
    assert f"[hessian] {n:,} of {n:,} columns" in stderr
    assert "[hessian] done" not in stderr
    assert final_named_files(out) == TRAINING_FILES
    assert_training_files_whole(out, settings)
    assert_every_npy_loads(out)
    # The half-written matrix stays under its temporary name, which no reader looks for.
    leftovers = temporary_files(out)
    assert len(leftovers) == 1, leftovers
    assert leftovers[0].name.startswith(".hessian.npy.")
    assert leftovers[0].suffix == ".tmp"
    header = npy_header_bytes(np.zeros((n, n)))
    assert header < leftovers[0].stat().st_size < header + 8 * n * n


def test_uninterrupted_run_leaves_no_temporary_files(tmp_path):
    """The reference for the two kills: the same small run, not killed, writes every file."""
    settings = Settings(**FAST_HESSIAN)
    out = tmp_path / "run"
    run = WatchedRun([sys.executable, "-m", "hessian_core", *cli_arguments(FAST_HESSIAN, out)])
    assert run.wait() == 0, "".join(run.lines)

    assert final_named_files(out) == TRAINING_FILES | ANALYSIS_FILES
    assert temporary_files(out) == []
    hessian = np.load(out / "hessian.npy", allow_pickle=False)
    assert hessian.shape == (settings.n_params, settings.n_params)
    assert hessian.dtype == np.float64
    assert_every_npy_loads(out)
