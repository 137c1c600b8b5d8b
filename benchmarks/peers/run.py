"""Peer benchmark: the full Hessian of the PINN loss in TensorFlow (ours), JAX and PyTorch.

Every entry runs in its own subprocess (``worker.py``), pinned to the same cores, under a
wall-time limit and a resident-memory cap. The driver enforces both from outside. It polls
the resident set of the worker and its children, and kills the worker above the cap. Each
finished Hessian is checked against our default method's Hessian from the same run, and
one table lists first-call time, steady time, peak memory and the ratios to ours.

Usage::

    python benchmarks/peers/run.py                      # widths 10 30 50, float32 and float64
    python benchmarks/peers/run.py --widths 10 --entries tf-ours jax-hvp-blocked

JAX and PyTorch come from ``requirements-bench.txt``; an entry whose framework is missing
is reported as failed, and the others still run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parents[1]
sys.path.insert(0, str(HERE))

from common import CHECK_TOLERANCE, DTYPES  # noqa: E402

logger = logging.getLogger(__name__)

GIB = 1024**3
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class EntrySpec:
    """Label and run policy of one entry.

    ``one_liner`` entries build the whole Hessian in one call and get the shorter wall
    limit, since at large widths they fail on memory rather than finish. ``early_stop``
    entries fill the Hessian in blocks and may be stopped and extrapolated. ``sampled``
    entries are known to be far slower than the rest, so their allowance is capped at
    ``--sampled-allowance`` seconds and a longer first call is extrapolated from a sample.
    ``default`` entries run when ``--entries`` is not given.
    """

    label: str
    one_liner: bool = False
    early_stop: bool = False
    sampled: bool = False
    default: bool = True


ENTRIES: dict[str, EntrySpec] = {
    "tf-ours": EntrySpec("ours: forward-over-reverse, layer-structured (TF)"),
    "tf-hessians": EntrySpec("tf.hessians of flat θ in tf.function (TF)"),
    "tf-reverse-over-reverse": EntrySpec(
        "loop of tape.gradient per gradient entry (TF)", early_stop=True, sampled=True
    ),
    "tf-jacobian-pfor": EntrySpec("pfor jacobian of the gradient, in blocks (TF)", early_stop=True),
    "jax-hessian": EntrySpec("jax.hessian, jit", one_liner=True),
    "jax-hvp-blocked": EntrySpec("jax.jvp of jax.grad, vmapped blocks, jit", early_stop=True),
    "torch-hessian": EntrySpec("torch.func.hessian", one_liner=True),
    "torch-hvp-blocked": EntrySpec("torch.func.jvp of grad, vmapped blocks", early_stop=True),
    # Slower than torch-hvp-blocked at width 50 in both dtypes in the first full run, so
    # it runs only when named.
    "torch-vjp-blocked": EntrySpec("torch.func.vjp of grad, vmapped blocks", early_stop=True, default=False),
}
DEFAULT_ENTRIES = tuple(name for name, spec in ENTRIES.items() if spec.default)
REFERENCE_ENTRY = "tf-ours"


@dataclass
class Row:
    """One line of the table: an entry at one dtype and width, and what happened to it."""

    entry: str
    dtype: str
    width: int
    n_params: int | None = None
    first_seconds: float | None = None
    steady_seconds: float | None = None
    steady_count: int = 0
    steady_cpu_seconds: float | None = None
    peak_bytes: int | None = None
    estimated: bool = False
    outcome: str = "ok"
    check: float | None = None
    check_passed: bool | None = None
    time_ratio: float | None = None
    ratio_of_first_calls: bool = False
    memory_ratio: float | None = None
    framework: str = ""
    details: dict = field(default_factory=dict)


# --- running one worker ---------------------------------------------------------------------


def process_tree_resident_bytes(pid: int) -> int:
    """Sum the resident set of ``pid`` and all its descendants, read from /proc."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/statm") as statm:
                total += int(statm.read().split()[1]) * page
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    pending.extend(int(child) for child in children.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue  # the process ended between listing and reading
    return total


@dataclass
class WorkerExit:
    outcome: str | None
    wall_seconds: float
    polled_peak_bytes: int
    rusage_peak_bytes: int


def run_worker(command: list[str], log_path: Path, wall_limit: float, memory_cap_bytes: int) -> WorkerExit:
    """Run ``command``, killing its process group above ``memory_cap_bytes`` or ``wall_limit`` seconds.

    Returns the reason it was killed (None when it exited by itself), its wall time and two
    peak-memory readings: the polled resident set of the whole tree and ``ru_maxrss`` from
    ``wait4``.
    """
    start = time.perf_counter()
    peak = 0
    outcome = None
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPOSITORY)
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid == process.pid:
                break
            resident = process_tree_resident_bytes(process.pid)
            peak = max(peak, resident)
            elapsed = time.perf_counter() - start
            if resident > memory_cap_bytes:
                outcome = f"exceeded {memory_cap_bytes / GIB:g} GiB (killed after {elapsed:.0f} s)"
            elif elapsed > wall_limit:
                outcome = f"timed out after {wall_limit:.0f} s"
            if outcome is not None:
                os.killpg(process.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(POLL_SECONDS)
        # wait4 reaped the child, so tell Popen not to wait for it again.
        process.returncode = os.waitstatus_to_exitcode(status)
    if outcome is None and process.returncode != 0:
        outcome = f"crashed with exit status {process.returncode}; see {log_path}"
    return WorkerExit(outcome, time.perf_counter() - start, peak, usage.ru_maxrss * 1024)


def run_entry(
    entry: str, dtype: str, width: int, problem_path: Path, result_dir: Path, args: argparse.Namespace
) -> Row:
    """Run one entry in a worker and turn its result into a table row (unchecked)."""
    spec = ENTRIES[entry]
    wall_limit = args.one_liner_time_limit if spec.one_liner else args.time_limit
    # The allowance leaves room for imports and set-up inside the wall limit.
    allowance = max(wall_limit - args.setup_seconds, 1.0)
    if spec.sampled:
        allowance = min(allowance, args.sampled_allowance)
    result_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        str(HERE / "worker.py"),
        "--entry", entry,
        "--problem", str(problem_path),
        "--dtype", dtype,
        "--result-dir", str(result_dir),
        "--cores", *[str(core) for core in args.cores],
        "--allowance", f"{allowance:g}",
        "--sample-seconds", f"{args.sample_seconds:g}",
        "--repeats", str(args.repeats),
        "--repeat-seconds", f"{args.repeat_seconds:g}",
    ]
    if spec.early_stop:
        command.append("--early-stop")
    logger.info("running %s, %s, width %d (limit %.0f s, cap %g GiB)", entry, dtype, width, wall_limit, args.memory_cap_gib)
    worker = run_worker(command, result_dir / "worker.log", wall_limit, int(args.memory_cap_gib * GIB))

    row = Row(entry, dtype, width)
    result_path = result_dir / "result.json"
    record = json.loads(result_path.read_text()) if worker.outcome is None and result_path.is_file() else {}
    row.peak_bytes = max(worker.polled_peak_bytes, worker.rusage_peak_bytes, int(record.get("peak_bytes", 0)))
    if worker.outcome is not None:
        row.outcome = worker.outcome
        return row
    if not record:
        row.outcome = f"no result written; see {result_dir / 'worker.log'}"
        return row
    row.outcome = record["outcome"]
    row.framework = record.get("framework", "")
    row.n_params = record.get("n_params")
    row.first_seconds = record.get("first_seconds")
    row.estimated = bool(record.get("estimated"))
    steady = record.get("steady_seconds") or []
    row.steady_count = len(steady)
    if steady:
        row.steady_seconds = float(np.median(steady))
    steady_cpu = record.get("steady_cpu_seconds") or []
    if steady_cpu:
        row.steady_cpu_seconds = float(np.median(steady_cpu))
    row.details = record
    return row


# --- checking and ratios ----------------------------------------------------------------------


def check_against_reference(row: Row, result_dir: Path, reference: np.ndarray) -> None:
    """Set ``row.check`` to max|H − H_ref| / max|H_ref| over the rows the entry finished."""
    path = result_dir / "hessian.npy"
    if not path.is_file():
        return
    matrix = np.load(path).astype(np.float64)
    if matrix.shape[1] != reference.shape[1] or matrix.shape[0] > reference.shape[0]:
        row.outcome += f"; shape {matrix.shape} does not match the reference {reference.shape}"
        row.check_passed = False
        return
    difference = np.abs(matrix - reference[: matrix.shape[0]]).max()
    row.check = float(difference / np.abs(reference).max())
    row.check_passed = bool(row.check <= CHECK_TOLERANCE[row.dtype])
    if not row.check_passed:
        row.outcome += f"; MISMATCH: relative difference {row.check:.1e} above {CHECK_TOLERANCE[row.dtype]:g}"


def set_ratios(rows: list[Row], reference: Row | None) -> None:
    """Set each row's time and memory ratio to the reference row.

    Steady times are compared when both rows have one. Otherwise both first calls are
    compared, so compilation is counted on both sides or on neither.
    """
    if reference is None or reference.outcome != "ok":
        return
    for row in rows:
        if row.steady_seconds is not None and reference.steady_seconds:
            row.time_ratio = row.steady_seconds / reference.steady_seconds
        elif row.first_seconds is not None and reference.first_seconds:
            row.time_ratio = row.first_seconds / reference.first_seconds
            row.ratio_of_first_calls = True
        if row.peak_bytes and reference.peak_bytes and row.first_seconds is not None:
            row.memory_ratio = row.peak_bytes / reference.peak_bytes


# --- the table ----------------------------------------------------------------------------------


def format_seconds(value: float | None, estimated: bool) -> str:
    if value is None:
        return "–"
    text = f"{value:.3g}" if value < 100 else f"{value:.0f}"
    return f"≈ {text} (est.)" if estimated else text


def format_table(rows: list[Row]) -> str:
    """Return the rows as a Markdown table."""
    header = (
        "| entry | dtype | width | P | first call (s) | steady (s) | steady CPU (s) | peak memory (GiB) "
        "| time / ours | memory / ours | check vs ours | outcome |"
    )
    lines = [header, "|" + "---|" * 12]
    for row in rows:
        steady = format_seconds(row.steady_seconds, row.estimated)
        if row.steady_seconds is not None and not row.estimated:
            steady += f" (median of {row.steady_count})"
        elif row.steady_seconds is None and row.first_seconds is not None:
            steady = "– (first call only)"
        time_ratio = "–" if row.time_ratio is None else f"{row.time_ratio:.2f}"
        if row.time_ratio is not None and row.estimated:
            time_ratio = f"≈ {time_ratio} (est.)"
        if row.ratio_of_first_calls:
            time_ratio += " (first calls)"
        memory_ratio = "–" if row.memory_ratio is None else f"{row.memory_ratio:.2f}"
        check = "–" if row.check is None else f"{row.check:.1e}"
        if row.check is not None and row.estimated:
            check += f" ({row.details.get('rows_done')} rows)"
        peak = "–" if not row.peak_bytes else f"{row.peak_bytes / GIB:.2f}"
        lines.append(
            f"| {row.entry} | {row.dtype} | {row.width} | {row.n_params or '–'} "
            f"| {format_seconds(row.first_seconds, row.estimated)} | {steady} "
            f"| {format_seconds(row.steady_cpu_seconds, row.estimated)} | {peak} "
            f"| {time_ratio} | {memory_ratio} | {check} | {row.outcome} |"
        )
    return "\n".join(lines)


def machine_description(cores: list[int]) -> list[str]:
    """Describe the CPU, memory and software versions, one line each."""
    lines = [f"python {platform.python_version()}, numpy {np.__version__}"]
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "?")
        lines.append(f"CPU: {model}; {os.cpu_count()} logical CPUs, workers pinned to cores {cores}")
    except (OSError, subprocess.CalledProcessError) as error:
        lines.append(f"CPU: lscpu failed ({error}); {os.cpu_count()} logical CPUs, workers pinned to cores {cores}")
    with open("/proc/meminfo") as meminfo:
        total_kib = int(meminfo.readline().split()[1])
    lines.append(f"memory: {total_kib / 1024**2:.1f} GiB")
    return lines


# --- main ---------------------------------------------------------------------------------------


def export_problems(widths: list[int], folder: Path, seed: int) -> dict[int, Path]:
    """Write one problem file per width, in a subprocess so the driver stays free of TensorFlow."""
    paths = {}
    for width in widths:
        path = folder / f"problem-w{width}.npz"
        command = [sys.executable, str(HERE / "problem_export.py"), "--width", str(width), "--out", str(path), "--seed", str(seed)]
        completed = subprocess.run(command, capture_output=True, text=True, cwd=REPOSITORY)
        if completed.returncode != 0:
            raise RuntimeError(f"exporting the width-{width} problem failed:\n{completed.stderr.strip()}")
        paths[width] = path
    return paths


def load_average() -> float:
    with open("/proc/loadavg") as loadavg:
        return float(loadavg.read().split()[0])


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    entry_list = "\n".join(
        f"  {name:<24} {spec.label}{'' if spec.default else ' (runs only when named)'}" for name, spec in ENTRIES.items()
    )
    parser = argparse.ArgumentParser(
        description="Time the full PINN Hessian in TensorFlow (ours), JAX and PyTorch.",
        epilog=f"entries:\n{entry_list}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--widths", type=int, nargs="+", default=[10, 30, 50], help="hidden widths (default 10 30 50)")
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES), help="dtypes (default both)")
    parser.add_argument(
        "--entries", nargs="+", choices=tuple(ENTRIES), default=list(DEFAULT_ENTRIES),
        help=f"entries to run (default: {' '.join(DEFAULT_ENTRIES)}); the reference entry always runs first",
    )
    parser.add_argument("--reference", choices=tuple(ENTRIES), default=REFERENCE_ENTRY,
                        help=f"entry every result is checked and compared against (default {REFERENCE_ENTRY})")
    parser.add_argument("--memory-cap-gib", type=float, default=8.0,
                        help="kill a worker whose resident memory exceeds this many GiB (default 8)")
    parser.add_argument("--time-limit", type=float, default=240.0,
                        help="wall-time limit of one worker in seconds, imports included (default 240)")
    parser.add_argument("--one-liner-time-limit", type=float, default=90.0,
                        help="wall-time limit for the one-call Hessians jax.hessian and torch.func.hessian (default 90)")
    parser.add_argument("--setup-seconds", type=float, default=30.0,
                        help="part of the wall limit left for imports and set-up (default 30)")
    parser.add_argument("--sample-seconds", type=float, default=20.0,
                        help="seconds a blocked entry runs before an early stop and extrapolation (default 20)")
    parser.add_argument("--sampled-allowance", type=float, default=60.0,
                        help="allowance of the question's tape.gradient loop, whose longer first calls "
                             "are extrapolated from a sample (default 60)")
    parser.add_argument("--repeats", type=int, default=3, help="maximum steady calls after the first (default 3)")
    parser.add_argument("--repeat-seconds", type=float, default=30.0,
                        help="steady calls are made only while their total stays under this many seconds (default 30)")
    parser.add_argument("--threads", type=int, default=2, help="cores every worker is pinned to (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the collocation points and of θ (default 0)")
    parser.add_argument("--out-dir", type=Path, default=REPOSITORY / "runs" / "peers",
                        help="folder for problems, worker logs and the table (default runs/peers)")
    parser.add_argument("--keep-matrices", action="store_true", help="keep every hessian.npy (up to 225 MB each)")
    args = parser.parse_args(argv)

    available = sorted(os.sched_getaffinity(0))
    if not 1 <= args.threads <= len(available):
        parser.error(f"--threads must be between 1 and {len(available)} (the cores this process may use), got {args.threads}")
    args.cores = available[: args.threads]
    if args.memory_cap_gib <= 0:
        parser.error(f"--memory-cap-gib must be positive, got {args.memory_cap_gib}")
    if args.repeats < 0:
        parser.error(f"--repeats must be 0 or more, got {args.repeats}")
    if args.sampled_allowance <= 0:
        parser.error(f"--sampled-allowance must be positive, got {args.sampled_allowance}")
    if args.time_limit <= args.setup_seconds:
        parser.error(f"--time-limit ({args.time_limit:g} s) must exceed --setup-seconds ({args.setup_seconds:g} s)")
    args.entries = [args.reference] + [entry for entry in args.entries if entry != args.reference]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    loads = [load_average()]

    problems = export_problems(sorted(args.widths), args.out_dir, args.seed)
    rows: list[Row] = []
    for width in sorted(args.widths):
        for dtype in args.dtypes:
            group: list[Row] = []
            reference_matrix = None
            for entry in args.entries:
                result_dir = args.out_dir / f"w{width}-{dtype}" / entry
                if result_dir.exists():
                    shutil.rmtree(result_dir)
                row = run_entry(entry, dtype, width, problems[width], result_dir, args)
                loads.append(load_average())
                if entry == args.reference:
                    if row.outcome == "ok":
                        reference_matrix = np.load(result_dir / "hessian.npy").astype(np.float64)
                    else:
                        logger.error("the reference %s failed at width %d, %s: %s", entry, width, dtype, row.outcome)
                elif reference_matrix is not None:
                    check_against_reference(row, result_dir, reference_matrix)
                if not args.keep_matrices and entry != args.reference:
                    (result_dir / "hessian.npy").unlink(missing_ok=True)
                logger.info("%s %s w%d: %s", entry, dtype, width, row.outcome)
                group.append(row)
            set_ratios(group, group[0] if group and group[0].entry == args.reference else None)
            if not args.keep_matrices:
                (args.out_dir / f"w{width}-{dtype}" / args.reference / "hessian.npy").unlink(missing_ok=True)
            rows.extend(group)

    minutes = (time.perf_counter() - start) / 60
    frameworks = sorted({row.framework for row in rows if row.framework})
    header = [
        f"command: python {' '.join([os.path.relpath(__file__, REPOSITORY)] + (argv if argv is not None else sys.argv[1:]))}",
        *machine_description(args.cores),
        f"frameworks: {', '.join(frameworks)}",
        f"memory cap {args.memory_cap_gib:g} GiB; wall limit {args.time_limit:g} s "
        f"({args.one_liner_time_limit:g} s for one-liners); total {minutes:.1f} min",
        f"1-minute load average during the run: {min(loads):.1f} to {max(loads):.1f} "
        f"(a load above {len(args.cores)} means other processes shared the cores)",
        "time / ours: steady time over ours, or first call over ours where the entry had no "
        "second call; ≈ marks times extrapolated from the rows finished before an early stop.",
    ]
    table = format_table(rows)
    text = "\n".join(header) + "\n\n" + table + "\n"
    print(text)
    (args.out_dir / "table.md").write_text(text)
    (args.out_dir / "results.json").write_text(json.dumps([row.__dict__ for row in rows], indent=2, default=str))
    logger.info("table written to %s", args.out_dir / "table.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
