"""Time and peak memory of every dense Hessian method on the Poisson PINN, one subprocess each.

Usage::

    python benchmarks/hessian_methods.py --widths 10 20 30 50 --dtypes float32 float64
    python benchmarks/hessian_methods.py --widths 50 --methods forward-over-reverse tf-hessians

For each width and dtype the script first measures one compiled gradient of the loss
(``PoissonLoss.value_and_gradient``, median of repeated steady calls), then runs each
method in a fresh interpreter. The parent polls the child's resident memory and kills it
above ``--memory-cap-gib``, and kills it after ``--timeout`` seconds. It prints one table
row per run: seconds, peak resident memory (whole process, and above the baseline after
imports), the ratio to P × one gradient and the ratio to tf-hessians of the same width
and dtype. The network is 2-W-W-W-1 tanh with 1,000 interior and 1,000 boundary points;
every method computes the total Hessian only (``split_terms=False``).

The question's own approaches are included as ``question-loop`` (a Python loop of
``tape.gradient`` over the gradient entries inside a persistent tape),
``question-pfor-jacobian`` (``tape.jacobian`` of the whole flat gradient, eagerly) and
``question-pfor-jacobian-tf-function`` (the same inside ``tf.function``), and
``plain-forward-over-reverse`` is the unstructured blocked forward-over-reverse of
``hessian_core.hessian`` on the flat θ.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
LIBRARY_METHODS = ("forward-over-reverse", "tf-hessians", "jacobian-pfor", "gauss-newton", "reverse-over-reverse")
QUESTION_METHODS = ("question-loop", "question-pfor-jacobian", "question-pfor-jacobian-tf-function")
# The unstructured baseline: hessian_core.hessian on the flat θ, vectorized_map over 64
# basis tangents of a ForwardAccumulator around the gradient tape.
PLAIN_METHODS = ("plain-forward-over-reverse",)
POLL_SECONDS = 0.2


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def build_problem(width: int, dtype: str):
    from hessian_core.loss import PoissonLoss
    from hessian_core.network import glorot_uniform_theta
    from hessian_core.settings import Settings

    settings = Settings(width=width, dtype=dtype)
    loss = PoissonLoss.from_settings(settings)
    return loss, glorot_uniform_theta(loss.layout, settings.seed, dtype)


def worker(method: str, width: int, dtype: str, memory_budget_gib: float) -> dict:
    """Run one method in this process and return its figures."""
    import numpy as np
    import tensorflow as tf

    from hessian_core.hessian_methods import compute_hessian

    baseline = peak_rss_bytes()
    loss, theta = build_problem(width, dtype)

    if method == "gradient":
        loss.value_and_gradient(theta)
        times = []
        for _ in range(30):
            start = time.perf_counter()
            loss.value_and_gradient(theta)
            times.append(time.perf_counter() - start)
        return {"seconds": float(np.median(times)), "n_params": loss.n_params, "baseline": baseline, "peak": peak_rss_bytes()}

    start = time.perf_counter()
    if method in LIBRARY_METHODS:
        result = compute_hessian(loss, theta, method, memory_budget_gib=memory_budget_gib, split_terms=False, force=True)
        block_size = result.record.block_size
    elif method in PLAIN_METHODS:
        from hessian_core.generic_hessian import hessian

        variable = tf.Variable(theta)
        block_size = 64
        hessian(lambda: loss(variable), [variable], block_size=block_size, memory_budget_gib=memory_budget_gib)
    else:
        theta_tensor = tf.constant(theta)
        block_size = loss.n_params
        if method == "question-loop":
            with tf.GradientTape(persistent=True) as outer:
                outer.watch(theta_tensor)
                with tf.GradientTape() as inner:
                    inner.watch(theta_tensor)
                    value = loss(theta_tensor)
                gradient = inner.gradient(value, theta_tensor)
                entries = tf.unstack(gradient)
            rows = [outer.gradient(entry, theta_tensor) for entry in entries]
            tf.stack(rows).numpy()
            block_size = 1
        else:

            def jacobian(t):
                with tf.GradientTape() as outer:
                    outer.watch(t)
                    with tf.GradientTape() as inner:
                        inner.watch(t)
                        value = loss(t)
                    gradient = inner.gradient(value, t)
                return outer.jacobian(gradient, t, experimental_use_pfor=True)

            if method == "question-pfor-jacobian-tf-function":
                jacobian = tf.function(jacobian)
            jacobian(theta_tensor).numpy()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "n_params": loss.n_params, "block_size": block_size, "baseline": baseline, "peak": peak_rss_bytes()}


def run_child(method: str, width: int, dtype: str, timeout: float, cap_bytes: int, budget: float) -> dict:
    """Run ``worker`` in a subprocess, killing it above the memory cap or after the timeout."""
    command = [sys.executable, __file__, "--worker", method, str(width), dtype, str(budget)]
    environment = dict(os.environ, PYTHONPATH=str(REPOSITORY), TF_CPP_MIN_LOG_LEVEL="2")
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    start = time.perf_counter()
    highest = 0
    outcome = None
    while child.poll() is None:
        rss = _resident_bytes(child.pid)
        highest = max(highest, rss)
        if rss > cap_bytes:
            outcome = "exceeded memory cap"
        elif time.perf_counter() - start > timeout:
            outcome = "timed out"
        if outcome:
            child.kill()
            child.wait()
            return {"outcome": outcome, "peak": highest, "wall": time.perf_counter() - start}
        time.sleep(POLL_SECONDS)
    stdout, stderr = child.communicate()
    if child.returncode != 0:
        last_line = (stderr.strip().splitlines() or ["no message"])[-1]
        return {"outcome": f"failed: {last_line[:120]}", "peak": highest}
    figures = json.loads(stdout.strip().splitlines()[-1])
    figures["outcome"] = "ok"
    figures["peak"] = max(figures["peak"], highest)
    return figures


def _resident_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[10, 20, 30, 50], help="hidden-layer widths")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list(LIBRARY_METHODS + PLAIN_METHODS + QUESTION_METHODS),
        choices=LIBRARY_METHODS + PLAIN_METHODS + QUESTION_METHODS,
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before a run is killed")
    parser.add_argument("--memory-cap-gib", type=float, default=8.0, help="resident memory (GiB) above which a run is killed")
    parser.add_argument("--memory-budget", type=float, default=2.0, help="memory budget of the library methods, in GiB")
    parser.add_argument("--json", type=Path, help="also write every row to this JSON file")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)

    if arguments.worker:
        method, width, dtype, budget = arguments.worker
        print(json.dumps(worker(method, int(width), dtype, float(budget))))
        return 0

    cap = int(arguments.memory_cap_gib * 1024**3)
    rows = []
    header = f"{'width':>5} {'dtype':>7} {'method':<36} {'seconds':>8} {'peak GiB':>8} {'+base GiB':>9} {'/(P·grad)':>9} {'/tf-hess':>8}  outcome"
    print(header, flush=True)
    for width in arguments.widths:
        for dtype in arguments.dtypes:
            gradient = run_child("gradient", width, dtype, arguments.timeout, cap, arguments.memory_budget)
            per_gradient = gradient.get("seconds")
            n_params = gradient.get("n_params")
            print(f"{width:>5} {dtype:>7} {'one gradient (ms)':<36} {1e3 * per_gradient:>8.2f}   P = {n_params}", flush=True)
            reference = None
            for method in arguments.methods:
                figures = run_child(method, width, dtype, arguments.timeout, cap, arguments.memory_budget)
                figures.update(width=width, dtype=dtype, method=method, gradient_seconds=per_gradient, n_params=n_params)
                seconds = figures.get("seconds")
                if seconds is not None and figures["outcome"] == "ok":
                    figures["ratio_to_gradients"] = seconds / (n_params * per_gradient)
                    if method == "tf-hessians":
                        reference = seconds
                rows.append(figures)
            for figures in rows[-len(arguments.methods):]:
                seconds = figures.get("seconds") if figures["outcome"] == "ok" else None
                if seconds is not None and reference:
                    figures["ratio_to_tf_hessians"] = seconds / reference
                peak = figures.get("peak", 0) / 1024**3
                above = (figures["peak"] - figures["baseline"]) / 1024**3 if "baseline" in figures else float("nan")
                print(
                    f"{width:>5} {dtype:>7} {figures['method']:<36} "
                    f"{seconds if seconds is not None else float('nan'):>8.1f} {peak:>8.2f} {above:>9.2f} "
                    f"{figures.get('ratio_to_gradients', float('nan')):>9.3f} {figures.get('ratio_to_tf_hessians', float('nan')):>8.2f}  "
                    f"{figures['outcome']}",
                    flush=True,
                )
    if arguments.json:
        arguments.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
