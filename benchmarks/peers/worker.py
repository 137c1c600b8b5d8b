"""Run one benchmark entry in this process and write its timings and Hessian to a folder.

``run.py`` starts one worker per entry, dtype and width, and watches its memory and wall
time from outside. The worker pins itself to the given cores and sizes every thread pool to
match before any framework is imported, so each framework runs on the same cores.

What the worker measures:

- the first call, which includes tracing and compilation (JAX, TensorFlow) or PyTorch's
  first-use overhead;
- up to ``--repeats`` further calls (the steady time is their median), made only while
  their total stays under ``--repeat-seconds`` and within the time allowance;
- when a blocked first call is projected to overrun the allowance, it stops early and
  extrapolates the full time from the blocks done, which the result marks as an estimate.

It writes ``result.json`` and ``hessian.npy`` (the first call's matrix, or the rows done
before an early stop) into ``--result-dir``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import resource
import statistics
import sys
import time
import traceback
from pathlib import Path

MODULES = {"jax": "jax_hessian", "torch": "torch_hessian", "tf": "tf_entries"}

logger = logging.getLogger(__name__)


def module_name(entry: str) -> str:
    """Return the module implementing ``entry``, chosen by its prefix (``jax-``, ``torch-``, ``tf-``)."""
    prefix = entry.split("-", 1)[0]
    if prefix not in MODULES:
        raise ValueError(f"entry {entry!r} has no known framework prefix; names start with jax-, torch- or tf-")
    return MODULES[prefix]


def limit_threads(cores: list[int]) -> None:
    """Pin this process to ``cores`` and size the framework thread pools to their count.

    Must run before JAX, PyTorch or TensorFlow is imported: XLA sizes its pool from the
    affinity mask at start-up, and the OpenMP and TensorFlow variables are read on import.
    """
    os.sched_setaffinity(0, cores)
    count = str(len(cores))
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = count
    os.environ["TF_NUM_INTRAOP_THREADS"] = count
    os.environ["TF_NUM_INTEROP_THREADS"] = count
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def set_framework_threads(entry: str, count: int) -> None:
    """Set the intra-op and inter-op pools of the entry's framework to ``count`` threads."""
    prefix = entry.split("-", 1)[0]
    if prefix == "torch":
        import torch

        torch.set_num_threads(count)
        torch.set_num_interop_threads(count)
    elif prefix == "tf":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(count)
        tf.config.threading.set_inter_op_parallelism_threads(count)
    # JAX: XLA's CPU pool follows the affinity mask set in limit_threads.


def resident_bytes() -> int:
    """Return this process's current resident set size in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_resident_bytes() -> int:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_entry(args: argparse.Namespace) -> dict:
    """Build the entry's routine, time its calls and save its matrix; return the result record."""
    import numpy as np

    from common import BlockClock, StopSampling, load_problem

    module = importlib.import_module(module_name(args.entry))
    if args.entry not in module.ENTRIES:
        raise ValueError(f"unknown entry {args.entry!r}; {module.__name__} has {', '.join(module.ENTRIES)}")
    set_framework_threads(args.entry, len(args.cores))

    problem = load_problem(args.problem, args.dtype)
    record = {
        "entry": args.entry,
        "dtype": args.dtype,
        "width": problem.widths[1],
        "n_params": problem.n_params,
        "framework": module.framework_version(),
        "threads": len(args.cores),
        "outcome": "ok",
        "estimated": False,
    }
    setup_start = time.perf_counter()
    compute = module.ENTRIES[args.entry](problem)
    record["setup_seconds"] = time.perf_counter() - setup_start
    record["baseline_bytes"] = resident_bytes()

    # First call: compilation included. A blocked routine may stop early and be extrapolated.
    clock = BlockClock(allowance_seconds=args.allowance if args.early_stop else None, sample_seconds=args.sample_seconds)
    start = time.perf_counter()
    cpu_start = time.process_time()
    try:
        matrix = compute(clock)
    except StopSampling as stop:
        logger.info("%s stopped early: %s", args.entry, stop)
        done = clock.done_rows
        steady = clock.projected_steady_seconds()
        record.update(
            estimated=True,
            outcome=f"stopped after {done} of {clock.total_rows} rows, times extrapolated",
            first_seconds=clock.projected_first_call_seconds(),
            steady_seconds=[steady],
            steady_cpu_seconds=[clock.projected_steady_seconds(cpu=True)],
            sampled_seconds=time.perf_counter() - start,
            rows_done=done,
        )
        partial = getattr(stop, "partial_rows", None)
        if partial is not None:
            np.save(Path(args.result_dir) / "hessian.npy", partial[:done])
        record["peak_bytes"] = peak_resident_bytes()
        return record
    first = time.perf_counter() - start
    record["first_seconds"] = first
    record["first_cpu_seconds"] = time.process_time() - cpu_start
    record["block_rows"] = list(clock.block_rows)
    np.save(Path(args.result_dir) / "hessian.npy", matrix)
    record["rows_done"] = int(matrix.shape[0])
    del matrix

    # Steady calls, as many as fit in what is left of the allowance.
    steady: list[float] = []
    steady_cpu: list[float] = []
    spent = first
    while len(steady) < args.repeats:
        expected = steady[-1] if steady else first
        if args.allowance is not None and spent + expected > args.allowance:
            break
        # Repeat only quick calls, so slow entries report their first call alone.
        if sum(steady) + expected > args.repeat_seconds:
            break
        start = time.perf_counter()
        cpu_start = time.process_time()
        compute(None)
        steady.append(time.perf_counter() - start)
        steady_cpu.append(time.process_time() - cpu_start)
        spent += steady[-1]
    record["steady_seconds"] = steady
    # CPU seconds of all threads; on a shared machine wall time / CPU time shows the waiting.
    record["steady_cpu_seconds"] = steady_cpu
    record["steady_median_seconds"] = statistics.median(steady) if steady else None
    record["peak_bytes"] = peak_resident_bytes()
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one peer-benchmark entry (started by run.py).")
    parser.add_argument("--entry", required=True, help="entry name, for example jax-hvp-blocked")
    parser.add_argument("--problem", required=True, help="problem .npz written by problem_export.py")
    parser.add_argument("--dtype", required=True, choices=("float32", "float64"))
    parser.add_argument("--result-dir", required=True, help="folder for result.json and hessian.npy")
    parser.add_argument("--cores", type=int, nargs="+", required=True, help="CPU ids to pin this process to")
    parser.add_argument("--allowance", type=float, default=None, help="seconds the worker plans to use in all")
    parser.add_argument(
        "--sample-seconds", type=float, default=20.0, help="seconds of blocks timed before an early stop (default 20)"
    )
    parser.add_argument(
        "--early-stop",
        action="store_true",
        help="stop a first call projected to overrun --allowance and report an extrapolated estimate",
    )
    parser.add_argument("--repeats", type=int, default=3, help="maximum steady calls after the first (default 3)")
    parser.add_argument(
        "--repeat-seconds",
        type=float,
        default=60.0,
        help="steady calls are made only while their total stays under this many seconds (default 60)",
    )
    args = parser.parse_args(argv)

    limit_threads(args.cores)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(1, str(Path(__file__).resolve().parents[2]))
    result_path = Path(args.result_dir) / "result.json"
    try:
        record = run_entry(args)
    except Exception as error:  # noqa: BLE001 - every failure becomes a row of the table
        logger.error("%s failed: %s", args.entry, error)
        traceback.print_exc()
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        record = {
            "entry": args.entry,
            "dtype": args.dtype,
            "outcome": f"failed: {type(error).__name__}: {first_line[:300]}",
            "peak_bytes": peak_resident_bytes(),
        }
    result_path.write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
