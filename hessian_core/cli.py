"""Command line: ``python -m hessian_core run --out DIR [options]``.

Every option is named after a field of :class:`hessian_core.settings.Settings`
(``--n-interior`` sets ``n_interior``). A bad option or setting exits with status 2 and
a one-line message on standard error.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import logging
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .files import write_atomic, write_npy_atomic
from .settings import CHOICES, RANGES, Settings, SettingsError, describe_range

logger = logging.getLogger(__name__)

# Help text per field: what it sets, in which unit.
FIELD_HELP = {
    "hidden_layers": "number of hidden layers",
    "width": "neurons per hidden layer",
    "activation": "hidden-layer activation",
    "dtype": "floating-point type of the network and of the analysis",
    "n_interior": "number of interior collocation points",
    "n_boundary": "number of boundary collocation points",
    "boundary": "boundary sampling: all four edges, or the top edge x in [0, 1], y = 1 only",
    "sampling": "interior sampling: uniform random, scrambled Sobol, or Latin hypercube",
    "seed": "seed of the points and of the initial weights",
    "adam_steps": "Adam steps",
    "learning_rate": "Adam learning rate",
    "lbfgs_steps": "L-BFGS-B iterations after Adam (0 skips L-BFGS)",
    "pde_weight": "weight of the PDE residual term",
    "boundary_weight": "weight of the boundary term",
    "test_grid": "grid points per side for the relative L2 error",
    "hessian_method": "how to compute the Hessian; matrix-free skips the dense matrix",
    "memory_budget_gib": "memory budget of every large step (training, Hessian, eigendecomposition, landscape grid), in GiB",
    "top_k": "number of top eigenpairs to report",
    "spectrum": "eigenvalues from the dense matrix (eigh) or matrix-free (Lanczos)",
    "landscape_range": "loss-landscape slices run over alpha in [-range, range]",
    "landscape_points": "grid points per axis of the landscape slices",
}

# Option names that differ from the field name with dashes.
OPTION_NAMES = {"memory_budget_gib": "--memory-budget"}


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> None:  # noqa: D102 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m hessian_core", description="PINN Hessian Lab command line.")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="level of the library's log messages; progress lines are printed at every level (default: WARNING)",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    run = commands.add_parser(
        "run",
        help="train the PINN and write its files",
        description="Train the Poisson PINN and write config.json, history.csv, theta.npy and metrics.json "
        "into --out, then the Hessian, spectrum and landscape files.",
    )
    run.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    run.add_argument(
        "--theta",
        type=Path,
        help="start training from this θ (.npy, 1-D, one entry per parameter) instead of the seeded "
        "Glorot-uniform one; with --adam-steps 0 --lbfgs-steps 0 it analyses that θ as it is",
    )
    run.add_argument(
        "--skip-hessian", action="store_true", help="only train; skip the Hessian, spectrum and landscape steps"
    )
    defaults = Settings()
    for f in dataclasses.fields(Settings):
        if f.name == "note":
            continue
        option = OPTION_NAMES.get(f.name, "--" + f.name.replace("_", "-"))
        default = getattr(defaults, f.name)
        help_text = f"{FIELD_HELP[f.name]}; {describe_range(f.name)} (default: {default})"
        if f.name in CHOICES:
            run.add_argument(option, dest=f.name, default=default, metavar="{" + ",".join(CHOICES[f.name]) + "}", help=help_text)
        else:
            kind = int if isinstance(default, int) else float
            run.add_argument(option, dest=f.name, type=_number(kind, option), default=default, help=help_text)
    return parser


def _number(kind: type, option: str):
    def parse(text: str):
        try:
            return kind(text)
        except ValueError:
            word = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{option} must be {word}, got {text!r}") from None

    parse.__name__ = kind.__name__
    return parse


def settings_from_arguments(arguments: argparse.Namespace) -> Settings:
    values = {f.name: getattr(arguments, f.name) for f in dataclasses.fields(Settings) if f.name != "note"}
    return Settings(**values)


class TerminalProgress:
    """Print training progress to stderr about once a second."""

    def __init__(self, stream=sys.stderr, interval: float = 1.0) -> None:
        self.stream = stream
        self.interval = interval
        self.last = -float("inf")

    def __call__(self, step) -> None:
        now = time.perf_counter()
        if now - self.last < self.interval:
            return
        self.last = now
        print(
            f"[train] {step.phase} step {step.step}  loss {step.loss:.3e}  pde {step.pde_loss:.3e}  "
            f"boundary {step.boundary_loss:.3e}  {step.seconds:.1f} s",
            file=self.stream,
            flush=True,
        )


def history_csv(history) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["phase", "step", "loss", "pde_loss", "boundary_loss", "seconds"])
    for step in history:
        writer.writerow([step.phase, step.step, repr(step.loss), repr(step.pde_loss), repr(step.boundary_loss), f"{step.seconds:.4f}"])
    return buffer.getvalue()


def run_command(settings: Settings, out: Path, skip_hessian: bool = False, theta_path: Path | None = None) -> int:
    from .files import load_theta
    from .network import NetworkLayout
    from .training import train

    initial_theta = None
    if theta_path is not None:
        initial_theta = load_theta(theta_path, NetworkLayout.from_settings(settings), settings.dtype)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "config.json", settings.to_json() + "\n")
    print(
        f"[train] {settings.layer_widths} {settings.activation} network, {settings.n_params} parameters, "
        f"{settings.dtype}, {settings.n_interior} interior + {settings.n_boundary} boundary ({settings.boundary}) points",
        file=sys.stderr,
    )
    result = train(settings, callback=TerminalProgress(), initial_theta=initial_theta)
    write_atomic(out / "history.csv", history_csv(result.history))
    write_npy_atomic(out / "theta.npy", result.theta)
    write_atomic(out / "metrics.json", json.dumps(result.metrics(), indent=2) + "\n")
    print(
        f"[train] done in {result.seconds:.1f} s: loss {result.loss:.3e}, relative L2 error {result.relative_l2_error:.3e}",
        file=sys.stderr,
    )
    if not skip_hessian:
        run_analysis_stages(settings, result, out)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def run_analysis_stages(settings: Settings, result, out: Path) -> None:
    """Run the Hessian, spectrum and landscape stages after training and write their files."""
    from . import pipeline

    pipeline.run_stages(settings, result, out, report=lambda text: print(text, file=sys.stderr, flush=True))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=arguments.log_level, format="%(levelname)s %(name)s: %(message)s")
    # TensorFlow's retracing warnings name internal functions and give the user nothing to do.
    logging.getLogger("tensorflow").setLevel(max(logging.ERROR, logging.getLevelName(arguments.log_level)))
    try:
        settings = settings_from_arguments(arguments)
    except SettingsError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    if arguments.out.exists() and not arguments.out.is_dir():
        print(f"{parser.prog}: error: --out {arguments.out} is a file; give a folder path (created if missing)", file=sys.stderr)
        return 2
    try:
        return run_command(settings, arguments.out, arguments.skip_hessian, arguments.theta)
    except (ValueError, MemoryError) as error:
        # SettingsError, a rejected θ file and memory-budget refusals are all bad requests.
        logger.debug("request rejected", exc_info=True)
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"{parser.prog}: error: could not write the output files: {error}", file=sys.stderr)
        return 1
    except RuntimeError as error:
        # Divergent training, an unconverged eigensolver and similar failures with a message.
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
