"""Study configurations: frozen dataclasses with presets, validation and a JSON form.

Every study declares one config class derived from :class:`StudyConfig`. Its fields are the
study's parameters; each is declared with :func:`param`, which records the help text and the
units that the ``akorn`` command line shows (the CLI is generated from these fields, see
:mod:`studies.cli`). A config is validated when it is built (``__post_init__``): a bad value
raises :class:`ConfigError`, a ``ValueError`` whose :attr:`~ConfigError.field` names the
offending field, so the CLI can name the option.

Presets are named sets of overrides (``quick`` for a 2-core laptop, ``paper`` for a
workstation). ``Config()`` is the quick preset; ``Config.preset("paper", N=(5000,))`` starts
from a preset and overrides fields.

The config travels with its results: :meth:`StudyConfig.to_json` is stored in every result
file and :meth:`StudyConfig.from_json` rebuilds it, so a run is reproducible from its file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any, ClassVar, Literal, TypeVar, Union

__all__ = ["LAYER_METHODS", "ConfigError", "StudyConfig", "field_options", "param"]

C = TypeVar("C", bound="StudyConfig")

#: Fixed-step integrators a trained AKOrN layer can use (native: they differentiate a learnable γ),
#: for the studies' test-time ``--method`` options.
LAYER_METHODS = ("euler_normalized", "heun_normalized", "rk4_normalized", "geodesic_euler", "rkmk4", "cf4",
                 "lawson_rk4")

#: Integers a config holds must fit a signed 64-bit integer (numpy and torch store them so).
_INT64_MAX = 2**63 - 1


class ConfigError(ValueError):
    """A config field has a bad value.

    Attributes:
        field: the name of the offending field (``"k_max"``); the CLI turns it into ``--k-max``.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


def param(default: Any, help: str, *, units: str | None = None, metavar: str | None = None) -> Any:
    """Declare a config field with its help text (shown by ``akorn <study> --help``).

    Args:
        default: the quick-preset value (immutable: use tuples, not lists).
        help: one sentence saying what the field is.
        units: physical units, shown in the help and stored with the results.
        metavar: placeholder shown in the usage line.

    Returns:
        A ``dataclasses.field``.
    """
    if isinstance(default, (list, dict, set)):
        raise TypeError(f"default: use an immutable default (tuple) for a config field, got {type(default).__name__}")
    return dataclasses.field(default=default, metadata={"help": help, "units": units, "metavar": metavar})


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def field_options(cls: type[StudyConfig]) -> list[tuple[dataclasses.Field, dict[str, Any]]]:
    """Describe every field of a config class for a command-line parser.

    Returns:
        ``(field, spec)`` pairs; ``spec`` has ``kind`` (``"scalar"``, ``"bool"``, ``"tuple"``),
        ``type`` (``int``, ``float`` or ``str``), ``choices`` (tuple or ``None``),
        ``optional`` (``None`` is accepted) plus the field's ``help``, ``units``, ``metavar``.
    """
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp, optional = _unwrap_optional(hints[f.name])
        spec: dict[str, Any] = {"optional": optional, "choices": None, "kind": "scalar",
                                "help": f.metadata.get("help", ""), "units": f.metadata.get("units"),
                                "metavar": f.metadata.get("metavar")}
        origin = typing.get_origin(tp)
        if tp is bool:
            spec.update(kind="bool", type=bool)
        elif origin is tuple:
            args = typing.get_args(tp)
            if len(args) != 2 or args[1] is not Ellipsis:
                raise TypeError(f"{cls.__name__}.{f.name}: tuple fields must be tuple[T, ...]")
            inner, _ = _unwrap_optional(args[0])
            if typing.get_origin(inner) is Literal:
                spec.update(kind="tuple", type=type(typing.get_args(inner)[0]), choices=typing.get_args(inner))
            else:
                spec.update(kind="tuple", type=inner)
        elif origin is Literal:
            choices = typing.get_args(tp)
            spec.update(type=type(choices[0]), choices=choices)
        elif tp in (int, float, str):
            spec.update(type=tp)
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: unsupported field type {tp!r}")
        out.append((f, spec))
    return out


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """Base of every study config.

    Subclasses are frozen dataclasses whose fields all have defaults (the ``quick`` preset),
    declare ``study`` (the CLI name) and ``PRESETS``, and implement :meth:`validate`. Values
    are coerced where it is unambiguous (a list or a single number for a tuple field, an int
    for a float field) and then checked; anything else raises :class:`ConfigError`.
    """

    study: ClassVar[str] = ""
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"quick": {}}

    def __post_init__(self) -> None:
        for f, spec in field_options(type(self)):
            value = getattr(self, f.name)
            object.__setattr__(self, f.name, self._coerce(f.name, value, spec))
        seeds = getattr(self, "seeds", None)
        if isinstance(getattr(self, "seed", None), int) and isinstance(seeds, int) and seeds > 0 \
                and self.seed + seeds - 1 > _INT64_MAX:
            raise ConfigError("seed", f"seeds {self.seed} to {self.seed + seeds - 1} do not fit a 64-bit integer; "
                                      f"use a seed below {_INT64_MAX - seeds + 2}")
        self.validate()

    @staticmethod
    def _coerce(name: str, value: Any, spec: dict[str, Any]) -> Any:
        if value is None:
            if spec["optional"]:
                return None
            raise ConfigError(name, "a value is required, got None")
        tp = spec["type"]

        def one(v: Any) -> Any:
            if tp is bool:
                if not isinstance(v, bool):
                    raise ConfigError(name, f"expected true or false, got {v!r}")
                return v
            if tp is int:
                # the guards of kuramoto.checks, spelt out: importing kuramoto would import torch for --help
                if isinstance(v, bool) or not isinstance(v, int):
                    if not (isinstance(v, float) and v.is_integer()):
                        raise ConfigError(name, f"expected an integer, got {v!r}")
                v = int(v)
                if not -_INT64_MAX <= v <= _INT64_MAX:
                    raise ConfigError(name, f"expected an integer below 2**63 in magnitude, got {v}")
                return v
            if tp is float:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ConfigError(name, f"expected a number, got {v!r}")
                v = float(v)
                if not math.isfinite(v):
                    raise ConfigError(name, f"expected a finite number, got {v!r}")
                return v
            if not isinstance(v, str):
                raise ConfigError(name, f"expected a string, got {v!r}")
            return v

        if spec["kind"] == "tuple":
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
                value = (value,)
            values = tuple(one(v) for v in value)
            if not values:
                raise ConfigError(name, "expected at least one value")
            if spec["choices"] is not None:
                for v in values:
                    if v not in spec["choices"]:
                        raise ConfigError(name, f"expected values among {', '.join(map(str, spec['choices']))}; "
                                                f"got {v!r}")
            return values
        value = one(value)
        if spec["choices"] is not None and value not in spec["choices"]:
            raise ConfigError(name, f"expected one of {', '.join(map(str, spec['choices']))}; got {value!r}")
        return value

    def validate(self) -> None:
        """Check relations between fields; raise :class:`ConfigError` naming a field."""

    # -- helpers for validate() ------------------------------------------------------------
    def _positive(self, *names: str, strict: bool = True) -> None:
        for name in names:
            value = getattr(self, name)
            for v in (value if isinstance(value, tuple) else (value,)):
                if v is None:
                    continue
                if (strict and not v > 0) or (not strict and not v >= 0):
                    what = "positive" if strict else "non-negative"
                    raise ConfigError(name, f"expected {what} value(s), got {v!r}")

    def _check_device(self, name: str = "device") -> None:
        """A device the run can compute on: a valid torch device that is present (not ``meta``,
        whose tensors hold no values; not ``cuda`` without CUDA)."""
        value = getattr(self, name)
        try:
            import torch  # torch-free at import: only a built config (never --help) checks its device

            device = torch.device(value)
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(name, f"not a torch device: {value!r} ({exc})") from None
        if device.type == "meta":
            raise ConfigError(name, "'meta' tensors hold no values, so nothing can be computed on them; use 'cpu'")
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise ConfigError(name, f"{value!r} requested but CUDA is not available; use 'cpu'")
            if device.index is not None and device.index >= torch.cuda.device_count():
                raise ConfigError(name, f"{value!r}: there are {torch.cuda.device_count()} CUDA devices")
        elif device.type != "cpu":
            backend = getattr(torch, device.type, None)
            available = getattr(backend, "is_available", None)
            if available is None or not available():
                raise ConfigError(name, f"{value!r} is not available on this machine; use 'cpu'")

    @staticmethod
    def _methods(name: str) -> dict[str, Any]:
        """:data:`integrators.METHODS`, imported when a config is built (never for --help)."""
        try:
            from integrators import METHODS  # torch-free at import, as above
        except ImportError as exc:
            raise ConfigError(name, f"the integrators package cannot be imported ({exc})") from None
        return METHODS

    def _check_method(self, name: str = "method") -> None:
        value = getattr(self, name)
        methods = self._methods(name)
        if value not in methods:
            raise ConfigError(name, f"unknown method {value!r}; valid: {', '.join(sorted(methods))}")

    # -- presets and serialisation ---------------------------------------------------------
    @classmethod
    def preset(cls: type[C], name: str = "quick", **overrides: Any) -> C:
        """Build the named preset, with ``overrides`` applied on top.

        Raises:
            ValueError: unknown preset name or unknown field.
        """
        if name not in cls.PRESETS:
            raise ConfigError("preset", f"unknown preset {name!r} for {cls.study or cls.__name__}; "
                                        f"valid: {', '.join(cls.PRESETS)}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(unknown[0], f"unknown field of {cls.__name__}; valid: {', '.join(sorted(known))}")
        return cls(**{**cls.PRESETS[name], **overrides})

    @classmethod
    def preset_fields(cls, name: str = "quick") -> dict[str, Any]:
        """The field values of a preset, coerced but not validated (what ``--help`` shows; validating
        would check the device and method, which imports torch)."""
        merged = {f.name: f.default for f in dataclasses.fields(cls)}
        merged.update(cls.PRESETS[name])
        return {f.name: cls._coerce(f.name, merged[f.name], spec) for f, spec in field_options(cls)}

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict (tuples become lists)."""
        return {f.name: (list(v) if isinstance(v, tuple) else v)
                for f in dataclasses.fields(self) for v in (getattr(self, f.name),)}

    def to_json(self) -> str:
        """The config as a JSON object with sorted keys (stored in every result file)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        if not isinstance(data, dict):
            raise TypeError(f"data: expected a dict, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(unknown[0], f"unknown field of {cls.__name__}")
        return cls(**data)

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        """Inverse of :meth:`to_json`."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected a JSON string, got {type(text).__name__}")
        return cls.from_dict(json.loads(text))

    @classmethod
    def units(cls) -> dict[str, str]:
        """Units of the fields that have them (stored with the results)."""
        return {f.name: f.metadata["units"] for f in dataclasses.fields(cls) if f.metadata.get("units")}
