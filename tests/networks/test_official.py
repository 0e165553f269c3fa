"""Official AKOrN checkpoints: the converted model reproduces the official forward.

The official code is not a dependency: ``official_*_state_dict`` build state_dicts with the
official key layout and shapes (read from its module tree: ``source/models/*/knet.py``, the
official repository's ``source/layers/klayer.py`` and the official ``source/layers/common_layers.py``),
and ``official_*_forward`` are small functional re-statements of the official forward passes that read those dicts by their official names.
"""

import math

import pytest
import torch
import torch.nn.functional as F

import networks as nw
from networks.official import OfficialCheckpointError, convert_state_dict, load_official, read_official

# -- official-layout state dicts ----------------------------------------------------------------------


def _rand(g, *shape, scale=0.3):
    return torch.randn(*shape, generator=g) * scale


def _klayer_sd(g, p, ch, n, *, J, heads=None, hw=None, gta=False, c_norm=None, omega=None, ksize=3):
    """Official KLayer(n, ch, J, c_norm, use_omega, global_omg, heads, gta, hw) parameters under prefix p."""
    sd = {}
    if omega == "global":
        sd[f"{p}.omg.omg_param"] = 0.3 + _rand(g, 2).abs()
    elif omega == "pairs":
        sd[f"{p}.omg.omg_param"] = 0.3 + _rand(g, ch // 2, 2).abs()
    if J == "conv":
        sd[f"{p}.connectivity.weight"] = _rand(g, ch, ch, ksize, ksize, scale=0.2)
        sd[f"{p}.connectivity.bias"] = _rand(g, ch)
    else:
        hd = ch // heads
        if gta:
            # Attention builds mat_q, mat_k, mat_v as nn.Parameter(_mat) and mat_o as
            # nn.Parameter(_mat.transpose(-2, -1)): four parameters on ONE storage, so they stay tied
            # through training and an official checkpoint holds q = k = v = M, o = Mᵀ.
            M = _rand(g, hw[0] * hw[1], hd // 2, 2, 2, scale=0.7)
            for m in "qkv":
                sd[f"{p}.connectivity.mat_{m}"] = M
            sd[f"{p}.connectivity.mat_o"] = M.transpose(-2, -1)
        sd[f"{p}.connectivity.W_qkv.weight"] = _rand(g, 3 * ch, ch, 1, 1)
        sd[f"{p}.connectivity.W_qkv.bias"] = _rand(g, 3 * ch)
        sd[f"{p}.connectivity.W_o.weight"] = _rand(g, ch, ch, 1, 1)
        sd[f"{p}.connectivity.W_o.bias"] = _rand(g, ch)
    if c_norm == "gn":
        sd[f"{p}.c_norm.weight"] = 1 + _rand(g, ch)
        sd[f"{p}.c_norm.bias"] = _rand(g, ch)
    elif c_norm == "sandb":
        sd[f"{p}.c_norm.scale"] = 1 + _rand(g, ch)
        sd[f"{p}.c_norm.bias"] = _rand(g, ch)
    return sd


def _readout_sd(g, p, inch, outch, ro_n, k):
    return {f"{p}.bias": _rand(g, outch), f"{p}.invconv.weight": _rand(g, outch * ro_n, inch, k, k),
            f"{p}.invconv.bias": _rand(g, outch * ro_n)}


def _bnreluconv_sd(g, p, inch, outch, k, norm):
    sd = {}
    if norm == "bn":
        sd.update({f"{p}.fn.0.weight": 1 + _rand(g, inch), f"{p}.fn.0.bias": _rand(g, inch),
                   f"{p}.fn.0.running_mean": _rand(g, inch), f"{p}.fn.0.running_var": 0.5 + _rand(g, inch).abs(),
                   f"{p}.fn.0.num_batches_tracked": torch.tensor(7)})
    sd[f"{p}.fn.2.weight"] = _rand(g, outch, inch, k, k)
    sd[f"{p}.fn.2.bias"] = _rand(g, outch)
    return sd


def _ff_sd(g, p, ch, k, norm):
    """ResBlock(FF(ch, ch, ch, k)): ResBlock.fn = FF, FF.fn = Sequential(BNReLUConv2d, BNReLUConv2d)."""
    return {**_bnreluconv_sd(g, f"{p}.fn.fn.0", ch, ch, k, norm), **_bnreluconv_sd(g, f"{p}.fn.fn.1", ch, ch, k, norm)}


def official_sudoku_state_dict(seed, *, ch, n, L, heads, omega, nl=True):
    g = torch.Generator().manual_seed(seed)
    sd = {"gamma": torch.tensor([0.8]), "x0": _rand(g, 1, ch, 9, 9), "embedding.weight": _rand(g, 10, ch, scale=1.0)}
    for l in range(L):
        sd.update(_klayer_sd(g, f"layers.{l}.0", ch, n, J="attn", heads=heads, hw=(9, 9), gta=True, omega=omega))
        sd.update(_readout_sd(g, f"layers.{l}.1.0", ch, ch, n, 1))
        if nl:
            sd.update(_ff_sd(g, f"layers.{l}.1.1", ch, 1, None))
            sd.update(_bnreluconv_sd(g, f"layers.{l}.1.2", ch, ch, 1, None))
    sd["out.1.weight"] = _rand(g, 9, ch, 1, 1)
    sd["out.1.bias"] = _rand(g, 9)
    return sd


def official_classifier_state_dict(seed, *, ch, n, L, ksizes, ro_n=2, ro_k=3, J="conv", heads=2):
    g = torch.Generator().manual_seed(seed)
    sd = {"gamma": torch.tensor([0.9]), "conv0.weight": _rand(g, ch, 3, 3, 3)}
    chs = [ch * 2 ** i for i in range(L)]
    for l in range(L):
        if l > 0:
            w, b = _rand(g, chs[l], chs[l - 1], ro_k, ro_k), _rand(g, chs[l])
            # one module registered twice: the state_dict holds it under both names
            sd.update({f"layers.{l}.0.0.weight": w, f"layers.{l}.0.0.bias": b,
                       f"layers.{l}.0.1.weight": w, f"layers.{l}.0.1.bias": b})
        sd.update(_klayer_sd(g, f"layers.{l}.2", chs[l], n, J=J, heads=heads, c_norm="gn", omega="global",
                             ksize=ksizes[l]))
        sd.update(_readout_sd(g, f"layers.{l}.3.0", chs[l], chs[l], ro_n, ro_k))
        sd.update(_ff_sd(g, f"layers.{l}.3.1", chs[l], ro_k, "bn"))
        sd.update(_bnreluconv_sd(g, f"layers.{l}.3.2", chs[l], chs[l], ro_k, "bn"))
    sd["out.weight"] = _rand(g, 10, chs[-1])
    sd["out.bias"] = _rand(g, 10)
    return sd


def official_objects_state_dict(seed, *, ch, n, L, heads, grid, psize, gta=True, J="attn", c_norm="gn",
                                use_ro_x=False, ksize=1):
    g = torch.Generator().manual_seed(seed)
    sd = {"gamma": torch.tensor([1.0]), "patchfy.1.weight": _rand(g, ch, 3, psize, psize),
          "patchfy.1.bias": _rand(g, ch)}
    if not gta:
        sd["pemb_x"] = _rand(g, ch, grid, grid)
        sd["pemb_c"] = _rand(g, ch, grid, grid)
    for l in range(L):
        sd.update(_klayer_sd(g, f"layers.{l}.0", ch, n, J=J, heads=heads, hw=(grid, grid), gta=gta, c_norm=c_norm,
                             ksize=ksize))
        sd.update(_readout_sd(g, f"layers.{l}.1", ch, ch, n, 1))
        if use_ro_x and l < L - 1:
            sd[f"layers.{l}.2.weight"] = _rand(g, ch, ch, 1, 1)
            sd[f"layers.{l}.2.bias"] = _rand(g, ch)
    sd.update({"out.3.weight": _rand(g, 4 * ch, ch), "out.3.bias": _rand(g, 4 * ch),
               "out.5.weight": _rand(g, ch, 4 * ch), "out.5.bias": _rand(g, ch)})
    return sd


# -- official-style reference forward (functional, official key names) ------------------------------

def _group_normalize(x, n):
    return F.normalize(x.unflatten(1, (-1, n)), dim=2).flatten(1, 2)


def _omega_velocity(W, p, x):
    """OmegaLayer: ω = ‖param‖ (global, or per channel pair); pair (a, b) moves with (ω b, −ω a)."""
    param = W[f"{p}.omg.omg_param"]
    pairs = x.unflatten(1, (-1, 2))  # [B, C/2, 2, H, W]
    omg = torch.linalg.norm(param).repeat(pairs.shape[1]) if param.dim() == 1 else torch.linalg.norm(param, dim=1)
    omg = omg.view(1, -1, 1, 1)
    return torch.stack([omg * pairs[:, :, 1], -omg * pairs[:, :, 0]], dim=2).flatten(1, 2)


def _rep_mul(mat, t):
    """gta.rep_mul_x: per token L and pair f, out_i = Σ_j mat[L, f, i, j] t_j; t [B, heads, L, 2F]."""
    pairs = t.unflatten(-1, (-1, 2))
    return (mat[None, None] * pairs[..., None, :]).sum(-1).flatten(-2)


def _attention(W, p, x, heads, gta):
    B, C, H, Wd = x.shape
    q, k, v = F.conv2d(x, W[f"{p}.W_qkv.weight"], W[f"{p}.W_qkv.bias"]).chunk(3, dim=1)
    # einops "b (c nh) h w -> b nh (h w) c"
    q, k, v = (t.reshape(B, C // heads, heads, H * Wd).permute(0, 2, 3, 1) for t in (q, k, v))
    if gta:
        q, k, v = (_rep_mul(W[f"{p}.mat_{m}"], t) for m, t in zip("qkv", (q, k, v)))
    att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(C // heads), dim=-1)
    o = att @ v
    if gta:
        o = _rep_mul(W[f"{p}.mat_o"], o)
    o = o.permute(0, 3, 1, 2).reshape(B, C, H, Wd)  # "b nh (h w) c -> b (c nh) h w"
    return F.conv2d(o, W[f"{p}.W_o.weight"], W[f"{p}.W_o.bias"])


def _klayer(W, p, x, c, *, T, gamma, n, J, heads=None, gta=False, c_norm=None, project=True):
    if c_norm == "gn":
        c = F.group_norm(c, c.shape[1] // n, W[f"{p}.c_norm.weight"], W[f"{p}.c_norm.bias"])
    elif c_norm == "sandb":
        c = c * W[f"{p}.c_norm.scale"].view(1, -1, 1, 1) + W[f"{p}.c_norm.bias"].view(1, -1, 1, 1)
    x = _group_normalize(x, n)
    for _ in range(T):
        if J == "conv":
            w = W[f"{p}.connectivity.weight"]
            y = F.conv2d(x, w, W[f"{p}.connectivity.bias"], padding=w.shape[-1] // 2)
        else:
            y = _attention(W, f"{p}.connectivity", x, heads, gta)
        y = y + c
        # the official 'hasattr(self, "omg")' is always true: without Ω the Identity adds x itself
        omg_x = _omega_velocity(W, p, x) if f"{p}.omg.omg_param" in W else x
        yg, xg = y.unflatten(1, (-1, n)), x.unflatten(1, (-1, n))
        if project:
            yg = yg - (xg * yg).sum(2, keepdim=True) * xg
        x = _group_normalize(x + gamma * (omg_x + yg.flatten(1, 2)), n)
    return x


def _readout(W, p, x, ro_n, padding=0):
    y = F.conv2d(x, W[f"{p}.invconv.weight"], W[f"{p}.invconv.bias"], padding=padding)
    return torch.linalg.norm(y.unflatten(1, (W[f"{p}.bias"].shape[0], -1)), dim=2) + W[f"{p}.bias"].view(1, -1, 1, 1)


def _bnreluconv(W, p, x, padding=0):
    if f"{p}.fn.0.running_mean" in W:
        x = F.batch_norm(x, W[f"{p}.fn.0.running_mean"], W[f"{p}.fn.0.running_var"], W[f"{p}.fn.0.weight"],
                         W[f"{p}.fn.0.bias"], training=False, eps=1e-5)
    return F.conv2d(F.relu(x), W[f"{p}.fn.2.weight"], W[f"{p}.fn.2.bias"], padding=padding)


def _resff(W, p, x, padding=0):
    return x + _bnreluconv(W, f"{p}.fn.fn.1", _bnreluconv(W, f"{p}.fn.fn.0", x, padding), padding)


def official_sudoku_forward(W, digits, noise, *, n, L, T, heads, nl=True):
    """The official repository's source/models/sudoku/knet.py: x0 = given·c + (1 − given)·noise; KLayer; readout; out head."""
    c = W["embedding.weight"][digits].permute(0, 3, 1, 2)
    given = (digits > 0).to(c.dtype).unsqueeze(1)
    x = given * c + (1 - given) * noise
    for l in range(L):
        x = _klayer(W, f"layers.{l}.0", x, c, T=T, gamma=W["gamma"], n=n, J="attn", heads=heads, gta=True)
        c = _readout(W, f"layers.{l}.1.0", x, n)
        if nl:
            c = _bnreluconv(W, f"layers.{l}.1.2", _resff(W, f"layers.{l}.1.1", c))
    return F.conv2d(F.relu(c), W["out.1.weight"], W["out.1.bias"]).permute(0, 2, 3, 1)


def official_classifier_forward(W, images, noise, *, n, L, T, ro_n=2, ro_k=3, J="conv", heads=2):
    """The official repository's source/models/classification/knet.py: one strided conv for x and c, KLayer, readout, pool, linear."""
    c = F.conv2d((images - 0.5) / 0.5, W["conv0.weight"], padding=1)
    x = noise
    pad = ro_k // 2
    for l in range(L):
        if l > 0:
            x = F.conv2d(x, W[f"layers.{l}.0.0.weight"], W[f"layers.{l}.0.0.bias"], stride=2, padding=pad)
            c = F.conv2d(c, W[f"layers.{l}.0.1.weight"], W[f"layers.{l}.0.1.bias"], stride=2, padding=pad)
        x = _klayer(W, f"layers.{l}.2", x, c, T=T, gamma=W["gamma"], n=n, J=J, heads=heads, c_norm="gn")
        c = _readout(W, f"layers.{l}.3.0", x, ro_n, pad)
        c = _bnreluconv(W, f"layers.{l}.3.2", _resff(W, f"layers.{l}.3.1", c, pad), pad)
    return F.linear(c.mean(dim=(2, 3)), W["out.weight"], W["out.bias"])


def official_objects_forward(W, images, noise, *, n, L, T, heads, psize, gta=True, J="attn", c_norm="gn"):
    """The official repository's source/models/objs/knet.py: patchify, (+ PE), KLayer (identity-Ω quirk), readout, max-pool head."""
    c = F.conv2d((images - 0.5) / 0.5, W["patchfy.1.weight"], W["patchfy.1.bias"], stride=psize)
    x = noise
    if "pemb_c" in W:
        c = c + W["pemb_c"][None]
        x = x + W["pemb_x"][None]
    for l in range(L):
        x = _klayer(W, f"layers.{l}.0", x, c, T=T, gamma=W["gamma"], n=n, J=J, heads=heads, gta=gta, c_norm=c_norm)
        c = _readout(W, f"layers.{l}.1", x, n)
        if f"layers.{l}.2.weight" in W:
            x = F.conv2d(x, W[f"layers.{l}.2.weight"], W[f"layers.{l}.2.bias"])
    h = F.relu(F.linear(c.amax(dim=(2, 3)), W["out.3.weight"], W["out.3.bias"]))
    return F.linear(h, W["out.5.weight"], W["out.5.bias"])


def _noise(shape, seed, dtype):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _assert_official(ours, reference, W, dtype):
    """float64: equal to 1e-11. float32: ours is as close to the float64 official forward as the
    official forward itself run in float32 (``reference(W, dtype)`` evaluates it in ``dtype``)."""
    ref64 = reference({k: v.double() if v.is_floating_point() else v for k, v in W.items()}, torch.float64)
    if dtype == torch.float64:
        torch.testing.assert_close(ours, ref64, rtol=1e-11, atol=1e-11)
        return
    ref32 = reference({k: v.float() if v.is_floating_point() else v for k, v in W.items()}, torch.float32)
    own_rounding = float((ref32.double() - ref64).abs().max())
    assert own_rounding < 1e-3 * float(ref64.abs().max())  # the reference itself is sane in float32
    err = float((ours.double() - ref64).abs().max())
    assert err <= 4 * own_rounding + 1e-6 * float(ref64.abs().max())


def _loaded_forward(model, W, dtype, *, size, seeds):
    """``model`` with the official weights ``W`` in ``dtype`` on two random ``size × size`` images
    (drawn from ``seeds[0]``; the model's noise from ``seeds[1]``): ``(images, logits)``."""
    load_official(model, W)
    model = model.to(dtype).eval()
    images = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(seeds[0]), dtype=dtype)
    with torch.no_grad():
        return images, model(images, generator=torch.Generator().manual_seed(seeds[1]))


DTYPES = [torch.float32, torch.float64]


# -- the three models -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("omega", ["global", "pairs"])
def test_sudoku_logits_equal_the_official_forward(dtype, omega):
    cfg = dict(ch=32, n=4, L=2, heads=4)
    W = official_sudoku_state_dict(0, omega=omega, **cfg)
    model = nw.SudokuAKOrN(width=32, depth=2, n=4, heads=4, steps=3, global_omega=omega == "global")
    load_official(model, W)
    model = model.to(dtype).eval()
    g = torch.Generator().manual_seed(5)
    digits = torch.randint(0, 10, (3, 9, 9), generator=g) * (torch.rand(3, 9, 9, generator=g) < 0.4)
    with torch.no_grad():
        ours = model(digits, generator=torch.Generator().manual_seed(11))
    noise = _noise((3, 32, 9, 9), 11, dtype)  # the draw of the model's generator, in its dtype
    _assert_official(ours, lambda Wd, dt: official_sudoku_forward(Wd, digits, noise.to(dt), n=4, L=2, T=3, heads=4),
                     W, dtype)
    # the single official γ went into every layer; x0 is dropped
    assert all(float(layer.gamma.detach()) == pytest.approx(0.8) for layer in model.layers)


@pytest.mark.parametrize("dtype", DTYPES)
def test_classifier_logits_equal_the_official_forward(dtype):
    W = official_classifier_state_dict(1, ch=8, n=2, L=2, ksizes=[5, 3])
    model = nw.AKOrNClassifier(width=8, depth=2, n=2, steps=2, kernel_sizes=(5, 3))
    images, ours = _loaded_forward(model, W, dtype, size=16, seeds=(3, 4))
    noise = _noise((2, 8, 16, 16), 4, dtype)
    _assert_official(ours, lambda Wd, dt: official_classifier_forward(Wd, images.to(dt), noise.to(dt), n=2, L=2, T=2),
                     W, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", ["attn_gta", "conv_pe_rox"])
def test_object_model_logits_equal_the_official_forward(dtype, variant):
    if variant == "attn_gta":
        off = dict(J="attn", gta=True, c_norm="gn", use_ro_x=False)
        ours_kw = dict(coupling="attn", gta=True, stimulus_norm="gn")
    else:  # conv coupling without GTA: learnable PE on c and x, scale-and-bias stimulus, 1×1 map of x
        off = dict(J="conv", gta=False, c_norm="sandb", use_ro_x=True, ksize=3)
        ours_kw = dict(coupling="conv", kernel_size=3, gta=False, stimulus_norm="sandb", readout_x=True)
    W = official_objects_state_dict(2, ch=32, n=4, L=2, heads=4, grid=4, psize=8, **off)
    model = nw.ObjectAKOrN(image_size=32, width=32, depth=2, n=4, steps=3, heads=4, patch_size=8,
                           legacy_identity_omega=True, **ours_kw)
    images, ours = _loaded_forward(model, W, dtype, size=32, seeds=(6, 8))
    noise = _noise((2, 32, 4, 4), 8, dtype)
    _assert_official(ours, lambda Wd, dt: official_objects_forward(
        Wd, images.to(dt), noise.to(dt), n=4, L=2, T=3, heads=4, psize=8, gta=off["gta"], J=off["J"],
        c_norm=off["c_norm"]), W, dtype)


# -- files, EMA wrappers and errors -------------------------------------------------------------------

def test_ema_checkpoint_file_loads_the_ema_copy(tmp_path):
    ema = official_sudoku_state_dict(0, ch=32, n=4, L=1, heads=4, omega="global")
    online = official_sudoku_state_dict(1, ch=32, n=4, L=1, heads=4, omega="global")
    state = {"initted": torch.tensor(True), "step": torch.tensor(1000)}
    state.update({f"online_model.{k}": v for k, v in online.items()})
    state.update({f"ema_model.{k}": v for k, v in ema.items()})
    path = tmp_path / "ema_99.pth"
    torch.save({"epoch": 99, "model_state_dict": state}, path)
    model = nw.SudokuAKOrN.tiny()
    load_official(model, path)
    torch.testing.assert_close(model.embed.weight, ema["embedding.weight"], rtol=0, atol=0)
    load_official(model, path, weights="online")
    torch.testing.assert_close(model.embed.weight, online["embedding.weight"], rtol=0, atol=0)
    assert read_official({f"module.{k}": v for k, v in ema.items()}).keys() == ema.keys()
    with pytest.raises(ValueError, match="^weights:"):
        load_official(model, path, weights="best")
    with pytest.raises(ValueError, match="^source:"):
        load_official(model, tmp_path / "missing.pth")


def test_unknown_and_missing_keys_are_listed():
    W = official_sudoku_state_dict(0, ch=32, n=4, L=1, heads=4, omega="global")
    model = nw.SudokuAKOrN.tiny()
    with pytest.raises(OfficialCheckpointError, match=r"^state_dict: 1 key.*does not know.*layers\.0\.0\.extra"):
        convert_state_dict({**W, "layers.0.0.extra": torch.zeros(1)}, model)
    partial = {k: v for k, v in W.items() if not k.startswith("layers.0.1.1.")}
    with pytest.raises(OfficialCheckpointError, match=r"missing from the checkpoint: readouts\.0\.1\.fn\.unit1"):
        convert_state_dict(partial, model)
    # a two-layer checkpoint into a one-layer model: the extra layer is listed
    W2 = official_sudoku_state_dict(0, ch=32, n=4, L=2, heads=4, omega="global")
    with pytest.raises(OfficialCheckpointError, match=r"the model does not have: .*layers\.1\.0\."):
        convert_state_dict(W2, model)
    # wrong width: shapes listed
    with pytest.raises(OfficialCheckpointError, match=r"shape mismatch.*embedding\.weight \(10, 32\) -> embed\.weight"):
        convert_state_dict(W, nw.SudokuAKOrN.tiny(width=64))
    with pytest.raises(OfficialCheckpointError, match="gamma_max=None"):
        convert_state_dict(W, nw.SudokuAKOrN.tiny(gamma=0.5, gamma_max=1.0))
    with pytest.raises(TypeError, match="^model:"):
        convert_state_dict(W, torch.nn.Linear(1, 1))


def test_object_model_without_the_quirk_is_refused():
    W = official_objects_state_dict(2, ch=32, n=4, L=1, heads=4, grid=4, psize=8)
    with pytest.raises(OfficialCheckpointError, match="legacy_identity_omega=True"):
        convert_state_dict(W, nw.ObjectAKOrN.tiny())
    convert_state_dict(W, nw.ObjectAKOrN.tiny(legacy_identity_omega=True))


def test_classifier_transition_copies_must_agree():
    W = official_classifier_state_dict(1, ch=8, n=2, L=2, ksizes=[3, 3])
    W["layers.1.0.1.weight"] = W["layers.1.0.1.weight"] + 1
    with pytest.raises(OfficialCheckpointError, match=r"layers\.1\.0\.0\.weight / layers\.1\.0\.1\.weight"):
        convert_state_dict(W, nw.AKOrNClassifier.tiny())


def test_sudoku_fixed_noise_is_the_official_per_item_draw():
    """Official ``fixed_noise``: ``torch.randn(*c.shape, generator=Generator("cpu").manual_seed(42))`` per
    forward, so item b of a batch gets slice b of one [B, C, 9, 9] draw."""
    W = official_sudoku_state_dict(3, ch=32, n=4, L=1, heads=4, omega="global")
    model = load_official(nw.SudokuAKOrN(width=32, depth=1, n=4, heads=4, steps=3, fixed_noise=True), W).eval()
    g = torch.Generator().manual_seed(9)
    board = torch.randint(0, 10, (1, 9, 9), generator=g) * (torch.rand(1, 9, 9, generator=g) < 0.3)
    boards = board.repeat(3, 1, 1)  # three copies of one board
    draw = torch.randn(3, 32, 9, 9, generator=torch.Generator(device="cpu").manual_seed(42))
    with torch.no_grad():
        x0 = model.initial_state(boards, generator=torch.Generator().manual_seed(1))  # generator ignored
        logits = model(boards)
        again = model(boards, generator=torch.Generator().manual_seed(2))
    c, given = model.stimulus(boards)
    expected = F.normalize(torch.where(given, c, draw).unflatten(1, (-1, 4)), dim=2).flatten(1, 2)
    torch.testing.assert_close(x0, expected, rtol=0, atol=0)
    torch.testing.assert_close(logits, again, rtol=0, atol=0)  # deterministic
    # items of the batch start from different noise, so identical boards give different logits
    assert not torch.equal(x0[0], x0[1]) and not torch.equal(x0[1], x0[2])
    assert (logits[0] - logits[1]).abs().max() > 1e-3
    ref = official_sudoku_forward(W, boards, draw, n=4, L=1, T=3, heads=4)
    torch.testing.assert_close(logits, ref, rtol=1e-4, atol=1e-4)
