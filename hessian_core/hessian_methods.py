"""Dense Hessians of the PINN loss, by several methods, with their PDE and boundary parts.

Public API
----------
``compute_hessian(loss, theta, method="forward-over-reverse", memory_budget_gib=2.0,
split_terms=True, progress=None, force=False) -> HessianResult``
    The P × P Hessian of ``loss`` (a :class:`~hessian_core.loss.PoissonLoss`) at θ.
    ``progress(done, total)`` is called as Hessian columns are filled.
``HessianResult``
    ``.matrix`` (P × P float64, the total, exactly symmetric), ``.pde`` and ``.boundary``
    (P × P float64, or None when ``split_terms=False``), ``.record`` (a
    :class:`HessianRecord`).
``HessianRecord``
    How the matrix was computed; ``.to_dict()`` gives method, dtype, block_size, seconds,
    n_products, asymmetry (max|H − Hᵀ| / max|H| before symmetrisation), whether the matrix
    is an approximation, and the parameter layout.
``gauss_newton_matrix(loss, theta, memory_budget_gib=2.0) -> GaussNewtonResult``
    (in :mod:`hessian_core.gauss_newton`) the total, PDE and boundary Gauss-Newton matrices,
    so that H − GN, the residual-curvature term, can be shown.
``hessian_core.hessian(loss_fn, variables, method="forward-over-reverse") -> GenericHessian``
    (in :mod:`hessian_core.generic_hessian`) the Hessian of any scalar ``loss_fn()`` of a list
    of ``tf.Variable``\\ s, such as a Keras model's ``trainable_variables``, in the order of
    ``variables``.
``MemoryBudgetError``
    (in :mod:`hessian_core.memory`) raised before anything large is allocated when the
    dense results cannot fit in the budget.

Methods: ``forward-over-reverse`` (default), ``reverse-over-reverse``, ``jacobian-pfor``,
``tf-hessians`` and ``gauss-newton`` (an approximation, labelled as such). ``matrix-free``
has no dense matrix and is rejected here; use :class:`hessian_core.hvp.HessianVectorProduct`.
"""
