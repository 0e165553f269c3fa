"""Adversarial and random perturbations of image batches, and robust accuracy.

All attacks take a classifier ``model`` (a ``torch.nn.Module`` mapping images in [0, 1] to
logits; any input normalisation happens inside the model), images ``x`` in [0, 1] shaped
``[N, C, H, W]`` and integer labels ``y`` ``[N]``, and return perturbed images of the same
shape, dtype and device that stay in [0, 1] and in the L-infinity ball of radius ``eps``
around ``x``. ``eps = 0`` returns an unchanged copy of ``x`` without calling the model.

FGSM, PGD, EOT-PGD and AutoAttack are taken from ``torchattacks`` 3.5.1, which is imported
only when one of them is called. It is not a declared dependency of the toolkit; install it with
``pip install torchattacks==3.5.1 --no-deps`` (its ``torchvision`` requirement is not used by
these attacks; ``scipy`` and ``tqdm``, which it also lists, are present anyway).

A note on stochastic models (AKOrN draws a random initial oscillator state on each forward
pass): a single forward pass gives a noisy gradient, so use ``pgd_linf(..., eot=k)`` (gradients
summed over ``k`` passes per step, i.e. expectation over transformation) and
``autoattack(..., version="rand")`` (APGD-CE and APGD-DLR with 20 EOT iterations), and evaluate
with ``robust_accuracy(..., n_eval=k)``. The original code's AutoAttack default
``version="standard"`` is kept here as the default for parity but is the weaker choice for such
models.

torchattacks puts the model in eval mode during an attack (restoring training mode afterwards)
and its AutoAttack re-seeds torch's global generator; :func:`autoattack` runs it inside
``torch.random.fork_rng`` so the caller's global random state is left untouched.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch.utils.data import TensorDataset

from kuramoto.checks import is_int, is_real
from studies.robustness.metrics import ensemble_predict

__all__ = [
    "ATTACKS",
    "TORCHATTACKS_VERSION",
    "autoattack",
    "fgsm",
    "no_attack",
    "pgd_linf",
    "random_sign_noise",
    "robust_accuracy",
]

TORCHATTACKS_VERSION = "3.5.1"
"""The torchattacks release this wrapper is written against."""

_AUTOATTACK_VERSIONS = ("standard", "plus", "rand")
_AUTOATTACK_NORMS = ("Linf", "L2")


def _torchattacks():
    try:
        import torchattacks
    except ImportError as exc:
        raise ImportError(
            "studies.robustness.attacks needs the 'torchattacks' package for FGSM/PGD/AutoAttack; install "
            f"it with `pip install torchattacks=={TORCHATTACKS_VERSION} --no-deps` (torchvision is not needed)"
        ) from exc
    return torchattacks


# --------------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------------


def _check_model(model: Any) -> torch.nn.Module:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module returning logits, got {type(model).__name__}")
    return model


def _check_xy(x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch.Tensor of images, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x: expected a floating-point tensor with values in [0, 1], got dtype {x.dtype}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x: expected a non-empty batch [N, ...], got shape {tuple(x.shape)}")
    lo, hi = torch.aminmax(x.detach())
    if not (float(lo) >= 0.0 and float(hi) <= 1.0):
        raise ValueError(f"x: values must lie in [0, 1] (the model normalises internally), got range "
                         f"[{float(lo):.4g}, {float(hi):.4g}]")
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y: expected a torch.Tensor of integer labels, got {type(y).__name__}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"y: expected an integer tensor, got dtype {y.dtype}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y: expected shape ({x.shape[0]},) to match x, got {tuple(y.shape)}")
    return x.detach(), y.detach().long()


def _check_eps(eps: Any, name: str = "eps") -> float:
    if not is_real(eps):
        raise TypeError(f"{name}: expected a real number, got {type(eps).__name__}")
    eps = float(eps)
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {eps}")
    return eps


def _check_pos_int(value: Any, name: str) -> int:
    if not is_int(value) or value < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
    return value


def _model_device(model: torch.nn.Module, fallback: torch.device) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return fallback


def _finish(adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return adv.detach().to(device=x.device, dtype=x.dtype)


def _cuda_devices() -> list[int]:
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Run the block under a forked global RNG state, seeded with ``seed`` if given."""
    with torch.random.fork_rng(devices=_cuda_devices()):
        if seed is not None:
            torch.manual_seed(seed)
        yield


def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed: expected None or an int >= 0, got {seed!r}")
    return seed


def _prepare(atk: Any, model: torch.nn.Module, x: torch.Tensor) -> Any:
    atk.set_device(_model_device(model, x.device))
    return atk


# --------------------------------------------------------------------------------------------
# attacks
# --------------------------------------------------------------------------------------------


def no_attack(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, **_: Any) -> torch.Tensor:
    """The identity "attack": a detached copy of ``x`` (for clean accuracy through the same path)."""
    _check_model(model)
    x, _y = _check_xy(x, y)
    return x.clone()


def random_sign_noise(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = 64 / 255,
                      generator: torch.Generator | int | None = None) -> torch.Tensor:
    """Random-sign noise ``clamp(x + eps * s, 0, 1)`` with ``s`` uniform in {-1, +1} per element.

    Not an attack (the model and labels are not used) but the random baseline of the same
    L-infinity size; the original evaluation uses ``eps = 64/255``.

    Args:
        model: the classifier (checked, unused).
        x: images ``[N, ...]`` in [0, 1].
        y: labels ``[N]`` (checked, unused).
        eps: perturbation size.
        generator: a ``torch.Generator`` on ``x``'s device, an int seed, or ``None`` (seed 0).
            Pass one generator object for a whole pass over a data set, otherwise every batch
            of the same shape gets the same noise pattern.

    Returns:
        The perturbed images.
    """
    _check_model(model)
    x, y = _check_xy(x, y)
    eps = _check_eps(eps)
    if eps == 0:
        return x.clone()
    if generator is None or (is_int(generator)):
        generator = torch.Generator(device=x.device).manual_seed(0 if generator is None else int(generator))
    elif not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator, an int seed or None, got {type(generator).__name__}")
    elif generator.device.type != x.device.type:
        raise ValueError(f"generator: lives on {generator.device.type!r} but x is on {x.device.type!r}")
    sign = torch.randint(0, 2, x.shape, generator=generator, device=x.device).to(x.dtype) * 2 - 1
    return (x + eps * sign).clamp(0.0, 1.0)


def fgsm(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = 8 / 255) -> torch.Tensor:
    """Fast gradient sign method: one step ``x + eps * sign(grad CE)``, clamped to [0, 1].

    Args:
        model: classifier returning logits.
        x: images ``[N, C, H, W]`` in [0, 1].
        y: true labels ``[N]``.
        eps: L-infinity radius.

    Returns:
        Adversarial images.
    """
    _check_model(model)
    x, y = _check_xy(x, y)
    eps = _check_eps(eps)
    if eps == 0:
        return x.clone()
    ta = _torchattacks()
    atk = _prepare(ta.FGSM(model, eps=eps), model, x)
    return _finish(atk(x, y), x)


def pgd_linf(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = 8 / 255, steps: int = 20,
             alpha: float | None = None, eot: int = 1, random_start: bool = False,
             seed: int | None = None) -> torch.Tensor:
    """Projected gradient descent in the L-infinity ball (EOT-PGD when ``eot > 1``).

    Each step moves by ``alpha * sign(g)`` and projects back onto the ball and [0, 1]; ``g`` is
    the cross-entropy gradient, summed over ``eot`` forward passes when ``eot > 1`` (for
    stochastic models). The defaults are the original evaluation's: 20 steps of ``eps / 3``,
    no random start.

    Args:
        model: classifier returning logits.
        x: images ``[N, C, H, W]`` in [0, 1].
        y: true labels ``[N]``.
        eps: L-infinity radius.
        steps: number of iterations (>= 1).
        alpha: step size (default ``eps / 3``).
        eot: forward passes per gradient (>= 1).
        random_start: start from a uniform random point of the ball.
        seed: if given, the global torch generator is seeded with it for the attack (random start,
            stochastic model) and restored afterwards.

    Returns:
        Adversarial images.
    """
    _check_model(model)
    x, y = _check_xy(x, y)
    eps = _check_eps(eps)
    steps = _check_pos_int(steps, "steps")
    eot = _check_pos_int(eot, "eot")
    if not isinstance(random_start, bool):
        raise TypeError(f"random_start: expected a bool, got {type(random_start).__name__}")
    seed = _check_seed(seed)
    if alpha is None:
        alpha = eps / 3
    else:
        alpha = _check_eps(alpha, "alpha")
        if alpha == 0 and eps > 0:
            raise ValueError("alpha: must be > 0 when eps > 0")
    if eps == 0:
        return x.clone()
    ta = _torchattacks()
    if eot == 1:
        atk = ta.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=random_start)
    else:
        atk = ta.EOTPGD(model, eps=eps, alpha=alpha, steps=steps, eot_iter=eot, random_start=random_start)
    _prepare(atk, model, x)
    with _seeded(seed) if seed is not None else contextlib.nullcontext():
        adv = atk(x, y)
    return _finish(adv, x)


def _n_classes(model: torch.nn.Module, x: torch.Tensor) -> int:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x[:1].to(_model_device(model, x.device)))
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise ValueError(f"model: expected logits [N, n_classes], got {getattr(out, 'shape', type(out).__name__)}")
    return int(out.shape[1])


def autoattack(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = 8 / 255,
               version: str = "standard", norm: str = "Linf", n_classes: int | None = None,
               seed: int = 0) -> torch.Tensor:
    """AutoAttack (Croce & Hein, 2020) via torchattacks.

    Versions: ``"standard"`` (APGD-CE, APGD-T, FAB-T, Square with 5000 queries), ``"plus"``
    (more restarts and attacks) and ``"rand"`` (APGD-CE and APGD-DLR with 20 EOT iterations,
    meant for stochastic models such as AKOrN). Each sample keeps the first perturbation that
    fools the model.

    Args:
        model: classifier returning logits.
        x: images ``[N, C, H, W]`` in [0, 1].
        y: true labels ``[N]``.
        eps: radius of the ``norm`` ball.
        version: ``"standard"``, ``"plus"`` or ``"rand"``.
        norm: ``"Linf"`` or ``"L2"``.
        n_classes: number of classes, at least 4 (the DLR losses of APGD-T / APGD-DLR use the
            four largest logits); default: read off one forward pass.
        seed: seed of the attacks' random starts; the caller's global RNG state is restored.

    Returns:
        Adversarial images.
    """
    _check_model(model)
    x, y = _check_xy(x, y)
    eps = _check_eps(eps)
    if version not in _AUTOATTACK_VERSIONS:
        raise ValueError(f"version: expected one of {', '.join(_AUTOATTACK_VERSIONS)}, got {version!r}")
    if norm not in _AUTOATTACK_NORMS:
        raise ValueError(f"norm: expected one of {', '.join(_AUTOATTACK_NORMS)}, got {norm!r}")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed: expected an int >= 0, got {seed!r}")
    if eps == 0:
        return x.clone()
    if n_classes is None:
        n_classes = _n_classes(model, x)
    if not is_int(n_classes) or n_classes < 4:
        raise ValueError(f"n_classes: AutoAttack's DLR losses compare the 4 largest logits, so it needs "
                         f"an int >= 4 classes, got {n_classes!r}")
    ta = _torchattacks()
    with _seeded(seed):
        atk = ta.AutoAttack(model, norm=norm, eps=eps, version=version, n_classes=n_classes, seed=seed)
        _prepare(atk, model, x)
        adv = atk(x, y)
    return _finish(adv, x)


ATTACKS: dict[str, Callable[..., torch.Tensor]] = {
    "none": no_attack,
    "random_sign": random_sign_noise,
    "fgsm": fgsm,
    "pgd": pgd_linf,
    "autoattack": autoattack,
}
"""Attack name -> function ``(model, x, y, **kwargs) -> x_adv``."""


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------


def _batches(data: Any, batch_size: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        x, y = data
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"data: {x.shape[0]} images but {y.shape[0]} labels")
        return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)]
    if isinstance(data, TensorDataset):
        return _batches(tuple(data.tensors[:2]), batch_size)
    if isinstance(data, Iterable):
        return data
    raise TypeError(f"data: expected (images, labels) tensors, a TensorDataset or an iterable of batches, "
                    f"got {type(data).__name__}")


def robust_accuracy(model: torch.nn.Module, data: Any, attack: str | Callable[..., torch.Tensor] = "pgd", *,
                    batch_size: int = 256, n_eval: int = 1, device: str | torch.device | None = None,
                    max_batches: int | None = None, **attack_kwargs: Any) -> float:
    """Fraction of examples the model still classifies correctly after ``attack``.

    Args:
        model: classifier returning logits; it is put in eval mode for the predictions (its mode
            is restored afterwards).
        data: ``(images, labels)`` tensors, a ``TensorDataset``, or an iterable of
            ``(images, labels)`` batches such as a ``DataLoader``.
        attack: a name in :data:`ATTACKS` (``"none"`` gives clean accuracy) or a callable
            ``(model, x, y, **attack_kwargs) -> x_adv``.
        batch_size: batch size when ``data`` is given as tensors.
        n_eval: forward passes averaged (softmax) per prediction; use > 1 for stochastic models.
        device: where to compute (default: the model's device).
        max_batches: evaluate at most this many batches.
        **attack_kwargs: passed to the attack, e.g. ``eps=8/255, eot=4``.

    Returns:
        Robust accuracy in [0, 1].
    """
    _check_model(model)
    if isinstance(attack, str):
        if attack not in ATTACKS:
            raise ValueError(f"attack: unknown attack {attack!r}; valid: {', '.join(ATTACKS)}")
        attack_fn = ATTACKS[attack]
    elif callable(attack):
        attack_fn = attack
    else:
        raise TypeError(f"attack: expected an attack name or a callable, got {type(attack).__name__}")
    batch_size = _check_pos_int(batch_size, "batch_size")
    n_eval = _check_pos_int(n_eval, "n_eval")
    if max_batches is not None:
        max_batches = _check_pos_int(max_batches, "max_batches")
    device = torch.device(device) if device is not None else _model_device(model, torch.device("cpu"))

    correct = total = 0
    was_training = model.training
    try:
        for i, batch in enumerate(_batches(data, batch_size)):
            if max_batches is not None and i >= max_batches:
                break
            if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                raise ValueError("data: each batch must be an (images, labels) pair")
            x, y = batch[0].to(device), batch[1].to(device)
            model.eval()
            x_adv = attack_fn(model, x, y, **attack_kwargs)
            model.eval()
            pred = ensemble_predict(model, x_adv, n_eval, eval_mode=True).argmax(dim=1)
            correct += int((pred == y.long()).sum())
            total += int(y.shape[0])
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("data: no examples to evaluate")
    return correct / total
