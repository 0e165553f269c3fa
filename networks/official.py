"""Load checkpoints of the official AKOrN code (github.com/autonomousvision/akorn) into these models.

The official models and ours compute the same maps (docs/AKORN.md §1–4); only the module trees, and so
the ``state_dict`` keys, differ. :func:`convert_state_dict` renames and reshapes an official
``state_dict`` into the layout of one of our models, :func:`load_official` also reads the file,
unwraps the EMA copy the official scripts save and loads the result.

Key map, official → ours (``l`` = block index; ``K`` = the official Kuramoto layer of block ``l``:
``layers.{l}.0`` for Sudoku and objects, ``layers.{l}.2`` for the classifier):

- ``gamma`` (one ``[1]`` for the whole net) → ``layers.{l}.gamma`` ``[]``, copied into every layer.
- ``x0`` (Sudoku; a parameter the forward never uses) → dropped.
- ``K.omg.omg_param`` ``[2]`` or ``[C/2, 2]`` → ``layers.{l}.omega.p`` ``[2]`` or ``[C/n, n/2, 2]``.
- ``K.connectivity.weight|bias`` (conv J) → ``layers.{l}.coupling.weight|bias``.
- ``K.connectivity.W_qkv.weight`` ``[3C, C, 1, 1]`` / ``.bias`` → ``layers.{l}.coupling.qkv_weight``
  ``[3C, C]`` / ``qkv_bias``; ``K.connectivity.W_o.*`` → ``coupling.out_weight`` ``[C, C]`` / ``out_bias``.
- ``K.connectivity.mat_q|k|v|o`` ``[H·W, d/2, 2, 2]`` → ``layers.{l}.coupling.gta_q|k|v|out``
  ``[H, W, d/2, 2, 2]``. (The official four are one storage, ``q = k = v = M``, ``o = Mᵀ``, tied
  through training; ours are four parameters that start equal to those values.)
- ``K.c_norm.weight|bias`` (GroupNorm) or ``K.c_norm.scale|bias`` → ``layers.{l}.stimulus_norm.*``.
- ReadOutConv ``….invconv.weight|bias``, ``….bias`` → ReadOut ``….conv.weight|bias``, ``….bias``.
- ResBlock(FF) ``….fn.fn.{u}.fn.0.*`` (norm), ``….fn.fn.{u}.fn.2.*`` (conv) →
  ``….fn.unit{u+1}.norm.*``, ``….fn.unit{u+1}.conv.*``; BNReLUConv2d ``….fn.0.*``, ``….fn.2.*`` →
  ``….norm.*``, ``….conv.*``.
- Sudoku: ``embedding.weight`` → ``embed.weight``; ``layers.{l}.1.0|1`` → ``readouts.{l}.0|1``;
  ``layers.{l}.1.2.fn.2.*`` → ``readouts.{l}.3.*``; ``out.1.*`` → ``head.1.*``.
- Classifier: ``conv0.weight`` → ``stem.weight``; ``layers.{l}.0.0.*`` and ``layers.{l}.0.1.*`` (one
  conv registered twice, applied to x and to c) → ``transitions.{l−1}.*``;
  ``layers.{l}.3.0|1|2`` → ``readouts.{l}.0|1|2``; ``out.*`` → ``fc.*``.
- Objects: ``patchfy.1.*`` → ``patchify.*``; ``pemb_c``, ``pemb_x`` ``[C, h, w]`` → ``pos_c.pe``,
  ``pos_x.pe`` ``[1, C, h, w]``; ``layers.{l}.1.*`` → ``readouts.{l}.*``; ``layers.{l}.2.*``
  (``use_ro_x``) → ``x_maps.{l}.*``; ``out.3.*``, ``out.5.*`` → ``head.0.*``, ``head.2.*``.
- ``normalize.mean|std`` (ours; the official RGBNormalize holds no state) → kept from the model.

Conventions that make the copied numbers mean the same thing: channel ``k·n + m`` is component
``m`` of oscillator ``k`` and attention heads are interleaved (``c_local·heads + head``) in both
codes; :class:`~kuramoto.frequencies.RotationPairs` stores the official ``omg_param`` unchanged
(its angular velocity is the official ``−‖p‖``, the official pair velocity being ``(ω b, −ω a)``).
A layer without ``omg_param`` ran with the official identity-Ω quirk (the velocity gains ``+x``,
effective step ``γ/(1+γ)``; docs/AKORN.md §1.4): the target layer must have
``legacy_identity_omega=True`` (:class:`~networks.ObjectAKOrN` offers it; every official object
model needs it).
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from typing import Literal

import torch
from torch import nn

from .models import AKOrNClassifier, ObjectAKOrN, SudokuAKOrN

__all__ = ["OfficialCheckpointError", "convert_state_dict", "load_official", "read_official"]

Kind = Literal["sudoku", "classifier", "objects"]

#: our keys with no official counterpart: constants of the architecture, kept from the target model
_CONSTANT_KEYS = ("normalize.mean", "normalize.std")
#: official keys that hold no weights of the model
_DROPPED_KEYS = ("x0",)
_EMA_PREFIXES = {"ema": "ema_model.", "online": "online_model."}
_EMA_BOOKKEEPING = ("initted", "step")


class OfficialCheckpointError(ValueError):
    """An official checkpoint does not fit the target model (unknown, missing or misshapen keys)."""


def _klayer_rules(off: str, ours: str) -> list[tuple[str, str, bool]]:
    """(official regex, our template, reshape allowed) for one official KLayer."""
    return [
        (rf"{off}\.omg\.omg_param", rf"{ours}.omega.p", True),
        (rf"{off}\.connectivity\.(?P<x>weight|bias)", rf"{ours}.coupling.\g<x>", False),
        (rf"{off}\.connectivity\.W_qkv\.weight", rf"{ours}.coupling.qkv_weight", True),
        (rf"{off}\.connectivity\.W_qkv\.bias", rf"{ours}.coupling.qkv_bias", False),
        (rf"{off}\.connectivity\.W_o\.weight", rf"{ours}.coupling.out_weight", True),
        (rf"{off}\.connectivity\.W_o\.bias", rf"{ours}.coupling.out_bias", False),
        (rf"{off}\.connectivity\.mat_(?P<x>q|k|v)", rf"{ours}.coupling.gta_\g<x>", True),
        (rf"{off}\.connectivity\.mat_o", rf"{ours}.coupling.gta_out", True),
        (rf"{off}\.c_norm\.(?P<x>weight|bias|scale)", rf"{ours}.stimulus_norm.\g<x>", False),
    ]


def _readout_rules(off: str, ours: str) -> list[tuple[str, str, bool]]:
    return [
        (rf"{off}\.invconv\.(?P<x>weight|bias)", rf"{ours}.conv.\g<x>", False),
        (rf"{off}\.bias", rf"{ours}.bias", False),
    ]


_NORM = r"(?P<x>weight|bias|running_mean|running_var|num_batches_tracked)"
_WB = r"(?P<x>weight|bias)"


def _ff_rules(off: str, ours: str) -> list[tuple[str, str, bool]]:
    """ResBlock(FF): official ``fn.fn.{u}.fn.{0 norm, 2 conv}`` -> ours ``fn.unit{u+1}.{norm, conv}``."""
    return [rule for u in (0, 1) for rule in (
        (rf"{off}\.fn\.fn\.{u}\.fn\.0\.{_NORM}", rf"{ours}.fn.unit{u + 1}.norm.\g<x>", False),
        (rf"{off}\.fn\.fn\.{u}\.fn\.2\.{_WB}", rf"{ours}.fn.unit{u + 1}.conv.\g<x>", False))]


def _rules(kind: Kind) -> list[tuple[re.Pattern, str, bool]]:
    L = r"(?P<l>\d+)"
    if kind == "sudoku":
        raw = [(r"embedding\.weight", "embed.weight", False), (r"out\.1\.(?P<x>weight|bias)", r"head.1.\g<x>", False)]
        raw += _klayer_rules(rf"layers\.{L}\.0", r"layers.\g<l>")
        raw += _readout_rules(rf"layers\.{L}\.1\.0", r"readouts.\g<l>.0")
        raw += _ff_rules(rf"layers\.{L}\.1\.1", r"readouts.\g<l>.1")
        raw += [(rf"layers\.{L}\.1\.2\.fn\.2\.{_WB}", r"readouts.\g<l>.3.\g<x>", False)]
    elif kind == "classifier":
        raw = [(r"conv0\.weight", "stem.weight", False), (r"out\.(?P<x>weight|bias)", r"fc.\g<x>", False),
               (rf"layers\.{L}\.0\.[01]\.{_WB}", r"transitions.\g<lm1>.\g<x>", False)]
        raw += _klayer_rules(rf"layers\.{L}\.2", r"layers.\g<l>")
        raw += _readout_rules(rf"layers\.{L}\.3\.0", r"readouts.\g<l>.0")
        raw += _ff_rules(rf"layers\.{L}\.3\.1", r"readouts.\g<l>.1")
        raw += [(rf"layers\.{L}\.3\.2\.fn\.0\.{_NORM}", r"readouts.\g<l>.2.norm.\g<x>", False),
                (rf"layers\.{L}\.3\.2\.fn\.2\.{_WB}", r"readouts.\g<l>.2.conv.\g<x>", False)]
    else:
        raw = [(r"patchfy\.1\.(?P<x>weight|bias)", r"patchify.\g<x>", False),
               (r"pemb_(?P<x>c|x)", r"pos_\g<x>.pe", True),
               (r"out\.3\.(?P<x>weight|bias)", r"head.0.\g<x>", False),
               (r"out\.5\.(?P<x>weight|bias)", r"head.2.\g<x>", False),
               (rf"layers\.{L}\.2\.{_WB}", r"x_maps.\g<l>.\g<x>", False)]
        raw += _klayer_rules(rf"layers\.{L}\.0", r"layers.\g<l>")
        raw += _readout_rules(rf"layers\.{L}\.1", r"readouts.\g<l>")
    return [(re.compile(pattern + r"\Z"), template, reshape) for pattern, template, reshape in raw]


def _kind(model: nn.Module) -> Kind:
    if isinstance(model, SudokuAKOrN):
        return "sudoku"
    if isinstance(model, AKOrNClassifier):
        return "classifier"
    if isinstance(model, ObjectAKOrN):
        return "objects"
    raise TypeError(f"model: expected a SudokuAKOrN, AKOrNClassifier or ObjectAKOrN (the models with an official "
                    f"counterpart), got {type(model).__name__}")


def _listing(keys: list[str], limit: int = 12) -> str:
    keys = sorted(keys)
    more = f", … ({len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _check_omega(kind: Kind, official: Mapping[str, torch.Tensor], model: nn.Module, depth: int) -> None:
    """An official layer without Ω ran the identity-Ω quirk; the target layer must reproduce it."""
    klayer = {"sudoku": "layers.{}.0", "classifier": "layers.{}.2", "objects": "layers.{}.0"}[kind]
    for l in range(depth):
        layer = model.get_submodule(f"layers.{l}")
        if f"{klayer.format(l)}.omg.omg_param" in official or layer.omega is not None:
            continue  # Ω on both sides, or Ω only on ours (then omega.p is reported missing)
        if not layer.legacy_identity_omega:
            hint = ("build it as ObjectAKOrN(..., legacy_identity_omega=True)" if kind == "objects" else
                    f"{type(model).__name__} does not offer the quirk; only official checkpoints trained with "
                    f"use_omega=True load into it")
            raise OfficialCheckpointError(
                f"model: official layer {l} has no Ω (use_omega=False), so it ran with the official identity-Ω quirk "
                f"(the velocity gains +x, effective step γ/(1+γ)); the target layer has Ω = 0 without the quirk and "
                f"would compute something else: {hint}")


def convert_state_dict(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """An official AKOrN ``state_dict`` in the key layout of ``model`` (see the module's key map).

    Args:
        state_dict: the official model's ``state_dict`` (a plain one: see :func:`read_official`
            for files and EMA wrappers).
        model: the target, a :class:`~networks.SudokuAKOrN`, :class:`~networks.AKOrNClassifier`
            or :class:`~networks.ObjectAKOrN` built with the official run's hyper-parameters
            (its own state is read for shapes and architecture constants only).

    Returns:
        A complete ``state_dict`` for ``model`` (tensors are the official ones, renamed and
        reshaped, on their original device and dtype; ``normalize.mean|std`` come from ``model``).

    Raises:
        TypeError: ``model`` is not one of the three models, or a value is not a tensor.
        OfficialCheckpointError: (a ``ValueError``) keys the map does not know, keys ``model``
            needs that the checkpoint lacks, shapes that do not fit, a classifier transition
            whose two official copies differ, or a layer without Ω into a model without the
            identity-Ω quirk. Each message lists the keys.
    """
    kind = _kind(model)
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict: expected a mapping of names to tensors, got {type(state_dict).__name__}")
    depth = len(model.layers)
    renamed = _Renamed(model.state_dict(), _rules(kind))
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state_dict: {key!r} is a {type(value).__name__}, expected a tensor")
        if key in _DROPPED_KEYS and kind == "sudoku":
            continue
        if key == "gamma":  # one official γ (a [1] parameter) for every layer
            for l in range(depth):
                renamed.put_gamma(f"layers.{l}.gamma", value, key)
        else:
            renamed.put(key, value)
    if renamed.unknown:
        raise OfficialCheckpointError(f"state_dict: {len(renamed.unknown)} key(s) the official {kind} map does not "
                                      f"know (is it a {kind} checkpoint?): {_listing(renamed.unknown)}")
    if renamed.untied:
        raise OfficialCheckpointError(f"state_dict: the classifier's transition conv is one module under two names in "
                                      f"the official model, but these copies differ: {_listing(renamed.untied)}")
    _check_omega(kind, state_dict, model, depth)
    return renamed.complete()


class _Renamed:
    """Official tensors under the target model's names (``target``: its ``state_dict``), with the
    keys no rule knows, the shapes that do not fit and the copies of one module that differ."""

    def __init__(self, target: dict[str, torch.Tensor], rules: list[tuple[re.Pattern, str, bool]]) -> None:
        self.target, self.rules = target, rules
        self.out: dict[str, torch.Tensor] = {}
        self.sources: dict[str, str] = {}
        self.unknown: list[str] = []
        self.misshapen: list[str] = []
        self.untied: list[str] = []

    def put_gamma(self, name: str, value: torch.Tensor, key: str) -> None:
        ref = self.target.get(name)
        fits = ref is not None and value.numel() == ref.numel() == 1
        self.out[name], self.sources[name] = (value.reshape(ref.shape) if fits else value), key

    def put(self, key: str, value: torch.Tensor) -> None:
        """Rename ``key`` by the first rule that matches it (reshaped where the rule allows)."""
        for pattern, template, reshape in self.rules:
            m = pattern.match(key)
            if m is None:
                continue
            groups = m.groupdict()
            if "l" in groups and groups["l"] is not None:
                groups["lm1"] = str(int(groups["l"]) - 1)
            name = re.sub(r"\\g<(\w+)>", lambda g: groups[g.group(1)], template)
            if name in self.out:  # the classifier's transition conv is stored twice (one module, two names)
                if self.out[name].shape != value.shape or not torch.equal(self.out[name], value):
                    self.untied.append(f"{self.sources[name]} / {key}")
                return
            ref = self.target.get(name)
            if ref is not None and value.shape != ref.shape:
                if reshape and value.numel() == ref.numel():
                    value = value.reshape(ref.shape)
                else:
                    self.misshapen.append(f"{key} {tuple(value.shape)} -> {name} {tuple(ref.shape)}")
            self.out[name], self.sources[name] = value, key
            return
        self.unknown.append(key)

    def complete(self) -> dict[str, torch.Tensor]:
        """The full ``state_dict`` in the target's key order (its constants kept from the target).

        Raises:
            OfficialCheckpointError: keys missing on either side or shapes that do not fit.
        """
        target, out = self.target, self.out
        for name in _CONSTANT_KEYS:
            if name in target and name not in out:
                out[name] = target[name]
        missing = [k for k in target if k not in out]
        unexpected = [f"{self.sources[k]} -> {k}" for k in out if k not in target]
        problems = []
        if missing:
            hint = (" (a layer built with gamma_max stores gamma_logit; the official γ is free: build with "
                    "gamma_max=None)" if any(k.endswith("gamma_logit") for k in missing) else "")
            problems.append(f"{len(missing)} key(s) of the model missing from the checkpoint: {_listing(missing)}{hint}")
        if unexpected:
            problems.append(f"{len(unexpected)} checkpoint key(s) the model does not have: {_listing(unexpected)}")
        if self.misshapen:
            problems.append(f"{len(self.misshapen)} shape mismatch(es): {_listing(self.misshapen)}")
        if problems:
            raise OfficialCheckpointError("state_dict: the official checkpoint does not fit the model (build the model "
                                          "with the official run's hyper-parameters): " + "; ".join(problems))
        return {k: out[k] for k in target}


def read_official(source: str | os.PathLike | Mapping[str, torch.Tensor], *,
                  weights: Literal["ema", "online"] = "ema") -> dict[str, torch.Tensor]:
    """A plain official ``state_dict`` from a checkpoint file or a loaded object.

    Unwraps what the official scripts save: ``{"epoch", "model_state_dict"}`` dicts, and the
    ``ema_pytorch.EMA`` state (``initted``, ``step``, ``online_model.*``, ``ema_model.*``) from
    which the ``weights`` copy is taken (the official evaluations use the EMA copy). A
    ``module.`` prefix (DistributedDataParallel) is stripped too.

    Args:
        source: path of a ``.pth`` file (read with ``torch.load(weights_only=True)`` on CPU) or
            an already loaded mapping.
        weights: ``"ema"`` (default) or ``"online"`` (the raw training weights), for EMA files.

    Returns:
        ``{name: tensor}`` in the official model's key layout.

    Raises:
        TypeError, ValueError: naming the argument (unreadable file, unexpected content, an
            EMA file without the requested copy).
    """
    if weights not in _EMA_PREFIXES:
        raise ValueError(f"weights: expected 'ema' or 'online', got {weights!r}")
    if isinstance(source, (str, os.PathLike)):
        try:
            obj = torch.load(os.fspath(source), map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
            raise ValueError(f"source: cannot read a torch checkpoint from {os.fspath(source)!r}: {exc}") from None
    elif isinstance(source, Mapping):
        obj = source
    else:
        raise TypeError(f"source: expected a path or a state_dict mapping, got {type(source).__name__}")
    if not isinstance(obj, Mapping):
        raise ValueError(f"source: expected a state_dict (a mapping), found a {type(obj).__name__}")
    if isinstance(obj.get("model_state_dict"), Mapping):
        obj = obj["model_state_dict"]
    if any(isinstance(k, str) and k.startswith(p) for k in obj for p in _EMA_PREFIXES.values()):
        prefix = _EMA_PREFIXES[weights]
        picked = {k[len(prefix):]: v for k, v in obj.items() if k.startswith(prefix)}
        if not picked:
            other = "ema" if weights == "online" else "online"
            raise ValueError(f"weights: the EMA checkpoint holds no {prefix!r} copy (saved with "
                             f"include_online_model=False?); use weights={other!r}")
        obj = picked
    obj = {k: v for k, v in obj.items() if k not in _EMA_BOOKKEEPING}
    if not obj:
        raise ValueError("source: the checkpoint holds no model weights")
    if all(isinstance(k, str) and k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def load_official(model: nn.Module, source: str | os.PathLike | Mapping[str, torch.Tensor], *,
                  weights: Literal["ema", "online"] = "ema") -> nn.Module:
    """Load an official AKOrN checkpoint into ``model`` (strictly: every weight is set).

    ``model`` must be built with the official run's hyper-parameters (width, depth, n, heads,
    GTA, coupling, kernel sizes, stimulus norm, Ω switches; object models with
    ``legacy_identity_omega=True``). The step count T, γ's trainability and the image size are
    free. Example, the paper's Sudoku model::

        model = SudokuAKOrN(width=512, n=4, heads=8, omega=0.5)
        load_official(model, "runs/sudoku/ema_99.pth")

    Args:
        model: a :class:`~networks.SudokuAKOrN`, :class:`~networks.AKOrNClassifier` or
            :class:`~networks.ObjectAKOrN`.
        source: checkpoint path or a loaded (possibly EMA-wrapped) ``state_dict``.
        weights: ``"ema"`` (default, what the official evaluations use) or ``"online"``.

    Returns:
        ``model``, with the official weights (tensors cast to its dtype and device).

    Raises:
        OfficialCheckpointError, TypeError, ValueError: see :func:`convert_state_dict` and
            :func:`read_official`.
    """
    _kind(model)
    converted = convert_state_dict(read_official(source, weights=weights), model)
    model.load_state_dict(converted, strict=True)
    return model

