"""The spectrum stage's files, dense and matrix-free, on a tiny network."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from hessian_core.hvp import HessianVectorProduct
from hessian_core.loss import PoissonLoss
from hessian_core.network import glorot_uniform_theta
from hessian_core.settings import Settings
from hessian_core.spectrum_files import write_spectrum_files

SETTINGS = Settings(hidden_layers=1, width=6, n_interior=40, n_boundary=24, top_k=3, landscape_points=5, seed=2)


@pytest.fixture(scope="module")
def problem():
    loss = PoissonLoss.from_settings(SETTINGS)
    theta = glorot_uniform_theta(loss.layout, SETTINGS.seed)
    columns = [HessianVectorProduct(loss, theta, term=term).matmat(np.eye(loss.n_params)) for term in ("pde", "boundary")]
    pde, boundary = ((c + c.T) / 2 for c in columns)
    hessian = SimpleNamespace(matrix=pde + boundary, pde=pde, boundary=boundary)
    return loss, theta, hessian


def test_dense_stage_writes_complete_files(problem, tmp_path):
    loss, theta, hessian = problem
    summary = write_spectrum_files(SETTINGS, loss, theta, hessian, tmp_path, report=lambda text: None)
    eigenvalues = np.load(tmp_path / "eigenvalues.npy")
    reference = np.linalg.eigvalsh(hessian.matrix)
    np.testing.assert_allclose(eigenvalues, reference, rtol=1e-12, atol=1e-12)
    stored = json.loads((tmp_path / "spectrum.json").read_text())
    assert stored == json.loads(json.dumps(summary))
    np.testing.assert_allclose(stored["top"]["eigenvalues"], reference[::-1][:3], rtol=1e-12)
    assert stored["most_negative"]["eigenvalues"][0] == pytest.approx(reference[0], rel=1e-12)
    assert stored["eigenvalues_file"]["complete"] is True
    assert set(stored["term_statistics"]) == {"pde", "boundary"}
    assert abs(stored["hutchinson"]["estimate"] - np.trace(hessian.matrix)) < 4 * stored["hutchinson"]["standard_error"]
    landscape = np.load(tmp_path / "landscape.npz")
    assert landscape["slice_total"].shape == (4, 5)
    assert landscape["surface_total"].shape == (5, 5)
    assert landscape["slice_total"][0, 2] == loss.evaluate(theta).total


def test_matrix_free_stage_matches_dense(problem, tmp_path):
    loss, theta, hessian = problem
    summary = write_spectrum_files(SETTINGS, loss, theta, None, tmp_path, report=lambda text: None)
    reference = np.linalg.eigvalsh(hessian.matrix)
    assert summary["top"]["converged"] is True
    np.testing.assert_allclose(summary["top"]["eigenvalues"], reference[::-1][:3], rtol=1e-8)
    assert summary["top"]["max_residual"] < 1e-6
    assert summary["most_negative"]["eigenvalues"][0] == pytest.approx(reference[0], rel=1e-8)
    assert summary["statistics"] is None
    assert summary["eigenvalues_file"]["complete"] is False
    assert summary["products"]["total"] == sum(v for k, v in summary["products"].items() if k != "total")
    landscape = np.load(tmp_path / "landscape.npz")
    parameters = json.loads(str(landscape["slice_parameters"]))
    assert parameters["direction_source"] == "lanczos"
    assert parameters["points"] == 5
