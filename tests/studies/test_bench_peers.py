"""The side-by-side benchmark suite (``akorn bench peers``): its reference, its peers, its --quick run.

Timings are never asserted; errors are (every contender must agree with the reference).
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from studies.bench.peers import harness, numpy_peers, problems

# Sane bounds on each workload's error metric in --quick mode (the measured errors are 10–1000×
# smaller; a contender solving another problem, or a broken reference, is off by 1e-2 or more).
QUICK_BOUNDS = {"W1": 1e-6, "W2": 1e-3, "W3": 1e-4, "W4": 1e-3, "W5": 1e-6}
REPO = Path(__file__).resolve().parents[2]


def _adler(t: np.ndarray, dw: float, K: float, phi0: float) -> np.ndarray:
    """φ = θ2 − θ1 of two oscillators, φ' = Δω − K sin φ, for K > |Δω| and φ0 in the tanh branch.

    With u = tan(φ/2): u(t) = (K − s tanh(s (t + c)/2)) / Δω, s = √(K² − Δω²).
    """
    s = math.sqrt(K * K - dw * dw)
    c = 2 * math.atanh((K - dw * math.tan(phi0 / 2)) / s) / s
    return 2 * np.arctan((K - s * np.tanh(s * (t + c) / 2)) / dw)


def test_reference_matches_adler_closed_form():
    t = np.linspace(0.0, 10.0, 21)
    theta, stats = problems.reference_meanfield(np.array([-0.5, 0.5]), np.array([0.0, 2.0]), 2.0, t,
                                                observe=lambda y: y.copy())
    phi = theta[:, 1] - theta[:, 0]
    np.testing.assert_allclose(phi, _adler(t, 1.0, 2.0, 2.0), rtol=0, atol=1e-10)
    assert abs(phi[-1] - math.asin(0.5)) < 1e-6  # locked at sin φ* = Δω/K
    r, _ = problems.reference_meanfield(np.array([-0.5, 0.5]), np.array([0.0, 2.0]), 2.0, t)
    np.testing.assert_allclose(r, np.abs(np.cos(phi / 2)), rtol=0, atol=1e-12)
    assert stats["nfev"] > 0


def test_reference_free_rotation_and_dense_agree():
    rng = np.random.default_rng(3)
    omega, theta0 = problems.lorentzian(rng, 40), 2 * np.pi * rng.random(40)
    t = np.linspace(0.0, 5.0, 11)
    r, _ = problems.reference_meanfield(omega, theta0, 0.0, t)  # K = 0: θ(t) = θ0 + ω t
    exact = np.abs(np.exp(1j * (theta0 + t[:, None] * omega)).mean(axis=1))
    np.testing.assert_allclose(r, exact, rtol=0, atol=1e-12)
    # the dense field with J = K/N is the mean field
    th_mf, _ = problems.reference_meanfield(omega, theta0, 1.5, t, observe=lambda y: y.copy())
    th_dense, _ = problems.reference_dense(omega, theta0, np.full((40, 40), 1.5 / 40), t)
    assert problems.phase_error(th_dense, th_mf) < 1e-9


def test_exponential_reference_is_fourth_order_and_matches_dop853():
    """W3's reference at large N (an exponential RK4 with substeps) agrees with DOP853 where both run,
    converges at order 4, and is what ``reference`` computes for W3 above the DOP853 size."""
    N = 2000
    omega = problems.lorentzian_quantiles(N)
    theta0 = 2 * np.pi * np.random.default_rng(4).random(N)
    t = 0.01 * np.arange(21)
    exact, _ = problems.reference_meanfield(omega, theta0, 2.0, t)
    errs = [np.abs(problems.reference_meanfield_exponential(omega, theta0, 2.0, t, k)[0] - exact).max()
            for k in (2, 4)]
    assert errs[1] < 1e-9 and 8 < errs[0] / errs[1] < 40  # ~2^4 (the fastest oscillators add an O(h) part)
    with pytest.raises(ValueError, match="uniform output times"):
        problems.reference_meanfield_exponential(omega, theta0, 2.0, np.array([0.0, 0.1, 0.3]), 2)
    w = problems.make("W3", "quick")
    assert problems.reference_label(w, 1e-10) == "DOP853 float64 rtol=atol=1e-10"
    w.data["omega"] = np.zeros(problems.W3_DOP853_MAX_N + 1, dtype=np.float32)
    assert problems.reference_label(w, 1e-10).startswith(f"exponential RK4 complex128, {problems.W3_SUBSTEPS} ")
    assert problems.reference_label(w, 1e-11).startswith(f"exponential RK4 complex128, {2 * problems.W3_SUBSTEPS} ")


def test_metrics():
    assert problems.phase_error(np.array([np.pi - 1e-3]), np.array([-np.pi + 1e-3])) == pytest.approx(2e-3)
    assert problems.order_parameter(np.zeros(5)) == pytest.approx(1.0)
    w = problems.make("W2", "quick")
    assert w.data["theta0"].shape == (2, 64) and w.data["omega"].shape == (64,) and len(w.data["K"]) == 3
    with pytest.raises(ValueError, match="name"):
        problems.make("W9")


def test_numpy_rk4_loop_is_fourth_order_and_matches_reference():
    w = problems.make("W1", "quick")
    d = w.data
    ref, _ = problems.reference_meanfield(d["omega"], d["theta0"], d["K"], d["t"][:11])
    h = float(d["t"][1] - d["t"][0])
    errs = [np.abs(numpy_peers.rk4_meanfield(d["omega"], d["theta0"], d["K"], h / k, 10 * k, k) - ref).max()
            for k in (2, 4)]
    assert errs[1] < 1e-8
    assert 10 < errs[0] / errs[1] < 24  # ~2^4


def test_missing_pypi_kuramoto_is_a_note(tmp_path):
    w = problems.make("W1", "quick")
    with pytest.raises(harness.Unavailable, match="pip install --target"):
        numpy_peers.pypi_kuramoto(w, tmp_path)


def test_missing_jax_is_a_note_not_a_failure(monkeypatch, tmp_path, capsys):
    from studies.bench import peers
    from studies.bench.peers import jax_peers

    def missing(w):
        raise harness.Unavailable("diffrax/JAX not installed (jax): pip install 'akorn-toolkit[bench]'")
    monkeypatch.setattr(jax_peers, "diffrax_runner", missing)
    res = peers.run(["--quick", "--only", "W4", "--repeats", "1", "--cache-dir", str(tmp_path)])
    assert "diffrax" not in res["W4"]["runs"] and "toolkit" in res["W4"]["runs"]
    assert any("skipped diffrax" in n for n in res["W4"]["notes"])
    out = capsys.readouterr().out
    assert "note: skipped diffrax" in out and "Traceback" not in out


def test_quick_suite_errors_below_bounds(tmp_path):
    # In a subprocess: JAX must not be imported into the test process (its at-fork warning
    # would turn later tests that fork, e.g. DataLoader workers, into errors).
    out_dir = tmp_path / "out"
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, "-m", "studies.bench", "peers", "--out", str(out_dir), "--", "--quick",
                          "--repeats", "1", "--no-memory", "--cache-dir", str(tmp_path / "cache")],
                         capture_output=True, text=True, cwd=REPO, env=env, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stdout + res.stderr and "W5:" in res.stdout
    results = json.loads((out_dir / "bench.json").read_text())["results"]["peers"]
    assert set(results) == set(problems.WORKLOADS)
    for name, res in results.items():
        runs = res["runs"]
        assert "toolkit" in runs, name
        for key, v in runs.items():
            assert "failed" not in v, (name, key, v.get("failed"))
            if v["side"] == "bound":
                continue
            assert v["error"] < QUICK_BOUNDS[name], (name, key, v["error"])
            assert v["wall"] > 0 and v["runs"] >= 1
            if v["side"] == "peer":
                assert v["ratio_wall"] > 0 and v["faster"].split()[0] in ("toolkit", "peer")
    assert results["W5"]["runs"]["toolkit_adjoint"]["error"] < QUICK_BOUNDS["W5"]


def test_memory_subprocess_reports_a_peak(tmp_path):
    from studies.bench import peers

    opts = peers._parse(["--quick", "--cache-dir", str(tmp_path)])
    res = peers._memory("toolkit", "quick", 0, opts)
    assert "memory_failed" not in res, res
    assert res["peak_extra_MB"] >= 0


def test_cold_compile_subprocesses_time_the_first_call(tmp_path):
    # An empty inductor cache also builds inductor's CPU-capability probes: it cannot be faster
    # than a cache that lacks only this program.
    from studies.bench import peers

    opts = peers._parse(["--quick", "--cache-dir", str(tmp_path)])
    res = peers.cold_compile("W1", "toolkit_fuse2", "quick", 0, opts)
    assert "cold_failed" not in res, res
    assert 0 < res["cold_new_s"] < res["cold_empty_s"]


def test_a_failing_measurement_subprocess_raises_with_its_last_error_line():
    with pytest.raises(harness.CaseFailed, match="ImportError.*no_such_entry"):
        harness.run_case("studies.bench.peers.cold", "no_such_entry", {})
