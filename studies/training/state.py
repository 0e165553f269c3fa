"""Reproducible state of a run: seeding, RNG snapshots, and reading checkpoints and the weights
they hold.

A checkpoint carries the SHA-256 of its content (:func:`content_digest`, key ``"sha256"``),
checked whenever it is read: bytes damaged inside a tensor load without complaint from
``torch.load``, so without it a resumed run would go on from other weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kuramoto.checks import check_int
from studies.rundir import CHECKPOINT_NAME
from studies.training.distributed import (
    unwrap,
)

__all__ = ["CHECKPOINT_NAME", "content_digest", "load_model_weights", "read_checkpoint", "seed_everything", "with_digest"]


_FORMAT = "akorn-training-checkpoint"

#: Version 2 adds the ``sha256`` of the content; version 1 files (no checksum) are still read.
_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_DIGEST_KEY = "sha256"
_FIX = "pass --overwrite to start the run over, or restore a good copy"


def content_digest(obj: Any) -> str:
    """SHA-256 (hex) of a checkpoint's content: nested dicts, lists and tuples of tensors (dtype,
    shape and bytes), strings and numbers, walked in a fixed order (dict keys sorted)."""
    digest = hashlib.sha256()

    def walk(o: Any) -> None:
        if isinstance(o, torch.Tensor):
            t = o.detach().to("cpu").contiguous()
            digest.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            if t.numel():
                digest.update(t.reshape(-1).view(torch.uint8).numpy())
        elif isinstance(o, dict):
            digest.update(f"D{len(o)}".encode())
            for key in sorted(o, key=lambda k: (type(k).__name__, repr(k))):
                walk(key)
                walk(o[key])
        elif isinstance(o, (list, tuple)):
            digest.update(f"{'L' if isinstance(o, list) else 'U'}{len(o)}".encode())
            for item in o:
                walk(item)
        elif isinstance(o, str):
            digest.update(f"S{len(o)}:".encode() + o.encode("utf-8", "surrogatepass"))
        elif isinstance(o, bytes):
            digest.update(f"B{len(o)}:".encode() + o)
        else:  # None, bool, int, float (repr is exact), and anything else by its repr
            digest.update(f"P{type(o).__name__}:{o!r};".encode())

    walk(obj)
    return digest.hexdigest()


def with_digest(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with its :func:`content_digest` under ``"sha256"`` (what the trainer saves)."""
    body = {k: v for k, v in payload.items() if k != _DIGEST_KEY}
    return {**body, _DIGEST_KEY: content_digest(body)}


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and every CUDA device), numpy's global RNG and Python's ``random``.

    Call it before building a model so its initial weights are reproducible.
    """
    check_int(seed, "seed", minimum=0)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    # numpy's state holds an ndarray, which torch.load(weights_only=True) refuses: store a tensor.
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
        "loader": generator.get_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    return state


def _set_rng_state(state: Mapping[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state((npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"],
                         npst["cached_gaussian"]))
    random.setstate(state["python"])
    generator.set_state(state["loader"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _seed_all(seed: int, generator: torch.Generator) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    generator.manual_seed(seed)


@contextlib.contextmanager
def _isolated_rng(device: torch.device) -> Iterator[None]:
    """Run a block (evaluation) without consuming the training RNG streams."""
    np_state, py_state = np.random.get_state(), random.getstate()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load and identify a checkpoint; a damaged one raises ValueError and is left untouched."""
    if not path.is_file():
        raise FileNotFoundError(f"path: no checkpoint at {str(path)!r}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    # A truncated or foreign file fails anywhere inside zip reading or unpickling, with
    # RuntimeError, EOFError, UnpicklingError, KeyError, ...; all mean "unreadable" here.
    except Exception as exc:
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise ValueError(f"checkpoint {str(path)!r} cannot be read (truncated or corrupt?): {reason}; it was left "
                         f"in place ({_FIX})") from exc
    if not isinstance(obj, dict) or obj.get("format") != _FORMAT:
        raise ValueError(f"checkpoint {str(path)!r} is not an akorn training checkpoint "
                         f"(expected format {_FORMAT!r}); it was left in place ({_FIX})")
    if obj.get("version") not in _READABLE_VERSIONS:
        raise ValueError(f"checkpoint {str(path)!r} has version {obj.get('version')!r}; "
                         f"this code reads versions {', '.join(map(str, _READABLE_VERSIONS))}")
    if obj["version"] >= 2:
        stored = obj.pop(_DIGEST_KEY, None)
        if stored != content_digest(obj):
            raise ValueError(f"checkpoint {str(path)!r} is damaged: its content does not match the checksum written "
                             f"with it; it was left in place ({_FIX})")
    return obj


def _state_dict_differences(saved: Mapping[str, torch.Tensor], current: Mapping[str, torch.Tensor]) -> list[str]:
    diffs = []
    for key in sorted(saved.keys() - current.keys()):
        diffs.append(f"{key}: in the checkpoint, not in the model")
    for key in sorted(current.keys() - saved.keys()):
        diffs.append(f"{key}: in the model, not in the checkpoint")
    for key in saved.keys() & current.keys():
        a, b = saved[key], current[key]
        if tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype:
            diffs.append(f"{key}: checkpoint {tuple(a.shape)} {a.dtype} vs model {tuple(b.shape)} {b.dtype}")
    return diffs


def _format_diffs(diffs: list[str], limit: int = 6) -> str:
    shown = "; ".join(diffs[:limit])
    return shown + (f"; ... ({len(diffs) - limit} more)" if len(diffs) > limit else "")


def load_model_weights(path: str | os.PathLike, model: nn.Module, ema: bool = True) -> nn.Module:
    """Load the weights of a training checkpoint into ``model`` for evaluation.

    Args:
        path: a checkpoint file, or the run's ``out_dir`` (then ``out_dir/checkpoint.pt``).
        model: a module of the same architecture (wrappers such as DDP are unwrapped).
        ema: load the EMA copy (what the paper evaluates) instead of the raw weights.

    Returns:
        ``model``, with its weights replaced (device and dtype of ``model`` are kept).

    Raises:
        FileNotFoundError: no checkpoint at ``path``.
        ValueError: the checkpoint is unreadable, has no EMA copy while ``ema=True``, or
            does not match the model's parameter names/shapes/dtypes.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    ckpt = read_checkpoint(path)
    state = ckpt["ema"] if ema else ckpt["model"]
    if state is None:
        raise ValueError(f"ema: checkpoint {str(path)!r} was trained without EMA (ema_decay=None); pass ema=False")
    target = unwrap(model)
    diffs = _state_dict_differences(state, target.state_dict())
    if diffs:
        raise ValueError(f"model: does not match checkpoint {str(path)!r}: {_format_diffs(diffs)}")
    target.load_state_dict(state)
    return model
