"""The Kuramoto layer against a plain loop of the paper's update, its energies, gradients and initial states."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from integrators import Compiled
from kuramoto.couplings.graph import MeanField
from kuramoto.couplings.image import Attention, Conv, to_features, to_oscillators
from kuramoto.frequencies import RotationPairs
from networks.layer import KuramotoLayer, Trajectory, initial_state, learnable_initial_state, use_integrator
from tests.kuramoto.test_image_couplings import _ref_attention

DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device")])]

B, C, N_OSC, H, W = 2, 8, 4, 4, 5  # 2 oscillators of dimension 4 per position


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def make_coupling(kind: str, dtype=torch.float32, seed: int = 0):
    if kind == "conv":
        return Conv(C, N_OSC, 3, generator=gen(seed), dtype=dtype)
    return Attention(C, N_OSC, heads=2, gta=True, grid=(H, W), generator=gen(seed), dtype=dtype)


def make_omega(kind: str | None):
    if kind is None:
        return None
    om = RotationPairs(N_OSC, None if kind == "global" else C // N_OSC, spatial_dims=2, init_omega=0.7)
    with torch.no_grad():  # distinct ω per pair so that a pairing mix-up shows
        om.p.add_(0.2 * torch.randn(om.p.shape, generator=gen(42)))
    return om


def inputs(seed: int = 1, dtype=torch.float32, batch: int = B):
    g = gen(seed)
    return torch.randn(batch, C, H, W, generator=g, dtype=dtype), torch.randn(batch, C, H, W, generator=g, dtype=dtype)


# ----------------------------------------------------------------------------- the plain loop

@torch.no_grad()
def reference_loop(layer: KuramotoLayer, c: torch.Tensor, x0: torch.Tensor, T: int, *, identity_omega: bool = False):
    """docs/AKORN.md §1.9 written out in the official [B, C/n, n, H, W] grouping; returns states and both energies."""
    Bc, Cc, Hc, Wc = c.shape
    n = layer.n
    grp = lambda t: t.reshape(Bc, Cc // n, n, Hc, Wc)  # noqa: E731
    J = layer.coupling
    gamma = layer.gamma.detach()

    def apply_J(xg):
        f = xg.reshape(Bc, Cc, Hc, Wc)
        if isinstance(J, Conv):
            return grp(F.conv2d(f, J.weight, J.bias, padding=J.kernel_size // 2))
        return grp(_ref_attention(J, f))

    def omega_term(xg):
        om = layer.omega
        if om is None:
            return xg if identity_omega else torch.zeros_like(xg)
        w = torch.linalg.vector_norm(om.p, dim=-1)  # official ω = ‖p‖, pair (a, b) -> (ω b, −ω a)
        w = w.view(1, 1, 1, 1) if om.groups is None else w.view(1, Cc // n, n // 2, 1, 1)
        a, b = xg[:, :, 0::2], xg[:, :, 1::2]
        out = torch.empty_like(xg)
        out[:, :, 0::2], out[:, :, 1::2] = w * b, -w * a
        return out

    c_hat = grp(layer.stimulus_norm(c))
    x = F.normalize(grp(x0), dim=2)
    states, paper, logged = [x], [], [torch.zeros(Bc, dtype=c.dtype)]
    for _ in range(T):
        jx = apply_J(x)
        y = jx + c_hat
        y_t = y - (y * x).sum(2, keepdim=True) * x if layer.project else y
        v = omega_term(x) + y_t
        logged.append(-(x * y).sum((1, 2, 3, 4)))
        paper.append(-(0.5 * x * jx + x * c_hat).sum((1, 2, 3, 4)))
        x = F.normalize(x + gamma * v, dim=2)
        states.append(x)
    jx = apply_J(x)
    paper.append(-(0.5 * x * jx + x * c_hat).sum((1, 2, 3, 4)))
    to_f = lambda t: t.reshape(Bc, Cc, Hc, Wc)  # noqa: E731
    return [to_f(s) for s in states], torch.stack(paper), torch.stack(logged)


@pytest.mark.parametrize("coupling", ["conv", "attn"])
@pytest.mark.parametrize("omega", [None, "global", "group"])
@pytest.mark.parametrize("project", [True, False])
def test_discrete_layer_equals_plain_loop(coupling, omega, project):
    T = 4
    norm = {"conv": "gn", "attn": "sandb"}[coupling] if project else "none"
    layer = KuramotoLayer(make_coupling(coupling), N_OSC, C, omega=make_omega(omega), stimulus_norm=norm, steps=T,
                          gamma=0.6, project=project)
    c, x0 = inputs()
    x, traj = layer(c, x0, return_trajectory=True)
    states, paper, logged = reference_loop(layer, c, x0, T)
    assert isinstance(traj, Trajectory)
    assert traj.states.shape == (T + 1, B, C, H, W) and traj.energy.shape == (T + 1, B)
    assert traj.logged_energy.shape == (T + 1, B) and traj.ts.shape == (T + 1,)
    for t in range(T + 1):
        assert torch.allclose(traj.states[t], states[t], atol=1e-6, rtol=0), t
    assert torch.allclose(x, states[-1], atol=1e-6, rtol=0)
    scale = float(paper.abs().max())
    assert torch.allclose(traj.energy, paper, atol=1e-6 * scale, rtol=0)
    assert torch.allclose(traj.logged_energy, logged, atol=1e-6 * scale, rtol=0)
    assert torch.count_nonzero(traj.logged_energy[0]) == 0
    # every state lies on the product of spheres
    norms = to_oscillators(traj.states.flatten(0, 1), N_OSC).norm(dim=-1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-6)
    # the output without a trajectory is the same map
    assert torch.allclose(layer(c, x0), x, atol=0, rtol=0)


def test_norms_stay_one_over_many_steps():
    layer = KuramotoLayer(make_coupling("conv"), N_OSC, C, omega=make_omega("group"), steps=30, gamma=2.0,
                          project=False)
    c, x0 = inputs(3)
    _, traj = layer(10 * c, x0, return_trajectory=True)
    norms = to_oscillators(traj.states.flatten(0, 1), N_OSC).norm(dim=-1)
    assert (norms - 1).abs().max() < 1e-6


def test_energy_non_increasing_symmetric_conv():
    conv = Conv(C, N_OSC, 3, bias=False, generator=gen(5), dtype=torch.float64).symmetrize()
    assert conv.is_symmetric()
    layer = KuramotoLayer(conv, N_OSC, C, steps=60, gamma=0.02).double()
    c, x0 = inputs(6, torch.float64)
    with torch.no_grad():
        _, traj = layer(0.5 * c, x0, return_trajectory=True)
    dE = traj.energy[1:] - traj.energy[:-1]
    assert float(dE.max()) <= 1e-10
    assert float(traj.energy[-1].sum()) < float(traj.energy[0].sum()) - 1.0  # and it does go down


@pytest.mark.parametrize("project", [True, False])
def test_legacy_identity_omega_is_a_rescaled_step(project):
    c, x0 = inputs(7)
    quirk = KuramotoLayer(make_coupling("conv", seed=3), N_OSC, C, steps=1, gamma=1.0, project=project,
                          legacy_identity_omega=True)
    plain = KuramotoLayer(make_coupling("conv", seed=3), N_OSC, C, steps=1, gamma=0.5, project=project)
    assert torch.allclose(quirk(c, x0), plain(c, x0), atol=1e-6)
    # and it is the official map normalize(x + γ(x + v)) over several steps
    states, _, _ = reference_loop(quirk, c, x0, 3, identity_omega=True)
    assert torch.allclose(quirk(c, x0, steps=3), states[-1], atol=1e-6)
    assert torch.allclose(quirk.step_size(), torch.tensor(0.5))


@pytest.mark.parametrize("coupling", ["conv", "attn"])
def test_runs_with_other_step_counts(coupling):
    layer = KuramotoLayer(make_coupling(coupling), N_OSC, C, omega=make_omega("global"), steps=3)
    c, x0 = inputs(8)
    x7, traj = layer(c, x0, steps=7, return_trajectory=True, save_states=False)
    assert traj.states is None and traj.energy.shape == (8, B)
    states, _, logged = reference_loop(layer, c, x0, 7)
    assert torch.allclose(x7, states[-1], atol=1e-6)
    assert torch.allclose(traj.logged_energy, logged, atol=1e-5 * float(logged.abs().max()))
    assert not torch.allclose(layer(c, x0), x7, atol=1e-3)


def test_other_fixed_step_methods():
    c, x0 = inputs(17)
    heun = KuramotoLayer(make_coupling("conv", seed=8), N_OSC, C, omega=make_omega("global"), steps=1, gamma=0.3,
                         method="heun_normalized")
    field = heun.field(c)
    x = F.normalize(to_oscillators(x0, N_OSC), dim=-1)
    k1 = field(0.0, x)
    k2 = field(0.3, x + 0.3 * k1)
    expected = to_features(F.normalize(x + 0.15 * (k1 + k2), dim=-1))
    assert torch.allclose(heun(c, x0), expected, atol=1e-6)
    # a torchdiffeq fixed-step method runs on the grid t_k = kγ (and leaves the sphere slightly)
    rk4 = KuramotoLayer(make_coupling("conv", seed=8), N_OSC, C, omega=make_omega("global"), steps=2, gamma=0.1,
                        method="rk4")
    x2, traj = rk4(c, x0, return_trajectory=True)
    assert torch.allclose(traj.ts, torch.tensor([0.0, 0.1, 0.2], dtype=torch.float64))
    assert (to_oscillators(x2, N_OSC).norm(dim=-1) - 1).abs().max() < 1e-3
    with pytest.raises(ValueError, match="learn_gamma: a learnable γ needs a native method"):
        KuramotoLayer(make_coupling("conv"), N_OSC, C, method="rk4", learn_gamma=True)
    with pytest.raises(ValueError, match="adjoint: the exact-discrete checkpointed gradient needs a native"):
        KuramotoLayer(make_coupling("conv"), N_OSC, C, method="rk4", adjoint=True)


def _grads(layer: KuramotoLayer, c: torch.Tensor, x0: torch.Tensor, T: int | None = None):
    c = c.clone().requires_grad_()
    x0 = x0.clone().requires_grad_()
    target = torch.randn(c.shape, generator=gen(99), dtype=c.dtype)
    out = layer(c, x0, steps=T)
    loss = (out * target).sum()
    params = [p for p in layer.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, [c, x0, *params])
    return out.detach(), grads


@pytest.mark.parametrize("coupling,adjoint", [("conv", True), ("attn", True), ("conv", 2)])
def test_checkpointed_gradient_equals_backprop(coupling, adjoint):
    kw = dict(omega=make_omega("group"), stimulus_norm="gn", steps=5, gamma=0.8, learn_gamma=True)
    plain = KuramotoLayer(make_coupling(coupling, seed=4), N_OSC, C, **kw)
    ckpt = KuramotoLayer(make_coupling(coupling, seed=4), N_OSC, C, adjoint=adjoint, **kw)
    ckpt.load_state_dict(plain.state_dict())
    assert ckpt.gamma.requires_grad
    c, x0 = inputs(9)
    out_p, g_p = _grads(plain, c, x0)
    out_c, g_c = _grads(ckpt, c, x0)
    assert torch.equal(out_p, out_c)
    assert len(g_p) == len(g_c) == 2 + len([p for p in plain.parameters() if p.requires_grad])
    for a, b in zip(g_p, g_c):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)
    params = [p for p in plain.parameters() if p.requires_grad]
    i_gamma = 2 + next(i for i, p in enumerate(params) if p is plain.gamma)
    assert float(g_c[i_gamma].abs()) > 0  # the learnable γ's gradient is among those compared


def test_learnable_gamma_gets_a_gradient():
    layer = KuramotoLayer(make_coupling("conv"), N_OSC, C, steps=3, gamma=1.0, learn_gamma=True)
    assert isinstance(layer.gamma, torch.nn.Parameter)
    c, x0 = inputs(10)
    (layer(c, x0) * torch.randn(c.shape, generator=gen(1))).sum().backward()
    assert layer.gamma.grad is not None and float(layer.gamma.grad.abs()) > 0
    fixed = KuramotoLayer(make_coupling("conv"), N_OSC, C, steps=3, gamma=1.0)
    assert "gamma" not in dict(fixed.named_parameters()) and "gamma" in dict(fixed.named_buffers())


def test_continuous_adjoint_matches_backprop():
    kw = dict(omega=make_omega("global"), stimulus_norm="gn", t_span=(0.0, 1.0), method="dopri5", rtol=1e-7,
              atol=1e-9)
    plain = KuramotoLayer(make_coupling("conv", torch.float64, seed=6), N_OSC, C, **kw).double()
    adj = KuramotoLayer(make_coupling("conv", torch.float64, seed=6), N_OSC, C, adjoint=True, **kw).double()
    adj.load_state_dict(plain.state_dict())
    c, x0 = inputs(11, torch.float64)
    out_p, g_p = _grads(plain, 0.3 * c, x0)
    out_a, g_a = _grads(adj, 0.3 * c, x0)
    assert torch.allclose(out_p, out_a, atol=1e-6)
    for a, b in zip(g_p, g_a):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
    norms = to_oscillators(out_p, N_OSC).norm(dim=-1)
    assert (norms - 1).abs().max() < 1e-5


def test_continuous_trajectory_and_fixed_step_method():
    layer = KuramotoLayer(make_coupling("conv"), N_OSC, C, t_span=(0.0, 0.5), method="rk4", dt=0.05, steps=5)
    c, x0 = inputs(12)
    x, traj = layer(c, x0, return_trajectory=True)
    assert traj.states.shape == (6, B, C, H, W)
    assert torch.allclose(traj.ts, torch.linspace(0, 0.5, 6, dtype=torch.float64))
    assert torch.allclose(traj.states[-1], x) and torch.allclose(traj.states[0], initial_state(x0, N_OSC, "stimulus"))


# ----------------------------------------------------------------------------- initial states

def test_initial_state_modes():
    c, _ = inputs(13)
    x = initial_state(c, N_OSC, "random", generator=gen(1))
    assert torch.equal(x, initial_state(c, N_OSC, generator=gen(1)))
    norms = to_oscillators(x, N_OSC).norm(dim=-1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-6)
    unit_c = to_features(F.normalize(to_oscillators(c, N_OSC), dim=-1))
    assert torch.allclose(initial_state(c, N_OSC, "stimulus"), unit_c)
    mask = torch.zeros(B, H, W, dtype=torch.bool)
    mask[:, 1, 2] = True
    xg = initial_state(c, N_OSC, "given", given_mask=mask, generator=gen(2))
    cn = initial_state(c, N_OSC, "stimulus")
    assert torch.allclose(xg[:, :, 1, 2], cn[:, :, 1, 2])
    assert not torch.allclose(xg[:, :, 0, 0], cn[:, :, 0, 0])
    assert torch.equal(xg, initial_state(c, N_OSC, "given", given_mask=mask[:, None].float(), generator=gen(2)))
    learned = learnable_initial_state(C, N_OSC, (H, W), generator=gen(3))
    xl = initial_state(c, N_OSC, "learned", learned=learned)
    assert xl.shape == c.shape and torch.equal(xl[0], xl[1])
    assert torch.equal(to_oscillators(xl, N_OSC)[0], learned.detach())


def test_initial_state_errors():
    c, _ = inputs(14)
    with pytest.raises(ValueError, match="mode"):
        initial_state(c, N_OSC, "zeros")
    with pytest.raises(ValueError, match="given_mask"):
        initial_state(c, N_OSC, "given")
    with pytest.raises(ValueError, match="given_mask: shape"):
        initial_state(c, N_OSC, "given", given_mask=torch.ones(B, 3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="learned: mode='learned'"):
        initial_state(c, N_OSC, "learned")
    with pytest.raises(ValueError, match=r"learned: expected shape \[2, 4, 5, 4\]"):
        initial_state(c, N_OSC, "learned", learned=torch.ones(2, 4, 4, 4))
    with pytest.raises(ValueError, match="n: the channel count 8 must be a multiple of n=3"):
        initial_state(c, 3)
    with pytest.raises(ValueError, match=r"c: expected a feature map"):
        initial_state(c[0], N_OSC)
    with pytest.raises(TypeError, match="generator"):
        initial_state(c, N_OSC, generator=1)
    with pytest.raises(ValueError, match="grid"):
        learnable_initial_state(C, N_OSC, (0, 3))


def test_learned_state_trained_with_riemannian_adam_stays_on_sphere():
    import geoopt  # imported by networks.layer already (which silences geoopt's import-time deprecation warning)

    layer = KuramotoLayer(make_coupling("conv"), N_OSC, C, omega=make_omega("global"), stimulus_norm="gn", steps=2)
    learned = learnable_initial_state(C, N_OSC, (H, W), generator=gen(4))
    assert isinstance(learned, geoopt.ManifoldParameter) and isinstance(learned.manifold, geoopt.Sphere)
    start = learned.detach().clone()
    w0 = layer.coupling.weight.detach().clone()
    opt = geoopt.optim.RiemannianAdam([learned, *layer.parameters()], lr=0.05)
    c, _ = inputs(15)
    target = torch.randn(c.shape, generator=gen(5))
    losses = []
    for _ in range(15):
        opt.zero_grad()
        x0 = initial_state(c, N_OSC, "learned", learned=learned)
        loss = ((layer(c, x0) - target) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        norms = learned.detach().norm(dim=-1)
        assert (norms - 1).abs().max() < 1e-5
    assert losses[-1] < losses[0]
    assert (learned.detach() - start).abs().max() > 1e-2
    assert (layer.coupling.weight.detach() - w0).abs().max() > 1e-3


# ----------------------------------------------------------------------------- validation and devices

def test_a_solver_object_is_refused_with_what_the_layer_takes_and_how_to_compile():
    conv = make_coupling("conv")
    compiled = Compiled("euler_normalized", backend="eager")
    with pytest.raises(ValueError) as refused:
        KuramotoLayer(conv, N_OSC, C, method=compiled)
    message = str(refused.value)
    assert "registered name" in message and "integrators.METHODS" in message and "'euler_normalized'" in message
    assert "not a Compiled object" in message and "torch.compile(layer)" in message
    layer = KuramotoLayer(conv, N_OSC, C, steps=2)
    with pytest.raises(ValueError, match="not a Compiled object"):
        layer.use_integrator(compiled)
    # the advice holds: the compiled layer gives the eager layer's output
    c, x0 = torch.randn(2, C, H, W, generator=gen(1)), torch.randn(2, C, H, W, generator=gen(2))
    torch.testing.assert_close(torch.compile(layer, backend="eager")(c, x0), layer(c, x0))


def test_constructor_errors():
    conv = make_coupling("conv")
    with pytest.raises(ValueError, match="stimulus_norm"):
        KuramotoLayer(conv, N_OSC, C, stimulus_norm="bn")
    with pytest.raises(ValueError, match="coupling: built for channels=8, n=4"):
        KuramotoLayer(conv, 2, C)
    with pytest.raises(ValueError, match="coupling: a Kuramoto layer needs an image coupling"):
        KuramotoLayer(MeanField(1.0), N_OSC, C)
    with pytest.raises(TypeError, match="coupling"):
        KuramotoLayer(torch.nn.Conv2d(C, C, 3), N_OSC, C)
    with pytest.raises(ValueError, match="omega: RotationPairs built for n=2"):
        KuramotoLayer(conv, N_OSC, C, omega=RotationPairs(2))
    with pytest.raises(ValueError, match="omega: expected RotationPairs"):
        KuramotoLayer(conv, N_OSC, C, omega=RotationPairs(4, groups=3))
    with pytest.raises(ValueError, match="method: unknown integrator"):
        KuramotoLayer(conv, N_OSC, C, method="eulr")
    with pytest.raises(ValueError, match="method: 'dopri5' is adaptive"):
        KuramotoLayer(conv, N_OSC, C, method="dopri5")
    with pytest.raises(ValueError, match="legacy_identity_omega: the official quirk exists only without"):
        KuramotoLayer(conv, N_OSC, C, omega=RotationPairs(4), legacy_identity_omega=True)
    with pytest.raises(ValueError, match="legacy_identity_omega: the quirk is defined"):
        KuramotoLayer(conv, N_OSC, C, t_span=(0, 1), method="dopri5", legacy_identity_omega=True)
    with pytest.raises(ValueError, match="t_span"):
        KuramotoLayer(conv, N_OSC, C, t_span=(1.0, 1.0), method="dopri5")
    with pytest.raises(ValueError, match="dt: method 'rk4' takes fixed steps and needs dt in a continuous layer"):
        KuramotoLayer(conv, N_OSC, C, t_span=(0, 1), method="rk4")
    with pytest.raises(ValueError, match="dt: a discrete layer steps with gamma"):
        KuramotoLayer(conv, N_OSC, C, dt=0.1)
    with pytest.raises(ValueError, match="learn_gamma"):
        KuramotoLayer(conv, N_OSC, C, t_span=(0, 1), method="dopri5", learn_gamma=True)
    with pytest.raises(ValueError, match="gamma"):
        KuramotoLayer(conv, N_OSC, C, gamma=0.0)
    with pytest.raises(ValueError, match="steps"):
        KuramotoLayer(conv, N_OSC, C, steps=0)
    with pytest.raises(TypeError, match="adjoint"):
        KuramotoLayer(conv, N_OSC, C, adjoint="yes")
    with pytest.raises(ValueError, match="adjoint"):
        KuramotoLayer(conv, N_OSC, C, adjoint=-1)
    with pytest.raises(ValueError, match="adjoint"):
        KuramotoLayer(conv, N_OSC, C, t_span=(0, 1), method="dopri5", adjoint=2)


def test_forward_errors():
    layer = KuramotoLayer(make_coupling("conv"), N_OSC, C)
    c, x0 = inputs(16)
    with pytest.raises(ValueError, match="c: expected 8 channels"):
        layer(c[:, :4])
    with pytest.raises(ValueError, match=r"x0: expected the stimulus's shape"):
        layer(c, x0[:1])
    with pytest.raises(TypeError, match="c: dtype/device"):
        layer(c.double())
    with pytest.raises(TypeError, match="x0: dtype/device"):
        layer(c, x0.double())
    with pytest.raises(ValueError, match="steps"):
        layer(c, steps=0)
    with pytest.raises(TypeError, match="c: expected a torch.Tensor"):
        layer(None)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_layer_follows_device_and_dtype(device, dtype):
    layer = KuramotoLayer(make_coupling("attn"), N_OSC, C, omega=make_omega("group"), stimulus_norm="gn", steps=2)
    layer = layer.to(device=device, dtype=dtype)
    c = torch.randn(B, C, H, W, device=device, dtype=dtype)
    g = torch.Generator(device=device).manual_seed(0)
    x, traj = layer(c, generator=g, return_trajectory=True)
    assert x.device == c.device and x.dtype == dtype and traj.energy.dtype == dtype
    assert traj.energy.device == c.device


def test_bounded_gamma_starts_where_asked_and_never_passes_its_bound():
    layer = KuramotoLayer(make_coupling("conv"), N_OSC, C, steps=3, gamma=0.4, learn_gamma=True, gamma_max=1.0)
    assert layer.step_gamma().item() == pytest.approx(0.4)
    assert "gamma" not in dict(layer.named_parameters()) and "gamma_logit" in dict(layer.named_parameters())
    c, x0 = inputs(21)
    (layer(c, x0) * torch.randn(c.shape, generator=gen(2))).sum().backward()
    assert float(layer.gamma_logit.grad.abs()) > 0
    with torch.no_grad():  # however far training pushes θ, the step stays inside (0, γ_max)
        layer.gamma_logit.fill_(50.0)
    assert 0 < layer.step_size().item() <= 1.0
    for kwargs, match in (({"gamma": 1.0, "gamma_max": 1.0, "learn_gamma": True}, "gamma: the initial step"),
                          ({"gamma": 0.5, "gamma_max": 1.0}, "gamma_max: bounds a learnable step"),
                          ({"gamma": 0.5, "gamma_max": -1.0, "learn_gamma": True}, "gamma_max: expected a positive")):
        with pytest.raises(ValueError, match=match):
            KuramotoLayer(make_coupling("conv"), N_OSC, C, **kwargs)


def test_use_integrator_swaps_the_update_and_scales_the_step_at_test_time():
    kw = dict(omega=make_omega("global"), steps=4, gamma=0.6, learn_gamma=True)
    trained = KuramotoLayer(make_coupling("conv", seed=3), N_OSC, C, **kw)
    heun = KuramotoLayer(make_coupling("conv", seed=3), N_OSC, C, method="heun_normalized", **kw)
    half = KuramotoLayer(make_coupling("conv", seed=3), N_OSC, C, method="heun_normalized",
                         **{**kw, "gamma": 0.3})
    c, x0 = inputs(22)
    before = trained(c, x0)
    trained.use_integrator("heun_normalized")
    assert torch.allclose(trained(c, x0), heun(c, x0), atol=1e-6)
    trained.use_integrator(step_scale=0.5)
    assert trained.method == "heun_normalized" and trained.step_size().item() == pytest.approx(0.3)
    assert torch.allclose(trained(c, x0, steps=8), half(c, x0, steps=8), atol=1e-6)
    trained.use_integrator("euler_normalized")
    assert torch.equal(trained(c, x0), before)  # back to the trained update and step
    with pytest.raises(ValueError, match="adaptive"):
        trained.use_integrator("dopri5")
    with pytest.raises(ValueError, match="delegated to torchdiffeq"):
        trained.use_integrator("rk4")  # cannot differentiate the learnt γ
    with pytest.raises(ValueError, match="step_scale"):
        trained.use_integrator(step_scale=0.0)
    continuous = KuramotoLayer(make_coupling("conv"), N_OSC, C, t_span=(0.0, 1.0), method="dopri5")
    with pytest.raises(ValueError, match="continuous layer"):
        continuous.use_integrator("euler_normalized")


def test_use_integrator_on_a_model_reaches_every_kuramoto_layer():
    kw = dict(omega=make_omega("global"), steps=4, gamma=0.6)
    model = torch.nn.Sequential(KuramotoLayer(make_coupling("conv", seed=3), N_OSC, C, **kw), torch.nn.Identity(),
                                KuramotoLayer(make_coupling("conv", seed=4), N_OSC, C, **kw))
    assert use_integrator(model, "heun_normalized", step_scale=0.5) == 2
    assert all(m.method == "heun_normalized" and m.step_size().item() == pytest.approx(0.3) for m in model[::2])
    assert use_integrator(torch.nn.Linear(2, 2), "heun_normalized") == 0  # no Kuramoto layer: nothing to change
    with pytest.raises(TypeError, match="model: expected a torch nn.Module"):
        use_integrator("model")
    with pytest.raises(ValueError, match="adaptive"):
        use_integrator(model, "dopri5")


def test_an_ambient_method_that_leaves_the_sphere_inside_a_layer_says_so():
    # torchdiffeq's rk4 does not renormalise: at γ = 1 with a strong stimulus |x| grew to 5-7
    # without a word before solve checked the drift
    import integrators

    layer = KuramotoLayer(make_coupling("conv", seed=5), N_OSC, C, steps=8, gamma=1.0, method="rk4")
    c, x0 = inputs(23)
    with pytest.warns(integrators.DriftWarning, match="left the sphere"):
        out = layer(3 * c, x0)
    assert (to_oscillators(out, N_OSC).norm(dim=-1) - 1).abs().max() > 0.05  # returned as computed, not hidden
    native = KuramotoLayer(make_coupling("conv", seed=5), N_OSC, C, steps=8, gamma=1.0, method="rk4_normalized")
    assert (to_oscillators(native(3 * c, x0), N_OSC).norm(dim=-1) - 1).abs().max() < 1e-5


def test_stimulus_init_with_an_all_zero_group_has_a_defined_answer():
    c, _ = inputs(15)
    c[0, :N_OSC, 1, 2] = 0.0  # one oscillator of one position: no direction (allowed by the docstring)
    c[1, N_OSC:, :, 3] = 0.0  # a whole column of the other oscillator
    x = initial_state(c, N_OSC, "stimulus", generator=gen(4))
    norms = to_oscillators(x, N_OSC).norm(dim=-1)
    assert torch.isfinite(x).all() and torch.allclose(norms, torch.ones_like(norms), atol=1e-6)
    unit_c = to_features(F.normalize(to_oscillators(c, N_OSC), dim=-1))
    nonzero = to_oscillators(c, N_OSC).norm(dim=-1, keepdim=True).expand(-1, -1, -1, -1, N_OSC) > 0
    torch.testing.assert_close(to_oscillators(x, N_OSC)[nonzero], to_oscillators(unit_c, N_OSC)[nonzero])
    assert torch.equal(x, initial_state(c, N_OSC, "stimulus", generator=gen(4)))  # reproducible
    layer = KuramotoLayer(make_coupling("conv"), N_OSC, C, steps=3)
    out = layer(c, x)
    assert torch.isfinite(out).all()  # before: NaN at every position a zero group reached


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_stimulus_and_initial_state_are_named(bad):
    layer = KuramotoLayer(make_coupling("conv"), N_OSC, C, steps=2)
    c, x0 = inputs(16)
    c_bad = c.clone()
    c_bad[1, 3, 2, 0] = bad
    for call in (lambda: layer(c_bad, x0), lambda: layer.field(c_bad), lambda: initial_state(c_bad, N_OSC)):
        with pytest.raises(ValueError, match=r"c: contains NaN or inf \(first at index \(1, 3, 2, 0\)\)"):
            call()
    x_bad = x0.clone()
    x_bad[0, 0, 0, 0] = bad
    with pytest.raises(ValueError, match="x0: contains NaN or inf"):
        layer(c, x_bad)


def test_nan_image_is_named_by_the_models():
    from networks import AKOrNClassifier

    model = AKOrNClassifier(in_channels=3, num_classes=2, width=8, depth=1, n=2, steps=1, kernel_sizes=3)
    images = torch.rand(1, 3, 8, 8)
    images[0, 1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="images: contains NaN or inf"):
        model(images)
