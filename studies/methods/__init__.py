"""``akorn integrators``: every registered integration method against a float64 reference.

One test problem with every term of the flow active — a dense random coupling, Gaussian
natural frequencies and a stimulus, ``dx_i/dt = Ω_i x_i + Proj_{x_i}(c_i + Σ_j J_ij x_j)`` —
is integrated to ``t_end`` from a batch of random states by every method in
``integrators.METHODS`` and compared with ``scipy_reference`` (SciPy DOP853 at rtol = atol =
1e-12). Fixed-step methods run at step sizes ``h = h_max / 2^k``; adaptive methods run at
tolerances ``rtol = atol = rtol_max · 10^(−k)`` for the same ``k`` and report the mean step
they took. For each run: the error at ``t_end`` (largest Euclidean distance of an oscillator
from the reference), the drift off the spheres (largest ``| |x_i| − 1 |``), the wall and CPU
time (median of ``repeats`` runs), and the solver statistics. The fitted slope of log error vs
log h gives each fixed-step method's observed order, to compare with its nominal order.

The runs are timed one after another in this process (not on Dask): parallel runs on a
shared machine would measure each other. Set ``OMP_WAIT_POLICY=PASSIVE`` (the ``akorn``
command does) so that torch's idle threads do not spin.

Results (``integrators.h5``): dims ``solver × h`` (named ``solver``, not ``method``, which
``Dataset.sel`` takes as its own keyword; for adaptive methods the ``h`` index is the tolerance
level: see ``rtol`` and ``h_effective``); variables ``error``, ``drift``, ``wall_time``,
``cpu_time``, ``nfe``, ``steps``, ``rejected``, ``status``, per method ``order``,
``order_observed``, ``order_note`` (which errors the fit used, or why it is NaN: an adaptive
method, or step sizes too coarse for the asymptotic rate), ``adaptive``, ``stays_on_sphere``.
Step sizes are in model time units (:mod:`studies.units`). Plot: error vs step size (order
slopes) and error vs wall time (work–precision), and the sphere drift.
"""

from __future__ import annotations

from studies.lazy import lazy_attributes
from studies.methods.config import FILENAME, REFERENCE, STUDY, Config, upgrade

__all__ = ["Config", "FILENAME", "REFERENCE", "STUDY", "build_problem", "fit_order", "order_note", "plot", "run",
           "summarize", "upgrade"]

__getattr__ = lazy_attributes(__name__, "experiment plots")
