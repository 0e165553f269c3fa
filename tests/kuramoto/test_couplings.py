"""The coupling conformance suite: every coupling in ``kuramoto.couplings.COUPLINGS`` runs the same properties.

A new image coupling (a subclass of ``AbstractImageCoupling`` built as ``cls(channels, n, **options)``)
is enrolled by its registry line alone; a new graph coupling needs a factory in ``GRAPH_FACTORIES``
(its constructor arguments are its own), and ``test_every_coupling_has_a_factory`` says so.
"""

from __future__ import annotations

import pytest
import torch

from kuramoto import KuramotoField, normalize, random_states
from kuramoto.couplings import (
    COUPLINGS,
    IMAGE_COUPLINGS,
    AbstractCoupling,
    AbstractImageCoupling,
    Dense,
    MeanField,
    Sparse,
    build_coupling,
    to_oscillators,
)
from kuramoto.graphs import erdos_renyi_edges, lattice_edges, ring_edges

N, B = 9, 3
CHANNELS, H, W = 8, 3, 4


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _symmetric_dense(n: int, dtype: torch.dtype) -> Dense:
    J = torch.randn(N, N, generator=_gen(1), dtype=dtype)
    return Dense(J + J.T)


def _sparse(n: int, dtype: torch.dtype) -> Sparse:
    edges = ring_edges(N, 4)
    return Sparse(edges, torch.full((edges.shape[1],), 0.7, dtype=dtype), num_nodes=N)


#: How to build each graph coupling (their constructor arguments differ).
GRAPH_FACTORIES = {
    "mean_field": lambda n, dtype: MeanField(1.5),
    "dense": _symmetric_dense,
    "sparse": _sparse,
}

#: Options every image coupling may take; each class receives the ones its constructor declares.
IMAGE_OPTIONS = {"kernel_size": 3, "heads": 2}


def _build(name: str, n: int, dtype: torch.dtype) -> AbstractCoupling:
    if name in IMAGE_COUPLINGS:
        torch.manual_seed(0)
        return build_coupling(name, CHANNELS, n, **IMAGE_OPTIONS).to(dtype)
    return GRAPH_FACTORIES[name](n, dtype)


def _state(coupling: AbstractCoupling, n: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    if isinstance(coupling, AbstractImageCoupling):
        return normalize(to_oscillators(torch.randn(B, CHANNELS, H, W, generator=_gen(seed), dtype=dtype), n))
    return random_states(B, N, n=n, generator=_gen(seed), dtype=dtype)


CASES = [(name, n) for name in COUPLINGS for n in (2, 4)]


def test_every_coupling_has_a_factory():
    missing = [name for name in COUPLINGS if name not in IMAGE_COUPLINGS and name not in GRAPH_FACTORIES]
    assert not missing, f"add a factory to GRAPH_FACTORIES for {missing}"


def test_registry_holds_couplings():
    for name, cls in COUPLINGS.items():
        assert issubclass(cls, AbstractCoupling), name


@pytest.mark.parametrize("name, n", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_and_dtype(name, n, dtype):
    J = _build(name, n, dtype)
    x = _state(J, n, dtype)
    y = J(x)
    assert y.shape == x.shape and y.dtype == dtype
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name, n", CASES)
def test_projected_field_is_tangent(name, n):
    J = _build(name, n, torch.float64)
    x = _state(J, n, torch.float64)
    v = KuramotoField(J)(0.0, x)
    assert (v * x).sum(-1).abs().max() < 1e-12


@pytest.mark.parametrize("name, n", CASES)
def test_batch_equals_loop(name, n):
    J = _build(name, n, torch.float64)
    x = _state(J, n, torch.float64)
    batched = J(x)
    looped = torch.stack([J(x[i:i + 1])[0] for i in range(B)])
    torch.testing.assert_close(batched, looped, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name, n", CASES)
def test_linear_in_x_where_declared(name, n):
    J = _build(name, n, torch.float64)
    if not J.linear:
        pytest.skip(f"{name} is not linear in x (bias or state-dependent weights): nothing to check")
    x, y = _state(J, n, torch.float64, 0), _state(J, n, torch.float64, 1)
    torch.testing.assert_close(J(2.0 * x - 3.0 * y), 2.0 * J(x) - 3.0 * J(y), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_mean_field_equals_dense_ones_over_n(n):
    x = random_states(B, N, n=n, generator=_gen(2), dtype=torch.float64)
    torch.testing.assert_close(MeanField(1.0)(x), Dense(torch.full((N, N), 1.0 / N, dtype=torch.float64))(x))


def _symmetric(name: str, n: int) -> AbstractCoupling | None:
    J = _build(name, n, torch.float64)
    try:
        if J.is_symmetric(atol=1e-12):
            return J
    except NotImplementedError:
        pass
    return None


@pytest.mark.parametrize("name, n", CASES)
def test_symmetric_energy_does_not_increase(name, n):
    J = _symmetric(name, n)
    if J is None:
        pytest.skip(f"{name} as built here is not symmetric: the energy is no Lyapunov function")
    field = KuramotoField(J)
    x = _state(J, n, torch.float64)
    energies = [field.energy(x)]
    for _ in range(20):
        x = normalize(x + 0.01 * field(0.0, x))
        energies.append(field.energy(x))
    E = torch.stack(energies)
    assert (E[1:] <= E[:-1] + 1e-10).all()


def test_symmetrised_conv_energy_does_not_increase():
    conv = build_coupling("conv", CHANNELS, 2, kernel_size=3, bias=False).to(torch.float64).symmetrize()
    assert conv.is_symmetric(atol=1e-12)
    field = KuramotoField(conv)
    x = _state(conv, 2, torch.float64)
    E0 = field.energy(x)
    for _ in range(20):
        x = normalize(x + 0.01 * field(0.0, x))
    assert (field.energy(x) <= E0 + 1e-10).all()


def test_build_coupling_names_the_choices():
    with pytest.raises(ValueError, match="coupling: expected one of 'conv', 'attn'"):
        build_coupling("dense", 8, 2)


@pytest.mark.parametrize("builder, args", [(ring_edges, (12, 4)), (lattice_edges, (16,)),
                                           (erdos_renyi_edges, (30, 6, 0))])
def test_graphs_are_undirected_without_self_loops(builder, args):
    edges = builder(*args)
    assert edges.dtype == torch.int64 and edges.shape[0] == 2
    pairs = set(map(tuple, edges.T.tolist()))
    assert all((j, i) in pairs for i, j in pairs)
    assert all(i != j for i, j in pairs)
    assert len(pairs) == edges.shape[1]  # no repeated edge


def test_graph_degrees():
    assert ring_edges(12, 4).shape[1] == 12 * 4
    assert lattice_edges(16).shape[1] == 16 * 4
    assert erdos_renyi_edges(30, 6, 0).shape[1] == 30 * 6
    assert torch.equal(erdos_renyi_edges(30, 6, 5), erdos_renyi_edges(30, 6, 5))


@pytest.mark.parametrize("bad", [dict(num_nodes=10, degree=3), dict(num_nodes=4, degree=4)])
def test_ring_errors(bad):
    with pytest.raises(ValueError, match="degree"):
        ring_edges(**bad)
